//! The `assets` and `renditions` tables: media in the house format, ready to air.

use super::codec::{self, json_list, json_text, now_ms};
use super::{AssetId, ChannelId, Result, Store, StoreError};
use std::path::PathBuf;
use std::time::Duration;
use vvtv_api::{Asset, AssetKind, AssetStatus, Rendition};

/// What the factory records for a finished asset (an ingest, a demo clip, a slate).
#[derive(Debug, Clone, Default)]
pub struct NewAsset {
    pub sha256: Option<String>,
    pub title: String,
    pub source: String,
    pub kind: Option<AssetKind>,
    pub emergency: bool,
    pub dir: PathBuf,
    pub duration: Duration,
    /// How far the first frame's decode time lies before its presentation time (the B-frame delay).
    pub b_frame_delay: Option<Duration>,
    pub keyframes: Vec<Duration>,
    pub loudness_in_lufs: Option<f64>,
    pub loudness_out_lufs: Option<f64>,
    pub lra_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    /// Mean, minimum and 5th percentile.
    pub vmaf: Option<(f64, f64, f64)>,
    pub source_facts: serde_json::Value,
    pub tags: Vec<String>,
    pub description: String,
    /// The curator source, `manual`, `inbox` or `demo`.
    pub source_name: String,
    pub language: Option<String>,
    pub rating: Option<String>,
    pub series: Option<String>,
    pub curator_score: Option<f64>,
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

/// An `assets` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct AssetRow {
    id: AssetId,
    sha256: Option<String>,
    title: String,
    source: String,
    kind: AssetKind,
    emergency: bool,
    status: AssetStatus,
    bad_reason: Option<String>,
    dir: String,
    duration_ms: i64,
    keyframes_ms: String,
    loudness_in_lufs: Option<f64>,
    loudness_out_lufs: Option<f64>,
    lra_lu: Option<f64>,
    true_peak_dbtp: Option<f64>,
    vmaf_mean: Option<f64>,
    vmaf_min: Option<f64>,
    vmaf_p5: Option<f64>,
    source_facts: String,
    tags: String,
    description: String,
    source_name: String,
    language: Option<String>,
    rating: Option<String>,
    series: Option<String>,
    curator_score: Option<f64>,
    last_aired_ms: Option<i64>,
    air_count: i64,
    created_ms: i64,
}

impl From<AssetRow> for Asset {
    fn from(r: AssetRow) -> Asset {
        let keyframes: Vec<i64> = serde_json::from_str(&r.keyframes_ms).unwrap_or_default();
        Asset {
            id: r.id,
            sha256: r.sha256,
            title: r.title,
            source: r.source,
            kind: r.kind,
            emergency: r.emergency,
            status: r.status,
            bad_reason: r.bad_reason,
            dir: PathBuf::from(r.dir),
            duration: codec::duration(r.duration_ms),
            keyframes: keyframes.into_iter().map(codec::duration).collect(),
            loudness_in_lufs: r.loudness_in_lufs,
            loudness_out_lufs: r.loudness_out_lufs,
            lra_lu: r.lra_lu,
            true_peak_dbtp: r.true_peak_dbtp,
            vmaf_mean: r.vmaf_mean,
            vmaf_min: r.vmaf_min,
            vmaf_p5: r.vmaf_p5,
            source_facts: serde_json::from_str(&r.source_facts).unwrap_or_default(),
            tags: json_list(&r.tags),
            description: r.description,
            source_name: r.source_name,
            language: r.language,
            rating: r.rating,
            series: r.series,
            curator_score: r.curator_score,
            last_aired: codec::opt_time(r.last_aired_ms),
            air_count: r.air_count,
            created: codec::time(r.created_ms),
        }
    }
}

#[derive(sqlx::FromRow)]
struct RenditionRow {
    asset_id: AssetId,
    rung: String,
    path: String,
    width: i64,
    height: i64,
    video_kbps: i64,
    size_bytes: i64,
}

impl From<RenditionRow> for Rendition {
    fn from(r: RenditionRow) -> Rendition {
        Rendition {
            asset_id: r.asset_id,
            rung: r.rung,
            path: PathBuf::from(r.path),
            width: r.width.clamp(0, u32::MAX as i64) as u32,
            height: r.height.clamp(0, u32::MAX as i64) as u32,
            video_kbps: r.video_kbps.clamp(0, u32::MAX as i64) as u32,
            size_bytes: r.size_bytes.max(0) as u64,
        }
    }
}

