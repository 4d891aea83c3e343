//! The `schedule` and `airings` tables: what each channel will air, and what it did air.

use super::codec::{self, now_ms};
use super::{AiringId, AssetId, ChannelId, Result, ScheduleId, Store};
use chrono::{DateTime, Utc};
use std::time::Duration;
use vvtv_api::{Airing, AiringKind, QueueItem, ScheduleStatus};

#[derive(sqlx::FromRow)]
struct QueueRow {
    id: ScheduleId,
    channel_id: ChannelId,
    asset_id: AssetId,
    title: String,
    duration_ms: i64,
    status: ScheduleStatus,
    reason: String,
    resume_ms: i64,
    planned_start_ms: Option<i64>,
    end_ms: Option<i64>,
    slot: Option<String>,
    filler: bool,
}

impl From<QueueRow> for QueueItem {
    fn from(r: QueueRow) -> QueueItem {
        QueueItem {
            id: r.id,
            channel_id: r.channel_id,
            asset_id: r.asset_id,
            title: r.title,
            duration: codec::duration(r.duration_ms),
            status: r.status,
            reason: r.reason,
            resume: codec::duration(r.resume_ms),
            planned_start: codec::opt_time(r.planned_start_ms),
            end: codec::opt_duration(r.end_ms),
            slot: r.slot,
            filler: r.filler,
        }
    }
}

/// A row the planner appends.
#[derive(Debug, Clone)]
pub struct NewScheduleItem<'a> {
    pub channel: &'a ChannelId,
    pub asset: AssetId,
    /// Why it was chosen, in one line.
    pub reason: &'a str,
    /// How it was chosen (the pick's breakdown), as JSON.
    pub pick: Option<serde_json::Value>,
    pub planned_start: DateTime<Utc>,
    pub end: Option<Duration>,
    pub slot: Option<&'a str>,
    pub filler: bool,
}

/// Something that aired or is planned on a channel, as the planner's separation rules see it.
#[derive(Debug, Clone)]
pub struct HistoryItem {
    pub asset: AssetId,
    pub start: DateTime<Utc>,
    pub tags: Vec<String>,
    pub source_name: String,
    pub series: Option<String>,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    asset_id: AssetId,
    start_ms: i64,
    tags: String,
    source_name: String,
    series: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AiringRow {
    id: AiringId,
    channel_id: ChannelId,
    asset_id: Option<AssetId>,
    schedule_id: Option<ScheduleId>,
    kind: AiringKind,
    title: String,
    start_ms: i64,
    end_ms: Option<i64>,
    offset_ms: i64,
}

impl From<AiringRow> for Airing {
    fn from(r: AiringRow) -> Airing {
        Airing {
            id: r.id,
            channel_id: r.channel_id,
            asset_id: r.asset_id,
            schedule_id: r.schedule_id,
            kind: r.kind,
            title: r.title,
            start: codec::time(r.start_ms),
            end: codec::opt_time(r.end_ms),
            offset: codec::duration(r.offset_ms),
        }
    }
}

/// An item going on air.
#[derive(Debug, Clone, Copy)]
pub struct NewAiring<'a> {
    pub channel: &'a ChannelId,
    pub asset: Option<AssetId>,
    pub schedule_id: Option<ScheduleId>,
    pub kind: AiringKind,
    pub title: &'a str,
    pub start: DateTime<Utc>,
    /// Position in the asset where airing begins (non-zero when resuming).
    pub offset: Duration,
}

const QUEUE_SELECT: &str = "SELECT s.id, s.channel_id, s.asset_id, a.title, a.duration_ms, s.status, s.reason, \
     s.resume_ms, s.planned_start_ms, s.end_ms, s.slot, s.filler FROM schedule s JOIN assets a ON a.id = s.asset_id";

