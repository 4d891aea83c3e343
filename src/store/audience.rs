//! The `audience_sessions` and `audience_watch` tables: viewer sessions from the player's beacons, their watch time
//! per airing, and the audience per airing and per asset computed from them (what the planner will weigh). Written
//! by the audience room only.

use super::codec::{self, now_ms};
use super::{AiringId, ChannelId, Result, Store};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use vvtv_api::audience::{AiringAudience, AssetAudience};
use vvtv_api::{AiringKind, AssetId, SessionEnd, SessionId};

/// A session ending closer than this to its airing's end did not leave *during* it: it left at the boundary.
const LEFT_DURING_MARGIN_MS: i64 = 2000;
/// A session starts in the airing of its earliest watched moment, if that is this close after its first playhead: a
/// player that opens a channel at its very first segment may report a first frame a few milliseconds before the
/// channel's first airing began (audio primed ahead of the video), in no airing at all.
const START_SLACK_MS: i64 = 2000;
/// Airings summarized by one report at most.
const REPORT_AIRINGS: i64 = 5000;

/// A viewer session as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub channel: ChannelId,
    /// Wall clock of its first and last beacon.
    pub started: DateTime<Utc>,
    pub last_beacon: DateTime<Utc>,
    /// Programme time at its start and of the last second it watched.
    pub first_playhead: DateTime<Utc>,
    pub last_playhead: DateTime<Utc>,
    /// When and why it ended; None while live.
    pub ended: Option<(DateTime<Utc>, SessionEnd)>,
    pub totals: SessionTotals,
}

/// What a session reported, summed over its beacons.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionTotals {
    pub beacons: u64,
    pub watch: Duration,
    pub startup: Option<Duration>,
    pub stalls: u64,
    pub stall: Duration,
    pub bitrate_switches: u64,
    pub last_bitrate: Option<u64>,
    pub errors: u64,
}

/// A span of programme time a session watched, `from..=to` (equal at its start: it is there, with no watch time
/// yet).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WatchSpan {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One session's state and what it watched since the last write.
#[derive(Debug, Clone)]
pub struct SessionWrite {
    pub session: SessionRecord,
    pub spans: Vec<WatchSpan>,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: SessionId,
    channel_id: ChannelId,
    started_ms: i64,
    last_beacon_ms: i64,
    first_playhead_ms: i64,
    last_playhead_ms: i64,
    ended_ms: Option<i64>,
    end_reason: Option<SessionEnd>,
    beacons: i64,
    watch_ms: i64,
    startup_ms: Option<i64>,
    stalls: i64,
    stall_ms: i64,
    bitrate_switches: i64,
    last_bitrate: Option<i64>,
    errors: i64,
}

impl From<SessionRow> for SessionRecord {
    fn from(r: SessionRow) -> SessionRecord {
        let count = |n: i64| n.max(0) as u64;
        SessionRecord {
            id: r.id,
            channel: r.channel_id,
            started: codec::time(r.started_ms),
            last_beacon: codec::time(r.last_beacon_ms),
            first_playhead: codec::time(r.first_playhead_ms),
            last_playhead: codec::time(r.last_playhead_ms),
            ended: r.ended_ms.map(|ms| (codec::time(ms), r.end_reason.unwrap_or(SessionEnd::Timeout))),
            totals: SessionTotals {
                beacons: count(r.beacons),
                watch: codec::duration(r.watch_ms),
                startup: codec::opt_duration(r.startup_ms),
                stalls: count(r.stalls),
                stall: codec::duration(r.stall_ms),
                bitrate_switches: count(r.bitrate_switches),
                last_bitrate: r.last_bitrate.map(count),
                errors: count(r.errors),
            },
        }
    }
}

/// An airing's span on its channel's timeline; `end` None: still on air.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AiringSpan {
    id: AiringId,
    start_ms: i64,
    end_ms: Option<i64>,
}

/// The watched parts of `span` inside each airing, as (airing, first, last, watched) in milliseconds.
fn split_span(span: WatchSpan, airings: &[AiringSpan]) -> Vec<(AiringId, i64, i64, i64)> {
    let (from, to) = (codec::time_ms(span.from), codec::time_ms(span.to).max(codec::time_ms(span.from)));
    airings
        .iter()
        .filter_map(|a| {
            let end = a.end_ms.unwrap_or(i64::MAX);
            let (first, last) = (from.max(a.start_ms), to.min(end));
            let inside = if from == to { a.start_ms <= from && from < end } else { first < last };
            inside.then_some((a.id, first, last, last - first))
        })
        .collect()
}

