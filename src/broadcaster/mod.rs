//! The broadcaster plays one channel's schedule out as a never-ending HLS stream without re-encoding.
//!
//! The actor (a tokio task) owns the channel's playout thread ([`runner`]), feeds it from the store, answers status,
//! turns emergency requests into items, and rebuilds the pipeline when segments stop coming. The engine itself
//! ([`engine`]) is a remux only; the playlists ([`playlist`]) are written by VVTV, not by GStreamer, and published in
//! memory for the origin ([`published`]; the handle carries the receiving end).

pub mod engine;
pub mod error;
mod feed;
pub mod layout;
pub mod lease;
pub mod playlist;
pub mod published;
pub mod runner;
pub mod ts;

pub use error::BroadcasterError;

use crate::actor::{self, Context};
use crate::config::{ChannelConfig, Config, Role};
use crate::factory::FactoryHandle;
use crate::media::house_format::HouseFormat;
use crate::planner::PlannerHandle;
use crate::shutdown::Shutdown;
use crate::store::{Actor, AiringKind, ChannelId, EventKind, ScheduleStatus, Store};
use engine::EngineSettings;
use playlist::{Playlist, PlaylistSettings};
use published::{PublishedReceiver, PublishedSender};
use runner::{Command, Runner, Shared, Snapshot};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use vvtv_api::broadcast::{BroadcastState, OnAir, StreamingStatus};

enum Msg {
    Status(oneshot::Sender<StreamingStatus>),
    Emergency { count: u32, reason: String, reply: oneshot::Sender<Result<String, BroadcasterError>> },
}

/// One channel's broadcaster: channel ends only.
#[derive(Clone, Debug)]
pub struct BroadcasterHandle {
    channel: ChannelId,
    tx: mpsc::Sender<Msg>,
    published: PublishedReceiver,
}

impl BroadcasterHandle {
    pub fn spawn(ctx: &Context, channel: ChannelConfig, planner: PlannerHandle, factory: FactoryHandle) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let id = ChannelId(channel.id.clone());
        // Born with what the last run left on disk (read before the server takes its first request), so what was
        // listed stays served while the slate and the recovery take their time.
        let hls_dir = ctx.config.storage.hls_dir().join(id.as_str());
        let rungs: Vec<String> = ctx.config.house_format.ladder.iter().map(|r| r.name.clone()).collect();
        let shared = ctx.store.is_shared();
        let born = if shared {
            // Nodes sharing the station: the committed rows are the truth, and a local file may be a segment this
            // node wrote but never committed before it died. Nothing local is kept; the rows are mirrored.
            let _ = std::fs::remove_dir_all(&hls_dir);
            published::Published {
                rungs: rungs.iter().map(|r| published::PublishedRung { name: r.clone(), playlist: None }).collect(),
                ..Default::default()
            }
        } else {
            playlist::left_on_disk(&hls_dir, &rungs)
        };
        let (published_tx, published) = tokio::sync::watch::channel(born);
        let b = Broadcaster {
            rx,
            config: ctx.config.clone(),
            id: id.clone(),
            channel,
            store: ctx.store.clone(),
            planner,
            factory,
            shared: Arc::new(Mutex::new(Snapshot::default())),
            metrics: ctx.metrics.channel(&id),
            commands: None,
            state: BroadcastState::Starting,
            detail: None,
            published: published_tx,
            tenure: None,
            renewal: None,
            prefetching: Arc::default(),
        };
        actor::spawn("broadcaster", ctx, |shutdown| b.run(shutdown));
        BroadcasterHandle { channel: id, tx, published }
    }

    /// The channel's playlists as published, for the origin.
    pub fn published(&self) -> PublishedReceiver {
        self.published.clone()
    }

    pub async fn status(&self) -> Option<StreamingStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Airs `count` items from the emergency pool (or a slate showing `reason`) from the next keyframe on.
    pub async fn emergency(&self, count: u32, reason: String) -> Result<String, BroadcasterError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || BroadcasterError::Stopped(self.channel.clone());
        self.tx.send(Msg::Emergency { count, reason, reply }).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

