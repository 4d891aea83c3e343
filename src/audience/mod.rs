//! The audience room: counts viewers from the player page's beacons and keeps their sessions, because behind a CDN
//! the origin sees the CDN, not people (segment requests cannot count viewers).
//!
//! The actor owns the `audience_*` tables. It validates each beacon ([`beacon`]), rate-limits it per session and
//! follows the live sessions in memory ([`sessions`]), ends a session after `audience.session_timeout_seconds` of
//! silence or at its end beacon, writes what changed every couple of seconds in one transaction, and deletes
//! sessions older than `audience.retention_days`. The number of viewers per channel is published on a `watch`
//! channel, so reading it costs no round trip.

pub mod beacon;
mod error;
pub mod sessions;

pub use error::{AudienceError, BeaconError};

use crate::actor::{self, Context};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{Actor, ChannelId, EventKind, SessionEnd, SessionRecord, SessionWrite, Store};
use chrono::Utc;
use sessions::{Known, Limits, Sessions};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use vvtv_api::audience::PlaybackBeacon;

/// How often silent sessions are looked for and changes are written.
const TICK: Duration = Duration::from_secs(1);
const WRITE_EVERY: Duration = Duration::from_secs(2);
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// A refused new session is recorded as an event at most this often, and refused beacons are summed up as one.
const FULL_EVENT_EVERY: Duration = Duration::from_secs(60);
const REFUSED_EVENT_EVERY: Duration = Duration::from_secs(60);

/// Viewers now, per channel (every configured channel, zero included).
pub type Viewers = BTreeMap<ChannelId, u64>;

enum Msg {
    Beacon(PlaybackBeacon, oneshot::Sender<Result<(), AudienceError>>),
    Write(oneshot::Sender<()>),
}

/// The audience room: channel ends only.
#[derive(Clone, Debug)]
pub struct AudienceHandle {
    tx: mpsc::Sender<Msg>,
    viewers: watch::Receiver<Viewers>,
}

impl AudienceHandle {
    pub fn spawn(ctx: &Context) -> AudienceHandle {
        let (tx, rx) = mpsc::channel(1024);
        let a = &ctx.config.audience;
        let limits = Limits {
            timeout: Duration::from_secs(a.session_timeout_seconds),
            max_sessions: a.max_sessions,
            burst: a.session_burst,
            per_minute: a.session_beacons_per_minute,
        };
        let channels: HashSet<ChannelId> = ctx.config.channels.iter().map(|c| ChannelId(c.id.clone())).collect();
        let sessions = Sessions::new(limits, Instant::now());
        let (viewers_tx, viewers) = watch::channel(sessions.viewers(&channels));
        let room = Audience {
            rx,
            store: ctx.store.clone(),
            metrics: ctx.metrics.clone(),
            retention: Duration::from_secs(u64::from(a.retention_days) * 86_400),
            limits,
            channels,
            sessions,
            viewers: viewers_tx,
            full_reported: None,
            refused: BTreeMap::new(),
        };
        actor::spawn("audience", ctx, |shutdown| room.run(shutdown));
        AudienceHandle { tx, viewers }
    }