#[derive(sqlx::FromRow)]
struct ReportAiring {
    id: AiringId,
    channel_id: ChannelId,
    asset_id: Option<AssetId>,
    kind: AiringKind,
    title: String,
    start_ms: i64,
    end_ms: Option<i64>,
    /// The next airing's start on the channel: where an airing left open by a crash really ended.
    next_start_ms: Option<i64>,
}

impl ReportAiring {
    fn end_ms(&self) -> Option<i64> {
        self.end_ms.or(self.next_start_ms)
    }
}

/// One session's watch row inside an airing, with what the aggregation needs of its session.
#[derive(sqlx::FromRow, Debug, Clone, Copy, PartialEq)]
struct WatchRow {
    airing_id: AiringId,
    first_ms: i64,
    last_ms: i64,
    watch_ms: i64,
    session_first_ms: i64,
    /// The earliest moment of any of the session's watch rows.
    session_earliest_ms: i64,
    session_last_ms: i64,
    ended: bool,
}

/// The audience of one airing from its watch rows. `now_ms` measures an airing still on air.
fn summarize(a: &ReportAiring, rows: &[WatchRow], now_ms: i64) -> AiringAudience {
    let end = a.end_ms();
    let viewers = rows.len() as u64;
    let starts = rows
        .iter()
        .filter(|r| r.first_ms == r.session_earliest_ms && r.first_ms - r.session_first_ms <= START_SLACK_MS)
        .count() as u64;
    let left = rows
        .iter()
        .filter(|r| {
            r.ended && r.last_ms == r.session_last_ms && end.is_none_or(|e| r.last_ms < e - LEFT_DURING_MARGIN_MS)
        })
        .count() as u64;
    let watch_ms: i64 = rows.iter().map(|r| r.watch_ms.max(0)).sum();
    // Sweep over the watched spans (closed: a session that only opened the stream counts at that moment).
    let mut edges: Vec<(i64, i32)> = rows.iter().flat_map(|r| [(r.first_ms, -1), (r.last_ms, 1)]).collect();
    edges.sort_unstable();
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, step) in edges {
        now -= i64::from(step);
        peak = peak.max(now);
    }
    let length_ms = end.unwrap_or(now_ms) - a.start_ms;
    let share = |n: u64| if viewers == 0 { 0.0 } else { n as f64 / viewers as f64 };
    AiringAudience {
        airing_id: a.id,
        channel_id: a.channel_id.clone(),
        asset_id: a.asset_id,
        kind: a.kind,
        title: a.title.clone(),
        start: codec::time(a.start_ms),
        end: end.map(codec::time),
        starts,
        viewers,
        peak_viewers: peak.max(0) as u64,
        avg_viewers: if length_ms > 0 { watch_ms as f64 / length_ms as f64 } else { 0.0 },
        avg_watch: codec::duration(if viewers == 0 { 0 } else { watch_ms / viewers as i64 }),
        watch: codec::duration(watch_ms),
        left_during: left,
        left_during_share: share(left),
    }
}

/// Per asset over its airings (slates, which have no asset, are left out); most watched first. `now` ends the
/// airings still on air.
pub fn by_asset(airings: &[AiringAudience], now: DateTime<Utc>) -> Vec<AssetAudience> {
    struct Sum {
        title: String,
        airings: u64,
        starts: u64,
        viewers: u64,
        peak: u64,
        watch: Duration,
        aired: Duration,
        left: u64,
    }
    let mut sums: BTreeMap<AssetId, Sum> = BTreeMap::new();
    for a in airings {
        let Some(asset) = a.asset_id else { continue };
        let s = sums.entry(asset).or_insert_with(|| Sum {
            title: a.title.clone(),
            airings: 0,
            starts: 0,
            viewers: 0,
            peak: 0,
            watch: Duration::ZERO,
            aired: Duration::ZERO,
            left: 0,
        });
        s.airings += 1;
        s.starts += a.starts;
        s.viewers += a.viewers;
        s.peak = s.peak.max(a.peak_viewers);
        s.watch += a.watch;
        s.left += a.left_during;
        s.aired += (a.end.unwrap_or(now) - a.start).to_std().unwrap_or_default();
    }
    let mut out: Vec<AssetAudience> = sums
        .into_iter()
        .map(|(asset_id, s)| AssetAudience {
            asset_id,
            title: s.title,
            airings: s.airings,
            starts: s.starts,
            viewers: s.viewers,
            peak_viewers: s.peak,
            avg_viewers: if s.aired.is_zero() { 0.0 } else { s.watch.as_secs_f64() / s.aired.as_secs_f64() },
            avg_watch: if s.viewers == 0 { Duration::ZERO } else { s.watch / s.viewers as u32 },
            watch: s.watch,
            left_during: s.left,
            left_during_share: if s.viewers == 0 { 0.0 } else { s.left as f64 / s.viewers as f64 },
        })
        .collect();
    out.sort_by(|a, b| b.watch.cmp(&a.watch).then(a.asset_id.cmp(&b.asset_id)));
    out
}

