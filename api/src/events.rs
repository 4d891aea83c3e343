//! The event log: every autonomous decision the station made, with a reason a human can read.

use crate::wire_time::time_ms;
use crate::{Actor, ChannelId, EventId, EventKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "at_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub channel_id: Option<ChannelId>,
    pub kind: EventKind,
    pub message: String,
    /// Detail for machines (ids, counts).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}
