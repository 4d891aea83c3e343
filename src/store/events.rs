//! The `events` table: every autonomous decision the station makes, with a reason a human can read.

use super::codec::{self, now_ms};
use super::{ChannelId, EventId, Result, Store};
use vvtv_api::{Actor, Event, EventKind};

#[derive(sqlx::FromRow)]
struct EventRow {
    id: EventId,
    at_ms: i64,
    actor: String,
    channel_id: Option<ChannelId>,
    kind: String,
    message: String,
    data: String,
}

impl EventRow {
    /// None for a row whose actor or kind this version does not know (written by a newer one).
    fn into_event(self) -> Option<Event> {
        Some(Event {
            id: self.id,
            at: codec::time(self.at_ms),
            actor: self.actor.parse::<Actor>().ok()?,
            channel_id: self.channel_id,
            kind: self.kind.parse::<EventKind>().ok()?,
            message: self.message,
            data: serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null),
        })
    }
}

impl Store {
    /// Records a decision (and logs it). Failures to record are logged, never fatal: the station keeps running.
    pub async fn event(
        &self,
        actor: Actor,
        channel: Option<&ChannelId>,
        kind: EventKind,
        message: &str,
        data: serde_json::Value,
    ) {
        tracing::info!(
            actor = actor.as_str(),
            channel = channel.map(ChannelId::as_str),
            kind = kind.as_str(),
            "{message}"
        );
        let result = on_pool!(self, |pool| sqlx::query(
            "INSERT INTO events (at_ms, actor, channel_id, kind, message, data) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_ms())
        .bind(actor)
        .bind(channel)
        .bind(kind)
        .bind(message)
        .bind(data.to_string())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()));
        if let Err(e) = result {
            tracing::error!("could not record event {kind}: {e}");
        }
    }

    /// The newest `limit` events, newest first.
    pub async fn recent_events(&self, limit: i64) -> Result<Vec<Event>> {
        let rows: Vec<EventRow> =
            on_pool!(self, |pool| sqlx::query_as("SELECT * FROM events ORDER BY id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await)?;
        Ok(rows.into_iter().filter_map(EventRow::into_event).collect())
    }
}
