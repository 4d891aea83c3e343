//! The factory turns jobs into assets in the house format (download, probe, normalize, gate, poster) or a rejection
//! with its reason, and makes the generated clips (demo clips, slates, emergency cards) through the same code.
//!
//! Jobs come from the curator's plans, `vvtvctl ingest`, `POST /api/v1/ingest` and the inbox folder; every one is a
//! message to this actor, which writes the job row itself (the factory is the only writer of `jobs` and of the
//! assets' status), so nothing is lost on a crash: at start, every job a worker owned goes back to the queue and the
//! work folder is cleaned (partial downloads are kept and resumed). Up to `factory.workers` jobs run at once, highest
//! priority first. A failure is retried with back-off; a rejection is final. When a job ends the factory tells its
//! subscribers (the curator updates the job's plan; the planner looks at the library again when it changed). It pauses
//! while free disk is below `factory.min_free_disk_gb`, and evicts the least recently aired assets beyond
//! `factory.assets_quota_gb`.

pub mod clips;
mod demo;
pub mod disk;
pub mod download;
pub mod error;
mod inbox;
pub mod input;
pub mod job;
pub mod produce;
pub mod sniff;

pub use clips::ClipRequest;
pub use error::{FactoryError, IngestRefused};

use crate::actor::{self, Context};
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::{
    Actor, Asset, AssetId, AssetStatus, EventKind, Job, JobId, JobInput, JobOrigin, JobStatus, NewJob, PlanId, Store,
};
use chrono::Utc;
use job::{Outcome, Workshop};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use vvtv_api::factory::{FactoryState, FactoryStatus, JobReport, RunningJob};

/// A failed job is tried this many times in all before it stays failed.
const MAX_ATTEMPTS: u32 = 4;
/// Back-off before the n-th retry: 30 s, 2 min, 8 min.
const RETRY_BASE: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_secs(1);
const DISK_CHECK_EVERY: Duration = Duration::from_secs(10);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The demo clips wait for the channels' first slates at most this long.
const DEMO_AFTER_SLATES: Duration = Duration::from_secs(30);

/// What the factory tells its subscribers.
#[derive(Debug, Clone)]
pub enum FactoryEvent {
    /// A job ended for good.
    JobEnded(JobEnded),
    /// Assets became ready or left the air (an ingest, demo clips, a bad or evicted asset): schedules may change.
    LibraryChanged,
}

/// A job that ended for good: what the curator needs to update the job's plan.
#[derive(Debug, Clone)]
pub struct JobEnded {
    pub job: JobId,
    pub plan: Option<PlanId>,
    pub status: JobStatus,
    pub asset: Option<AssetId>,
}

type Reply<T> = oneshot::Sender<Result<T, FactoryError>>;

enum Msg {
    Status(oneshot::Sender<FactoryStatus>),
    Ingest { job: NewJob, reply: Reply<Job> },
    AssetFailed { asset: AssetId, reason: String, reply: oneshot::Sender<()> },
    SetEmergency { asset: AssetId, on: bool, reply: Reply<Asset> },
    Clip { request: ClipRequest, reply: Reply<Asset> },
}

/// The factory's whole public surface: channel ends only.
#[derive(Clone, Debug)]
pub struct FactoryHandle {
    tx: mpsc::Sender<Msg>,
    events: broadcast::Sender<FactoryEvent>,
}

impl FactoryHandle {
    pub fn spawn(ctx: &Context) -> FactoryHandle {
        let (tx, rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(256);
        let hf = crate::media::house_format::HouseFormat::from_config(&ctx.config.house_format);
        let (vmaf_tx, vmaf_min) = watch::channel(ctx.rules.borrow().vmaf_min);
        let workshop = Workshop {
            store: ctx.store.clone(),
            config: ctx.config.clone(),
            hf,
            vmaf_min,
            metrics: ctx.metrics.clone(),
        };
        let factory = Factory {
            rx,
            workshop,
            rules: ctx.rules.clone(),
            vmaf_tx,
            events: events.clone(),
            roots: input::ingest_roots(&ctx.config),
            clip_turn: Arc::new(tokio::sync::Mutex::new(())),
            clip_served: watch::channel(false).0,
            paused: None,
            running: BTreeMap::new(),
        };
        actor::spawn("factory", ctx, |shutdown| factory.run(shutdown));
        FactoryHandle { tx, events }
    }

    async fn ask<T>(&self, msg: impl FnOnce(Reply<T>) -> Msg) -> Result<T, FactoryError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(msg(reply)).await.map_err(|_| FactoryError::Stopped)?;
        rx.await.map_err(|_| FactoryError::Stopped)?
    }

