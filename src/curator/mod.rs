//! The curator turns sources (web pages, feeds, folders) into scored plans and hands the good ones to the factory.
//!
//! Each `[[curator.sources]]` entry is polled on its own interval, and `vvtvctl discover` runs the browser sources at
//! once. A candidate goes through, in order: dedupe (its canonical media URL is planned once, and a rejection is
//! remembered), the license allowlist, play-before-download in the browser (it must play, be HD and fit the duration
//! limits), then scoring (the LLM behind its circuit breaker, or the deterministic scorer). Every candidate becomes a
//! plan row with its facts, score, scorer and reasons; plans at or above `planner.min_score` go to the factory at
//! once when `planner.auto_approve` is on, the others wait for `vvtvctl plans approve`.
//!
//! Runs are sequential (one Chromium at a time, launched per run with a fresh profile and closed after it), so the
//! curator never competes with itself for the two cores it shares with the factory.

pub mod browser;
pub mod error;
mod feed;
pub mod license;
pub mod politeness;
pub mod score;
pub mod synopses;

pub use error::CuratorError;

use crate::actor::{self, Context};
use crate::business_logic::BusinessLogic;
use crate::config::{Config, SourceConfig, SourceKind};
use crate::factory::{FactoryEvent, FactoryHandle, JobEnded};
use crate::metrics::{Metrics, Rejection};
use crate::shutdown::Shutdown;
use crate::store::{JobInput, JobOrigin, JobStatus, NewJob, NewPlan, PlanId, PlanStatus, Store};
use browser::{Browser, BrowserOptions, CrawlSpec, Found};
use chrono::Utc;
use politeness::Politeness;
use score::{CandidateInfo, Scorer, Style};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
pub use vvtv_api::curator::{
    Approved, BreakerReport, CuratorState, CuratorStatus, DiscoveryReport as Report, PlannedItem, RejectedItem,
    RunSummary,
};

/// Video files a folder source takes.
const VIDEO_EXTENSIONS: [&str; 8] = ["mp4", "m4v", "mov", "mkv", "webm", "ts", "avi", "mpg"];
/// How often the published status is refreshed while idle (the breaker cools down with time).
const STATUS_EVERY: Duration = Duration::from_secs(5);

enum Msg {
    Discover {
        query: Option<String>,
        max_plans: u32,
        reply: oneshot::Sender<Result<Report, CuratorError>>,
    },
    Approve {
        plan: PlanId,
        reply: oneshot::Sender<Result<Approved, CuratorError>>,
    },
    /// A channel is running out of programme: every source is due now.
    Urgent {
        reason: String,
    },
    /// The guide shows these assets without a synopsis.
    Synopses(Vec<synopses::SynopsisRequest>),
}

/// The curator's whole public surface: a request channel and its published status.
#[derive(Clone, Debug)]
pub struct CuratorHandle {
    tx: mpsc::Sender<Msg>,
    status: watch::Receiver<CuratorStatus>,
    /// The scorer's client and breaker, shared: the planner's reranks do not wait behind a discovery run.
    scorer: Scorer,
}

