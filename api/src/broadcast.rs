//! A channel's playout as the API shows it, and the emergency request.

use crate::wire_time::{duration_s, option_duration_s};
use crate::{AiringKind, AssetId, ChannelId, QueueItem};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BroadcastState {
    /// Making the slate and recovering the playlists.
    Starting,
    OnAir,
    Stopped,
    /// Playout could not start; `detail` says why.
    Failed,
    /// Another node plays the channel (it holds the lease); this one serves its playlists from the shared store and
    /// takes over if that node dies.
    Standby,
}

impl std::fmt::Display for BroadcastState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BroadcastState::Starting => "starting",
            BroadcastState::OnAir => "on-air",
            BroadcastState::Stopped => "stopped",
            BroadcastState::Failed => "failed",
            BroadcastState::Standby => "standby",
        })
    }
}

/// What is on air now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OnAir {
    pub title: String,
    pub asset_id: Option<AssetId>,
    pub kind: AiringKind,
    #[serde(rename = "position_seconds", with = "duration_s")]
    #[schema(value_type = f64)]
    pub position: Duration,
    #[serde(rename = "duration_seconds", with = "duration_s")]
    #[schema(value_type = f64)]
    pub duration: Duration,
}

/// `GET /api/v1/channels/{channel}/streaming`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamingStatus {
    pub channel: ChannelId,
    pub state: BroadcastState,
    pub detail: Option<String>,
    pub on_air: Option<OnAir>,
    pub next: Vec<QueueItem>,
    /// Live-edge freshness.
    #[serde(rename = "seconds_since_last_segment", with = "option_duration_s")]
    #[schema(value_type = Option<f64>)]
    pub since_last_segment: Option<Duration>,
    pub segments_written: u64,
    pub gaps_detected: u64,
    pub restarts: u64,
    pub max_av_offset_ms: f64,
    pub items_aired: u64,
}

/// `POST /api/v1/channels/{channel}/emergency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmergencyRequest {
    /// Items to air from the emergency pool (1..=100).
    pub inject: u32,
    /// Shown on the slate when the pool is empty; recorded (1..=200 characters).
    pub reason: String,
}

/// An answer that is one sentence for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    pub message: String,
}

/// `POST /api/v1/channels/{channel}/sign-url`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// How long the URL stays valid, in seconds (default `access.default_ttl_seconds`).
    pub ttl_seconds: Option<u64>,
}

/// A viewer URL path for a channel's playlist; signed when `access.signed_urls` is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedUrl {
    /// Relative to the daemon's (or the CDN's) base URL.
    pub path: String,
    /// When it stops working (Unix seconds); null when URLs are not signed.
    pub expires: Option<u64>,
}
