//! The playout thread's view of the store: what to air next (schedule, else the slate), what went on and off air
//! (airings, schedule statuses, events), the slate itself and emergency items.

use super::engine::Item;
use super::error::BroadcasterError;
use super::lease::Tenure;
use super::runner::{Feed, Next, Outcome, Tag};
use crate::config::ChannelConfig;
use crate::factory::{ClipRequest, FactoryHandle};
use crate::media::house_format::HouseFormat;
use crate::media::transcode::TestPattern;
use crate::planner::PlannerHandle;
use crate::store::{
    Actor, AiringId, AiringKind, Asset, AssetId, AssetStatus, ChannelId, EventKind, NewAiring, ScheduleId,
    ScheduleStatus, Store,
};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::oneshot;

/// The full slate: long enough that an idle channel does not open an airing every few seconds.
const SLATE: Duration = Duration::from_secs(10);
const EMERGENCY_SLATE: Duration = Duration::from_secs(8);
/// An item is not resumed this close to its end.
const RESUME_TAIL: Duration = Duration::from_secs(1);

pub struct StoreFeed {
    rt: tokio::runtime::Handle,
    store: Store,
    channel: ChannelId,
    hf: HouseFormat,
    slate: Next,
    /// The full slate, while the channel airs its short first one (see [`ensure_slate`]).
    full_slate: Option<oneshot::Receiver<Next>>,
    /// The short slate went on air before the full one was ready.
    short_slate_aired: bool,
    planner: PlannerHandle,
    factory: FactoryHandle,
    /// Airing rows open per tag (closed when the item ends).
    open: Vec<(Tag, AiringId)>,
    /// Nodes sharing the station: this node's hold on the channel, checked before anything on air is recorded.
    tenure: Option<Tenure>,
}