    pub async fn status(&self) -> Option<FactoryStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Queues an ingest job (refused before anything is opened when a path lies outside the ingest roots).
    pub async fn ingest(&self, job: NewJob) -> Result<Job, FactoryError> {
        self.ask(|reply| Msg::Ingest { job, reply }).await
    }

    /// Takes an asset off the air for good: it could not be played (demux failure, files gone).
    pub async fn asset_failed(&self, asset: AssetId, reason: String) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::AssetFailed { asset, reason, reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Puts a ready asset in (or takes it out of) the emergency pool.
    pub async fn set_emergency(&self, asset: AssetId, on: bool) -> Result<Asset, FactoryError> {
        self.ask(|reply| Msg::SetEmergency { asset, on, reply }).await
    }

    /// A generated clip (slate, emergency card): cached, else made now. Clips are made one at a time, so channels
    /// that start together share one encode.
    pub async fn clip(&self, request: ClipRequest) -> Result<Asset, FactoryError> {
        self.ask(|reply| Msg::Clip { request, reply }).await
    }

    /// What happens in the factory from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FactoryEvent> {
        self.events.subscribe()
    }
}

struct Factory {
    rx: mpsc::Receiver<Msg>,
    workshop: Workshop,
    rules: watch::Receiver<crate::business_logic::BusinessLogic>,
    vmaf_tx: watch::Sender<f64>,
    events: broadcast::Sender<FactoryEvent>,
    roots: Vec<PathBuf>,
    /// Held while a clip is made, so two requests for the same clip make it once.
    clip_turn: Arc<tokio::sync::Mutex<()>>,
    /// Set once the first clip (a channel's first slate) was handed over.
    clip_served: watch::Sender<bool>,
    /// Why the factory is not taking jobs (low disk, quota full), if it is not.
    paused: Option<String>,
    running: BTreeMap<JobId, JobStatus>,
}

impl Factory {
    fn store(&self) -> &Store {
        &self.workshop.store
    }

