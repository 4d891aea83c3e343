//! The factory turns jobs into assets in the house format (download, probe, normalize, gate, poster) or a rejection
//! with its reason.
//!
//! Jobs come from the curator's plans, `vvtvctl ingest`, `POST /api/v1/ingest` and the inbox folder; they all live
//! in the `jobs` table first, so nothing is lost on a crash: at start, every job a worker owned goes back to the
//! queue and the work folder is cleaned (partial downloads are kept and resumed). Up to `factory.workers` jobs run at
//! once, highest priority first. A failure is retried with back-off; a rejection is final. The factory pauses while
//! free disk is below `factory.min_free_disk_gb`, and evicts the least recently aired assets beyond
//! `factory.assets_quota_gb`.

mod demo;
pub mod disk;
pub mod download;
mod inbox;
pub mod job;
pub mod produce;
pub mod sniff;

use crate::station::{Context, Shutdown};
use crate::store::{Job, JobOrigin, JobStatus, NewJob, PlanStatus, Store};
use job::{Outcome, Workshop};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// A failed job is tried this many times in all before it stays failed.
const MAX_ATTEMPTS: i64 = 4;
/// Back-off before the n-th retry: 30 s, 2 min, 8 min.
const RETRY_BASE: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_secs(1);
const DISK_CHECK_EVERY: Duration = Duration::from_secs(10);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize)]
pub struct FactoryStatus {
    /// `idle`, `working` or `paused`.
    pub state: String,
    pub detail: Option<String>,
    /// Jobs per status.
    pub jobs: BTreeMap<String, i64>,
    /// Jobs being worked on now: id, stage, progress (0..1) and speed (× real time).
    pub running: Vec<serde_json::Value>,
}

enum Msg {
    Status(oneshot::Sender<FactoryStatus>),
    /// A job was queued: look for work now rather than at the next tick.
    Wake,
}

#[derive(Clone, Debug)]
pub struct FactoryHandle {
    tx: mpsc::Sender<Msg>,
}

impl FactoryHandle {
    pub fn spawn(ctx: &Context) -> FactoryHandle {
        let (tx, rx) = mpsc::channel(64);
        let (shutdown, guard) = ctx.shutdown();
        let hf = crate::media::house_format::HouseFormat::from_config(&ctx.config.house_format);
        let (vmaf_tx, vmaf_min) = watch::channel(ctx.rules.borrow().vmaf_min);
        let mut rules = ctx.rules.clone();
        tokio::spawn(async move {
            while rules.changed().await.is_ok() {
                let min = rules.borrow().vmaf_min;
                if vmaf_tx.send(min).is_err() {
                    break;
                }
            }
        });
        let workshop = Workshop { store: ctx.store.clone(), config: ctx.config.clone(), hf, vmaf_min };
        let factory = Factory { rx, workshop, paused: None, running: BTreeMap::new() };
        tokio::spawn(async move {
            factory.run(shutdown).await;
            drop(guard);
        });
        FactoryHandle { tx }
    }

    pub async fn status(&self) -> Option<FactoryStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Queues an ingest job and returns its id.
    pub async fn ingest(&self, store: &Store, job: NewJob) -> crate::store::Result<i64> {
        let id = store.insert_job(&job).await?;
        let _ = self.tx.try_send(Msg::Wake);
        Ok(id)
    }
}

struct Factory {
    rx: mpsc::Receiver<Msg>,
    workshop: Workshop,
    /// Why the factory is not taking jobs (low disk, quota full), if it is not.
    paused: Option<String>,
    running: BTreeMap<i64, JobStatus>,
}

impl Factory {
    fn store(&self) -> &Store {
        &self.workshop.store
    }