impl CuratorHandle {
    pub fn spawn(ctx: &Context, factory: FactoryHandle) -> CuratorHandle {
        let (tx, rx) = mpsc::channel(16);
        let cfg = &ctx.config.curator;
        let llm = (!cfg.llm.url.trim().is_empty()).then(|| score::LlmConfig {
            protocol: if cfg.llm.protocol == "openai" { score::Protocol::Openai } else { score::Protocol::Ollama },
            url: cfg.llm.url.trim().to_owned(),
            model: cfg.llm.model.clone(),
            timeout: Duration::from_secs(cfg.llm.timeout_seconds.max(1)),
        });
        let scorer = Scorer::observed(llm, Duration::from_secs(cfg.llm_cool_down_seconds), Some(ctx.metrics.clone()));
        let idle = if cfg.enabled { CuratorState::Idle } else { CuratorState::Disabled };
        let breaker = breaker_report(&scorer);
        let (status_tx, status) = watch::channel(CuratorStatus {
            state: idle,
            source: None,
            sources: cfg.sources.len(),
            breaker: breaker.state,
            breaker_detail: breaker,
            last_run: None,
        });
        let politeness = Politeness::new(&ctx.config.user_agent(), http_client(&ctx.config));
        let curator = Curator {
            store: ctx.store.clone(),
            config: ctx.config.clone(),
            rules: ctx.rules.clone(),
            ended: factory.subscribe(),
            factory,
            scorer: scorer.clone(),
            politeness,
            status: status_tx,
            idle,
            metrics: ctx.metrics.clone(),
            synopses: synopses::InFlight::default(),
        };
        actor::spawn("curator", ctx, |shutdown| curator.run(rx, shutdown));
        CuratorHandle { tx, status, scorer }
    }

    /// Asks the curator's LLM (through its breaker) to choose from a planner's shortlist.
    pub async fn rerank(&self, query: &score::RerankQuery) -> Result<score::Reranked, String> {
        self.scorer.rerank(query).await
    }

    /// The curator's state as last published (its breaker refreshed every few seconds).
    pub fn status(&self) -> CuratorStatus {
        self.status.borrow().clone()
    }

    /// Runs the browser sources now (with `query` where they have a search URL) and returns what was planned.
    pub async fn discover(&self, query: Option<String>, max_plans: u32) -> Result<Report, CuratorError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Discover { query, max_plans, reply }).await.map_err(|_| CuratorError::Stopped)?;
        rx.await.map_err(|_| CuratorError::Interrupted)?
    }

    /// Asks for discovery on every source now (the planner's buffer is below its emergency level). Does not wait.
    pub fn urgent(&self, reason: String) {
        let _ = self.tx.try_send(Msg::Urgent { reason });
    }

    /// Asks for one-line synopses of these assets (written by the LLM when it is up, kept in the store). Does not
    /// wait: the guide shows the description until the synopsis is there.
    pub fn synopses(&self, requests: Vec<synopses::SynopsisRequest>) {
        if !requests.is_empty() {
            let _ = self.tx.try_send(Msg::Synopses(requests));
        }
    }

    /// Sends a waiting plan to the factory.
    pub async fn approve(&self, plan: PlanId) -> Result<Approved, CuratorError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Approve { plan, reply }).await.map_err(|_| CuratorError::Stopped)?;
        rx.await.map_err(|_| CuratorError::Stopped)?
    }
}

fn breaker_report(scorer: &Scorer) -> BreakerReport {
    scorer.breaker()
}

fn http_client(config: &Config) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(config.user_agent())
        .timeout(Duration::from_secs(config.curator.page_timeout_seconds.max(1)))
        .build()
        .unwrap_or_default()
}

struct Curator {
    store: Store,
    config: std::sync::Arc<Config>,
    rules: watch::Receiver<BusinessLogic>,
    factory: FactoryHandle,
    /// Jobs the factory finished: the plans they came from are updated here (the curator writes plan statuses).
    ended: broadcast::Receiver<FactoryEvent>,
    scorer: Scorer,
    politeness: Politeness,
    status: watch::Sender<CuratorStatus>,
    /// The state between runs: idle, or disabled.
    idle: CuratorState,
    /// Plans made and rejections by class are counted here.
    metrics: Arc<Metrics>,
    /// Synopses being written for the guide.
    synopses: synopses::InFlight,
}

