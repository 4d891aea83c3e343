//! The planner keeps each channel's schedule filled `buffer.target_minutes` ahead from the channel's own library,
//! by its grid (dayparts, fixed-time slots) and rules (separation, weights, ε-exploration), and says why it chose
//! each item. Planned start times are recomputed from what actually aired every round, so the grid never drifts.
//! Below `buffer.emergency_minutes` it records the emergency and asks the curator for urgent discovery.
//! It runs on a short tick and when nudged (the library changed, an item went on air, a rule changed).

pub mod epg;
mod error;
pub mod fill;
pub mod grid;
pub mod library;
mod rerank;
pub mod selection;
pub mod simulate;

pub use error::PlannerError;

use crate::actor::{self, Context};
use crate::business_logic::BusinessLogic;
use crate::config::ChannelConfig;
use crate::curator::CuratorHandle;
use crate::factory::{ClipRequest, FactoryEvent, FactoryHandle};
use crate::media::transcode::TestPattern;
use crate::shutdown::Shutdown;
use crate::store::{Actor, AssetId, ChannelId, EventKind, NewScheduleItem, Store};
use chrono::{DateTime, Utc};
use fill::{Planned, Row};
use grid::Grid;
use selection::{Recent, SelectionRules};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
pub use vvtv_api::station::PlannerStatus;

const TICK: Duration = Duration::from_secs(5);
/// How far back the audience of an asset's airings counts for its selection.
const AUDIENCE_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::days(28);
/// Up to this much programme ahead, a repeat inside the diversity window beats falling back to the slate.
const MIN_AHEAD: Duration = Duration::from_secs(60);

enum Msg {
    Nudge,
    Status(oneshot::Sender<PlannerStatus>),
}

#[derive(Clone, Debug)]
pub struct PlannerHandle {
    tx: mpsc::Sender<Msg>,
}

impl PlannerHandle {
    pub fn spawn(ctx: &Context, factory: FactoryHandle, curator: CuratorHandle) -> PlannerHandle {
        let (tx, rx) = mpsc::channel(64);
        let channels = ctx
            .config
            .channels
            .iter()
            .map(|c| ChannelPlan { id: ChannelId(c.id.clone()), grid: Grid::new(c), config: c.clone(), low: false })
            .collect();
        let planner = Planner {
            rx,
            store: ctx.store.clone(),
            rules: ctx.rules.clone(),
            events: factory.subscribe(),
            factory,
            curator,
            channels,
            status: PlannerStatus::default(),
        };
        actor::spawn("planner", ctx, |shutdown| planner.run(shutdown));
        PlannerHandle { tx }
    }

    /// Asks for a top-up round now (cheap; coalesces when one is pending).
    pub fn nudge(&self) {
        let _ = self.tx.try_send(Msg::Nudge);
    }

    pub async fn status(&self) -> Option<PlannerStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Status(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// One channel's planning state.
struct ChannelPlan {
    id: ChannelId,
    config: ChannelConfig,
    grid: Grid,
    /// The buffer is below its emergency level (recorded once, and its recovery once).
    low: bool,
}

struct Planner {
    rx: mpsc::Receiver<Msg>,
    store: Store,
    rules: watch::Receiver<BusinessLogic>,
    events: broadcast::Receiver<FactoryEvent>,
    factory: FactoryHandle,
    curator: CuratorHandle,
    channels: Vec<ChannelPlan>,
    status: PlannerStatus,
}

impl Planner {
    async fn run(mut self, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                _ = tick.tick() => self.round().await,
                _ = self.rules.changed() => self.round().await,
                event = self.events.recv() => {
                    if matches!(event, Ok(FactoryEvent::LibraryChanged) | Err(broadcast::error::RecvError::Lagged(_))) {
                        self.round().await;
                    }
                }
                msg = self.rx.recv() => match msg {
                    None => return,
                    Some(Msg::Nudge) => self.round().await,
                    Some(Msg::Status(reply)) => { let _ = reply.send(self.status.clone()); }
                },
            }
        }
    }

    async fn round(&mut self) {
        self.status.rounds += 1;
        let rules = self.rules.borrow().clone();
        let mut channels = std::mem::take(&mut self.channels);
        let shared = self.store.is_shared();
        for channel in &mut channels {
            // Nodes sharing the station: a channel is planned by the node that plays it (holds its lease).
            if shared && !self.holds(&channel.id).await {
                continue;
            }
            match self.top_up(channel, &rules).await {
                Ok(n) => {
                    self.status.scheduled_total += n as u64;
                    self.status.last_error = None;
                }
                Err(e) => {
                    tracing::warn!("planner: channel {}: {e}", channel.id);
                    self.status.last_error = Some(format!("channel {}: {e}", channel.id));
                }
            }
        }
        self.channels = channels;
    }

