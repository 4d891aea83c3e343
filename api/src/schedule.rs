//! What each channel will air (schedule rows) and what it did air (airings).

use crate::wire_time::{duration_ms, option_duration_ms, option_time_ms, time_ms};
use crate::{AiringId, AiringKind, AssetId, ChannelId, ScheduleId, ScheduleStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A schedule row with what the operator needs to see of its asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueItem {
    pub id: ScheduleId,
    pub channel_id: ChannelId,
    pub asset_id: AssetId,
    pub title: String,
    #[serde(rename = "duration_ms", with = "duration_ms")]
    #[schema(value_type = i64)]
    pub duration: Duration,
    pub status: ScheduleStatus,
    /// Why the planner chose it.
    pub reason: String,
    /// Position to resume from after a crash.
    #[serde(rename = "resume_ms", with = "duration_ms")]
    #[schema(value_type = i64)]
    pub resume: Duration,
    /// When it is expected to start, recomputed from what actually aired.
    #[serde(default, rename = "planned_start_ms", with = "option_time_ms")]
    #[schema(value_type = Option<i64>)]
    pub planned_start: Option<DateTime<Utc>>,
    /// Where in the asset it ends when a hard slot start cuts it (null: at its end).
    #[serde(default, rename = "end_ms", with = "option_duration_ms")]
    #[schema(value_type = Option<i64>)]
    pub end: Option<Duration>,
    /// The fixed-time slot it fills.
    #[serde(default)]
    pub slot: Option<String>,
    /// Padding before a slot.
    #[serde(default)]
    pub filler: bool,
}

impl QueueItem {
    /// How long it airs from where it starts (a resume point) to where it ends (a cut point or the asset's end).
    pub fn remaining(&self) -> Duration {
        self.end.unwrap_or(self.duration).min(self.duration).saturating_sub(self.resume)
    }
}

/// Something that went on air.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Airing {
    pub id: AiringId,
    pub channel_id: ChannelId,
    /// None: a generated slate.
    pub asset_id: Option<AssetId>,
    pub schedule_id: Option<ScheduleId>,
    pub kind: AiringKind,
    pub title: String,
    /// Wall clock of its first frame on the output timeline.
    #[serde(rename = "start_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub start: DateTime<Utc>,
    /// None while on air (or if the process died).
    #[serde(rename = "end_ms", with = "option_time_ms")]
    #[schema(value_type = Option<i64>)]
    pub end: Option<DateTime<Utc>>,
    /// Position in the asset where airing began.
    #[serde(rename = "offset_ms", with = "duration_ms")]
    #[schema(value_type = i64)]
    pub offset: Duration,
}
