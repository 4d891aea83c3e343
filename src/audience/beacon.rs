//! Beacon validation: a beacon from the page becomes a [`Beacon`] only if every field is one the station knows and
//! every number is sane; otherwise the error names the field and the reason, and nothing is stored.

use super::error::BeaconError;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::time::Duration;
use vvtv_api::audience::PlaybackBeacon;
use vvtv_api::{BeaconKind, ChannelId, SessionEnd, SessionId};

/// The most playback one beacon may report: heartbeats come every ~10 s, a throttled background tab's later.
pub const MAX_WATCHED: Duration = Duration::from_secs(60);
/// How far a playhead may be from the daemon's clock (a player is seconds behind the live edge; clocks drift).
const PLAYHEAD_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
const MAX_STARTUP_MS: u64 = 120_000;
const MAX_STALL_MS: u64 = 600_000;
const MAX_BITRATE: u64 = 100_000_000;

/// A beacon that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Beacon {
    pub session: SessionId,
    pub channel: ChannelId,
    pub kind: BeaconKind,
    pub watched: Duration,
    /// Programme time at the playhead (the daemon's clock when the page did not say).
    pub playhead: DateTime<Utc>,
    pub detail: Detail,
}

/// What a beacon of each kind carries besides the common fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Start { startup: Option<Duration> },
    Heartbeat,
    Stall { stalled: Duration },
    Bitrate { bits_per_second: u64 },
    Error { code: String },
    End { reason: SessionEnd },
}

fn bad(field: &'static str, reason: impl Into<String>) -> BeaconError {
    BeaconError { field, reason: reason.into() }
}

/// 1 to `max` characters of `[A-Za-z0-9_-]` plus any of `extra`.
fn is_token(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || extra.contains(&b))
}

