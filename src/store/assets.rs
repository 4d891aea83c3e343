//! The `assets` and `renditions` tables: media in the house format, ready to air.

use super::{now_ms, AssetId, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum AssetKind {
    Programme,
    Demo,
    Slate,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Asset {
    pub id: AssetId,
    pub sha256: Option<String>,
    pub title: String,
    pub source: String,
    pub kind: AssetKind,
    pub emergency: bool,
    pub status: String,
    pub bad_reason: Option<String>,
    pub dir: String,
    pub duration_ms: i64,
    pub first_dts_ns: Option<i64>,
    pub keyframes_ms: String,
    pub loudness_in_lufs: Option<f64>,
    pub loudness_out_lufs: Option<f64>,
    pub lra_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    pub vmaf_mean: Option<f64>,
    pub vmaf_min: Option<f64>,
    pub vmaf_p5: Option<f64>,
    pub source_facts: String,
    pub tags: String,
    pub last_aired_ms: Option<i64>,
    pub air_count: i64,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Rendition {
    pub asset_id: AssetId,
    pub rung: String,
    pub path: String,
    pub width: i64,
    pub height: i64,
    pub video_kbps: i64,
    pub size_bytes: i64,
}

/// What the factory (or the demo generator) records for a finished asset.
#[derive(Debug, Clone, Default)]
pub struct NewAsset {
    pub sha256: Option<String>,
    pub title: String,
    pub source: String,
    pub kind: Option<AssetKind>,
    pub emergency: bool,
    pub dir: PathBuf,
    pub duration_ms: i64,
    pub first_dts_ns: Option<i64>,
    pub keyframes_ms: Vec<i64>,
    pub loudness_in_lufs: Option<f64>,
    pub loudness_out_lufs: Option<f64>,
    pub lra_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    pub vmaf: Option<(f64, f64, f64)>,
    pub source_facts: serde_json::Value,
    pub tags: Vec<String>,
    pub renditions: Vec<NewRendition>,
}

#[derive(Debug, Clone)]
pub struct NewRendition {
    pub rung: String,
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub size_bytes: u64,
}

impl Store {
    /// Records an asset and its renditions in one transaction.
    pub async fn insert_asset(&self, a: &NewAsset) -> Result<AssetId> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO assets (sha256, title, source, kind, emergency, dir, duration_ms, first_dts_ns, keyframes_ms,
                 loudness_in_lufs, loudness_out_lufs, lra_lu, true_peak_dbtp, vmaf_mean, vmaf_min, vmaf_p5,
                 source_facts, tags, created_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&a.sha256)
        .bind(&a.title)
        .bind(&a.source)
        .bind(a.kind.unwrap_or(AssetKind::Programme))
        .bind(a.emergency)
        .bind(a.dir.to_string_lossy())
        .bind(a.duration_ms)
        .bind(a.first_dts_ns)
        .bind(serde_json::to_string(&a.keyframes_ms).unwrap_or_else(|_| "[]".into()))
        .bind(a.loudness_in_lufs)
        .bind(a.loudness_out_lufs)
        .bind(a.lra_lu)
        .bind(a.true_peak_dbtp)
        .bind(a.vmaf.map(|v| v.0))
        .bind(a.vmaf.map(|v| v.1))
        .bind(a.vmaf.map(|v| v.2))
        .bind(a.source_facts.to_string())
        .bind(serde_json::to_string(&a.tags).unwrap_or_else(|_| "[]".into()))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        for r in &a.renditions {
            sqlx::query(
                "INSERT INTO renditions (asset_id, rung, path, width, height, video_kbps, size_bytes)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&r.rung)
            .bind(r.path.to_string_lossy())
            .bind(r.width)
            .bind(r.height)
            .bind(r.video_kbps)
            .bind(r.size_bytes as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(AssetId(id))
    }

    pub async fn asset(&self, id: AssetId) -> Result<Asset> {
        sqlx::query_as("SELECT * FROM assets WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("asset {id}")))
    }

    pub async fn renditions(&self, id: AssetId) -> Result<Vec<Rendition>> {
        Ok(sqlx::query_as("SELECT * FROM renditions WHERE asset_id = ? ORDER BY height DESC")
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Assets of a kind with the given status, newest first.
    pub async fn assets(&self, kind: Option<AssetKind>, status: Option<&str>, limit: i64) -> Result<Vec<Asset>> {
        Ok(sqlx::query_as(
            "SELECT * FROM assets WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR status = ?2)
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(kind)
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn emergency_assets(&self) -> Result<Vec<Asset>> {
        Ok(sqlx::query_as("SELECT * FROM assets WHERE status = 'ready' AND emergency = 1 ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Takes an asset off the air for good (it failed to demux, its files are gone, …), with every schedule row of
    /// it that has not aired yet.
    pub async fn mark_asset_bad(&self, id: AssetId, reason: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE assets SET status = 'bad', bad_reason = ?, emergency = 0 WHERE id = ?")
            .bind(reason)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE schedule SET status = 'skipped', updated_ms = ? WHERE asset_id = ? AND status = 'scheduled'",
        )
        .bind(super::now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_asset_emergency(&self, id: AssetId, emergency: bool) -> Result<()> {
        sqlx::query("UPDATE assets SET emergency = ? WHERE id = ?")
            .bind(emergency)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// An airable asset with when it was last scheduled on one channel (None: never).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    #[sqlx(flatten)]
    pub asset: Asset,
    pub last_scheduled_ms: Option<i64>,
}

impl Store {
    /// Ready programmes and demo clips, those not scheduled on `channel` for the longest time first.
    pub async fn airable_assets_for(&self, channel: &super::ChannelId) -> Result<Vec<Candidate>> {
        Ok(sqlx::query_as(
            "SELECT a.*, (SELECT MAX(s.created_ms) FROM schedule s WHERE s.asset_id = a.id AND s.channel_id = ?1)
                 AS last_scheduled_ms,
                 (SELECT MAX(s.id) FROM schedule s WHERE s.asset_id = a.id AND s.channel_id = ?1) AS last_sid
             FROM assets a WHERE a.status = 'ready' AND a.kind IN ('programme', 'demo')
             ORDER BY last_sid IS NOT NULL, last_sid, a.id",
        )
        .bind(channel)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Store {
    /// The asset made from these source bytes, if any (whatever its status).
    pub async fn asset_by_sha256(&self, sha256: &str) -> Result<Option<Asset>> {
        Ok(sqlx::query_as("SELECT * FROM assets WHERE sha256 = ?").bind(sha256).fetch_optional(&self.pool).await?)
    }

    /// Lets the same content be ingested again after its asset was evicted or found bad.
    pub async fn forget_asset_source(&self, id: AssetId) -> Result<()> {
        sqlx::query("UPDATE assets SET sha256 = NULL WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Bytes of every rendition of assets still on disk (ready or bad, not evicted), slates included.
    pub async fn assets_bytes(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(r.size_bytes), 0) FROM renditions r JOIN assets a ON a.id = r.asset_id
             WHERE a.status != 'evicted'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Programmes and demo clips that may be evicted to free space: not scheduled or on air anywhere, least recently
    /// aired first (never aired counts from when it was made), with their size.
    pub async fn eviction_candidates(&self, limit: i64) -> Result<Vec<(Asset, i64)>> {
        let rows: Vec<EvictionRow> = sqlx::query_as(
            "SELECT a.*, (SELECT COALESCE(SUM(size_bytes), 0) FROM renditions r WHERE r.asset_id = a.id) AS bytes
             FROM assets a
             WHERE a.status != 'evicted' AND a.kind IN ('programme', 'demo')
               AND NOT EXISTS (SELECT 1 FROM schedule s WHERE s.asset_id = a.id AND s.status IN ('scheduled', 'airing'))
             ORDER BY COALESCE(a.last_aired_ms, a.created_ms), a.id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.asset, r.bytes)).collect())
    }

    /// Records that an asset's files were deleted to free space.
    pub async fn mark_asset_evicted(&self, id: AssetId) -> Result<()> {
        sqlx::query("UPDATE assets SET status = 'evicted', emergency = 0 WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct EvictionRow {
    #[sqlx(flatten)]
    asset: Asset,
    bytes: i64,
}