    async fn run(mut self, mut shutdown: Shutdown) {
        self.recover().await;
        let (store, config) = (self.store().clone(), self.workshop.config.clone());
        let (turn, mut served) = (self.clip_turn.clone(), self.clip_served.subscribe());
        let demo = async {
            // A fresh station goes on air with its channels' short slates; the demo clips (a minute of encoding)
            // wait until the first one is out and the ones queued behind it are made, so they do not share the CPU.
            let _ = tokio::time::timeout(DEMO_AFTER_SLATES, served.wait_for(|served| *served)).await;
            drop(turn.lock().await);
            demo::ensure_demo_clips(&store, &config).await
        };
        tokio::pin!(demo);
        let mut demo_done = false;
        let mut inbox = inbox::Inbox::new(config.inbox_dir());
        let mut jobs: JoinSet<(Job, Outcome)> = JoinSet::new();
        let mut tick = tokio::time::interval(TICK);
        let mut last_disk_check: Option<Instant> = None;
        let mut woken = store.job_wakeups();
        loop {
            tokio::select! {
                // A job queued on another node (PostgreSQL NOTIFY): claimed below, without waiting for the tick.
                Some(()) = woken.recv() => {}
                _ = shutdown.recv() => {
                    // In-flight jobs stay in their stage in the store; the next start requeues them.
                    jobs.abort_all();
                    return;
                }
                made = &mut demo, if !demo_done => {
                    demo_done = true;
                    match made {
                        Ok(n) if n > 0 => { let _ = self.events.send(FactoryEvent::LibraryChanged); }
                        Ok(_) => {}
                        Err(e) => store.event(Actor::Factory, None, EventKind::DemoFailed, &format!("could not make demo clips: {e}"), serde_json::json!({})).await,
                    }
                }
                done = jobs.join_next(), if !jobs.is_empty() => {
                    match done {
                        Some(Ok((job, outcome))) => {
                            self.running.remove(&job.id);
                            self.finish(&job, outcome).await;
                            last_disk_check = None;
                        }
                        Some(Err(e)) => tracing::error!("factory job task ended abnormally: {e}"),
                        None => {}
                    }
                }
                changed = self.rules.changed() => {
                    if changed.is_ok() {
                        let min = self.rules.borrow().vmaf_min;
                        self.vmaf_tx.send_replace(min);
                    }
                }
                msg = self.rx.recv() => match msg {
                    None => return,
                    Some(msg) => self.handle(msg).await,
                },
                _ = tick.tick() => {
                    for path in inbox.scan(&store).await {
                        let input = JobInput::File(path);
                        let new = NewJob { plan_id: None, input: input.clone(), origin: JobOrigin::Inbox, title: None, priority: 0, webhook_url: None };
                        match store.insert_job(&new).await {
                            Ok(id) => store.event(Actor::Factory, None, EventKind::Inbox, &format!("job {id}: {input} dropped in the inbox"), serde_json::json!({ "job_id": id })).await,
                            Err(e) => tracing::warn!("cannot queue inbox file {input}: {e}"),
                        }
                    }
                }
            }
            if last_disk_check.is_none_or(|t| t.elapsed() >= DISK_CHECK_EVERY) {
                self.check_disk().await;
                last_disk_check = Some(Instant::now());
            }
            self.claim(&mut jobs).await;
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Status(reply) => {
                let _ = reply.send(self.status().await);
            }
            Msg::Ingest { job, reply } => {
                let _ = reply.send(self.queue(job).await);
            }
            Msg::AssetFailed { asset, reason, reply } => {
                if let Err(e) = self.store().mark_asset_bad(asset, &reason).await {
                    tracing::error!("cannot mark asset {asset} bad: {e}");
                }
                let _ = self.events.send(FactoryEvent::LibraryChanged);
                let _ = reply.send(());
            }
            Msg::SetEmergency { asset, on, reply } => {
                let _ = reply.send(self.set_emergency(asset, on).await);
            }
            Msg::Clip { request, reply } => {
                // Made on a task of its own: the factory keeps answering while a slate encodes.
                let (store, config, hf) =
                    (self.store().clone(), self.workshop.config.clone(), self.workshop.hf.clone());
                let (turn, served) = (self.clip_turn.clone(), self.clip_served.clone());
                tokio::spawn(async move {
                    let _turn = turn.lock().await;
                    let _ = reply.send(clips::clip(&store, &config, &hf, request).await);
                    served.send_replace(true);
                });
            }
        }
    }

    /// Records a new job (after checking what it may read) and wakes a worker for it.
    async fn queue(&mut self, job: NewJob) -> Result<Job, FactoryError> {
        if matches!(job.origin, JobOrigin::Cli | JobOrigin::Api) {
            input::admit(&job.input, &self.roots)?;
        }
        let id = self.store().insert_job(&job).await?;
        Ok(self.store().job(id).await?)
    }

    async fn set_emergency(&self, id: AssetId, on: bool) -> Result<Asset, FactoryError> {
        let asset = self.store().asset(id).await?;
        if asset.status != AssetStatus::Ready {
            return Err(FactoryError::NotReady { id, status: asset.status });
        }
        self.store().set_asset_emergency(id, on).await?;
        let verb = if on { "added to" } else { "removed from" };
        let message = format!("asset {id} ({}) {verb} the emergency pool", asset.title);
        self.store()
            .event(Actor::Factory, None, EventKind::EmergencyPool, &message, serde_json::json!({ "asset_id": id }))
            .await;
        Ok(self.store().asset(id).await?)
    }