    async fn holds(&self, channel: &ChannelId) -> bool {
        let lease = self.store.lease(channel).await;
        matches!(lease, Ok(Some(l)) if l.holder == self.store.node() && l.remaining_ms > 0)
    }

    /// Re-anchors the channel's planned starts on what aired, then appends items until the buffer target is reached.
    async fn top_up(&self, channel: &mut ChannelPlan, rules: &BusinessLogic) -> Result<usize, PlannerError> {
        let store = &self.store;
        let now = Utc::now();
        let end = reanchor(store, &channel.id, now).await?;
        let ahead = (end - now).to_std().unwrap_or_default();
        let airable = store.airable_assets(&channel.id).await?;
        let own = airable.iter().filter(|a| library::in_library(&channel.config, &a.asset)).count();
        self.watch_buffer(channel, rules, ahead, own).await;
        if ahead >= rules.buffer_target() {
            return Ok(0);
        }
        // The audience is read only when there is something to plan: the query spans weeks of sessions.
        let watched = store.audience_by_asset(Some(&channel.id), now - AUDIENCE_LOOKBACK).await?;
        let audience = library::audience_figures(&watched, &airable);
        let mut library = library::candidates(&channel.config, &airable, &audience);
        // Nothing of the channel's own to air: the emergency loop airs the emergency pool rather than the slate.
        let mut emergency_loop = false;
        if library.is_empty() {
            let pool: Vec<_> = store
                .emergency_assets()
                .await?
                .into_iter()
                .map(|asset| crate::store::Airable { asset, aired: 0 })
                .collect();
            let anything = ChannelConfig { demo_clips: true, library: Default::default(), ..channel.config.clone() };
            library = library::candidates(&anything, &pool, &audience);
            emergency_loop = !library.is_empty();
        }
        if library.is_empty() {
            return Ok(0);
        }
        let history: Vec<Recent> = store
            .schedule_history(&channel.id, history_since(rules, end))
            .await?
            .into_iter()
            .map(|h| Recent { asset: h.asset, start: h.start, tags: h.tags, source: h.source_name, series: h.series })
            .collect();
        let filled: Vec<String> = store.upcoming(&channel.id, 1000).await?.into_iter().filter_map(|q| q.slot).collect();
        let keyframes: HashMap<AssetId, Vec<Duration>> =
            airable.iter().map(|a| (a.asset.id, a.asset.keyframes.clone())).collect();
        let slot_index = store.schedule_count(&channel.id).await?;
        let start = round_start(rules, now, end, slot_index, &history, &filled);
        let keyframes_of = |id: AssetId| keyframes.get(&id).cloned().unwrap_or_default();
        let view = fill::Channel {
            id: channel.id.as_str(),
            grid: &channel.grid,
            library: &library,
            keyframes: &keyframes_of,
            rerank: None,
        };
        let selection = selection_rules(rules);
        let rows = if rules.llm_rerank {
            let (name, style) = (&channel.config.name, &channel.config.style);
            rerank::fill_reranked(&self.curator, &view, name, style, &selection, &start).await
        } else {
            fill::fill(&view, &selection, &start)
        };
        let mut appended = 0;
        for mut row in rows {
            if emergency_loop {
                row.reason = format!("emergency loop (the channel's library is empty): {}", row.reason);
            }
            if !self.append(channel, row).await? {
                break;
            }
            appended += 1;
        }
        if appended > 0 {
            let ahead = store.queued(&channel.id).await?;
            let message = format!("scheduled {appended} item(s); {:.1} min ahead", ahead.as_secs_f64() / 60.0);
            let data = serde_json::json!({ "items": appended });
            store.event(Actor::Planner, Some(&channel.id), EventKind::Scheduled, &message, data).await;
        }
        Ok(appended)
    }

    /// Appends one row (making its "up next" card first); false when the rest of the round must wait.
    async fn append(&self, channel: &ChannelPlan, row: Row) -> Result<bool, PlannerError> {
        let (asset, pick) = match &row.planned {
            Planned::Asset { asset, pick } => (*asset, serde_json::to_value(pick).ok()),
            Planned::Card { duration, next_title, next_asset, next_at } => {
                let at = next_at.with_timezone(&channel.grid.tz()).format("%H:%M");
                let seconds = card_length(*duration).as_secs();
                let poster = match next_asset {
                    Some(id) => self.store.asset(*id).await.ok().map(|a| crate::media::poster::poster_paths(&a.dir).0),
                    None => None,
                };
                if let Some(p) = &poster {
                    let _ = self.store.fetch_media(p).await;
                }
                let asset_part = next_asset.map_or_else(String::new, |id| format!("-{id}"));
                let request = ClipRequest {
                    title: format!("Up next at {at}: {next_title}"),
                    pattern: TestPattern::Colors,
                    duration: Duration::from_secs(seconds),
                    dir_name: format!("card-{}-{}-{seconds}{asset_part}", channel.id, next_at.timestamp()),
                    poster,
                };
                match self.factory.clip(request).await {
                    Ok(card) => (card.id, None),
                    Err(e) => {
                        tracing::warn!("channel {}: no up-next card: {e}", channel.id);
                        return Ok(false);
                    }
                }
            }
        };
        let item = NewScheduleItem {
            channel: &channel.id,
            asset,
            reason: &row.reason,
            pick,
            planned_start: row.start,
            end: row.end,
            slot: row.slot.as_deref(),
            filler: row.filler,
        };
        self.store.schedule_item(&item).await?;
        Ok(true)
    }