impl Store {
    /// Appends a row with no plan of its own (tests, tools); the planner uses [`Store::schedule_item`].
    pub async fn schedule_append(&self, channel: &ChannelId, asset: AssetId, reason: &str) -> Result<ScheduleId> {
        let item = NewScheduleItem {
            channel,
            asset,
            reason,
            pick: None,
            planned_start: chrono::Utc::now(),
            end: None,
            slot: None,
            filler: false,
        };
        self.schedule_item(&item).await
    }

    pub async fn schedule_item(&self, i: &NewScheduleItem<'_>) -> Result<ScheduleId> {
        let now = now_ms();
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "INSERT INTO schedule (channel_id, asset_id, reason, pick, planned_start_ms, end_ms, slot, filler,
                 created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(i.channel)
        .bind(i.asset)
        .bind(i.reason)
        .bind(i.pick.as_ref().map(|p| p.to_string()))
        .bind(codec::time_ms(i.planned_start))
        .bind(codec::opt_ms(i.end))
        .bind(i.slot)
        .bind(i.filler)
        .bind(now)
        .bind(now)
        .fetch_one(pool)
        .await)?)
    }

    /// Moves the planned starts of rows that have not aired yet (the planner re-anchors on what aired).
    pub async fn set_planned_starts(&self, starts: &[(ScheduleId, DateTime<Utc>)]) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (id, at) in starts {
                sqlx::query(
                    "UPDATE schedule SET planned_start_ms = $1 WHERE id = $2 AND status IN ('scheduled', 'airing')",
                )
                .bind(codec::time_ms(*at))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// One row with the JSON of how it was chosen (null for rows without one).
    pub async fn schedule_row(&self, id: ScheduleId) -> Result<(QueueItem, Option<serde_json::Value>)> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            item: QueueRow,
            pick: Option<String>,
        }
        let row: Row = on_pool!(self, |pool| sqlx::query_as(
            "SELECT s.id, s.channel_id, s.asset_id, a.title, a.duration_ms, s.status, s.reason, s.resume_ms,
                 s.planned_start_ms, s.end_ms, s.slot, s.filler, s.pick
             FROM schedule s JOIN assets a ON a.id = s.asset_id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?
        .ok_or_else(|| super::StoreError::NotFound(format!("schedule row {id}")))?;
        let pick = row.pick.and_then(|p| serde_json::from_str(&p).ok());
        Ok((QueueItem::from(row.item), pick))
    }

    /// How many rows a channel's schedule has had (the index of the next slot).
    pub async fn schedule_count(&self, channel: &ChannelId) -> Result<u64> {
        let n: i64 = on_pool!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM schedule WHERE channel_id = $1")
            .bind(channel)
            .fetch_one(pool)
            .await)?;
        Ok(n.max(0) as u64)
    }

    /// What aired or is planned on a channel from `since` on: aired rows at their airing's start, the others at
    /// their planned start.
    pub async fn schedule_history(&self, channel: &ChannelId, since: DateTime<Utc>) -> Result<Vec<HistoryItem>> {
        let rows: Vec<HistoryRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT s.asset_id, COALESCE((SELECT MIN(r.start_ms) FROM airings r WHERE r.schedule_id = s.id),
                     s.planned_start_ms, s.created_ms) AS start_ms,
                 a.tags, a.source_name, a.series
             FROM schedule s JOIN assets a ON a.id = s.asset_id
             WHERE s.channel_id = $1 AND s.status != 'skipped' AND COALESCE(s.planned_start_ms, s.created_ms) >= $2
             ORDER BY s.id",
        )
        .bind(channel)
        .bind(codec::time_ms(since) - 24 * 3600 * 1000)
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|r| HistoryItem {
                asset: r.asset_id,
                start: codec::time(r.start_ms),
                tags: codec::json_list(&r.tags),
                source_name: r.source_name,
                series: r.series,
            })
            .filter(|h| h.start >= since)
            .collect())
    }

    /// Items not yet finished (airing first, then scheduled in order).
    pub async fn upcoming(&self, channel: &ChannelId, limit: i64) -> Result<Vec<QueueItem>> {
        let rows: Vec<QueueRow> = on_pool!(self, |pool| sqlx::query_as(&format!(
            "{QUEUE_SELECT} WHERE s.channel_id = $1 AND s.status IN ('airing', 'scheduled')
             ORDER BY s.status = 'scheduled', s.id LIMIT $2"
        ))
        .bind(channel)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(QueueItem::from).collect())
    }

    /// Programme scheduled but not yet aired (the rest of what is on air included).
    pub async fn queued(&self, channel: &ChannelId) -> Result<Duration> {
        let ms: i64 = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(CASE WHEN q.rest > 0 THEN q.rest ELSE 0 END), 0) AS BIGINT)
             FROM (SELECT CASE WHEN s.end_ms IS NOT NULL AND s.end_ms < a.duration_ms THEN s.end_ms
                               ELSE a.duration_ms END - s.resume_ms AS rest
                   FROM schedule s JOIN assets a ON a.id = s.asset_id
                   WHERE s.channel_id = $1 AND s.status IN ('scheduled', 'airing')) q",
        )
        .bind(channel)
        .fetch_one(pool)
        .await)?;
        Ok(codec::duration(ms))
    }

    /// Asset ids of the last `n` items scheduled on a channel (for diversity rules).
    pub async fn recent_scheduled_assets(&self, channel: &ChannelId, n: i64) -> Result<Vec<AssetId>> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT asset_id FROM schedule WHERE channel_id = $1 ORDER BY id DESC LIMIT $2"
        )
        .bind(channel)
        .bind(n)
        .fetch_all(pool)
        .await)?)
    }

    pub async fn set_schedule_status(&self, id: ScheduleId, status: ScheduleStatus, resume: Duration) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE schedule SET status = $1, resume_ms = $2, updated_ms = $3 WHERE id = $4"
        )
        .bind(status)
        .bind(codec::ms(resume))
        .bind(now_ms())
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Opens an airing row; returns its id. Also stamps the asset's last-aired time.
    pub async fn airing_start(&self, a: &NewAiring<'_>) -> Result<AiringId> {
        let NewAiring { channel, asset, schedule_id, kind, title, start, offset } = *a;
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let id = sqlx::query_scalar(
                "INSERT INTO airings (channel_id, asset_id, schedule_id, kind, title, start_ms, offset_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(channel)
            .bind(asset)
            .bind(schedule_id)
            .bind(kind)
            .bind(title)
            .bind(codec::time_ms(start))
            .bind(codec::ms(offset))
            .fetch_one(&mut *tx)
            .await?;
            if let Some(asset) = asset {
                sqlx::query("UPDATE assets SET last_aired_ms = $1, air_count = air_count + 1 WHERE id = $2")
                    .bind(codec::time_ms(start))
                    .bind(asset)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn airing_end(&self, id: AiringId, end: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |pool| sqlx::query("UPDATE airings SET end_ms = $1 WHERE id = $2")
            .bind(codec::time_ms(end))
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Airings overlapping [from, to), oldest first (EPG).
    pub async fn airings(&self, channel: &ChannelId, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Airing>> {
        let rows: Vec<AiringRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM airings WHERE channel_id = $1 AND start_ms < $2 AND COALESCE(end_ms, start_ms) >= $3
             ORDER BY start_ms",
        )
        .bind(channel)
        .bind(codec::time_ms(to))
        .bind(codec::time_ms(from))
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(Airing::from).collect())
    }

    /// The airing still open on a channel (none if the last one closed).
    pub async fn open_airing(&self, channel: &ChannelId) -> Result<Option<Airing>> {
        Ok(on_pool!(self, |pool| sqlx::query_as::<_, AiringRow>(
            "SELECT * FROM airings WHERE channel_id = $1 AND end_ms IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(channel)
        .fetch_optional(pool)
        .await)?
        .map(Airing::from))
    }
}
