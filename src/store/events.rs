//! The `events` table: every autonomous decision the station makes, with a reason a human can read.

use super::{now_ms, ChannelId, Result, Store};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub channel_id: Option<String>,
    pub kind: String,
    pub message: String,
    #[serde(serialize_with = "raw_json")]
    pub data: String,
}

fn raw_json<S: serde::Serializer>(data: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    let value: serde_json::Value = serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
    value.serialize(s)
}

impl Store {
    /// Records a decision. Failures to record are logged, never fatal: the station keeps running.
    pub async fn event(
        &self,
        actor: &str,
        channel: Option<&ChannelId>,
        kind: &str,
        message: &str,
        data: serde_json::Value,
    ) {
        tracing::info!(actor, channel = channel.map(|c| c.0.as_str()), kind, "{message}");
        let result =
            sqlx::query("INSERT INTO events (at_ms, actor, channel_id, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(now_ms())
                .bind(actor)
                .bind(channel)
                .bind(kind)
                .bind(message)
                .bind(data.to_string())
                .execute(&self.pool)
                .await;
        if let Err(e) = result {
            tracing::error!("could not record event {kind}: {e}");
        }
    }

    /// The newest `limit` events, newest first.
    pub async fn recent_events(&self, limit: i64) -> Result<Vec<Event>> {
        Ok(sqlx::query_as("SELECT * FROM events ORDER BY id DESC LIMIT ?").bind(limit).fetch_all(&self.pool).await?)
    }
}