struct Broadcaster {
    rx: mpsc::Receiver<Msg>,
    config: Arc<Config>,
    id: ChannelId,
    channel: ChannelConfig,
    store: Store,
    planner: PlannerHandle,
    factory: FactoryHandle,
    shared: Shared,
    metrics: crate::metrics::ChannelMetrics,
    commands: Option<std::sync::mpsc::Sender<Command>>,
    state: BroadcastState,
    /// Why playout failed to start.
    detail: Option<String>,
    published: PublishedSender,
    /// Nodes sharing the station: the lease this node holds on the channel while it plays it, and the task
    /// renewing it.
    tenure: Option<lease::Tenure>,
    renewal: Option<tokio::task::JoinHandle<()>>,
    /// A standby is copying the renditions of what airs now and next, so a takeover need not wait for them.
    prefetching: Arc<std::sync::atomic::AtomicBool>,
}

impl Broadcaster {
    async fn run(mut self, mut shutdown: Shutdown) {
        let shared = self.store.is_shared();
        // One box: this node plays the channel. Nodes sharing the station: whichever holds the lease does.
        let mut thread = None;
        if !shared {
            tokio::select! {
                _ = shutdown.recv() => {}
                started = self.start_playout(None) => thread = self.started(started).await,
            }
        } else {
            self.state = BroadcastState::Standby;
        }
        let mut mirror = shared.then(|| lease::Mirror::new(self.mirror_settings(), self.published.clone()));
        let segment = Duration::from_secs(u64::from(self.config.house_format.segment_seconds));
        let stall_after = segment * self.config.broadcaster.stall_factor;
        let mut watch = tokio::time::interval(segment / 2);
        let mut lease_tick = tokio::time::interval(lease::LEASE_TICK);
        let mut stall_reported_at: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.recv() => break,
                _ = lease_tick.tick(), if shared => {
                    if let Some(mirror) = mirror.as_mut() {
                        tokio::select! {
                            _ = shutdown.recv() => break,
                            _ = self.lease_tick(&mut thread, mirror) => {}
                        }
                    }
                }
                _ = watch.tick() => {
                    let last = self.lock().last_segment;
                    let stalled = last.is_some_and(|t| t.elapsed() > stall_after)
                        && stall_reported_at.is_none_or(|t| t.elapsed() > stall_after);
                    if stalled {
                        stall_reported_at = Some(Instant::now());
                        if let Some(tx) = &self.commands {
                            let _ = tx.send(Command::Rebuild(format!("no new segment for {:.0} s", stall_after.as_secs_f64())));
                        }
                    }
                }
                msg = self.rx.recv() => match msg {
                    None => break,
                    Some(Msg::Status(reply)) => { let _ = reply.send(self.status().await); }
                    Some(Msg::Emergency { count, reason, reply }) => { let _ = reply.send(self.emergency(count, reason).await); }
                },
            }
        }
        self.stop_playout(&mut thread).await;
        if let Some(tenure) = self.tenure.take() {
            // A clean stop hands the channel over at once instead of after the lease expires; the renewal is
            // stopped first, so no late renewal extends the released lease.
            tenure.lose();
            if let Some(renewal) = self.renewal.take() {
                renewal.abort();
                let _ = renewal.await;
            }
            let _ = self.store.lease_release(&self.id, self.store.node(), tenure.epoch).await;
        }
    }

    /// What a started (or failed) playout leaves: its thread, or the failure recorded.
    async fn started(
        &mut self,
        started: Result<std::thread::JoinHandle<()>, BroadcasterError>,
    ) -> Option<std::thread::JoinHandle<()>> {
        match started {
            Ok(handle) => Some(handle),
            Err(e) => {
                self.state = BroadcastState::Failed;
                self.detail = Some(e.to_string());
                let message = format!("cannot start playout: {e}");
                self.store
                    .event(
                        Actor::Broadcaster,
                        Some(&self.id),
                        EventKind::PlayoutFailed,
                        &message,
                        serde_json::json!({}),
                    )
                    .await;
                None
            }
        }
    }

    async fn stop_playout(&mut self, thread: &mut Option<std::thread::JoinHandle<()>>) {
        if let Some(tx) = self.commands.take() {
            let _ = tx.send(Command::Stop);
        }
        if let Some(handle) = thread.take() {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// Nodes sharing the station, every second: a holder notices a lost lease (stops, and serves the new holder's
    /// playlists); any other node with the broadcaster role takes the channel if its lease is free or expired, and
    /// otherwise renders the holder's playlists from the committed rows.
    async fn lease_tick(&mut self, thread: &mut Option<std::thread::JoinHandle<()>>, mirror: &mut lease::Mirror) {
        if let Some(tenure) = self.tenure.clone() {
            if !tenure.is_lost() {
                return;
            }
            self.stop_playout(thread).await;
            self.tenure = None;
            self.state = BroadcastState::Standby;
            // What it aired is the new holder's to report now (and a stale "last segment" is no stall here).
            *self.lock() = Snapshot::default();
            let holder =
                self.store.lease(&self.id).await.ok().flatten().map(|l| format!("{} (epoch {})", l.holder, l.epoch));
            let message = match tenure.given_up_because() {
                Some(why) => format!(
                    "stopped playing channel {} (epoch {}): {why}; it is taken again from what was published",
                    self.id, tenure.epoch
                ),
                None => format!(
                    "lost the lease of channel {} (epoch {}): now played by {}; this node stopped playing it",
                    self.id,
                    tenure.epoch,
                    holder.as_deref().unwrap_or("nobody yet")
                ),
            };
            let data = serde_json::json!({ "epoch": tenure.epoch, "holder": holder });
            self.store.event(Actor::Broadcaster, Some(&self.id), EventKind::LeaseLost, &message, data).await;
            if let Some(renewal) = self.renewal.take() {
                renewal.abort();
            }
            // What this tenure wrote locally is the committed rows' (fetched again by epoch if asked for), except
            // perhaps its last, refused segment: gone, so it is never served in place of the new holder's.
            let _ = std::fs::remove_dir_all(self.config.storage.hls_dir().join(self.id.as_str()));
        }
        if !self.config.node.runs(Role::Broadcaster) {
            mirror.refresh(&self.store, &self.id).await;
            return;
        }
        let ttl = Duration::from_secs(u64::from(self.config.node.lease_seconds));
        let mut attempt = self.store.lease_acquire(&self.id, self.store.node(), ttl).await;
        if let Ok(None) = attempt {
            mirror.refresh(&self.store, &self.id).await;
            self.prefetch();
            // The holder's lease runs out before the next tick (it stopped renewing): try again the moment it does,
            // not up to a second later.
            if let Ok(Some(l)) = self.store.lease(&self.id).await {
                if l.holder != self.store.node() && (0..1000).contains(&l.remaining_ms) {
                    tokio::time::sleep(Duration::from_millis(l.remaining_ms as u64 + 20)).await;
                    attempt = self.store.lease_acquire(&self.id, self.store.node(), ttl).await;
                }
            }
        }
        match attempt {
            Ok(Some(epoch)) => {
                let tenure = lease::Tenure::new(epoch);
                let renewal = tokio::spawn(lease::renew(self.store.clone(), self.id.clone(), tenure.clone(), ttl));
                self.renewal = Some(renewal);
                self.tenure = Some(tenure.clone());
                self.state = BroadcastState::Starting;
                let message = format!("took the lease of channel {} (epoch {epoch}) and plays it", self.id);
                let data = serde_json::json!({ "epoch": epoch });
                self.store.event(Actor::Broadcaster, Some(&self.id), EventKind::LeaseAcquired, &message, data).await;
                let started = self.start_playout(Some(tenure.clone())).await;
                *thread = self.started(started).await;
                if let Some(m) = self.store.lease(&self.id).await.ok().flatten().and_then(|l| l.multivariant) {
                    mirror.remember(m);
                }
                if thread.is_none() {
                    // Give the channel to a node that can play it.
                    tenure.lose();
                    let _ = self.store.lease_release(&self.id, self.store.node(), epoch).await;
                    self.tenure = None;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("channel {}: cannot read its lease: {e}", self.id),
        }
    }

    /// A standby copies the renditions of the item on air and the next ones from the object store in the
    /// background (one copy at a time), so that taking the channel over does not wait for a download.
    fn prefetch(&self) {
        use std::sync::atomic::Ordering;
        if self.prefetching.swap(true, Ordering::SeqCst) {
            return;
        }
        let (store, channel, busy) = (self.store.clone(), self.id.clone(), self.prefetching.clone());
        tokio::spawn(async move {
            let mut assets: Vec<crate::store::AssetId> = Vec::new();
            if let Ok(Some(a)) = store.open_airing(&channel).await {
                assets.extend(a.asset_id);
            }
            if let Ok(next) = store.upcoming(&channel, 3).await {
                assets.extend(next.iter().map(|i| i.asset_id));
            }
            for asset in assets {
                for r in store.renditions(asset).await.unwrap_or_default() {
                    if let Err(e) = store.fetch_media(&r.path).await {
                        tracing::debug!("channel {channel}: cannot prefetch {}: {e}", r.path.display());
                    }
                }
            }
            busy.store(false, Ordering::SeqCst);
        });
    }

    /// The playlist settings an origin that does not play the channel renders it with.
    fn mirror_settings(&self) -> PlaylistSettings {
        let hf = HouseFormat::from_config(&self.config.house_format);
        let b = &self.config.broadcaster;
        PlaylistSettings {
            dir: self.config.storage.hls_dir().join(self.id.as_str()),
            rungs: playlist_rungs(&hf, &[]),
            window: b.playlist_segments as usize,
            segment_duration: Duration::from_secs(u64::from(hf.segment_seconds)),
            grace: Duration::from_secs(u64::from(b.segment_grace_seconds)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        engine::relock(&self.shared)
    }

    /// Makes the slate, recovers the playlists (from disk on one box, from the committed rows when taking a shared
    /// channel over in `tenure`) and starts the playout thread.
    async fn start_playout(
        &mut self,
        tenure: Option<lease::Tenure>,
    ) -> Result<std::thread::JoinHandle<()>, BroadcasterError> {
        let hf = HouseFormat::from_config(&self.config.house_format);
        let (slate, full_slate) = feed::ensure_slate(&self.store, &self.factory, &self.channel, &hf).await?;
        let hls_dir = self.config.storage.hls_dir().join(self.id.as_str());
        let b = &self.config.broadcaster;
        let segment = Duration::from_secs(u64::from(hf.segment_seconds));
        let (hf2, samples) = (hf.clone(), slate.item.files.clone());
        let rungs = tokio::task::spawn_blocking(move || playlist_rungs(&hf2, &samples))
            .await
            .map_err(|e| BroadcasterError::Io { what: "reading the rungs' codecs".into(), source: e.into() })?;
        let settings = PlaylistSettings {
            dir: hls_dir.clone(),
            rungs,
            window: b.playlist_segments as usize,
            segment_duration: segment,
            grace: Duration::from_secs(u64::from(b.segment_grace_seconds)),
        };
        let published = self.published.clone();
        let playlist = match &tenure {
            None => tokio::task::spawn_blocking(move || Playlist::recover_into(settings, published))
                .await
                .map_err(|e| BroadcasterError::Io { what: "recovering the playlists".into(), source: e.into() })??,
            Some(t) => {
                let rows = self.store.segments(&self.id, b.playlist_segments as i64 + 1).await?;
                let commit = Box::new(lease::SegmentCommitter {
                    rt: tokio::runtime::Handle::current(),
                    store: self.store.clone(),
                    channel: self.id.clone(),
                    tenure: t.clone(),
                    dir: hls_dir.clone(),
                    rungs: settings.rungs.iter().map(|r| r.name.clone()).collect(),
                });
                let epoch = t.epoch;
                let playlist =
                    tokio::task::spawn_blocking(move || Playlist::take_over(settings, published, &rows, epoch, commit))
                        .await
                        .map_err(|e| BroadcasterError::Io {
                            what: "taking the playlists over".into(),
                            source: e.into(),
                        })??;
                let text = playlist.multivariant();
                self.store.set_lease_multivariant(&self.id, self.store.node(), epoch, &text).await?;
                playlist.write_channel_playlist()?;
                playlist
            }
        };
        let recovery = playlist.recovery().clone();
        self.store
            .event(
                Actor::Broadcaster,
                Some(&self.id),
                EventKind::PlaylistRecovered,
                &format!("playlists: {recovery}"),
                serde_json::json!(recovery),
            )
            .await;
        let last_published = playlist.window().last().map(|s| s.end());
        let silence = crate::media::silence::silent_aac_frame(hf.audio_kbps)?;
        let feed = feed::StoreFeed::new(
            tokio::runtime::Handle::current(),
            self.store.clone(),
            self.id.clone(),
            hf.clone(),
            (slate, full_slate),
            self.planner.clone(),
            self.factory.clone(),
            last_published,
        )
        .await?;
        let feed = match &tenure {
            Some(t) => feed.fenced_by(t.clone()),
            None => feed,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let settings = EngineSettings {
            out_dir: hls_dir,
            rungs: hf.rungs.iter().map(|r| r.name.clone()).collect(),
            segment,
            gop: Duration::from_secs(u64::from(hf.gop_seconds)),
            frame_ns: hf.frame_pts_ns(1),
            sync: true,
            origin_ns: 1_000_000_000,
        };
        let metrics = self.metrics.clone();
        let runner = Runner { settings, feed, playlist, commands: rx, shared: self.shared.clone(), silence, metrics };
        let handle = std::thread::Builder::new()
            .name(format!("playout-{}", self.id))
            .spawn(move || runner.run())
            .map_err(|source| BroadcasterError::Io { what: "starting the playout thread".into(), source })?;
        self.commands = Some(tx);
        self.state = BroadcastState::OnAir;
        Ok(handle)
    }

    async fn status(&self) -> StreamingStatus {
        let snap = self.lock().clone();
        let on_air = snap.on_air_title.as_ref().map(|title| {
            let (asset_id, kind) = match &snap.on_air_tag {
                Some(runner::Tag::Scheduled { asset_id, .. }) => (Some(*asset_id), AiringKind::Scheduled),
                Some(runner::Tag::Emergency { asset_id, .. }) => (*asset_id, AiringKind::Emergency),
                _ => (None, AiringKind::Slate),
            };
            let elapsed = snap.on_air_started.and_then(|s| (chrono::Utc::now() - s).to_std().ok()).unwrap_or_default();
            let duration = Duration::from_nanos(snap.on_air_duration_ns.max(0) as u64);
            let offset = Duration::from_nanos(snap.on_air_offset_ns.max(0) as u64);
            OnAir { title: title.clone(), asset_id, kind, position: (offset + elapsed).min(duration), duration }
        });
        let next = self.store.upcoming(&self.id, 6).await.unwrap_or_default();
        StreamingStatus {
            channel: self.id.clone(),
            state: self.state,
            detail: self.detail.clone(),
            on_air,
            next: next.into_iter().filter(|i| i.status == ScheduleStatus::Scheduled).take(5).collect(),
            since_last_segment: snap.last_segment.map(|t| t.elapsed()),
            segments_written: snap.segments_written,
            gaps_detected: snap.stats.gaps,
            restarts: snap.restarts,
            max_av_offset_ms: snap.stats.max_av_offset_ns as f64 / 1e6,
            items_aired: snap.stats.items,
        }
    }

    async fn emergency(&mut self, count: u32, reason: String) -> Result<String, BroadcasterError> {
        let Some(tx) = self.commands.clone() else {
            return Err(BroadcasterError::NotOnAir(self.id.clone()));
        };
        let hf = HouseFormat::from_config(&self.config.house_format);
        let items = feed::emergency_items(&self.store, &self.factory, &self.channel, &hf, count, &reason).await?;
        let titles: Vec<String> = items.iter().map(|n| n.item.title.clone()).collect();
        let message = format!(
            "emergency: airing {} item(s) from the next keyframe ({}); reason: {reason}",
            titles.len(),
            titles.join(", ")
        );
        tx.send(Command::Emergency(items)).map_err(|_| BroadcasterError::Stopped(self.id.clone()))?;
        self.store
            .event(
                Actor::Broadcaster,
                Some(&self.id),
                EventKind::Emergency,
                &message,
                serde_json::json!({ "count": count, "reason": reason, "items": titles }),
            )
            .await;
        Ok(message)
    }
}

/// Declared when a rung's SPS cannot be read: H.264 High at level 4.0 (what the default top rung needs).
const FALLBACK_VIDEO_CODEC: &str = "avc1.640028";

/// The ladder as the multivariant playlist advertises it. BANDWIDTH is the capped video rate plus audio plus MPEG-TS
/// overhead (~10 %). CODECS carries each rung's real H.264 profile and level, read from a rendition of that rung
/// (`samples`, in ladder order: every asset of a rung has the same SPS), and AAC-LC.
pub fn playlist_rungs(hf: &HouseFormat, samples: &[std::path::PathBuf]) -> Vec<playlist::Rung> {
    hf.rungs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let video = samples
                .get(i)
                .and_then(|p| crate::media::scan::scan(p).ok())
                .and_then(|s| s.video_codec_string())
                .unwrap_or_else(|| FALLBACK_VIDEO_CODEC.into());
            let avg = u64::from(r.video_kbps + hf.audio_kbps) * 1000;
            playlist::Rung {
                name: r.name.clone(),
                bandwidth: avg * 11 / 10 + avg / 5,
                average_bandwidth: avg * 11 / 10,
                width: r.width,
                height: r.height,
                codecs: format!("{video},mp4a.40.2"),
                frame_rate: f64::from(hf.fps),
            }
        })
        .collect()
}