    /// At start: requeue what the last process was working on, and clean the work folder.
    async fn recover(&self) {
        let store = self.store();
        match store.requeue_in_flight_jobs().await {
            Ok(ids) if !ids.is_empty() => {
                let message = format!("requeued {} unfinished job(s) from before the restart: {ids:?}", ids.len());
                store
                    .event(
                        Actor::Factory,
                        None,
                        EventKind::JobsRequeued,
                        &message,
                        serde_json::json!({ "job_ids": ids }),
                    )
                    .await;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("cannot requeue unfinished jobs: {e}"),
        }
        let keep: HashSet<JobId> = store.unfinished_job_ids().await.unwrap_or_default().into_iter().collect();
        let work = self.workshop.work_dir();
        let removed = disk::clean_work_dir(&work, &keep);
        if !removed.is_empty() {
            tracing::info!(dir = %work.display(), "removed {} leftover work file(s): {}", removed.len(), removed.join(", "));
        }
        if let Err(e) = std::fs::create_dir_all(&work) {
            tracing::error!("cannot create the work folder {}: {e}", work.display());
        }
    }

    /// Starts queued jobs while workers are free and the factory is not paused (on nodes with the factory role).
    async fn claim(&mut self, jobs: &mut JoinSet<(Job, Outcome)>) {
        if !self.workshop.config.node.runs(crate::config::Role::Factory) {
            return;
        }
        let workers = self.workshop.config.factory.workers.max(1) as usize;
        while self.paused.is_none() && jobs.len() < workers {
            let job = match self.store().claim_job(JobStatus::Downloading).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!("cannot claim a job: {e}");
                    return;
                }
            };
            let first = if job.input.is_url() {
                JobStatus::Downloading
            } else {
                let _ = self.store().set_job_stage(job.id, JobStatus::Probing).await;
                JobStatus::Probing
            };
            self.running.insert(job.id, first);
            tracing::info!(job = %job.id, input = %job.input, "job started");
            let workshop = self.workshop.clone();
            jobs.spawn(async move {
                let outcome = workshop.run(&job).await;
                (job, outcome)
            });
        }
    }

    /// Records how a job ended, tells the subscribers, its webhook and the inbox, and the planner of a new asset.
    async fn finish(&self, job: &Job, outcome: Outcome) {
        let store = self.store();
        let (status, reason, asset) = match &outcome {
            Outcome::Ready { asset, reused } => {
                let reason = reused.then(|| format!("same content as asset {asset}, which is already in the library"));
                (JobStatus::Ready, reason, Some(*asset))
            }
            Outcome::Rejected(reason) => (JobStatus::Rejected, Some(reason.clone()), None),
            Outcome::Failed(error) if job.attempts + 1 < MAX_ATTEMPTS => {
                let wait = RETRY_BASE * 4u32.pow(job.attempts.min(8));
                let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                let _ = store.retry_job(job.id, error, at).await;
                let message = format!(
                    "job {}: attempt {} failed, retrying in {} s: {error}",
                    job.id,
                    job.attempts + 1,
                    wait.as_secs()
                );
                store
                    .event(Actor::Factory, None, EventKind::JobRetry, &message, serde_json::json!({ "job_id": job.id }))
                    .await;
                return;
            }
            Outcome::Failed(error) => (JobStatus::Failed, Some(error.clone()), None),
        };
        match store.finish_job(job.id, status, reason.as_deref(), asset).await {
            Ok(true) => {}
            Ok(false) => {
                // This node was taken for dead meanwhile and the job requeued: whoever claimed it records it.
                tracing::warn!(job = %job.id, "job was requeued and claimed by another node; its result here is dropped");
                return;
            }
            Err(e) => tracing::error!(job = %job.id, "cannot record the end of the job: {e}"),
        }
        let message = match (&asset, &reason) {
            (Some(a), _) => format!("job {}: {} is ready as asset {a}", job.id, job.input),
            (None, Some(r)) => format!("job {}: {} {status}: {r}", job.id, job.input),
            (None, None) => format!("job {}: {} {status}", job.id, job.input),
        };
        if let Some(kind) = EventKind::job_ended(status) {
            store
                .event(Actor::Factory, None, kind, &message, serde_json::json!({ "job_id": job.id, "asset_id": asset }))
                .await;
        }
        let _ = self.events.send(FactoryEvent::JobEnded(JobEnded { job: job.id, plan: job.plan_id, status, asset }));
        if status == JobStatus::Ready {
            let _ = self.events.send(FactoryEvent::LibraryChanged);
        }
        if let (JobOrigin::Inbox, JobInput::File(path)) = (job.origin, &job.input) {
            inbox::file_away(path, status == JobStatus::Ready, reason.as_deref());
        }
        if let Some(url) = job.webhook_url.clone().filter(|u| !u.trim().is_empty()) {
            let store = store.clone();
            let id = job.id;
            tokio::spawn(async move { notify_webhook(&store, id, &url).await });
        }
    }

    /// Pauses while free disk is low; keeps the library within its quota.
    async fn check_disk(&mut self) {
        let store = self.store().clone();
        let f = &self.workshop.config.factory;
        let data_dir = &self.workshop.config.storage.data_dir;
        let quota = (f.assets_quota_gb * disk::GB) as u64;
        let mut why = None;
        match disk::enforce_quota(&store, quota).await {
            Ok((evicted, used)) => {
                for (id, title) in &evicted {
                    let message =
                        format!("evicted asset {id} ({title}) to keep the library within {} GB", f.assets_quota_gb);
                    store
                        .event(
                            Actor::Factory,
                            None,
                            EventKind::AssetEvicted,
                            &message,
                            serde_json::json!({ "asset_id": id }),
                        )
                        .await;
                }
                if used > quota {
                    why = Some(format!(
                        "the library uses {:.1} GB of its {} GB quota and nothing more can be evicted",
                        used as f64 / disk::GB,
                        f.assets_quota_gb
                    ));
                }
            }
            Err(e) => tracing::error!("cannot check the assets quota: {e}"),
        }
        match disk::free_bytes(data_dir) {
            Ok(free) if (free as f64) < f.min_free_disk_gb * disk::GB => {
                why = Some(format!(
                    "free disk {:.1} GB is below factory.min_free_disk_gb ({} GB)",
                    free as f64 / disk::GB,
                    f.min_free_disk_gb
                ));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot read free disk space of {}: {e}", data_dir.display()),
        }
        if why != self.paused {
            let (kind, message) = match &why {
                Some(reason) => (EventKind::FactoryPaused, format!("factory paused: {reason}")),
                None => (EventKind::FactoryResumed, "factory resumed: disk space is back".to_owned()),
            };
            store.event(Actor::Factory, None, kind, &message, serde_json::json!({})).await;
            self.paused = why;
        }
    }

    async fn status(&self) -> FactoryStatus {
        let counts = self.store().job_counts().await.unwrap_or_default();
        let jobs = counts.into_iter().collect();
        let mut running = Vec::new();
        for id in self.running.keys() {
            if let Ok(j) = self.store().job(*id).await {
                running.push(RunningJob {
                    id: j.id,
                    input: j.input,
                    status: j.status,
                    progress: j.progress,
                    speed: j.speed,
                });
            }
        }
        let state = match (&self.paused, self.running.is_empty()) {
            (Some(_), _) => FactoryState::Paused,
            (None, false) => FactoryState::Working,
            (None, true) => FactoryState::Idle,
        };
        FactoryStatus { state, detail: self.paused.clone(), jobs, running }
    }
}