    /// Records the buffer falling below its emergency level (and asks the curator for more), and its recovery.
    async fn watch_buffer(&self, channel: &mut ChannelPlan, rules: &BusinessLogic, ahead: Duration, library: usize) {
        let store = &self.store;
        if !channel.low && ahead < rules.buffer_emergency() {
            channel.low = true;
            let message = format!(
                "only {:.1} min of programme ahead (buffer.emergency_minutes = {}), library of {library}: the emergency \
                 loop airs what there is (repeats allowed) and the curator is asked for urgent discovery",
                ahead.as_secs_f64() / 60.0,
                rules.buffer_emergency_minutes
            );
            let data = serde_json::json!({ "ahead_seconds": ahead.as_secs(), "library": library });
            store.event(Actor::Planner, Some(&channel.id), EventKind::BufferLow, &message, data).await;
            self.curator.urgent(format!("channel {} has {:.1} min ahead", channel.id, ahead.as_secs_f64() / 60.0));
        } else if channel.low && ahead >= rules.buffer_target() {
            channel.low = false;
            let message = format!("buffer recovered: {:.1} min ahead", ahead.as_secs_f64() / 60.0);
            let data = serde_json::json!({ "ahead_seconds": ahead.as_secs() });
            store.event(Actor::Planner, Some(&channel.id), EventKind::BufferRecovered, &message, data).await;
        }
    }
}

/// The selection's view of the rules.
pub fn selection_rules(rules: &BusinessLogic) -> SelectionRules {
    SelectionRules {
        epsilon: rules.epsilon,
        window: Duration::from_secs(u64::from(rules.window_minutes) * 60),
        max_same_tag: rules.max_same_tag,
        separation: Duration::from_secs(u64::from(rules.separation_minutes) * 60),
        quality_weight: rules.quality_weight,
        audience_weight: rules.audience_weight,
        freshness_weight: rules.freshness_weight,
        seed: rules.seed,
    }
}

/// How long the "up next" card made for a gap of `gap` lasts: whole seconds, at least two.
pub(crate) fn card_length(gap: Duration) -> Duration {
    Duration::from_secs(gap.as_secs().max(2))
}

/// From when a round reads the history before `end`: the longest of the separation rules, at least the tag cap's hour.
pub(crate) fn history_since(rules: &BusinessLogic, end: DateTime<Utc>) -> DateTime<Utc> {
    let minutes = rules.window_minutes.max(rules.separation_minutes).max(60);
    end - chrono::Duration::minutes(i64::from(minutes))
}

/// Where a round at `now` fills from (`end`, the planned programme's end) and what it must reach: the live planner
/// and the simulation both start their fills here, so they plan alike.
pub(crate) fn round_start<'a>(
    rules: &BusinessLogic,
    now: DateTime<Utc>,
    end: DateTime<Utc>,
    slot_index: u64,
    history: &'a [Recent],
    filled_slots: &'a [String],
) -> fill::Start<'a> {
    fill::Start {
        at: end,
        until: now + chrono::Duration::from_std(rules.buffer_target()).unwrap_or_default(),
        slot_index,
        history,
        filled_slots,
        repeat_until: now + chrono::Duration::from_std(MIN_AHEAD).unwrap_or_default(),
    }
}

/// Recomputes the planned starts of everything not aired yet from what is on air (its real start, or the end of the
/// emergency item or slate on air), and returns when the planned programme ends. The guide reads the same projection
/// ([`epg::planned_starts`]).
async fn reanchor(store: &Store, channel: &ChannelId, now: DateTime<Utc>) -> Result<DateTime<Utc>, PlannerError> {
    let queue = store.upcoming(channel, 1000).await?;
    let open = store.open_airing(channel).await?;
    let length = match &open {
        Some(a) => epg::open_length(store, a, &queue).await,
        None => None,
    };
    let (starts, end) = epg::planned_starts(&queue, open.as_ref().map(|a| (a, length)), now);
    store.set_planned_starts(&starts).await?;
    Ok(end)
}
