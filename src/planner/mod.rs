//! The planner keeps each channel's schedule filled `buffer_minutes` ahead with ready assets, and says why it chose
//! each one. It runs on a short tick and when nudged (new asset ready, an item finished, a rule changed).

mod error;
pub mod grid;
pub mod selection;

pub use error::PlannerError;

use crate::actor::{self, Context};
use crate::business_logic::BusinessLogic;
use crate::shutdown::Shutdown;
use crate::store::{Actor, ChannelId, EventKind, Store};
use chrono::Utc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
pub use vvtv_api::station::PlannerStatus;

const TICK: Duration = Duration::from_secs(5);
/// Below this much programme ahead, a repeat inside the diversity window beats falling back to the slate.
const MIN_AHEAD: Duration = Duration::from_secs(60);
/// Bounds one top-up round even if the library holds only very short assets.
const MAX_PICKS_PER_ROUND: usize = 200;

enum Msg {
    Nudge,
    Status(oneshot::Sender<PlannerStatus>),
}

#[derive(Clone, Debug)]
pub struct PlannerHandle {
    tx: mpsc::Sender<Msg>,
}

impl PlannerHandle {
    pub fn spawn(ctx: &Context) -> PlannerHandle {
        let (tx, rx) = mpsc::channel(64);
        let channels = ctx.config.channels.iter().map(|c| ChannelId(c.id.clone())).collect();
        let planner = Planner {
            rx,
            store: ctx.store.clone(),
            rules: ctx.rules.clone(),
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

struct Planner {
    rx: mpsc::Receiver<Msg>,
    store: Store,
    rules: watch::Receiver<BusinessLogic>,
    channels: Vec<ChannelId>,
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
        for channel in self.channels.clone() {
            match top_up(&self.store, &channel, &rules).await {
                Ok(n) => {
                    self.status.scheduled_total += n as u64;
                    self.status.last_error = None;
                }
                Err(e) => {
                    tracing::warn!("planner: channel {channel}: {e}");
                    self.status.last_error = Some(format!("channel {channel}: {e}"));
                }
            }
        }
    }
}

/// Appends items until the channel has `buffer_minutes` ahead. Picks the asset that has waited longest since it was
/// last scheduled on this channel, never one of the last `diversity_window` items when another is available.
async fn top_up(store: &Store, channel: &ChannelId, rules: &BusinessLogic) -> Result<usize, PlannerError> {
    let target = Duration::from_secs(u64::from(rules.buffer_minutes) * 60);
    let mut queued = store.queued(channel).await?;
    let mut picked = 0;
    while queued < target && picked < MAX_PICKS_PER_ROUND {
        let candidates = store.airable_assets_for(channel).await?;
        let recent = store.recent_scheduled_assets(channel, i64::from(rules.diversity_window)).await?;
        let fresh = candidates.iter().find(|c| !recent.contains(&c.asset.id));
        // A repeat inside the diversity window is scheduled only to keep the channel off the slate; otherwise the
        // round stops and waits for the library to grow (a new asset is picked up on the next round).
        let Some(choice) = fresh.or_else(|| if queued < MIN_AHEAD { candidates.first() } else { None }) else {
            break;
        };
        let reason = match choice.last_scheduled {
            None => "never scheduled on this channel".to_string(),
            Some(at) => format!(
                "waited longest since last scheduled ({} ago){}",
                human_age((Utc::now() - at).to_std().unwrap_or_default()),
                if recent.contains(&choice.asset.id) { "; library smaller than the diversity window" } else { "" }
            ),
        };
        store.schedule_append(channel, choice.asset.id, &reason).await?;
        queued += choice.asset.duration.max(Duration::from_millis(1));
        picked += 1;
    }
    if picked > 0 {
        store
            .event(
                Actor::Planner,
                Some(channel),
                EventKind::Scheduled,
                &format!("scheduled {picked} item(s); {:.1} min ahead", queued.as_secs_f64() / 60.0),
                serde_json::json!({ "items": picked }),
            )
            .await;
    }
    Ok(picked)
}

fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AssetId, AssetKind, NewAsset};

    /// A real store in a temp dir with channel `main`.
    async fn channel() -> (tempfile::TempDir, Store, ChannelId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("vvtv.db")).await.unwrap();
        let ch = ChannelId("main".into());
        store.upsert_channel(&ch, "Main").await.unwrap();
        (dir, store, ch)
    }

    async fn clip(store: &Store, dir: &tempfile::TempDir, title: &str, seconds: u64) -> AssetId {
        let a = NewAsset {
            title: title.into(),
            kind: Some(AssetKind::Demo),
            dir: dir.path().into(),
            duration: Duration::from_secs(seconds),
            ..Default::default()
        };
        store.insert_asset(&a).await.unwrap()
    }

    #[tokio::test]
    async fn fills_buffer_round_robin_with_reasons() {
        let (dir, store, ch) = channel().await;
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(clip(&store, &dir, &format!("clip {i}"), 60).await);
        }
        let mut rules = BusinessLogic::from_config(&crate::config::Config::default());
        rules.buffer_minutes = 5;
        rules.diversity_window = 2;
        let n = top_up(&store, &ch, &rules).await.unwrap();
        assert_eq!(n, 5, "5 one-minute items fill a 5-minute buffer");
        let q = store.upcoming(&ch, 10).await.unwrap();
        let order: Vec<_> = q.iter().map(|i| i.asset_id).collect();
        assert_eq!(order, vec![ids[0], ids[1], ids[2], ids[0], ids[1]]);
        assert!(q.iter().all(|i| !i.reason.is_empty()));
        assert_eq!(top_up(&store, &ch, &rules).await.unwrap(), 0, "a full buffer takes nothing more");
    }

    #[tokio::test]
    async fn a_lone_asset_is_not_repeated_to_fill_the_buffer() {
        let (dir, store, ch) = channel().await;
        clip(&store, &dir, "only", 20).await;
        let rules = BusinessLogic::from_config(&crate::config::Config::default());
        // Enough repeats to keep one minute ahead (off the slate), not thirty minutes of the same clip.
        assert_eq!(top_up(&store, &ch, &rules).await.unwrap(), 3);
        let new_id = clip(&store, &dir, "new", 20).await;
        top_up(&store, &ch, &rules).await.unwrap();
        let q = store.upcoming(&ch, 10).await.unwrap();
        assert_eq!(q[3].asset_id, new_id, "a new asset is picked up on the next round");
    }
}