    /// Takes one beacon: validated, rate-limited, counted; or refused with the reason (and not stored).
    pub async fn beacon(&self, beacon: PlaybackBeacon) -> Result<(), AudienceError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Beacon(beacon, reply)).await.map_err(|_| AudienceError::Stopped)?;
        rx.await.map_err(|_| AudienceError::Stopped)?
    }

    /// Viewer sessions live now on `channel`.
    pub fn viewers(&self, channel: &ChannelId) -> u64 {
        self.viewers.borrow().get(channel).copied().unwrap_or(0)
    }

    pub fn all_viewers(&self) -> Viewers {
        self.viewers.borrow().clone()
    }

    /// Writes what the room holds now (waits for it); for tests and reports that must see the latest beacons.
    pub async fn write_now(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Write(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Audience {
    rx: mpsc::Receiver<Msg>,
    store: Store,
    metrics: Arc<Metrics>,
    retention: Duration,
    limits: Limits,
    channels: HashSet<ChannelId>,
    sessions: Sessions,
    viewers: watch::Sender<Viewers>,
    full_reported: Option<Instant>,
    /// Beacons refused since the last summary, by class.
    refused: BTreeMap<&'static str, u64>,
}

impl Audience {
    async fn run(mut self, mut shutdown: Shutdown) {
        self.resume().await;
        self.sweep().await;
        let mut tick = tokio::time::interval(TICK);
        let mut last_write = Instant::now();
        let mut last_sweep = Instant::now();
        let mut last_refused = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.recv() => break,
                _ = tick.tick() => {
                    self.sessions.expire(Utc::now());
                    self.publish();
                    if last_write.elapsed() >= WRITE_EVERY {
                        last_write = Instant::now();
                        self.write().await;
                    }
                    if last_refused.elapsed() >= REFUSED_EVENT_EVERY {
                        last_refused = Instant::now();
                        self.report_refused().await;
                    }
                    if last_sweep.elapsed() >= SWEEP_EVERY {
                        last_sweep = Instant::now();
                        self.sweep().await;
                    }
                }
                msg = self.rx.recv() => match msg {
                    None => break,
                    Some(Msg::Beacon(beacon, reply)) => {
                        let result = self.take(beacon).await;
                        if let Err(e) = &result {
                            *self.refused.entry(e.class()).or_default() += 1;
                        }
                        self.publish();
                        let _ = reply.send(result);
                    }
                    Some(Msg::Write(reply)) => {
                        self.write().await;
                        let _ = reply.send(());
                    }
                },
            }
        }
        // Live sessions stay open in the store: after a restart their heartbeats carry on.
        self.write().await;
        self.report_refused().await;
    }

    async fn take(&mut self, beacon: PlaybackBeacon) -> Result<(), AudienceError> {
        let at = Utc::now();
        let b = beacon::validate(beacon, &self.channels, at)?;
        let now = Instant::now();
        let taken = match self.sessions.offer(&b, at, now) {
            Ok(Known::Live) => Ok(()),
            Ok(Known::Unknown) => {
                let stored = self.store.audience_session(&b.session).await?;
                self.sessions.admit(&b, stored, at, now)
            }
            Err(AudienceError::Full { max }) => {
                if self.full_reported.is_none_or(|t| t.elapsed() >= FULL_EVENT_EVERY) {
                    self.full_reported = Some(now);
                    let message = format!("refusing new viewer sessions: {max} are live (audience.max_sessions)");
                    self.store
                        .event(
                            Actor::Audience,
                            None,
                            EventKind::AudienceFull,
                            &message,
                            serde_json::json!({ "max_sessions": max }),
                        )
                        .await;
                }
                Err(AudienceError::Full { max })
            }
            Err(e) => Err(e),
        };
        if let (Ok(()), beacon::Detail::Start { startup }) = (&taken, &b.detail) {
            self.metrics.observe_session_start(&b.channel);
            if let Some(startup) = startup {
                self.metrics.observe_startup(&b.channel, *startup);
            }
        }
        taken
    }

    /// One event for the beacons refused since the last one (none when nothing was refused).
    async fn report_refused(&mut self) {
        if self.refused.is_empty() {
            return;
        }
        let counts = std::mem::take(&mut self.refused);
        let total: u64 = counts.values().sum();
        let parts: Vec<String> = counts.iter().map(|(class, n)| format!("{n} {class}")).collect();
        let message = format!("refused {total} beacon(s) in the last minute: {}", parts.join(", "));
        self.store.event(Actor::Audience, None, EventKind::AudienceRefused, &message, serde_json::json!(counts)).await;
    }

    fn publish(&self) {
        let now = self.sessions.viewers(&self.channels);
        self.viewers.send_if_modified(|v| {
            if *v == now {
                return false;
            }
            for (channel, viewers) in &now {
                self.metrics.set_viewers(channel, *viewers);
            }
            *v = now;
            true
        });
    }

    async fn write(&mut self) {
        let pending = self.sessions.pending();
        if pending.is_empty() {
            return;
        }
        match self.store.audience_write(&pending).await {
            Ok(()) => {
                // A session is counted in the rebuffer figures once: when the write that ends it succeeds.
                for ended in pending.iter().map(|w| &w.session).filter(|s| s.ended.is_some()) {
                    let t = &ended.totals;
                    let played = t.watch + t.stall;
                    if !played.is_zero() {
                        self.metrics
                            .observe_rebuffer_ratio(&ended.channel, t.stall.as_secs_f64() / played.as_secs_f64());
                    }
                }
                self.sessions.written();
            }
            Err(e) => tracing::error!("could not write {} viewer session(s), retrying: {e}", pending.len()),
        }
    }

    /// Takes up the sessions that were live at the last stop; ends those silent for longer than the timeout.
    async fn resume(&mut self) {
        let open = match self.store.audience_open_sessions().await {
            Ok(open) => open,
            Err(e) => {
                tracing::error!("could not read the open viewer sessions: {e}");
                return;
            }
        };
        let now = Instant::now();
        let mut dropped = Vec::new();
        for record in open {
            if self.channels.contains(&record.channel) && self.sessions.len() < self.limits.max_sessions as usize {
                self.sessions.resume(record, now);
            } else {
                // A channel no longer configured (or more than the limit): ended where it was last heard.
                let ended = Some((record.last_beacon, SessionEnd::Timeout));
                dropped.push(SessionWrite { session: SessionRecord { ended, ..record }, spans: Vec::new() });
            }
        }
        if let Err(e) = self.store.audience_write(&dropped).await {
            tracing::error!("could not end {} stale viewer session(s): {e}", dropped.len());
        }
        self.sessions.expire(Utc::now());
        self.publish();
        self.write().await;
    }

    async fn sweep(&mut self) {
        let before = Utc::now() - chrono::Duration::from_std(self.retention).unwrap_or_default();
        match self.store.audience_sweep(before).await {
            Ok(0) => {}
            Ok(n) => {
                let days = self.retention.as_secs() / 86_400;
                let message = format!("deleted {n} viewer session(s) last heard more than {days} days ago");
                self.store
                    .event(
                        Actor::Audience,
                        None,
                        EventKind::AudienceSwept,
                        &message,
                        serde_json::json!({ "sessions": n, "retention_days": days }),
                    )
                    .await;
            }
            Err(e) => tracing::error!("audience retention sweep failed: {e}"),
        }
    }
}