impl Curator {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, mut shutdown: Shutdown) {
        // Scheduled discovery runs on nodes with the curator role; asked-for runs (`vvtvctl discover`, a channel
        // running short) run wherever they are asked.
        let enabled = self.config.curator.enabled && self.config.node.runs(crate::config::Role::Curator);
        // When each scheduled source is next due; the first runs start a little after start-up.
        let mut due: HashMap<String, Instant> = self
            .config
            .curator
            .sources
            .iter()
            .filter(|s| s.interval_minutes > 0)
            .map(|s| (s.name.clone(), Instant::now() + Duration::from_secs(15)))
            .collect();
        let mut tick = tokio::time::interval(STATUS_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                ended = self.ended.recv() => match ended {
                    Ok(FactoryEvent::JobEnded(ended)) => self.job_ended(&ended).await,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!("curator missed {n} job outcome(s)"),
                    Err(broadcast::error::RecvError::Closed) => {}
                },
                msg = rx.recv() => match msg {
                    None => return,
                    Some(Msg::Approve { plan, reply }) => { let _ = reply.send(self.approve(plan).await); }
                    Some(Msg::Synopses(requests)) => {
                        synopses::write(self.store.clone(), self.scorer.clone(), self.synopses.clone(), requests);
                    }
                    Some(Msg::Urgent { reason }) => {
                        let sources: Vec<String> = self.config.curator.sources.iter().map(|s| s.name.clone()).collect();
                        let message = if sources.is_empty() {
                            format!("urgent discovery asked ({reason}), but no source is configured")
                        } else {
                            format!("urgent discovery ({reason}): running {} now", sources.join(", "))
                        };
                        let data = serde_json::json!({ "sources": sources, "reason": reason });
                        self.store.event(crate::store::Actor::Curator, None, crate::store::EventKind::UrgentDiscovery, &message, data).await;
                        let now = Instant::now();
                        for name in sources {
                            due.insert(name, now);
                        }
                    }
                    Some(Msg::Discover { query, max_plans, reply }) => {
                        let sources: Vec<SourceConfig> = self.config.curator.sources.iter()
                            .filter(|s| s.kind == SourceKind::Browser).cloned().collect();
                        if sources.is_empty() {
                            let _ = reply.send(Err(CuratorError::NoBrowserSource));
                            continue;
                        }
                        let mut report = Report::default();
                        let mut left = max_plans;
                        for src in sources {
                            if left == 0 { break; }
                            let before = report.planned.len();
                            tokio::select! {
                                _ = shutdown.recv() => return,
                                _ = self.run_source(&src, query.as_deref(), left, &mut report) => {}
                            }
                            left = left.saturating_sub((report.planned.len() - before) as u32);
                        }
                        let _ = reply.send(Ok(report));
                    }
                },
                _ = tick.tick() => {
                    self.publish(|_| {});
                    if !enabled {
                        continue;
                    }
                    let now = Instant::now();
                    let ready: Vec<SourceConfig> = self.config.curator.sources.iter()
                        .filter(|s| due.get(&s.name).is_some_and(|t| *t <= now)).cloned().collect();
                    for src in ready {
                        let mut report = Report::default();
                        tokio::select! {
                            _ = shutdown.recv() => return,
                            _ = self.run_source(&src, None, src.max_plans, &mut report) => {}
                        }
                        if src.interval_minutes > 0 {
                            due.insert(src.name.clone(), Instant::now() + Duration::from_secs(src.interval_minutes as u64 * 60));
                        } else {
                            due.remove(&src.name);
                        }
                    }
                }
            }
        }
    }

    /// Publishes the status with `change` applied and the breaker read afresh.
    fn publish(&self, change: impl FnOnce(&mut CuratorStatus)) {
        let breaker = breaker_report(&self.scorer);
        self.status.send_modify(|s| {
            change(s);
            s.breaker = breaker.state;
            s.breaker_detail = breaker;
        });
    }

    /// A job of one of our plans ended: the plan follows it.
    async fn job_ended(&self, ended: &JobEnded) {
        let Some(plan) = ended.plan else { return };
        let status = match ended.status {
            JobStatus::Ready => PlanStatus::Done,
            JobStatus::Rejected => PlanStatus::Rejected,
            _ => PlanStatus::Failed,
        };
        if let Err(e) = self.store.set_plan_status(plan, status).await {
            tracing::error!("cannot record the end of plan {plan}: {e}");
        }
    }

    /// An operator's approval of a waiting plan.
    async fn approve(&self, id: PlanId) -> Result<Approved, CuratorError> {
        let plan = self.store.plan(id).await?;
        if !matches!(plan.status, PlanStatus::Pending | PlanStatus::Approved) {
            return Err(CuratorError::NotPending { id, status: plan.status });
        }
        let job = self.queue_plan(id).await?;
        let message = format!("plan {id} ({}) approved: job {job}", plan.title);
        let data = serde_json::json!({ "plan_id": id, "job_id": job });
        self.store
            .event(crate::store::Actor::Curator, None, crate::store::EventKind::PlanApproved, &message, data)
            .await;
        Ok(Approved { plan_id: id, job_id: job })
    }

    /// Sends a plan to the factory: a job with the plan's URL and title; the plan becomes `queued`.
    async fn queue_plan(&self, plan_id: PlanId) -> Result<crate::store::JobId, CuratorError> {
        let plan = self.store.plan(plan_id).await?;
        let input = JobInput::parse(&plan.media_url)
            .map_err(|reason| CuratorError::Feed { url: plan.media_url.clone(), reason })?;
        let job = NewJob {
            plan_id: Some(plan.id),
            input,
            origin: JobOrigin::Plan,
            title: Some(plan.title.clone()).filter(|t| !t.trim().is_empty()),
            priority: 0,
            webhook_url: None,
        };
        let job = self.factory.ingest(job).await?;
        self.store.set_plan_status(plan.id, PlanStatus::Queued).await?;
        Ok(job.id)
    }

    /// One run of one source, appending to `report`.
    async fn run_source(&self, src: &SourceConfig, query: Option<&str>, max_plans: u32, report: &mut Report) {
        let started = Instant::now();
        let (planned_before, rejected_before) = (report.planned.len(), report.rejected.len());
        self.publish(|s| {
            s.state = CuratorState::Discovering;
            s.source = Some(src.name.clone());
        });
        tracing::info!(source = %src.name, "discovery started");
        let mut browser: Option<Browser> = None;
        let result = self.collect(src, query, max_plans, report, &mut browser).await;
        if let Some(b) = browser.take() {
            b.close().await;
        }
        if let Err(e) = result {
            report.errors.push(format!("{}: {e}", src.name));
        }
        let summary = RunSummary {
            source: src.name.clone(),
            finished: Utc::now(),
            planned: report.planned.len() - planned_before,
            rejected: report.rejected.len() - rejected_before,
            seconds: started.elapsed().as_secs_f64(),
        };
        let message = format!(
            "discovery on {}: {} planned, {} rejected in {:.0} s{}",
            src.name,
            summary.planned,
            summary.rejected,
            summary.seconds,
            if report.errors.is_empty() { String::new() } else { format!(" (errors: {})", report.errors.join("; ")) }
        );
        let data = serde_json::json!({ "source": src.name });
        self.store.event(crate::store::Actor::Curator, None, crate::store::EventKind::Discovery, &message, data).await;
        let idle = self.idle;
        self.publish(|s| {
            s.state = idle;
            s.source = None;
            s.last_run = Some(summary);
        });
    }

    /// Finds the source's candidates and evaluates each until `max_plans` plans are made.
    async fn collect(
        &self,
        src: &SourceConfig,
        query: Option<&str>,
        max_plans: u32,
        report: &mut Report,
        browser: &mut Option<Browser>,
    ) -> Result<(), CuratorError> {
        let found: Vec<Found> = match src.kind {
            SourceKind::Browser => {
                let query = query.map(str::to_owned).or_else(|| src.query.clone());
                let spec = CrawlSpec {
                    start_urls: src.start_urls.clone(),
                    search_url: src.search_url.clone(),
                    query,
                    depth: src.depth,
                    page_budget: src.page_budget,
                    time_budget: Duration::from_secs(src.time_budget_seconds),
                    same_site: src.same_site,
                    allow_domains: src.allow_domains.clone(),
                };
                let b = self.browser(browser).await?;
                let crawl = b.crawl(&spec, &self.politeness).await?;
                report.skipped.extend(crawl.skipped.into_iter().map(|(url, reason)| RejectedItem { url, reason }));
                crawl.found
            }
            SourceKind::Feed => {
                let url = src.url.clone().unwrap_or_default();
                feed::fetch(&url, &self.politeness, &http_client(&self.config)).await?
            }
            SourceKind::Folder => return self.collect_folder(src, max_plans, report).await,
            // Refused by the config's validation: plans entered by hand have no source to run.
            SourceKind::Manual => return Ok(()),
        };
        let mut made = 0;
        for f in found {
            if made >= max_plans {
                break;
            }
            if self.evaluate_web(src, f, report, browser).await {
                made += 1;
            }
        }
        Ok(())
    }

    async fn browser<'a>(&self, slot: &'a mut Option<Browser>) -> Result<&'a mut Browser, CuratorError> {
        match slot {
            Some(browser) => Ok(browser),
            None => {
                let c = &self.config.curator;
                let opts = BrowserOptions {
                    chromium: c.chromium_path.clone(),
                    user_agent: self.config.user_agent(),
                    page_timeout: Duration::from_secs(c.page_timeout_seconds.max(1)),
                    min_delay_per_domain: Duration::from_millis(c.min_delay_per_domain_ms),
                };
                Ok(slot.insert(Browser::launch(&opts).await?))
            }
        }
    }

    /// A web candidate: dedupe, license, play-before-download, score. True when a plan was made (not rejected).
    async fn evaluate_web(
        &self,
        src: &SourceConfig,
        f: Found,
        report: &mut Report,
        browser: &mut Option<Browser>,
    ) -> bool {
        let key = canonical_url(&f.media_url);
        if self.known(&key).await {
            self.metrics.rejected(Rejection::Duplicate);
            return false;
        }
        let mut plan = NewPlan {
            page_url: Some(f.page_url.clone()),
            title: f.title.clone(),
            description: f.description.clone(),
            tags: f.tags.clone(),
            license: f.license.clone(),
            ..NewPlan::new(&src.name, src.kind, &f.media_url, key)
        };
        let allow = &self.config.curator.license_allowlist;
        let license_problem = match f.license.as_deref() {
            None => Some("no license found on the page (only openly licensed videos are aired)".to_owned()),
            Some(l) if !allow.iter().any(|a| a.eq_ignore_ascii_case(l)) => {
                Some(format!("license {l} is not in the allowlist ({})", allow.join(", ")))
            }
            Some(_) => None,
        };
        if let Some(reason) = license_problem {
            return self.reject(plan, Rejection::License, reason, report).await;
        }
        let probe = match self.browser(browser).await {
            Ok(b) => b.play_probe(&f.media_url, &self.politeness).await,
            Err(e) => {
                report.errors.push(format!("browser: {e}"));
                return false;
            }
        };
        plan.playable = Some(probe.playable);
        plan.width = (probe.width > 0).then_some(probe.width);
        plan.height = (probe.height > 0).then_some(probe.height);
        let duration = probe.duration_s.or(f.duration_s);
        plan.duration = duration.and_then(|d| Duration::try_from_secs_f64(d).ok());
        if !probe.playable {
            let why = probe.error.clone().unwrap_or_else(|| "playback did not advance".into());
            return self.reject(plan, Rejection::NotPlayable, format!("not playable: {why}"), report).await;
        }
        if let Some((why, reason)) = self.limits_problem(probe.width, probe.height, duration) {
            return self.reject(plan, why, reason, report).await;
        }
        let info = CandidateInfo {
            title: f.title,
            description: f.description,
            tags: f.tags,
            license: f.license,
            width: Some(probe.width),
            height: Some(probe.height),
            duration_s: duration,
            page_url: Some(f.page_url),
            media_url: f.media_url.clone(),
        };
        self.score_and_plan(plan, &info, report).await
    }

    /// A folder source: local files are the operator's own, so no license check; the factory's prober gives the facts.
    async fn collect_folder(
        &self,
        src: &SourceConfig,
        max_plans: u32,
        report: &mut Report,
    ) -> Result<(), CuratorError> {
        let dir = src.path.clone().unwrap_or_default();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|source| CuratorError::Folder { dir: dir.clone(), source })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && has_video_extension(p))
            .collect();
        files.sort();
        let mut made = 0;
        for path in files {
            if made >= max_plans {
                break;
            }
            let path = std::path::absolute(&path).unwrap_or(path);
            let media_url = path.to_string_lossy().into_owned();
            let key = format!("file://{media_url}");
            if self.known(&key).await {
                self.metrics.rejected(Rejection::Duplicate);
                continue;
            }
            let title = path.file_stem().map(|s| s.to_string_lossy().replace(['_', '-'], " ")).unwrap_or_default();
            let mut plan = NewPlan {
                title: title.clone(),
                license: Some("local".into()),
                ..NewPlan::new(&src.name, SourceKind::Folder, &media_url, key)
            };
            let probe_path = path.clone();
            let facts = tokio::task::spawn_blocking(move || crate::media::probe::discover(&probe_path)).await;
            let facts = match facts {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => {
                    let why = match e {
                        crate::media::probe::ProbeError::Rejected(_) => Rejection::NotPlayable,
                        crate::media::probe::ProbeError::Failed(_) => Rejection::Other,
                    };
                    self.reject(plan, why, e.to_string(), report).await;
                    continue;
                }
                Err(e) => {
                    report.errors.push(format!("{media_url}: {e}"));
                    continue;
                }
            };
            plan.width = Some(facts.video.width);
            plan.height = Some(facts.video.height);
            plan.duration = Duration::try_from_secs_f64(facts.duration_s).ok();
            plan.playable = Some(true);
            if let Some((why, reason)) =
                self.limits_problem(facts.video.width, facts.video.height, Some(facts.duration_s))
            {
                self.reject(plan, why, reason, report).await;
                continue;
            }
            let info = CandidateInfo {
                title,
                license: Some("local".into()),
                width: Some(facts.video.width),
                height: Some(facts.video.height),
                duration_s: Some(facts.duration_s),
                media_url,
                ..Default::default()
            };
            if self.score_and_plan(plan, &info, report).await {
                made += 1;
            }
        }
        Ok(())
    }

    /// The factory's limits, checked before anything is downloaded: which one a candidate misses, and how.
    fn limits_problem(&self, width: u32, height: u32, duration: Option<f64>) -> Option<(Rejection, String)> {
        let f = &self.config.factory;
        if height < f.min_height {
            let reason = format!("{width}x{height} is below the minimum height of {} lines", f.min_height);
            return Some((Rejection::TooSmall, reason));
        }
        let reason = match duration {
            Some(d) if d < f.min_duration_seconds as f64 => {
                format!("{d:.0} s is shorter than the minimum of {} s", f.min_duration_seconds)
            }
            Some(d) if d > f.max_duration_seconds as f64 => {
                format!("{d:.0} s is longer than the maximum of {} s", f.max_duration_seconds)
            }
            _ => return None,
        };
        Some((Rejection::Duration, reason))
    }

    /// Has this candidate been planned or rejected before?
    async fn known(&self, key: &str) -> bool {
        self.store.plan_by_key(key).await.ok().flatten().is_some()
    }

    /// Records a rejection (remembered, so the candidate is not looked at again), counts its class and reports it.
    async fn reject(&self, mut plan: NewPlan, why: Rejection, reason: String, report: &mut Report) -> bool {
        self.metrics.rejected(why);
        plan.status = PlanStatus::Rejected;
        plan.reasons = reason.clone();
        let url = plan.media_url.clone();
        if let Err(e) = self.store.insert_plan(&plan).await {
            report.errors.push(format!("{url}: cannot record the rejection: {e}"));
        }
        tracing::info!(%url, %reason, "candidate rejected");
        report.rejected.push(RejectedItem { url, reason });
        false
    }

    /// Scores a candidate that passed every check and records the plan; approves it into a job when the rules say so.
    async fn score_and_plan(&self, mut plan: NewPlan, info: &CandidateInfo, report: &mut Report) -> bool {
        let style = self.style();
        let scored = self.scorer.score(&style, info).await;
        let rules = self.rules.borrow().clone();
        let approve = rules.auto_approve && scored.score >= rules.min_score;
        plan.score = Some(scored.score);
        plan.scorer = Some(scored.scorer.clone());
        let mut reason = scored.reason.clone();
        if let Some(why) = &scored.fallback_because {
            reason = format!("{reason} (deterministic because {why})");
        }
        reason += &if approve {
            format!("; {:.2} ≥ min_score {:.2}: sent to the factory", scored.score, rules.min_score)
        } else if rules.auto_approve {
            format!("; {:.2} < min_score {:.2}: waits for approval", scored.score, rules.min_score)
        } else {
            "; auto_approve is off: waits for approval".into()
        };
        plan.reasons = reason.clone();
        for t in scored.tags {
            if !plan.tags.contains(&t) {
                plan.tags.push(t);
            }
        }
        plan.status = if approve { PlanStatus::Approved } else { PlanStatus::Pending };
        let id = match self.store.insert_plan(&plan).await {
            Ok(Some(id)) => id,
            Ok(None) => return false,
            Err(e) => {
                report.errors.push(format!("{}: cannot record the plan: {e}", plan.media_url));
                return false;
            }
        };
        let job_id = if approve { self.queue_plan(id).await.ok() } else { None };
        self.metrics.plan_made(job_id.is_some());
        let status = if job_id.is_some() { PlanStatus::Queued } else { plan.status };
        report.planned.push(PlannedItem {
            plan_id: id,
            title: plan.title.clone(),
            media_url: plan.media_url.clone(),
            score: scored.score,
            scorer: scored.scorer,
            status,
            job_id,
            reason,
        });
        true
    }

    fn style(&self) -> Style {
        let f = &self.config.factory;
        Style {
            description: self.config.channels.iter().map(|c| c.style.as_str()).collect::<Vec<_>>().join("; "),
            min_height: f.min_height,
            min_duration_s: f.min_duration_seconds as f64,
            max_duration_s: f.max_duration_seconds as f64,
            license_allowlist: self.config.curator.license_allowlist.clone(),
        }
    }
}

