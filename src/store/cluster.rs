//! The tables that let several nodes share one station: node heartbeats, channel leases with their fencing epoch,
//! and the committed segments every origin renders its playlists from.
//!
//! Ownership is a lease row on the database's clock, not an advisory lock: a lock outlives a dead host until TCP
//! keepalive gives up (two hours by default) and breaks under transaction pooling, while a lease simply expires.
//! A takeover bumps the epoch, and a segment counts only once its row is inserted by a statement that checks the
//! holder and epoch under a share lock of the lease row, so a paused or partitioned old holder ("zombie") can
//! publish nothing after it lost the channel: its insert finds another epoch and writes 0 rows.

use super::codec::now_ms;
use super::{Backend, ChannelId, JobId, Result, Store};
use std::time::Duration;

/// The database clock in unix milliseconds, as SQL: every node compares expiry against the same clock.
fn db_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Who plays a channel, as its lease row says.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LeaseRow {
    pub channel_id: ChannelId,
    pub holder: String,
    pub epoch: i64,
    /// Milliseconds until it expires (negative: expired), on the database clock.
    pub remaining_ms: i64,
    pub multivariant: Option<String>,
}

/// One committed segment of a channel.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentRow {
    pub seq: i64,
    pub epoch: i64,
    pub duration_ns: i64,
    /// PROGRAM-DATE-TIME of its first frame, unix nanoseconds.
    pub start_ns: i64,
    pub discontinuity: bool,
    /// Discontinuities before this segment: the `EXT-X-DISCONTINUITY-SEQUENCE` of a window starting here.
    pub discontinuity_sequence: i64,
}

