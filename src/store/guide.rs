//! What the programme guide reads: airings joined with their rows and assets, the assets of planned rows, the
//! length of generated clips by title, and the `synopses` table (one-line synopses the curator's LLM wrote).

use super::codec::{self, now_ms};
use super::{Airing, AssetId, AssetKind, ChannelId, Result, Store};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// What the guide shows of an asset.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideAsset {
    pub id: AssetId,
    pub title: String,
    pub kind: AssetKind,
    pub description: String,
    pub tags: Vec<String>,
    pub duration: Duration,
    /// The LLM-written synopsis, when one was made.
    pub synopsis: Option<String>,
}

#[derive(sqlx::FromRow)]
struct GuideAssetRow {
    id: AssetId,
    title: String,
    kind: AssetKind,
    description: String,
    tags: String,
    duration_ms: i64,
    synopsis: Option<String>,
}

impl From<GuideAssetRow> for GuideAsset {
    fn from(r: GuideAssetRow) -> GuideAsset {
        GuideAsset {
            id: r.id,
            title: r.title,
            kind: r.kind,
            description: r.description,
            tags: codec::json_list(&r.tags),
            duration: codec::duration(r.duration_ms),
            synopsis: r.synopsis,
        }
    }
}

/// An airing with whether its schedule row was filler.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideAiring {
    pub airing: Airing,
    pub filler: bool,
}

impl Store {
    /// Airings of a channel overlapping [from, to), oldest first, the one still open included whenever it started
    /// before `to`.
    pub async fn guide_airings(
        &self,
        channel: &ChannelId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<GuideAiring>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: super::AiringId,
            channel_id: ChannelId,
            asset_id: Option<AssetId>,
            schedule_id: Option<super::ScheduleId>,
            kind: super::AiringKind,
            title: String,
            start_ms: i64,
            end_ms: Option<i64>,
            offset_ms: i64,
            filler: Option<bool>,
        }
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT r.id, r.channel_id, r.asset_id, r.schedule_id, r.kind, r.title, r.start_ms, r.end_ms, r.offset_ms,
                 s.filler
             FROM airings r LEFT JOIN schedule s ON s.id = r.schedule_id
             WHERE r.channel_id = $1 AND r.start_ms < $2 AND (r.end_ms IS NULL OR r.end_ms > $3)
             ORDER BY r.start_ms, r.id",
        )
        .bind(channel)
        .bind(codec::time_ms(to))
        .bind(codec::time_ms(from))
        .fetch_all(pool)
        .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| GuideAiring {
                airing: Airing {
                    id: r.id,
                    channel_id: r.channel_id,
                    asset_id: r.asset_id,
                    schedule_id: r.schedule_id,
                    kind: r.kind,
                    title: r.title,
                    start: codec::time(r.start_ms),
                    end: codec::opt_time(r.end_ms),
                    offset: codec::duration(r.offset_ms),
                },
                filler: r.filler.unwrap_or(false),
            })
            .collect())
    }

    /// The guide's view of these assets (unknown ids are left out).
    pub async fn guide_assets(&self, ids: &[AssetId]) -> Result<HashMap<AssetId, GuideAsset>> {
        let mut out = HashMap::new();
        // SQLite binds at most 32766 parameters; a guide names far fewer assets, in chunks all the same.
        for chunk in ids.chunks(500) {
            let marks = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT a.id, a.title, a.kind, a.description, a.tags, a.duration_ms, y.text AS synopsis
                 FROM assets a LEFT JOIN synopses y ON y.asset_id = a.id WHERE a.id IN ({marks})"
            );
            let rows: Vec<GuideAssetRow> = on_pool!(self, |pool| {
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await
            })?;
            for row in rows {
                out.insert(row.id, GuideAsset::from(row));
            }
        }
        Ok(out)
    }

    /// The length of the newest generated clip (slate, emergency card) with this title: slate airings carry no
    /// asset id, only the clip's title.
    pub async fn clip_length(&self, title: &str) -> Result<Option<Duration>> {
        let ms: Option<i64> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT duration_ms FROM assets WHERE kind = 'slate' AND title = $1 ORDER BY id DESC"
        )
        .bind(title)
        .fetch_optional(pool)
        .await)?;
        Ok(ms.map(codec::duration))
    }

    pub async fn synopsis(&self, asset: AssetId) -> Result<Option<String>> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT text FROM synopses WHERE asset_id = $1")
            .bind(asset)
            .fetch_optional(pool)
            .await)?)
    }

    /// Keeps an asset's synopsis (the first one written stays: it is asked once).
    pub async fn set_synopsis(&self, asset: AssetId, text: &str, model: &str) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO synopses (asset_id, text, model, created_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT(asset_id) DO NOTHING",
        )
        .bind(asset)
        .bind(text)
        .bind(model)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewAsset;

    #[tokio::test]
    async fn a_synopsis_is_kept_once_and_read_with_the_asset() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("vvtv.db")).await.unwrap();
        let asset = NewAsset {
            title: "Forest Birds".into(),
            dir: dir.path().join("a"),
            duration: Duration::from_secs(30),
            ..Default::default()
        };
        let id = store.insert_asset(&asset).await.unwrap();
        assert_eq!(store.synopsis(id).await.unwrap(), None);
        store.set_synopsis(id, "Birds sing in a forest.", "llm:m").await.unwrap();
        store.set_synopsis(id, "Something else.", "llm:m").await.unwrap();
        assert_eq!(store.synopsis(id).await.unwrap().as_deref(), Some("Birds sing in a forest."));
        let assets = store.guide_assets(&[id, AssetId(999)]).await.unwrap();
        assert_eq!(assets.len(), 1);
        assert_eq!(assets[&id].synopsis.as_deref(), Some("Birds sing in a forest."));
        assert_eq!(assets[&id].duration, Duration::from_secs(30));
    }
}
