//! The live sessions the audience room follows: each viewer's totals, what it watched since the last write, its
//! token bucket and when it was last heard. Pure bookkeeping (no I/O), so every rule is tested without a daemon.
//!
//! Memory is bounded: at most `max_sessions` live sessions (each a few hundred bytes plus the spans of one write
//! interval), a session leaves the table once its end is written, and new sessions are themselves rate-limited so a
//! flood of made-up ids cannot fill the table faster than silent ones expire.

use super::beacon::{Beacon, Detail};
use super::error::AudienceError;
use crate::store::{SessionRecord, SessionTotals, SessionWrite, WatchSpan};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use vvtv_api::{BeaconKind, ChannelId, SessionEnd, SessionId};

/// A beacon may report a little more playback than the time since the previous one (clocks, timers).
const WATCH_SLACK: Duration = Duration::from_secs(5);
/// New sessions admitted at once, and per second after that, across all viewers.
const NEW_SESSION_BURST: f64 = 200.0;
const NEW_SESSIONS_PER_SECOND: f64 = 50.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Silence after which a session has ended.
    pub timeout: Duration,
    pub max_sessions: u32,
    pub burst: u32,
    pub per_minute: u32,
}

/// A token bucket: `capacity` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket { tokens: capacity, at: now }
    }

    fn take(&mut self, capacity: f64, per_second: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Live {
    record: SessionRecord,
    /// Watched since the last write.
    spans: Vec<WatchSpan>,
    bucket: Bucket,
    dirty: bool,
    /// Its start beacon has been counted. Beacons sent together may arrive in any order (a bitrate switch before
    /// the start that preceded it), so a start is taken after other beacons — once.
    start_seen: bool,
}

/// Whether a beacon's session is followed already or has to be looked up in the store first.
#[derive(Debug, PartialEq, Eq)]
pub enum Known {
    Live,
    Unknown,
}

#[derive(Debug)]
pub struct Sessions {
    limits: Limits,
    live: HashMap<SessionId, Live>,
    new_sessions: Bucket,
}

impl Sessions {
    pub fn new(limits: Limits, now: Instant) -> Sessions {
        Sessions { limits, live: HashMap::new(), new_sessions: Bucket::full(NEW_SESSION_BURST, now) }
    }

    fn per_second(&self) -> f64 {
        f64::from(self.limits.per_minute) / 60.0
    }

    /// The first step for every beacon. A live session's beacon is checked and applied; an unknown session is
    /// admitted under the limits and must then be looked up ([`Sessions::admit`]).
    pub fn offer(&mut self, b: &Beacon, at: DateTime<Utc>, now: Instant) -> Result<Known, AudienceError> {
        let (capacity, per_second) = (f64::from(self.limits.burst), self.per_second());
        if let Some(live) = self.live.get_mut(&b.session) {
            match live.record.ended {
                // Timed out but heard again before the end was written: it was only silent.
                Some((_, SessionEnd::Timeout)) => live.record.ended = None,
                Some(_) => return Err(AudienceError::Ended(b.session.clone())),
                None => {}
            }
            if live.record.channel != b.channel {
                let channel = live.record.channel.clone();
                return Err(AudienceError::OtherChannel { session: b.session.clone(), channel });
            }
            if b.kind == BeaconKind::Start && live.start_seen {
                return Err(AudienceError::AlreadyStarted(b.session.clone()));
            }
            if !live.bucket.take(capacity, per_second, now) {
                let Limits { burst, per_minute, .. } = self.limits;
                return Err(AudienceError::RateLimited { session: b.session.clone(), burst, per_minute });
            }
            apply(live, b, at);
            return Ok(Known::Live);
        }
        if b.kind == BeaconKind::End {
            return Err(AudienceError::NotLive(b.session.clone()));
        }
        if self.live.len() >= self.limits.max_sessions as usize {
            return Err(AudienceError::Full { max: self.limits.max_sessions });
        }
        if !self.new_sessions.take(NEW_SESSION_BURST, NEW_SESSIONS_PER_SECOND, now) {
            return Err(AudienceError::TooManyNew);
        }
        Ok(Known::Unknown)
    }

    /// The second step for an unknown session, with what the store holds of it: a new session starts (a beacon
    /// other than `start` starts it too: the start may have been lost), one that timed out is taken up again (a
    /// throttled tab, a daemon restart longer than the timeout), one the page ended is refused.
    pub fn admit(
        &mut self,
        b: &Beacon,
        stored: Option<SessionRecord>,
        at: DateTime<Utc>,
        now: Instant,
    ) -> Result<(), AudienceError> {
        let record = match stored {
            Some(r) if r.channel != b.channel => {
                return Err(AudienceError::OtherChannel { session: r.id, channel: r.channel });
            }
            Some(SessionRecord { ended: Some((_, SessionEnd::Closed | SessionEnd::Error)), .. }) => {
                return Err(AudienceError::Ended(b.session.clone()));
            }
            Some(r) if b.kind == BeaconKind::Start => return Err(AudienceError::AlreadyStarted(r.id)),
            Some(r) => SessionRecord { ended: None, ..r },
            None => SessionRecord {
                id: b.session.clone(),
                channel: b.channel.clone(),
                started: at,
                last_beacon: at,
                first_playhead: b.playhead,
                last_playhead: b.playhead,
                ended: None,
                totals: SessionTotals::default(),
            },
        };
        let fresh = record.totals.beacons == 0;
        let bucket = Bucket { tokens: f64::from(self.limits.burst) - 1.0, at: now };
        // A session taken up from the store has started before.
        let mut live = Live { record, spans: Vec::new(), bucket, dirty: true, start_seen: !fresh };
        if fresh {
            // Its start is a point in the airing it began in: that is where it counts as a start.
            live.spans.push(WatchSpan { from: b.playhead, to: b.playhead });
        }
        apply(&mut live, b, at);
        self.live.insert(b.session.clone(), live);
        Ok(())
    }

    /// Takes up sessions that were live when the daemon stopped (at start).
    pub fn resume(&mut self, record: SessionRecord, now: Instant) {
        let bucket = Bucket::full(f64::from(self.limits.burst), now);
        self.live.insert(record.id.clone(), Live { record, spans: Vec::new(), bucket, dirty: false, start_seen: true });
    }

    /// Ends the sessions silent for longer than the timeout (at their last beacon); returns how many.
    pub fn expire(&mut self, at: DateTime<Utc>) -> usize {
        let timeout = self.limits.timeout;
        let mut ended = 0;
        for live in self.live.values_mut() {
            let silent = (at - live.record.last_beacon).to_std().unwrap_or_default();
            if live.record.ended.is_none() && silent > timeout {
                live.record.ended = Some((live.record.last_beacon, SessionEnd::Timeout));
                live.dirty = true;
                ended += 1;
            }
        }
        ended
    }

    /// What has changed since the last write. Nothing is cleared until [`Sessions::written`]: a failed write is
    /// retried with the next one.
    pub fn pending(&self) -> Vec<SessionWrite> {
        self.live
            .values()
            .filter(|l| l.dirty)
            .map(|l| SessionWrite { session: l.record.clone(), spans: l.spans.clone() })
            .collect()
    }

    /// The pending changes are in the store: forget the spans and the sessions that ended.
    pub fn written(&mut self) {
        self.live.retain(|_, l| l.record.ended.is_none());
        for l in self.live.values_mut() {
            l.spans.clear();
            l.dirty = false;
        }
    }

    /// Live sessions per channel (every channel in `channels`, zero included).
    pub fn viewers<'a>(&self, channels: impl IntoIterator<Item = &'a ChannelId>) -> BTreeMap<ChannelId, u64> {
        let mut out: BTreeMap<ChannelId, u64> = channels.into_iter().map(|c| (c.clone(), 0)).collect();
        for l in self.live.values().filter(|l| l.record.ended.is_none()) {
            *out.entry(l.record.channel.clone()).or_default() += 1;
        }
        out
    }

    /// Sessions held: live ones and ended ones not yet written.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// Adds a beacon to a live session: its watch time (at most the time since its previous beacon, plus a little)
/// as a span ending at the playhead, and what its kind reports.
fn apply(live: &mut Live, b: &Beacon, at: DateTime<Utc>) {
    let r = &mut live.record;
    let since_last = (at - r.last_beacon).to_std().unwrap_or_default();
    let credited = b.watched.min(since_last + WATCH_SLACK);
    r.totals.beacons += 1;
    r.last_beacon = r.last_beacon.max(at);
    if !credited.is_zero() {
        let from = b.playhead - chrono::Duration::from_std(credited).unwrap_or_default();
        live.spans.push(WatchSpan { from, to: b.playhead });
        r.totals.watch += credited;
    }
    r.last_playhead = r.last_playhead.max(b.playhead);
    let t = &mut r.totals;
    match &b.detail {
        Detail::Start { startup } => {
            t.startup = startup.or(t.startup);
            live.start_seen = true;
        }
        Detail::Heartbeat => {}
        Detail::Stall { stalled } => {
            t.stalls += 1;
            t.stall += *stalled;
        }
        Detail::Bitrate { bits_per_second } => {
            if t.last_bitrate.is_some_and(|last| last != *bits_per_second) {
                t.bitrate_switches += 1;
            }
            t.last_bitrate = Some(*bits_per_second);
        }
        Detail::Error { .. } => t.errors += 1,
        Detail::End { reason } => r.ended = Some((at, *reason)),
    }
    live.dirty = true;
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