const SESSION_SELECT: &str = "SELECT id, channel_id, started_ms, last_beacon_ms, first_playhead_ms, last_playhead_ms, \
     ended_ms, end_reason, beacons, watch_ms, startup_ms, stalls, stall_ms, bitrate_switches, last_bitrate, errors \
     FROM audience_sessions";

impl Store {
    /// Writes sessions and splits what they watched over the airings of their channel, in one transaction.
    pub async fn audience_write(&self, writes: &[SessionWrite]) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for w in writes {
                let s = &w.session;
                let t = &s.totals;
                let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                sqlx::query(
                    "INSERT INTO audience_sessions (id, channel_id, started_ms, last_beacon_ms, first_playhead_ms,
                     last_playhead_ms, ended_ms, end_reason, beacons, watch_ms, startup_ms, stalls, stall_ms,
                     bitrate_switches, last_bitrate, errors)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT(id) DO UPDATE SET last_beacon_ms = excluded.last_beacon_ms,
                     last_playhead_ms = excluded.last_playhead_ms, ended_ms = excluded.ended_ms,
                     end_reason = excluded.end_reason, beacons = excluded.beacons, watch_ms = excluded.watch_ms,
                     startup_ms = excluded.startup_ms, stalls = excluded.stalls, stall_ms = excluded.stall_ms,
                     bitrate_switches = excluded.bitrate_switches, last_bitrate = excluded.last_bitrate,
                     errors = excluded.errors",
                )
                .bind(&s.id)
                .bind(&s.channel)
                .bind(codec::time_ms(s.started))
                .bind(codec::time_ms(s.last_beacon))
                .bind(codec::time_ms(s.first_playhead))
                .bind(codec::time_ms(s.last_playhead))
                .bind(s.ended.map(|(t, _)| codec::time_ms(t)))
                .bind(s.ended.map(|(_, why)| why))
                .bind(n(t.beacons))
                .bind(codec::ms(t.watch))
                .bind(codec::opt_ms(t.startup))
                .bind(n(t.stalls))
                .bind(codec::ms(t.stall))
                .bind(n(t.bitrate_switches))
                .bind(t.last_bitrate.map(n))
                .bind(n(t.errors))
                .execute(&mut *tx)
                .await?;
                if w.spans.is_empty() {
                    continue;
                }
                let from = w.spans.iter().map(|s| codec::time_ms(s.from)).min().unwrap_or_default();
                let to = w.spans.iter().map(|s| codec::time_ms(s.to)).max().unwrap_or_default();
                let mut airings: Vec<AiringSpan> = sqlx::query_as::<_, (AiringId, i64, Option<i64>, Option<i64>)>(
                "SELECT a.id, a.start_ms, a.end_ms, CASE WHEN a.end_ms IS NULL THEN
                     (SELECT MIN(b.start_ms) FROM airings b WHERE b.channel_id = a.channel_id AND b.start_ms > a.start_ms)
                     END
                 FROM airings a WHERE a.channel_id = $1 AND a.start_ms <= $2 AND (a.end_ms IS NULL OR a.end_ms > $3)",
            )
            .bind(&s.channel)
            .bind(to)
            .bind(from)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(id, start_ms, end_ms, next)| AiringSpan { id, start_ms, end_ms: end_ms.or(next) })
            .collect();
                airings.sort_by_key(|a| a.start_ms);
                for span in &w.spans {
                    for (airing, first, last, watched) in split_span(*span, &airings) {
                        sqlx::query(
                            "INSERT INTO audience_watch (session_id, airing_id, first_ms, last_ms, watch_ms)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT(session_id, airing_id) DO UPDATE SET
                             first_ms = CASE WHEN excluded.first_ms < audience_watch.first_ms
                                 THEN excluded.first_ms ELSE audience_watch.first_ms END,
                             last_ms = CASE WHEN excluded.last_ms > audience_watch.last_ms
                                 THEN excluded.last_ms ELSE audience_watch.last_ms END,
                             watch_ms = audience_watch.watch_ms + excluded.watch_ms",
                        )
                        .bind(&s.id)
                        .bind(airing)
                        .bind(first)
                        .bind(last)
                        .bind(watched)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn audience_session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let row: Option<SessionRow> =
            on_pool!(self, |pool| sqlx::query_as(&format!("{SESSION_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await)?;
        Ok(row.map(SessionRecord::from))
    }

    /// Sessions not ended (live at the last stop, or at a crash).
    pub async fn audience_open_sessions(&self) -> Result<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> =
            on_pool!(self, |pool| sqlx::query_as(&format!("{SESSION_SELECT} WHERE ended_ms IS NULL"))
                .fetch_all(pool)
                .await)?;
        Ok(rows.into_iter().map(SessionRecord::from).collect())
    }

    /// Sessions of a channel that began at or after `since`, oldest first.
    pub async fn audience_sessions(&self, channel: &ChannelId, since: DateTime<Utc>) -> Result<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> = on_pool!(self, |pool| sqlx::query_as(&format!(
            "{SESSION_SELECT} WHERE channel_id = $1 AND started_ms >= $2 ORDER BY started_ms, id"
        ))
        .bind(channel)
        .bind(codec::time_ms(since))
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(SessionRecord::from).collect())
    }

    /// Deletes sessions (and their watch rows) whose last beacon is older than `before`; returns how many.
    pub async fn audience_sweep(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = on_pool!(self, |pool| sqlx::query("DELETE FROM audience_sessions WHERE last_beacon_ms < $1")
            .bind(codec::time_ms(before))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// The audience of every airing that began at or after `since` (on one channel or all), newest first.
    pub async fn audience_by_airing(
        &self,
        channel: Option<&ChannelId>,
        since: DateTime<Utc>,
    ) -> Result<Vec<AiringAudience>> {
        let airings: Vec<ReportAiring> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT a.id, a.channel_id, a.asset_id, a.kind, a.title, a.start_ms, a.end_ms,
                 (SELECT MIN(b.start_ms) FROM airings b WHERE b.channel_id = a.channel_id AND b.start_ms > a.start_ms)
                     AS next_start_ms
             FROM airings a WHERE a.start_ms >= $1 AND ($2 IS NULL OR a.channel_id = $2)
             ORDER BY a.start_ms DESC, a.id DESC LIMIT $3",
        )
        .bind(codec::time_ms(since))
        .bind(channel)
        .bind(REPORT_AIRINGS)
        .fetch_all(pool)
        .await)?;
        let oldest = airings.last().map_or(i64::MAX, |a| a.start_ms);
        let rows: Vec<WatchRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT w.airing_id, w.first_ms, w.last_ms, w.watch_ms, s.first_playhead_ms AS session_first_ms,
                 (SELECT MIN(e.first_ms) FROM audience_watch e WHERE e.session_id = w.session_id)
                     AS session_earliest_ms,
                 s.last_playhead_ms AS session_last_ms, s.ended_ms IS NOT NULL AS ended
             FROM audience_watch w
             JOIN airings a ON a.id = w.airing_id
             JOIN audience_sessions s ON s.id = w.session_id
             WHERE a.start_ms >= $1 AND ($2 IS NULL OR a.channel_id = $2)",
        )
        .bind(oldest)
        .bind(channel)
        .fetch_all(pool)
        .await)?;
        let mut by_airing: BTreeMap<AiringId, Vec<WatchRow>> = BTreeMap::new();
        for r in rows {
            by_airing.entry(r.airing_id).or_default().push(r);
        }
        let now = now_ms();
        Ok(airings.iter().map(|a| summarize(a, by_airing.get(&a.id).map_or(&[], Vec::as_slice), now)).collect())
    }

    /// The audience of every asset over its airings that began at or after `since`: what the planner weighs.
    pub async fn audience_by_asset(
        &self,
        channel: Option<&ChannelId>,
        since: DateTime<Utc>,
    ) -> Result<Vec<AssetAudience>> {
        Ok(by_asset(&self.audience_by_airing(channel, since).await?, Utc::now()))
    }
}

#[cfg(test)]
#[path = "audience_tests.rs"]
mod tests;