impl StoreFeed {
    /// Also repairs what a crash left: an item still `airing` goes back to the head of the queue with the position
    /// it had reached, and its open airing is closed at the end of the last segment that was published.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        rt: tokio::runtime::Handle,
        store: Store,
        channel: ChannelId,
        hf: HouseFormat,
        (slate, full_slate): (Next, oneshot::Receiver<Next>),
        planner: PlannerHandle,
        factory: FactoryHandle,
        last_published: Option<DateTime<Utc>>,
    ) -> Result<StoreFeed, BroadcasterError> {
        let crash_end = last_published.unwrap_or_else(Utc::now);
        if let Some(open) = store.open_airing(&channel).await? {
            let reached = (crash_end - open.start).to_std().unwrap_or_default() + open.offset;
            store.airing_end(open.id, crash_end.max(open.start)).await?;
            match open.schedule_id {
                None => {
                    let message = format!(
                        "{} ({}) was on air when the station stopped; it is not resumed",
                        open.title, open.kind
                    );
                    store
                        .event(
                            Actor::Broadcaster,
                            Some(&channel),
                            EventKind::NotResumed,
                            &message,
                            serde_json::json!({}),
                        )
                        .await;
                }
                Some(sid) => {
                    store.set_schedule_status(sid, ScheduleStatus::Scheduled, reached).await?;
                    let message = format!(
                        "{} was on air when the station stopped; resuming it at {:.1} s",
                        open.title,
                        reached.as_secs_f64()
                    );
                    let data = serde_json::json!({ "schedule_id": sid });
                    store.event(Actor::Broadcaster, Some(&channel), EventKind::Resumed, &message, data).await;
                }
            }
        }
        // Anything else left `airing` (no airing row) simply starts again.
        for item in store.upcoming(&channel, 100).await? {
            if item.status == ScheduleStatus::Airing {
                store.set_schedule_status(item.id, ScheduleStatus::Scheduled, item.resume).await?;
            }
        }
        Ok(StoreFeed {
            rt,
            store,
            channel,
            hf,
            slate,
            full_slate: Some(full_slate),
            short_slate_aired: false,
            planner,
            factory,
            open: Vec::new(),
            tenure: None,
        })
    }

    /// Records what goes on air only while `tenure` holds: a holder that was paused, and woke up after another
    /// node took the channel over, writes nothing over the new holder's rows.
    pub fn fenced_by(mut self, tenure: Tenure) -> StoreFeed {
        self.tenure = Some(tenure);
        self
    }

    fn held(&self) -> bool {
        match &self.tenure {
            None => true,
            Some(t) => self.block(t.still_held(&self.store, &self.channel)),
        }
    }

    /// Swaps in the full slate once it is made.
    fn take_full_slate(&mut self) {
        let Some(rx) = self.full_slate.as_mut() else { return };
        match rx.try_recv() {
            Ok(full) => {
                self.full_slate = None;
                self.slate = full;
                if self.short_slate_aired {
                    let message = format!(
                        "the full slate ({:.0} s) is made and replaces the short one the channel went on air with",
                        SLATE.as_secs_f64()
                    );
                    self.notice(EventKind::Slate, &message);
                }
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
            // Could not be made (recorded by the task that tried): the short slate stays.
            Err(oneshot::error::TryRecvError::Closed) => self.full_slate = None,
        }
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// An asset that cannot be aired: off the air for good (the factory marks it bad), this row skipped, and the
    /// reason recorded. Whether it failed while being prepared or while on air, the outcome is the same.
    async fn skip_bad_asset(&self, asset: AssetId, schedule_id: ScheduleId, reason: &str) {
        self.factory.asset_failed(asset, reason.to_owned()).await;
        let _ = self.store.set_schedule_status(schedule_id, ScheduleStatus::Skipped, Duration::ZERO).await;
        let message = format!("skipped asset {asset} and marked it bad: {reason}");
        let data = serde_json::json!({ "asset_id": asset });
        self.store.event(Actor::Broadcaster, Some(&self.channel), EventKind::AssetSkipped, &message, data).await;
    }
}

impl Feed for StoreFeed {
    fn next(&mut self, after: Option<&Tag>) -> Next {
        self.take_full_slate();
        let skip = match after {
            Some(Tag::Scheduled { schedule_id, .. }) => Some(*schedule_id),
            _ => None,
        };
        for _ in 0..20 {
            let upcoming = self.block(self.store.upcoming(&self.channel, 4)).unwrap_or_default();
            let Some(row) = upcoming.into_iter().find(|i| i.status == ScheduleStatus::Scheduled && Some(i.id) != skip)
            else {
                self.planner.nudge();
                return self.slate.clone();
            };
            let built = self.block(async {
                let asset = self.store.asset(row.asset_id).await?;
                item_for(&self.store, &self.hf, &asset, row.resume, row.end).await
            });
            match built {
                Ok(item) => return Next { item, tag: Tag::Scheduled { schedule_id: row.id, asset_id: row.asset_id } },
                Err(_) if !self.held() => return self.slate.clone(),
                // Not the asset's fault: the slate airs meanwhile and the row is tried again next time.
                Err(e @ BroadcasterError::Unfetched { .. }) => {
                    tracing::warn!("channel {}: {e}", self.channel);
                    return self.slate.clone();
                }
                Err(e) => self.block(self.skip_bad_asset(row.asset_id, row.id, &e.to_string())),
            }
        }
        self.slate.clone()
    }

    fn started(&mut self, tag: &Tag, title: &str, start: DateTime<Utc>, offset_ns: i64) {
        if *tag == Tag::Slate && self.full_slate.is_some() {
            self.short_slate_aired = true;
        }
        if !self.held() {
            return;
        }
        let (asset, schedule_id, kind) = match tag {
            Tag::Scheduled { schedule_id, asset_id } => (Some(*asset_id), Some(*schedule_id), AiringKind::Scheduled),
            Tag::Emergency { asset_id, .. } => (*asset_id, None, AiringKind::Emergency),
            Tag::Slate => (None, None, AiringKind::Slate),
        };
        let offset = Duration::from_nanos(offset_ns.max(0) as u64);
        let result = self.block(async {
            if let Some(sid) = schedule_id {
                self.store.set_schedule_status(sid, ScheduleStatus::Airing, offset).await?;
            }
            self.store
                .airing_start(&NewAiring { channel: &self.channel, asset, schedule_id, kind, title, start, offset })
                .await
        });
        match result {
            Ok(id) => self.open.push((tag.clone(), id)),
            Err(e) => tracing::error!("channel {}: cannot record airing of {title}: {e}", self.channel),
        }
        self.planner.nudge();
    }

    fn ended(&mut self, tag: &Tag, end: DateTime<Utc>, outcome: &Outcome) {
        let airing = self.open.iter().position(|(t, _)| t == tag).map(|i| self.open.remove(i).1);
        if !self.held() {
            return;
        }
        self.block(async {
            if let Some(id) = airing {
                let _ = self.store.airing_end(id, end).await;
            }
            let Tag::Scheduled { schedule_id, asset_id } = tag else {
                if let Outcome::Failed { reason } = outcome {
                    let message = format!("could not air {tag:?}: {reason}");
                    self.store
                        .event(
                            Actor::Broadcaster,
                            Some(&self.channel),
                            EventKind::ItemFailed,
                            &message,
                            serde_json::json!({}),
                        )
                        .await;
                }
                return;
            };
            let at = |ns: i64| Duration::from_nanos(ns.max(0) as u64);
            let (status, resume) = match outcome {
                Outcome::Complete => (ScheduleStatus::Aired, Duration::ZERO),
                Outcome::Cut { at_ns } => (ScheduleStatus::Cut, at(*at_ns)),
                // Shutdown or rebuild: it stays at the head of the queue and resumes where it was.
                Outcome::Interrupted { at_ns } => (ScheduleStatus::Scheduled, at(*at_ns)),
                Outcome::Failed { reason } => {
                    return self.skip_bad_asset(*asset_id, *schedule_id, reason).await;
                }
            };
            let _ = self.store.set_schedule_status(*schedule_id, status, resume).await;
        });
    }

    fn notice(&mut self, kind: EventKind, message: &str) {
        self.block(self.store.event(Actor::Broadcaster, Some(&self.channel), kind, message, serde_json::json!({})));
    }
}

/// The playout item of an asset: its renditions in ladder order, starting at the last keyframe ≤ `resume`.
async fn item_for(
    store: &Store,
    hf: &HouseFormat,
    asset: &Asset,
    resume: Duration,
    end: Option<Duration>,
) -> Result<Item, BroadcasterError> {
    if asset.status != AssetStatus::Ready {
        return Err(BroadcasterError::NotAirable {
            asset: asset.id,
            reason: format!("it is {}: {}", asset.status, asset.bad_reason.as_deref().unwrap_or("no reason recorded")),
        });
    }
    let renditions = store.renditions(asset.id).await?;
    let mut files = Vec::new();
    for rung in &hf.rungs {
        let r = renditions.iter().find(|r| r.rung == rung.name).ok_or_else(|| BroadcasterError::NotAirable {
            asset: asset.id,
            reason: format!("it has no rendition for rung {}", rung.name),
        })?;
        match store.fetch_media(&r.path).await {
            Ok(true) => {}
            Ok(false) => return Err(BroadcasterError::MissingRendition { asset: asset.id, path: r.path.clone() }),
            Err(e) => {
                let (asset, path, reason) = (asset.id, r.path.clone(), e.to_string());
                return Err(BroadcasterError::Unfetched { asset, path, reason });
            }
        }
        files.push(r.path.clone());
    }
    let until = end.unwrap_or(asset.duration).min(asset.duration);
    let start = asset
        .keyframes
        .iter()
        .copied()
        .filter(|&k| k <= resume && until.saturating_sub(k) > RESUME_TAIL)
        .max()
        .unwrap_or_default();
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Ok(Item {
        title: asset.title.clone(),
        files,
        duration_ns: ns(asset.duration),
        keyframes_ns: asset.keyframes.iter().map(|&k| ns(k)).collect(),
        start_ns: ns(start),
        end_ns: end.filter(|&e| e < asset.duration).map(ns),
    })
}

/// The channel's slate: what airs whenever nothing is scheduled, made on first start and then cached by the factory.
///
/// The full slate takes seconds to encode on a first start, so the channel goes on air with a short one (one GOP,
/// made first: about a second of encoding) and the full one, asked for at once, replaces it when it is made (the
/// receiver). With both cached the full one arrives before the short one has finished airing.
pub async fn ensure_slate(
    store: &Store,
    factory: &FactoryHandle,
    channel: &ChannelConfig,
    hf: &HouseFormat,
) -> Result<(Next, oneshot::Receiver<Next>), BroadcasterError> {
    let short = Duration::from_secs(u64::from(hf.gop_seconds.max(1)));
    let asset = factory.clip(slate_request(channel, short, "-short")).await?;
    let first = Next { item: item_for(store, hf, &asset, Duration::ZERO, None).await?, tag: Tag::Slate };
    let (tx, rx) = oneshot::channel();
    let (store, factory, channel, hf) = (store.clone(), factory.clone(), channel.clone(), hf.clone());
    tokio::spawn(async move {
        let full = async {
            let asset = factory.clip(slate_request(&channel, SLATE, "")).await?;
            item_for(&store, &hf, &asset, Duration::ZERO, None).await
        };
        match full.await {
            Ok(item) => {
                let _ = tx.send(Next { item, tag: Tag::Slate });
            }
            Err(e) => {
                let message = format!("the full slate could not be made, the short one stays on air: {e}");
                let id = ChannelId(channel.id.clone());
                store.event(Actor::Broadcaster, Some(&id), EventKind::Slate, &message, serde_json::json!({})).await;
            }
        }
    });
    Ok((first, rx))
}

fn slate_request(channel: &ChannelConfig, duration: Duration, suffix: &str) -> ClipRequest {
    ClipRequest {
        title: format!("{} — back soon", channel.name),
        pattern: TestPattern::HdBars,
        duration,
        dir_name: format!("slate-{}{suffix}", channel.id),
        poster: None,
    }
}

/// `count` items from the emergency pool; when the pool is empty, a slate showing the reason.
pub async fn emergency_items(
    store: &Store,
    factory: &FactoryHandle,
    channel: &ChannelConfig,
    hf: &HouseFormat,
    count: u32,
    reason: &str,
) -> Result<Vec<Next>, BroadcasterError> {
    let pool = store.emergency_assets().await?;
    let mut out = Vec::new();
    for asset in pool.iter().cycle().take(if pool.is_empty() { 0 } else { count as usize }) {
        out.push(Next {
            item: item_for(store, hf, asset, Duration::ZERO, None).await?,
            tag: Tag::Emergency { asset_id: Some(asset.id), reason: reason.into() },
        });
    }
    if out.is_empty() {
        let title = format!("{}: {reason}", channel.name);
        let digest = title.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let request = ClipRequest {
            title: title.clone(),
            pattern: TestPattern::Colors,
            duration: EMERGENCY_SLATE,
            dir_name: format!("emergency-{digest:016x}"),
            poster: None,
        };
        let asset = factory.clip(request).await?;
        let next = Next {
            item: item_for(store, hf, &asset, Duration::ZERO, None).await?,
            tag: Tag::Emergency { asset_id: None, reason: reason.into() },
        };
        out = std::iter::repeat_n(next, count.max(1) as usize).collect();
    }
    Ok(out)
}