impl Store {
    /// This node is alive: its row's heartbeat is the database clock now.
    pub async fn node_heartbeat(&self, node: &str, roles: &[String]) -> Result<()> {
        let now = db_now(self.backend());
        let sql = format!(
            "INSERT INTO nodes (id, roles, started_ms, heartbeat_ms) VALUES ($1, $2, {now}, {now})
             ON CONFLICT(id) DO UPDATE SET roles = excluded.roles, heartbeat_ms = excluded.heartbeat_ms"
        );
        let roles = serde_json::to_string(roles).unwrap_or_else(|_| "[]".into());
        on_pool!(self, |pool| sqlx::query(&sql)
            .bind(node)
            .bind(&roles)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Nodes whose heartbeat is at most `alive_within` old, with their roles (JSON).
    pub async fn live_nodes(&self, alive_within: Duration) -> Result<Vec<(String, String)>> {
        let now = db_now(self.backend());
        let sql = format!("SELECT id, roles FROM nodes WHERE heartbeat_ms > {now} - $1 ORDER BY id");
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql).bind(ms(alive_within)).fetch_all(pool).await)?)
    }

    /// Puts back in the queue the jobs whose node has not sent a heartbeat for `dead_after` (it died, or is paused
    /// or cut off): they start again on whichever worker claims them next. Returns their ids.
    pub async fn requeue_jobs_of_dead_nodes(&self, dead_after: Duration) -> Result<Vec<JobId>> {
        let now = db_now(self.backend());
        let sql = format!(
            "UPDATE jobs SET status = 'queued', node = NULL, progress = 0, speed = NULL, updated_ms = $1
             WHERE status IN ('downloading', 'probing', 'normalizing', 'gating') AND node IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = jobs.node AND n.heartbeat_ms > {now} - $2)
             RETURNING id"
        );
        Ok(on_pool!(self, |pool| sqlx::query_scalar(&sql).bind(now_ms()).bind(ms(dead_after)).fetch_all(pool).await)?)
    }

    /// Takes the channel for `holder` if its lease is free, expired, or already `holder`'s (a restarted node takes
    /// its own channels back at once); returns the new epoch, or None while another node holds it.
    pub async fn lease_acquire(&self, channel: &ChannelId, holder: &str, ttl: Duration) -> Result<Option<i64>> {
        let now = db_now(self.backend());
        let sql = format!(
            "INSERT INTO channel_lease (channel_id, holder, epoch, expires_ms, acquired_ms)
             VALUES ($1, $2, 1, {now} + $3, {now})
             ON CONFLICT(channel_id) DO UPDATE SET holder = excluded.holder, epoch = channel_lease.epoch + 1,
                 expires_ms = excluded.expires_ms, acquired_ms = excluded.acquired_ms, multivariant = NULL
             WHERE channel_lease.expires_ms <= {now} OR channel_lease.holder = excluded.holder
             RETURNING epoch"
        );
        Ok(on_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(channel)
            .bind(holder)
            .bind(ms(ttl))
            .fetch_optional(pool)
            .await)?)
    }

    /// Extends `holder`'s lease of `epoch` by `ttl` from now; false when the channel was taken over meanwhile.
    pub async fn lease_renew(&self, channel: &ChannelId, holder: &str, epoch: i64, ttl: Duration) -> Result<bool> {
        let now = db_now(self.backend());
        let sql = format!(
            "UPDATE channel_lease SET expires_ms = {now} + $1 WHERE channel_id = $2 AND holder = $3 AND epoch = $4"
        );
        let n = on_pool!(self, |pool| sqlx::query(&sql)
            .bind(ms(ttl))
            .bind(channel)
            .bind(holder)
            .bind(epoch)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Gives the channel up at once (a clean stop), so another node need not wait for the lease to expire.
    pub async fn lease_release(&self, channel: &ChannelId, holder: &str, epoch: i64) -> Result<()> {
        let now = db_now(self.backend());
        let sql =
            format!("UPDATE channel_lease SET expires_ms = {now} WHERE channel_id = $1 AND holder = $2 AND epoch = $3");
        on_pool!(self, |pool| sqlx::query(&sql)
            .bind(channel)
            .bind(holder)
            .bind(epoch)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn lease(&self, channel: &ChannelId) -> Result<Option<LeaseRow>> {
        let now = db_now(self.backend());
        let sql = format!(
            "SELECT channel_id, holder, epoch, expires_ms - {now} AS remaining_ms, multivariant
             FROM channel_lease WHERE channel_id = $1"
        );
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql).bind(channel).fetch_optional(pool).await)?)
    }

    /// The holder's multivariant playlist, for origins that do not play the channel; fenced like a segment.
    pub async fn set_lease_multivariant(
        &self,
        channel: &ChannelId,
        holder: &str,
        epoch: i64,
        text: &str,
    ) -> Result<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE channel_lease SET multivariant = $1 WHERE channel_id = $2 AND holder = $3 AND epoch = $4",
        )
        .bind(text)
        .bind(channel)
        .bind(holder)
        .bind(epoch)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Publishes a segment: inserted only if `holder` still holds the channel at `epoch` and the lease has not
    /// expired, checked under a share lock of the lease row so a takeover waits for (or refuses) it. Returns false,
    /// writing nothing, for a zombie's segment.
    pub async fn commit_segment(&self, channel: &ChannelId, holder: &str, s: &SegmentRow) -> Result<bool> {
        let now = db_now(self.backend());
        // SQLite has one writer at a time and no row locks; PostgreSQL needs the share lock.
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR SHARE",
        };
        let sql = format!(
            "INSERT INTO segments (channel_id, seq, epoch, duration_ns, start_ns, discontinuity, discontinuity_sequence,
                 committed_ms)
             SELECT $1, $2, $3, $4, $5, $6, $7, {now} FROM channel_lease l
             WHERE l.channel_id = $1 AND l.holder = $8 AND l.epoch = $3 AND l.expires_ms > {now} {lock}
             ON CONFLICT(channel_id, seq) DO NOTHING"
        );
        let n = on_pool!(self, |pool| sqlx::query(&sql)
            .bind(channel)
            .bind(s.seq)
            .bind(s.epoch)
            .bind(s.duration_ns)
            .bind(s.start_ns)
            .bind(s.discontinuity)
            .bind(s.discontinuity_sequence)
            .bind(holder)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// The epoch segment `seq` of a channel was committed in, if it was.
    pub async fn segment_epoch(&self, channel: &ChannelId, seq: i64) -> Result<Option<i64>> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT epoch FROM segments WHERE channel_id = $1 AND seq = $2")
            .bind(channel)
            .bind(seq)
            .fetch_optional(pool)
            .await)?)
    }

    /// The last `n` committed segments of a channel, oldest first.
    pub async fn segments(&self, channel: &ChannelId, n: i64) -> Result<Vec<SegmentRow>> {
        let mut rows: Vec<SegmentRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT seq, epoch, duration_ns, start_ns, discontinuity, discontinuity_sequence FROM segments
             WHERE channel_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(channel)
        .bind(n)
        .fetch_all(pool)
        .await)?;
        rows.reverse();
        Ok(rows)
    }

    /// The rows of segments a channel has left behind (numbered below `below`), deleted; returns their numbers and
    /// epochs so their objects can go too.
    pub async fn prune_segments(&self, channel: &ChannelId, below: i64) -> Result<Vec<(i64, i64)>> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "DELETE FROM segments WHERE channel_id = $1 AND seq < $2 RETURNING seq, epoch",
        )
        .bind(channel)
        .bind(below)
        .fetch_all(pool)
        .await)?)
    }
}