    async fn run(mut self, mut shutdown: Shutdown) {
        self.recover().await;
        let (store, config) = (self.store().clone(), self.workshop.config.clone());
        let demo = demo::ensure_demo_clips(&store, &config);
        tokio::pin!(demo);
        let mut demo_done = false;
        let mut inbox = inbox::Inbox::new(config.inbox_dir());
        let mut jobs: JoinSet<(Job, Outcome)> = JoinSet::new();
        let mut tick = tokio::time::interval(TICK);
        let mut last_disk_check: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.recv() => {
                    // In-flight jobs stay in their stage in the store; the next start requeues them.
                    jobs.abort_all();
                    return;
                }
                made = &mut demo, if !demo_done => {
                    demo_done = true;
                    if let Err(e) = made {
                        store.event("factory", None, "demo_failed", &format!("could not make demo clips: {e:#}"), serde_json::json!({})).await;
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
                msg = self.rx.recv() => match msg {
                    None => return,
                    Some(Msg::Status(reply)) => { let _ = reply.send(self.status().await); }
                    Some(Msg::Wake) => {}
                },
                _ = tick.tick() => {
                    for path in inbox.scan(&store).await {
                        let input = path.to_string_lossy().into_owned();
                        let new = NewJob { plan_id: None, input: input.clone(), origin: JobOrigin::Inbox, title: None, priority: 0, webhook_url: None };
                        match store.insert_job(&new).await {
                            Ok(id) => store.event("factory", None, "inbox", &format!("job {id}: {input} dropped in the inbox"), serde_json::json!({ "job_id": id })).await,
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

    /// At start: requeue what the last process was working on, and clean the work folder.
    async fn recover(&self) {
        let store = self.store();
        match store.requeue_in_flight_jobs().await {
            Ok(ids) if !ids.is_empty() => {
                let message = format!("requeued {} unfinished job(s) from before the restart: {ids:?}", ids.len());
                store.event("factory", None, "jobs_requeued", &message, serde_json::json!({ "job_ids": ids })).await;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("cannot requeue unfinished jobs: {e}"),
        }
        let keep: HashSet<i64> = store.unfinished_job_ids().await.unwrap_or_default().into_iter().collect();
        let work = self.workshop.work_dir();
        let removed = disk::clean_work_dir(&work, &keep);
        if !removed.is_empty() {
            tracing::info!(dir = %work.display(), "removed {} leftover work file(s): {}", removed.len(), removed.join(", "));
        }
        if let Err(e) = std::fs::create_dir_all(&work) {
            tracing::error!("cannot create the work folder {}: {e}", work.display());
        }
    }

    /// Starts queued jobs while workers are free and the factory is not paused.
    async fn claim(&mut self, jobs: &mut JoinSet<(Job, Outcome)>) {
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
            let first = if job.input.contains("://") && !job.input.starts_with("file://") {
                JobStatus::Downloading
            } else {
                let _ = self.store().set_job_stage(job.id, JobStatus::Probing).await;
                JobStatus::Probing
            };
            self.running.insert(job.id, first);
            if let Some(plan) = job.plan_id {
                let _ = self.store().set_plan_status(plan, PlanStatus::Queued).await;
            }
            tracing::info!(job = job.id, input = %job.input, "job started");
            let workshop = self.workshop.clone();
            jobs.spawn(async move {
                let outcome = workshop.run(&job).await;
                (job, outcome)
            });
        }
    }

    /// Records how a job ended, tells its plan, its webhook and the inbox.
    async fn finish(&self, job: &Job, outcome: Outcome) {
        let store = self.store();
        let (status, reason, asset) = match &outcome {
            Outcome::Ready { asset, reused } => {
                let reason = reused.then(|| format!("same content as asset {asset}, which is already in the library"));
                (JobStatus::Ready, reason, Some(*asset))
            }
            Outcome::Rejected(reason) => (JobStatus::Rejected, Some(reason.clone()), None),
            Outcome::Failed(error) if job.attempts + 1 < MAX_ATTEMPTS => {
                let wait = RETRY_BASE * 4u32.pow(job.attempts.clamp(0, 8) as u32);
                let at = crate::store::now_ms() + wait.as_millis() as i64;
                let _ = store.retry_job(job.id, error, at).await;
                let message = format!(
                    "job {}: attempt {} failed, retrying in {} s: {error}",
                    job.id,
                    job.attempts + 1,
                    wait.as_secs()
                );
                store.event("factory", None, "job_retry", &message, serde_json::json!({ "job_id": job.id })).await;
                return;
            }
            Outcome::Failed(error) => (JobStatus::Failed, Some(error.clone()), None),
        };
        if let Err(e) = store.finish_job(job.id, status, reason.as_deref(), asset).await {
            tracing::error!(job = job.id, "cannot record the end of the job: {e}");
        }
        if let Some(plan) = job.plan_id {
            let plan_status = match status {
                JobStatus::Ready => PlanStatus::Done,
                JobStatus::Rejected => PlanStatus::Rejected,
                _ => PlanStatus::Failed,
            };
            let _ = store.set_plan_status(plan, plan_status).await;
        }
        let message = match (&asset, &reason) {
            (Some(a), _) => format!("job {}: {} is ready as asset {a}", job.id, job.input),
            (None, Some(r)) => format!("job {}: {} {}: {r}", job.id, job.input, status.as_str()),
            (None, None) => format!("job {}: {} {}", job.id, job.input, status.as_str()),
        };
        let kind = format!("job_{}", status.as_str());
        store.event("factory", None, &kind, &message, serde_json::json!({ "job_id": job.id, "asset_id": asset })).await;
        if job.origin == JobOrigin::Inbox {
            inbox::file_away(std::path::Path::new(&job.input), status == JobStatus::Ready, reason.as_deref());
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
                        .event("factory", None, "asset_evicted", &message, serde_json::json!({ "asset_id": id }))
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
                Some(reason) => ("factory_paused", format!("factory paused: {reason}")),
                None => ("factory_resumed", "factory resumed: disk space is back".to_owned()),
            };
            store.event("factory", None, kind, &message, serde_json::json!({})).await;
            self.paused = why;
        }
    }

    async fn status(&self) -> FactoryStatus {
        let counts = self.store().job_counts().await.unwrap_or_default();
        let jobs = counts.into_iter().map(|(s, n)| (s.as_str().to_string(), n)).collect();
        let mut running = Vec::new();
        for id in self.running.keys() {
            if let Ok(j) = self.store().job(*id).await {
                running.push(serde_json::json!({
                    "id": j.id, "input": j.input, "status": j.status, "progress": j.progress, "speed": j.speed,
                }));
            }
        }
        let state = match (&self.paused, self.running.is_empty()) {
            (Some(_), _) => "paused",
            (None, false) => "working",
            (None, true) => "idle",
        };
        FactoryStatus { state: state.into(), detail: self.paused.clone(), jobs, running }
    }
}

/// POSTs the job's outcome (and its asset's outputs) to the job's webhook; a failure is recorded, not retried.
async fn notify_webhook(store: &Store, job_id: i64, url: &str) {
    let body = match job_summary(store, job_id).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(job = job_id, "webhook: cannot read the job: {e}");
            return;
        }
    };
    let client = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build();
    let sent = match client {
        Ok(c) => c.post(url).header("content-type", "application/json").body(body.to_string()).send().await,
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
        store.event("factory", None, "webhook_failed", &message, serde_json::json!({ "job_id": job_id })).await;
    }
}

/// A job as the API and webhooks show it: the row, plus the asset's outputs when it is ready.
pub async fn job_summary(store: &Store, job_id: i64) -> crate::store::Result<serde_json::Value> {
    let job = store.job(job_id).await?;
    let mut value = serde_json::to_value(&job).unwrap_or_default();
    if let Some(asset) = job.asset_id {
        let a = store.asset(crate::store::AssetId(asset)).await?;
        let renditions = store.renditions(a.id).await?;
        value["asset"] = serde_json::json!({
            "id": a.id,
            "title": a.title,
            "duration_ms": a.duration_ms,
            "loudness_in_lufs": a.loudness_in_lufs,
            "loudness_out_lufs": a.loudness_out_lufs,
            "lra_lu": a.lra_lu,
            "true_peak_dbtp": a.true_peak_dbtp,
            "vmaf": { "mean": a.vmaf_mean, "min": a.vmaf_min, "p5": a.vmaf_p5 },
            "renditions": renditions,
            "poster": format!("/posters/{}.jpg", a.id),
            "thumbnail": format!("/posters/{}_thumb.jpg", a.id),
        });
    }
    Ok(value)
}

/// Convenience for callers holding an `Arc<Config>`: is this a URL the factory downloads?
pub fn is_url(input: &str) -> bool {
    input.starts_with("http://") || input.starts_with("https://")
}

impl crate::config::Config {
    /// The drop folder: `factory.inbox_dir`, else `data_dir/inbox`.
    pub fn inbox_dir(&self) -> std::path::PathBuf {
        self.factory.inbox_dir.clone().unwrap_or_else(|| self.storage.data_dir.join("inbox"))
    }
}
