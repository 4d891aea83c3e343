//! The `schedule` and `airings` tables: what each channel will air, and what it did air.

use super::{now_ms, AssetId, ChannelId, Result, Store};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ScheduleStatus {
    Scheduled,
    Airing,
    Aired,
    Skipped,
    Cut,
}

/// A schedule row joined with what the planner and the operator need to see of its asset.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QueueItem {
    pub id: i64,
    pub channel_id: ChannelId,
    pub asset_id: AssetId,
    pub title: String,
    pub duration_ms: i64,
    pub status: ScheduleStatus,
    pub reason: String,
    pub resume_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum AiringKind {
    Scheduled,
    Emergency,
    Slate,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Airing {
    pub id: i64,
    pub channel_id: ChannelId,
    pub asset_id: Option<AssetId>,
    pub schedule_id: Option<i64>,
    pub kind: AiringKind,
    pub title: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub offset_ms: i64,
}

/// An item going on air.
#[derive(Debug, Clone, Copy)]
pub struct NewAiring<'a> {
    pub channel: &'a ChannelId,
    pub asset: Option<AssetId>,
    pub schedule_id: Option<i64>,
    pub kind: AiringKind,
    pub title: &'a str,
    pub start_ms: i64,
    /// Position in the asset where airing begins (non-zero when resuming).
    pub offset_ms: i64,
}

const QUEUE_SELECT: &str = "SELECT s.id, s.channel_id, s.asset_id, a.title, a.duration_ms, s.status, s.reason, \
     s.resume_ms FROM schedule s JOIN assets a ON a.id = s.asset_id";

impl Store {
    pub async fn schedule_append(&self, channel: &ChannelId, asset: AssetId, reason: &str) -> Result<i64> {
        let now = now_ms();
        Ok(sqlx::query_scalar(
            "INSERT INTO schedule (channel_id, asset_id, reason, created_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(channel)
        .bind(asset)
        .bind(reason)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Items not yet finished (airing first, then scheduled in order).
    pub async fn upcoming(&self, channel: &ChannelId, limit: i64) -> Result<Vec<QueueItem>> {
        Ok(sqlx::query_as(&format!(
            "{QUEUE_SELECT} WHERE s.channel_id = ? AND s.status IN ('airing', 'scheduled')
             ORDER BY s.status = 'scheduled', s.id LIMIT ?"
        ))
        .bind(channel)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Milliseconds of programme scheduled but not yet started.
    pub async fn queued_ms(&self, channel: &ChannelId) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(a.duration_ms - s.resume_ms), 0) FROM schedule s JOIN assets a ON a.id = s.asset_id
             WHERE s.channel_id = ? AND s.status IN ('scheduled', 'airing')",
        )
        .bind(channel)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Asset ids of the last `n` items scheduled on a channel (for diversity rules).
    pub async fn recent_scheduled_assets(&self, channel: &ChannelId, n: i64) -> Result<Vec<AssetId>> {
        Ok(sqlx::query_scalar("SELECT asset_id FROM schedule WHERE channel_id = ? ORDER BY id DESC LIMIT ?")
            .bind(channel)
            .bind(n)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn set_schedule_status(&self, id: i64, status: ScheduleStatus, resume_ms: i64) -> Result<()> {
        sqlx::query("UPDATE schedule SET status = ?, resume_ms = ?, updated_ms = ? WHERE id = ?")
            .bind(status)
            .bind(resume_ms)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Opens an airing row; returns its id. Also stamps the asset's last-aired time.
    pub async fn airing_start(&self, a: &NewAiring<'_>) -> Result<i64> {
        let NewAiring { channel, asset, schedule_id, kind, title, start_ms, offset_ms } = *a;
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO airings (channel_id, asset_id, schedule_id, kind, title, start_ms, offset_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(channel)
        .bind(asset)
        .bind(schedule_id)
        .bind(kind)
        .bind(title)
        .bind(start_ms)
        .bind(offset_ms)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(asset) = asset {
            sqlx::query("UPDATE assets SET last_aired_ms = ?, air_count = air_count + 1 WHERE id = ?")
                .bind(start_ms)
                .bind(asset)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn airing_end(&self, id: i64, end_ms: i64) -> Result<()> {
        sqlx::query("UPDATE airings SET end_ms = ? WHERE id = ?").bind(end_ms).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Airings overlapping [from_ms, to_ms), oldest first (EPG).
    pub async fn airings(&self, channel: &ChannelId, from_ms: i64, to_ms: i64) -> Result<Vec<Airing>> {
        Ok(sqlx::query_as(
            "SELECT * FROM airings WHERE channel_id = ? AND start_ms < ? AND COALESCE(end_ms, start_ms) >= ?
             ORDER BY start_ms",
        )
        .bind(channel)
        .bind(to_ms)
        .bind(from_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The airing still open on a channel (none if the last one closed).
    pub async fn open_airing(&self, channel: &ChannelId) -> Result<Option<Airing>> {
        Ok(sqlx::query_as("SELECT * FROM airings WHERE channel_id = ? AND end_ms IS NULL ORDER BY id DESC LIMIT 1")
            .bind(channel)
            .fetch_optional(&self.pool)
            .await?)
    }
}
