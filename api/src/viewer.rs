//! What the player page reads without a token: the channels it can play and what is on each now and next.
//!
//! Stream and poster URLs are given by the daemon, never built by the page, so the daemon can change how they are
//! made (signed paths, a CDN host) without a new page.

use crate::broadcast::BroadcastState;
use crate::wire_time::{option_time_ms, time_ms};
use crate::{AiringKind, AssetId, ChannelId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `GET /api/v1/channels`: every channel a viewer can watch, and where the page sends its beacons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelDirectory {
    pub channels: Vec<ChannelEntry>,
    pub beacons: BeaconSettings,
    /// When set, the page asks the viewer to confirm this (their age) before it plays anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_gate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelEntry {
    pub id: ChannelId,
    pub name: String,
    /// URL path of the channel's player page.
    pub watch: String,
    /// URL of the channel's HLS stream (what the player opens).
    pub playlist: String,
}

/// How the page reports playback (`POST` [`BeaconSettings::url`], see `PlaybackBeacon`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BeaconSettings {
    pub url: String,
    /// Seconds between two heartbeats; a session with no beacon for `session_timeout_seconds` has ended.
    pub heartbeat_seconds: u64,
    pub session_timeout_seconds: u64,
}

/// `GET /api/v1/channels/{channel}/now`: what a channel airs, around now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NowPlaying {
    pub channel: ChannelId,
    pub name: String,
    pub state: BroadcastState,
    /// URL of the channel's HLS stream.
    pub playlist: String,
    /// The daemon's clock when it answered (the page compares programme times with it).
    #[serde(rename = "server_time_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub server_time: DateTime<Utc>,
    /// What aired in the last minutes, oldest first: a player behind the live edge may still be showing it.
    pub recent: Vec<Programme>,
    /// What the playout is airing at the live edge (None while the channel starts).
    pub on_air: Option<Programme>,
    /// What follows, in order, with estimated times.
    pub next: Vec<Programme>,
}

/// One item of a channel's programme. Times are wall-clock times of the stream's timeline (its
/// `EXT-X-PROGRAM-DATE-TIME`), so a player can tell which item its playhead is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Programme {
    pub title: String,
    /// None for a generated slate.
    pub asset_id: Option<AssetId>,
    pub kind: AiringKind,
    /// When it began (or, for what follows, is expected to begin).
    #[serde(rename = "start_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub start: DateTime<Utc>,
    /// When it ended or is expected to end; None when not known (a slate loops until something is scheduled).
    #[serde(rename = "end_ms", with = "option_time_ms")]
    #[schema(value_type = Option<i64>)]
    pub end: Option<DateTime<Utc>>,
    /// URL of its poster (1280x720 JPEG) and thumbnail (320x180).
    pub poster: String,
    pub thumb: String,
}