/// Checks a beacon received at `now` for a station running `channels`.
pub fn validate(b: PlaybackBeacon, channels: &HashSet<ChannelId>, now: DateTime<Utc>) -> Result<Beacon, BeaconError> {
    let session = b.session.as_str();
    if !(16..=64).contains(&session.len()) || !is_token(session, 64, b"") {
        return Err(bad("session", "must be 16 to 64 characters of A-Z, a-z, 0-9, _ and - (a random id)"));
    }
    if !channels.contains(&b.channel) {
        let mut known: Vec<&str> = channels.iter().map(ChannelId::as_str).collect();
        known.sort_unstable();
        return Err(bad(
            "channel",
            format!("{:?} is not a channel of this station ({})", b.channel.0, known.join(", ")),
        ));
    }
    let watched = Duration::from_millis(b.watched_ms);
    if watched > MAX_WATCHED {
        return Err(bad(
            "watched_ms",
            format!("{} is above {} (one beacon every ~10 s)", b.watched_ms, MAX_WATCHED.as_millis()),
        ));
    }
    let playhead = match b.playhead_ms {
        None => now,
        Some(ms) => match DateTime::from_timestamp_millis(ms) {
            Some(t) if (t - now).abs() <= PLAYHEAD_SLACK => t,
            _ => return Err(bad("playhead_ms", format!("{ms} is not within ten minutes of the station's clock"))),
        },
    };
    let only = |field: &'static str, set: bool, kind: BeaconKind| {
        if set {
            Err(bad(field, format!("is only sent with {kind} beacons")))
        } else {
            Ok(())
        }
    };
    only("startup_ms", b.startup_ms.is_some() && b.kind != BeaconKind::Start, BeaconKind::Start)?;
    only("stall_ms", b.stall_ms.is_some() && b.kind != BeaconKind::Stall, BeaconKind::Stall)?;
    only("bitrate", b.bitrate.is_some() && b.kind != BeaconKind::Bitrate, BeaconKind::Bitrate)?;
    only("error", b.error.is_some() && b.kind != BeaconKind::Error, BeaconKind::Error)?;
    only("reason", b.reason.is_some() && b.kind != BeaconKind::End, BeaconKind::End)?;
    let detail = match b.kind {
        BeaconKind::Start => match b.startup_ms {
            Some(ms) if ms > MAX_STARTUP_MS => {
                return Err(bad("startup_ms", format!("{ms} is above {MAX_STARTUP_MS}")));
            }
            startup => Detail::Start { startup: startup.map(Duration::from_millis) },
        },
        BeaconKind::Heartbeat => Detail::Heartbeat,
        BeaconKind::Stall => match b.stall_ms {
            Some(ms) if (1..=MAX_STALL_MS).contains(&ms) => Detail::Stall { stalled: Duration::from_millis(ms) },
            Some(ms) => return Err(bad("stall_ms", format!("{ms} is outside 1..={MAX_STALL_MS}"))),
            None => return Err(bad("stall_ms", "a stall beacon says how long playback stood still")),
        },
        BeaconKind::Bitrate => match b.bitrate {
            Some(bps) if (1..=MAX_BITRATE).contains(&bps) => Detail::Bitrate { bits_per_second: bps },
            Some(bps) => return Err(bad("bitrate", format!("{bps} is outside 1..={MAX_BITRATE} bits per second"))),
            None => return Err(bad("bitrate", "a bitrate beacon gives the new rung's bits per second")),
        },
        BeaconKind::Error => match b.error {
            Some(code) if is_token(&code, 64, b".") => Detail::Error { code },
            Some(_) => return Err(bad("error", "must be a short code: 1 to 64 characters of A-Z, a-z, 0-9, _ . -")),
            None => return Err(bad("error", "an error beacon gives the player's error code")),
        },
        BeaconKind::End => match b.reason.unwrap_or(SessionEnd::Closed) {
            SessionEnd::Timeout => {
                return Err(bad("reason", "\"timeout\" is the station's to decide; send \"closed\" or \"error\""));
            }
            reason => Detail::End { reason },
        },
    };
    Ok(Beacon { session: b.session, channel: b.channel, kind: b.kind, watched, playhead, detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels() -> HashSet<ChannelId> {
        ["main", "news"].into_iter().map(ChannelId::from).collect()
    }

    fn beacon(kind: BeaconKind) -> PlaybackBeacon {
        PlaybackBeacon {
            session: SessionId("0123456789abcdef".into()),
            channel: ChannelId::from("main"),
            kind,
            watched_ms: 0,
            playhead_ms: None,
            startup_ms: None,
            stall_ms: None,
            bitrate: None,
            error: None,
            reason: None,
        }
    }

    fn refused(b: PlaybackBeacon) -> String {
        validate(b, &channels(), Utc::now()).unwrap_err().to_string()
    }

    #[test]
    fn a_well_formed_beacon_of_each_kind_passes() {
        let now = Utc::now();
        let mut start = beacon(BeaconKind::Start);
        start.startup_ms = Some(1200);
        start.playhead_ms = Some(now.timestamp_millis() - 12_000);
        let ok = validate(start, &channels(), now).unwrap();
        assert_eq!(ok.detail, Detail::Start { startup: Some(Duration::from_millis(1200)) });
        assert_eq!(ok.playhead.timestamp_millis(), now.timestamp_millis() - 12_000);
        let mut hb = beacon(BeaconKind::Heartbeat);
        hb.watched_ms = 10_000;
        let ok = validate(hb, &channels(), now).unwrap();
        assert_eq!((ok.watched, ok.playhead), (Duration::from_secs(10), now), "no playhead: the station's clock");
        let mut stall = beacon(BeaconKind::Stall);
        stall.stall_ms = Some(800);
        assert_eq!(
            validate(stall, &channels(), now).unwrap().detail,
            Detail::Stall { stalled: Duration::from_millis(800) }
        );
        let mut err = beacon(BeaconKind::Error);
        err.error = Some("fragLoadError".into());
        assert!(validate(err, &channels(), now).is_ok());
        let end = validate(beacon(BeaconKind::End), &channels(), now).unwrap();
        assert_eq!(end.detail, Detail::End { reason: SessionEnd::Closed });
    }

    #[test]
    fn every_bad_field_is_named_with_the_reason() {
        let mut b = beacon(BeaconKind::Heartbeat);
        b.session = SessionId("short".into());
        assert!(refused(b).starts_with("session: must be 16 to 64"));
        let mut b = beacon(BeaconKind::Heartbeat);
        b.session = SessionId("0123456789abcdef<script>".into());
        assert!(refused(b).starts_with("session:"));
        let mut b = beacon(BeaconKind::Heartbeat);
        b.channel = ChannelId::from("sports");
        assert_eq!(refused(b), "channel: \"sports\" is not a channel of this station (main, news)");
        let mut b = beacon(BeaconKind::Heartbeat);
        b.watched_ms = 3_600_000;
        assert!(refused(b).starts_with("watched_ms: 3600000 is above 60000"));
        let mut b = beacon(BeaconKind::Heartbeat);
        b.playhead_ms = Some(0);
        assert!(refused(b).starts_with("playhead_ms: 0 is not within ten minutes"));
        let mut b = beacon(BeaconKind::Heartbeat);
        b.stall_ms = Some(100);
        assert_eq!(refused(b), "stall_ms: is only sent with stall beacons");
        assert!(refused(beacon(BeaconKind::Stall)).starts_with("stall_ms: a stall beacon says"));
        let mut b = beacon(BeaconKind::Stall);
        b.stall_ms = Some(0);
        assert!(refused(b).starts_with("stall_ms: 0 is outside"));
        let mut b = beacon(BeaconKind::Bitrate);
        b.bitrate = Some(u64::MAX);
        assert!(refused(b).starts_with("bitrate:"));
        let mut b = beacon(BeaconKind::Error);
        b.error = Some("x".repeat(65));
        assert!(refused(b).starts_with("error: must be a short code"));
        let mut b = beacon(BeaconKind::Start);
        b.startup_ms = Some(10_000_000);
        assert!(refused(b).starts_with("startup_ms:"));
        let mut b = beacon(BeaconKind::End);
        b.reason = Some(SessionEnd::Timeout);
        assert!(refused(b).starts_with("reason: \"timeout\" is the station's"));
    }
}