fn has_video_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e)))
}

/// The form of a URL used to recognise the same media twice: lowercase scheme and host, no default port, no
/// fragment, no tracking parameters, sorted query.
pub fn canonical_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw.trim()) else { return raw.trim().to_owned() };
    url.set_fragment(None);
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("utm_") && k != "fbclid" && k != "gclid")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // The url crate already lowercases scheme and host and drops default ports.
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_urls_ignore_what_does_not_name_the_media() {
        let a = canonical_url("HTTP://Example.ORG:80/v/clip.mp4?b=2&a=1&utm_source=x#t=10");
        assert_eq!(a, "http://example.org/v/clip.mp4?a=1&b=2");
        assert_eq!(canonical_url("https://example.org/v/clip.mp4#x"), "https://example.org/v/clip.mp4");
        assert_ne!(
            canonical_url("https://example.org/v/clip.mp4?id=1"),
            canonical_url("https://example.org/v/clip.mp4?id=2")
        );
    }

    #[test]
    fn folder_sources_take_video_files_only() {
        assert!(has_video_extension(Path::new("/x/a.MP4")));
        assert!(has_video_extension(Path::new("/x/a.webm")));
        assert!(!has_video_extension(Path::new("/x/a.txt")));
        assert!(!has_video_extension(Path::new("/x/mp4")));
    }
}