impl Store {
    /// An asset as this node sees it: its folder under this node's files root (see [`Store::with_files_root`]).
    fn asset_of(&self, row: AssetRow) -> Asset {
        let mut a = Asset::from(row);
        a.dir = self.local_path(&a.dir);
        a
    }

    fn assets_of(&self, rows: Vec<AssetRow>) -> Vec<Asset> {
        rows.into_iter().map(|r| self.asset_of(r)).collect()
    }

    /// Records an asset and its renditions in one transaction.
    pub async fn insert_asset(&self, a: &NewAsset) -> Result<AssetId> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let keyframes: Vec<i64> = a.keyframes.iter().copied().map(codec::ms).collect();
            let first_dts_ns = a.b_frame_delay.map(|d| -(d.as_nanos().min(i64::MAX as u128) as i64));
            let id: AssetId = sqlx::query_scalar(
            "INSERT INTO assets (sha256, title, source, kind, emergency, dir, duration_ms, first_dts_ns, keyframes_ms,
                 loudness_in_lufs, loudness_out_lufs, lra_lu, true_peak_dbtp, vmaf_mean, vmaf_min, vmaf_p5,
                 source_facts, tags, created_ms, description, source_name, language, rating, series, curator_score)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
                 $23, $24, $25) RETURNING id",
        )
        .bind(&a.sha256)
        .bind(&a.title)
        .bind(&a.source)
        .bind(a.kind.unwrap_or(AssetKind::Programme))
        .bind(a.emergency)
        .bind(self.stored_path(&a.dir))
        .bind(codec::ms(a.duration))
        .bind(first_dts_ns)
        .bind(json_text(&keyframes))
        .bind(a.loudness_in_lufs)
        .bind(a.loudness_out_lufs)
        .bind(a.lra_lu)
        .bind(a.true_peak_dbtp)
        .bind(a.vmaf.map(|v| v.0))
        .bind(a.vmaf.map(|v| v.1))
        .bind(a.vmaf.map(|v| v.2))
        .bind(a.source_facts.to_string())
        .bind(json_text(&a.tags))
        .bind(now_ms())
        .bind(&a.description)
        .bind(&a.source_name)
        .bind(&a.language)
        .bind(&a.rating)
        .bind(&a.series)
        .bind(a.curator_score)
        .fetch_one(&mut *tx)
        .await?;
            for r in &a.renditions {
                sqlx::query(
                    "INSERT INTO renditions (asset_id, rung, path, width, height, video_kbps, size_bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(&r.rung)
                .bind(self.stored_path(&r.path))
                .bind(i64::from(r.width))
                .bind(i64::from(r.height))
                .bind(i64::from(r.video_kbps))
                .bind(i64::try_from(r.size_bytes).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn asset(&self, id: AssetId) -> Result<Asset> {
        on_pool!(self, |pool| sqlx::query_as::<_, AssetRow>("SELECT * FROM assets WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .map(|r| self.asset_of(r))
        .ok_or_else(|| StoreError::NotFound(format!("asset {id}")))
    }

    /// An asset's renditions, highest first.
    pub async fn renditions(&self, id: AssetId) -> Result<Vec<Rendition>> {
        let rows: Vec<RenditionRow> =
            on_pool!(self, |pool| sqlx::query_as("SELECT * FROM renditions WHERE asset_id = $1 ORDER BY height DESC")
                .bind(id)
                .fetch_all(pool)
                .await)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut r = Rendition::from(row);
                r.path = self.local_path(&r.path);
                r
            })
            .collect())
    }

    /// Assets of a kind with the given status, newest first.
    pub async fn assets(&self, kind: Option<AssetKind>, status: Option<AssetStatus>, limit: i64) -> Result<Vec<Asset>> {
        Ok(self.assets_of(on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM assets WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR status = $2)
                 ORDER BY id DESC LIMIT $3",
        )
        .bind(kind)
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await)?))
    }

    pub async fn emergency_assets(&self) -> Result<Vec<Asset>> {
        Ok(self.assets_of(on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM assets WHERE status = 'ready' AND emergency = TRUE ORDER BY id"
        )
        .fetch_all(pool)
        .await)?))
    }

    /// Takes an asset off the air for good (it failed to demux, its files are gone, …). Its schedule rows are
    /// skipped by the broadcasters as they reach them.
    pub async fn mark_asset_bad(&self, id: AssetId, reason: &str) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE assets SET status = 'bad', bad_reason = $1, emergency = FALSE WHERE id = $2"
        )
        .bind(reason)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn set_asset_emergency(&self, id: AssetId, emergency: bool) -> Result<()> {
        on_pool!(self, |pool| sqlx::query("UPDATE assets SET emergency = $1 WHERE id = $2")
            .bind(emergency)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The asset made from these source bytes, if any (whatever its status).
    pub async fn asset_by_sha256(&self, sha256: &str) -> Result<Option<Asset>> {
        Ok(on_pool!(self, |pool| sqlx::query_as::<_, AssetRow>("SELECT * FROM assets WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(pool)
            .await)?
        .map(|r| self.asset_of(r)))
    }

    /// Lets the same content be ingested again after its asset was evicted or found bad.
    pub async fn forget_asset_source(&self, id: AssetId) -> Result<()> {
        on_pool!(self, |pool| sqlx::query("UPDATE assets SET sha256 = NULL WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Bytes of every rendition of assets still on disk (ready or bad, not evicted), slates included.
    pub async fn assets_bytes(&self) -> Result<u64> {
        let bytes: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(r.size_bytes), 0) AS BIGINT) FROM renditions r JOIN assets a ON a.id = r.asset_id
             WHERE a.status != 'evicted'",
        )
        .fetch_one(pool)
        .await
        })?;
        Ok(bytes.max(0) as u64)
    }

    /// Programmes and demo clips that may be evicted to free space: not scheduled or on air anywhere, least recently
    /// aired first (never aired counts from when it was made), with their size in bytes.
    pub async fn eviction_candidates(&self, limit: i64) -> Result<Vec<(Asset, u64)>> {
        let rows: Vec<EvictionRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT a.*, (SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM renditions r WHERE r.asset_id = a.id) AS bytes
             FROM assets a
             WHERE a.status != 'evicted' AND a.kind IN ('programme', 'demo')
               AND NOT EXISTS (SELECT 1 FROM schedule s WHERE s.asset_id = a.id AND s.status IN ('scheduled', 'airing'))
             ORDER BY COALESCE(a.last_aired_ms, a.created_ms), a.id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await
        })?;
        Ok(rows.into_iter().map(|r| (self.asset_of(r.asset), r.bytes.max(0) as u64)).collect())
    }

    /// Records that an asset's files were deleted to free space.
    pub async fn mark_asset_evicted(&self, id: AssetId) -> Result<()> {
        on_pool!(self, |pool| sqlx::query("UPDATE assets SET status = 'evicted', emergency = FALSE WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct EvictionRow {
    #[sqlx(flatten)]
    asset: AssetRow,
    bytes: i64,
}

/// A ready programme or demo clip with how often it went on one channel.
#[derive(Debug, Clone)]
pub struct Airable {
    pub asset: Asset,
    /// Airings of it on this channel so far.
    pub aired: u32,
}

#[derive(sqlx::FromRow)]
struct AirableRow {
    #[sqlx(flatten)]
    asset: AssetRow,
    aired: i64,
}

impl Store {
    /// Every ready programme and demo clip, with its airings on `channel` (the channel's library is chosen from these
    /// by its config).
    pub async fn airable_assets(&self, channel: &ChannelId) -> Result<Vec<Airable>> {
        let rows: Vec<AirableRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT a.*, (SELECT COUNT(*) FROM airings r WHERE r.asset_id = a.id AND r.channel_id = $1) AS aired
             FROM assets a WHERE a.status = 'ready' AND a.kind IN ('programme', 'demo') ORDER BY a.id",
        )
        .bind(channel)
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|r| Airable { asset: self.asset_of(r.asset), aired: r.aired.clamp(0, u32::MAX as i64) as u32 })
            .collect())
    }
}
