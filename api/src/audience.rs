//! The audience: the player's beacons (`POST /api/v1/playback`) and what the station makes of them — viewers now,
//! and per airing and per asset who watched, for how long, and who left (`GET /api/v1/audience`).
//!
//! Viewers are counted by beacons, not by segment requests: behind a CDN the origin sees the CDN, not people. A
//! beacon carries a random session id made by the page and nothing personal; no IP address is stored.

use crate::wire_time::{duration_s, option_time_ms, time_ms};
use crate::{AiringId, AiringKind, AssetId, BeaconKind, ChannelId, SessionEnd, SessionId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The largest beacon body the daemon reads.
pub const MAX_BEACON_BYTES: usize = 2048;

/// One beacon from a player page. Unknown fields are refused, so a misspelt one is an error, not silently lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybackBeacon {
    /// Random id made by the page for this viewing: 16 to 64 characters of `[A-Za-z0-9_-]`.
    pub session: SessionId,
    pub channel: ChannelId,
    pub kind: BeaconKind,
    /// Milliseconds of playback since the previous beacon of this session (0..=60000).
    #[serde(default)]
    pub watched_ms: u64,
    /// The programme time at the playhead (the stream's PROGRAM-DATE-TIME, Unix milliseconds): which item the
    /// viewer is seeing. Within ten minutes of the daemon's clock; omitted, the daemon's clock is used.
    #[serde(default)]
    pub playhead_ms: Option<i64>,
    /// `start`: milliseconds from opening the stream to the first frame (0..=120000).
    #[serde(default)]
    pub startup_ms: Option<u64>,
    /// `stall`: how long playback stood still, in milliseconds (1..=600000).
    #[serde(default)]
    pub stall_ms: Option<u64>,
    /// `bitrate`: the new rung's bitrate in bits per second (1..=100000000).
    #[serde(default)]
    pub bitrate: Option<u64>,
    /// `error`: the player's short error code (1 to 64 characters of `[A-Za-z0-9_.-]`).
    #[serde(default)]
    pub error: Option<String>,
    /// `end`: why (`closed` by default, or `error`).
    #[serde(default)]
    pub reason: Option<SessionEnd>,
}

/// `GET /api/v1/audience`: per airing and per asset, over a span of time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AudienceReport {
    /// Airings that began at or after this time are included.
    #[serde(rename = "since_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub since: DateTime<Utc>,
    /// Newest first.
    pub airings: Vec<AiringAudience>,
    /// Most watched first.
    pub assets: Vec<AssetAudience>,
}

/// The audience of one airing.
///
/// `peak_viewers` is the most sessions whose watched span inside the airing overlapped at one moment (a span runs
/// from the first to the last second a session watched of it); `avg_viewers` is watch time over the airing's length
/// (the average audience); a session *left during* the airing when it ended while watching it, more than two
/// seconds before the airing's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AiringAudience {
    pub airing_id: AiringId,
    pub channel_id: ChannelId,
    /// None for a slate.
    pub asset_id: Option<AssetId>,
    pub kind: AiringKind,
    pub title: String,
    #[serde(rename = "start_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub start: DateTime<Utc>,
    /// None while it is on air.
    #[serde(rename = "end_ms", with = "option_time_ms")]
    #[schema(value_type = Option<i64>)]
    pub end: Option<DateTime<Utc>>,
    /// Sessions that began while it aired.
    pub starts: u64,
    /// Sessions that watched any of it.
    pub viewers: u64,
    pub peak_viewers: u64,
    pub avg_viewers: f64,
    /// Watch time per viewer.
    #[serde(rename = "avg_watch_seconds", with = "duration_s")]
    #[schema(value_type = f64)]
    pub avg_watch: Duration,
    #[serde(rename = "watch_seconds", with = "duration_s")]
    #[schema(value_type = f64)]
    pub watch: Duration,
    /// Sessions that ended while watching it.
    pub left_during: u64,
    /// `left_during / viewers` (0 without viewers).
    pub left_during_share: f64,
}

/// The audience of one asset over all its airings in the span: what the planner weighs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssetAudience {
    pub asset_id: AssetId,
    pub title: String,
    pub airings: u64,
    pub starts: u64,
    /// Viewings: the sum of each airing's viewers.
    pub viewers: u64,
    /// The highest peak of its airings.
    pub peak_viewers: u64,
    /// Watch time over the time it aired.
    pub avg_viewers: f64,
    #[serde(rename = "avg_watch_seconds", with = "duration_s")]
    #[schema(value_type = f64)]
    pub avg_watch: Duration,
    #[serde(rename = "watch_seconds", with = "duration_s")]
    #[schema(value_type = f64)]
    pub watch: Duration,
    pub left_during: u64,
    pub left_during_share: f64,
}

/// A span of time as an operator writes it: a whole number and a unit, `90s`, `30m`, `24h`, `7d`.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a span like 90s, 30m, 24h or 7d"))?;
    let unit_s = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} has no unit: write it like 90s, 30m, 24h or 7d")),
    };
    match n.checked_mul(unit_s) {
        Some(s) if s > 0 && s <= 3650 * 86_400 => Ok(Duration::from_secs(s)),
        _ => Err(format!("{text:?} is outside 1s..=3650d")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_with_their_unit_and_refuse_anything_else() {
        assert_eq!(parse_span("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_span("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_span(" 7d "), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_span("24").unwrap_err().contains("no unit"));
        assert!(parse_span("h").unwrap_err().contains("not a span"));
        assert!(parse_span("0m").unwrap_err().contains("outside"));
        assert!(parse_span("99999999999999999d").unwrap_err().contains("outside"));
    }

    #[test]
    fn a_beacon_with_an_unknown_field_or_kind_is_refused() {
        let ok = r#"{"session":"abcdefghijklmnop","channel":"main","kind":"heartbeat","watched_ms":10000}"#;
        let b: PlaybackBeacon = serde_json::from_str(ok).unwrap();
        assert_eq!(b.kind, BeaconKind::Heartbeat);
        assert_eq!(b.watched_ms, 10_000);
        let extra = r#"{"session":"abcdefghijklmnop","channel":"main","kind":"heartbeat","ip":"1.2.3.4"}"#;
        assert!(serde_json::from_str::<PlaybackBeacon>(extra).unwrap_err().to_string().contains("unknown field"));
        let kind = r#"{"session":"abcdefghijklmnop","channel":"main","kind":"like"}"#;
        assert!(serde_json::from_str::<PlaybackBeacon>(kind).is_err());
    }
}