/// POSTs the job's report (its row and its asset's outputs) to the job's webhook; a failure is recorded, not retried.
async fn notify_webhook(store: &Store, job_id: JobId, url: &str) {
    let body = match job_report(store, job_id).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(job = %job_id, "webhook: cannot read the job: {e}");
            return;
        }
    };
    let client = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build();
    let sent = match client {
        Ok(c) => c.post(url).json(&body).send().await,
        Err(e) => {
            tracing::warn!("webhook client: {e}");
            return;
        }
    };
    let problem = match sent {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => Some(format!("answered {}", resp.status())),
        Err(e) => Some(e.to_string()),
    };
    if let Some(p) = problem {
        let message = format!("job {job_id}: webhook {url} failed: {p}");
        store
            .event(Actor::Factory, None, EventKind::WebhookFailed, &message, serde_json::json!({ "job_id": job_id }))
            .await;
    }
}

/// A job as the API and webhooks show it: the row, plus the asset's outputs when it is ready.
pub async fn job_report(store: &Store, job_id: JobId) -> Result<JobReport, crate::store::StoreError> {
    let job = store.job(job_id).await?;
    let asset = match job.asset_id {
        Some(id) => {
            let asset = store.asset(id).await?;
            let renditions = store.renditions(id).await?;
            Some(vvtv_api::factory::AssetReport::new(&asset, renditions))
        }
        None => None,
    };
    Ok(JobReport { job, asset })
}

impl Config {
    /// The drop folder: `factory.inbox_dir`, else `data_dir/inbox`.
    pub fn inbox_dir(&self) -> PathBuf {
        self.factory.inbox_dir.clone().unwrap_or_else(|| self.storage.data_dir.join("inbox"))
    }
}
