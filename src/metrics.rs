//! The station's Prometheus metrics: one registry owning every family, shared by the actors (through
//! [`actor::Context`](crate::actor::Context)) and the HTTP layer (`GET /metrics`, in `http/metrics.rs`).
//!
//! Naming follows the Prometheus rules: everything starts with `vvtv_`, values are in base units (seconds), counters
//! end in `_total` (the encoder adds the suffix, so the names below lack it), distributions are histograms, and no
//! label can grow without bound: channels and rungs come from the config (a channel not in it is ignored), every
//! other label is a closed set spelled here or in `vvtv-api`. No session ids, addresses, asset ids or titles.
//!
//! Events (segments written, gaps, restarts, items aired, job ends, rejections, requests) are counted where they
//! happen; states (freshness, schedule ahead, jobs by status, the LLM breaker) are set at scrape time by the
//! handler, which reads them from the actors' handles and the store.

use crate::config::Config;
use crate::store::{AiringKind, ChannelId, JobStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use vvtv_api::curator::BreakerPhase;

type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds a whole ingest job may take: from a cached file (a second) to a long programme on two cores (hours).
const JOB_SECONDS: [f64; 12] = [1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0, 7200.0];
/// Seconds of source normalized per second of work.
const SPEED_RATIO: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 4.0, 8.0, 16.0, 32.0];
/// VMAF means: the gate sits around 80–93; the interesting part is near the top.
const VMAF_SCORE: [f64; 11] = [40.0, 60.0, 70.0, 80.0, 85.0, 88.0, 90.0, 92.0, 94.0, 96.0, 98.0];
/// Integrated loudness of the rendition minus the target, in LU (the house promise is ±0.5 LU).
const LOUDNESS_LU: [f64; 11] = [-3.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0];
/// One LLM call (the timeout is 30 s by default; a retried call may take twice that).
const LLM_SECONDS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0];
/// Time to the response head: playlists from memory and segments answer in well under a millisecond.
const HTTP_SECONDS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];
/// A player's time from opening the page to the first frame.
const STARTUP_SECONDS: [f64; 10] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0];
/// Share of a session spent stalled.
const REBUFFER_RATIO: [f64; 9] = [0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RungLabels {
    channel: String,
    rung: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AiringLabels {
    channel: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    code: u16,
}

/// Declares a closed set of label values: the enum, its names and the list of every value.
macro_rules! label_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }
        }
    };
}

label_set! {
    /// How one attempt of an ingest job ended (`outcome` of `vvtv_factory_job_duration_seconds`).
    JobOutcome {
        Ready = "ready",
        /// The input will never make it.
        Rejected = "rejected",
        /// Our side or the network; the job may be retried.
        Failed = "failed",
    }
}

label_set! {
    /// Why the curator turned a candidate down (`reason` of `vvtv_curator_rejections_total`): the class of the
    /// reason, never its text.
    Rejection {
        /// No license on the page, or one outside the allowlist.
        License = "license",
        /// It did not play in the browser, or the prober could not read it.
        NotPlayable = "not_playable",
        /// Below the minimum height.
        TooSmall = "too_small",
        /// Shorter than the minimum or longer than the maximum duration.
        Duration = "duration",
        /// Planned or rejected before (its canonical URL is known).
        Duplicate = "duplicate",
        Other = "other",
    }
}

label_set! {
    /// How one LLM call ended (`outcome` of `vvtv_curator_llm_request_duration_seconds`).
    LlmOutcome {
        /// A usable score.
        Ok = "ok",
        Timeout = "timeout",
        /// No connection (refused, DNS, reset).
        Unreachable = "unreachable",
        /// An HTTP status other than success.
        HttpError = "http_error",
        /// No chat reply, or no usable JSON in it twice.
        BadAnswer = "bad_answer",
    }
}

label_set! {
    /// The kind of thing a request asked for (`route` of the `vvtv_http_*` families): a fixed set, so paths with
    /// ids or tokens in them never become labels.
    RouteClass {
        /// Any `.m3u8` under `/hls/` (multivariant and media playlists).
        HlsPlaylist = "hls_playlist",
        /// Any `.ts` under `/hls/`.
        HlsSegment = "hls_segment",
        Poster = "poster",
        /// The control API under `/api/`.
        Api = "api",
        /// The player and operator pages and what they load (`/`, `/watch/…`, `/admin`, `/assets/…`).
        Page = "page",
        Metrics = "metrics",
        Other = "other",
    }
}

impl RouteClass {
    /// The class of a request path. HLS requests are recognised by their extension so that a signed prefix in
    /// front of the channel path does not change the class.
    pub fn of(path: &str) -> RouteClass {
        if path.starts_with("/api/") {
            RouteClass::Api
        } else if path == "/metrics" {
            RouteClass::Metrics
        } else if path.starts_with("/posters/") {
            RouteClass::Poster
        } else if path.ends_with(".m3u8") {
            RouteClass::HlsPlaylist
        } else if path.ends_with(".ts") {
            RouteClass::HlsSegment
        } else if path == "/" || ["/watch", "/admin", "/assets/"].iter().any(|p| path.starts_with(p)) {
            RouteClass::Page
        } else {
            RouteClass::Other
        }
    }
}

/// The two text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// The classic Prometheus text format 0.0.4 (what `promtool check metrics` reads).
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Exposition {
    /// OpenMetrics when the scraper's `Accept` header offers it (Prometheus does), else the classic format.
    pub fn negotiate(accept: Option<&str>) -> Exposition {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Exposition::OpenMetrics,
            _ => Exposition::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The registry and every family of the station.
pub struct Metrics {
    registry: Registry,
    /// Channels and rungs in the config: the only values their labels take.
    channels: Vec<String>,
    rungs: Vec<String>,

    segments_written: Family<RungLabels, Counter>,
    last_segment_age: Family<ChannelLabel, FloatGauge>,
    playout_gaps: Family<ChannelLabel, Counter>,
    pipeline_restarts: Family<ChannelLabel, Counter>,
    schedule_ahead: Family<ChannelLabel, FloatGauge>,
    items_aired: Family<AiringLabels, Counter>,

    jobs: Family<StatusLabel, Gauge>,
    job_duration: Histograms<OutcomeLabel>,
    normalize_speed: Histogram,
    vmaf: Histogram,
    loudness_deviation: Histogram,

    plans: Family<OutcomeLabel, Counter>,
    rejections: Family<ReasonLabel, Counter>,
    breaker: Family<StateLabel, Gauge>,
    llm_duration: Histograms<OutcomeLabel>,

    http_requests: Family<RequestLabels, Counter>,
    http_duration: Histograms<RouteLabel>,

    viewers: Family<ChannelLabel, Gauge>,
    sessions_started: Family<ChannelLabel, Counter>,
    startup: Histograms<ChannelLabel>,
    rebuffer: Histograms<ChannelLabel>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("channels", &self.channels).field("rungs", &self.rungs).finish_non_exhaustive()
    }
}

/// Creates the family's sample for `labels` (at zero) if it does not exist yet.
fn create<L, M, C>(family: &Family<L, M, C>, labels: &L)
where
    L: Clone + std::hash::Hash + Eq,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    drop(family.get_or_create(labels));
}

fn histograms<L: Clone + std::hash::Hash + Eq>(make: fn() -> Histogram) -> Histograms<L> {
    Family::new_with_constructor(make)
}

impl Metrics {
    /// Every family registered, with a zero sample for every channel, rung and closed label value that is known at
    /// start (so a dashboard shows 0, not "no data", and `rate()` sees the first increment).
    pub fn new(config: &Config) -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            channels: config.channels.iter().map(|c| c.id.clone()).collect(),
            rungs: config.house_format.ladder.iter().map(|r| r.name.clone()).collect(),
            segments_written: Family::default(),
            last_segment_age: Family::default(),
            playout_gaps: Family::default(),
            pipeline_restarts: Family::default(),
            schedule_ahead: Family::default(),
            items_aired: Family::default(),
            jobs: Family::default(),
            job_duration: histograms(|| Histogram::new(JOB_SECONDS)),
            normalize_speed: Histogram::new(SPEED_RATIO),
            vmaf: Histogram::new(VMAF_SCORE),
            loudness_deviation: Histogram::new(LOUDNESS_LU),
            plans: Family::default(),
            rejections: Family::default(),
            breaker: Family::default(),
            llm_duration: histograms(|| Histogram::new(LLM_SECONDS)),
            http_requests: Family::default(),
            http_duration: histograms(|| Histogram::new(HTTP_SECONDS)),
            viewers: Family::default(),
            sessions_started: Family::default(),
            startup: histograms(|| Histogram::new(STARTUP_SECONDS)),
            rebuffer: histograms(|| Histogram::new(REBUFFER_RATIO)),
        };
        m.register();
        m.zero();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "vvtv_segments_written",
            "HLS segments written, per channel and rung",
            self.segments_written.clone(),
        );
        r.register(
            "vvtv_last_segment_age_seconds",
            "Seconds since the channel's last segment was published (live-edge freshness); absent before the first",
            self.last_segment_age.clone(),
        );
        r.register(
            "vvtv_playout_gaps",
            "Timeline gaps detected by the splicer (DTS not increasing, audio holes or overlaps); 0 when healthy",
            self.playout_gaps.clone(),
        );
        r.register(
            "vvtv_pipeline_restarts",
            "Rebuilds of the channel's output (a stall or a write error)",
            self.pipeline_restarts.clone(),
        );
        r.register(
            "vvtv_schedule_ahead_seconds",
            "Seconds of programme scheduled and not yet aired, the rest of the item on air included",
            self.schedule_ahead.clone(),
        );
        r.register(
            "vvtv_items_aired",
            "Items that went on air, by airing kind (scheduled, emergency, slate)",
            self.items_aired.clone(),
        );
        r.register("vvtv_factory_jobs", "Ingest jobs by status", self.jobs.clone());
        r.register(
            "vvtv_factory_job_duration_seconds",
            "Wall-clock seconds of one job attempt, by how it ended",
            self.job_duration.clone(),
        );
        r.register(
            "vvtv_factory_normalize_speed_ratio",
            "Seconds of source normalized per second of work (x real time), loudness and every rung included",
            self.normalize_speed.clone(),
        );
        r.register("vvtv_factory_vmaf_score", "Mean VMAF of each normalized asset's top rung", self.vmaf.clone());
        r.register(
            "vvtv_factory_loudness_deviation_lu",
            "Integrated loudness of the rendition minus the house target, in LU",
            self.loudness_deviation.clone(),
        );
        r.register(
            "vvtv_curator_plans",
            "Plans the curator made, by whether they went straight to the factory or wait for approval",
            self.plans.clone(),
        );
        r.register(
            "vvtv_curator_rejections",
            "Candidates the curator turned down, by class of reason",
            self.rejections.clone(),
        );
        r.register(
            "vvtv_curator_llm_breaker_state",
            "The LLM circuit breaker: 1 for the state it is in (closed, open, half-open, disabled), 0 for the others",
            self.breaker.clone(),
        );
        r.register(
            "vvtv_curator_llm_request_duration_seconds",
            "Seconds of one LLM scoring call (its retry included), by outcome",
            self.llm_duration.clone(),
        );
        r.register(
            "vvtv_http_requests",
            "HTTP requests answered, by route class and status code",
            self.http_requests.clone(),
        );
        r.register(
            "vvtv_http_request_duration_seconds",
            "Seconds from a request to its response head, by route class",
            self.http_duration.clone(),
        );
        r.register("vvtv_viewers", "Viewers watching the channel now (live sessions)", self.viewers.clone());
        r.register("vvtv_viewer_sessions_started", "Viewer sessions started", self.sessions_started.clone());
        r.register(
            "vvtv_player_startup_seconds",
            "Seconds from a player opening the channel to its first frame",
            self.startup.clone(),
        );
        r.register("vvtv_player_rebuffer_ratio", "Share of a viewer session spent stalled", self.rebuffer.clone());
    }

    fn zero(&self) {
        for channel in &self.channels {
            for rung in &self.rungs {
                create(&self.segments_written, &RungLabels { channel: channel.clone(), rung: rung.clone() });
            }
            let label = ChannelLabel { channel: channel.clone() };
            create(&self.playout_gaps, &label);
            create(&self.pipeline_restarts, &label);
            create(&self.schedule_ahead, &label);
            create(&self.viewers, &label);
            create(&self.sessions_started, &label);
            create(&self.startup, &label);
            create(&self.rebuffer, &label);
            for kind in AiringKind::ALL {
                create(&self.items_aired, &AiringLabels { channel: channel.clone(), kind: kind.as_str() });
            }
        }
        for status in JobStatus::ALL {
            create(&self.jobs, &StatusLabel { status: status.as_str() });
        }
        for outcome in JobOutcome::ALL {
            create(&self.job_duration, &OutcomeLabel { outcome: outcome.as_str() });
        }
        for outcome in ["sent_to_factory", "awaiting_approval"] {
            create(&self.plans, &OutcomeLabel { outcome });
        }
        for reason in Rejection::ALL {
            create(&self.rejections, &ReasonLabel { reason: reason.as_str() });
        }
        for outcome in LlmOutcome::ALL {
            create(&self.llm_duration, &OutcomeLabel { outcome: outcome.as_str() });
        }
        for route in RouteClass::ALL {
            create(&self.http_duration, &RouteLabel { route: route.as_str() });
        }
        self.set_breaker(BreakerPhase::Disabled);
    }

    /// The whole exposition in `format`.
    pub fn encode(&self, format: Exposition) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a label, and is logged.
        let written = match format {
            Exposition::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry),
            Exposition::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &self.registry),
        };
        if let Err(e) = written {
            tracing::error!("cannot encode the metrics: {e}");
        }
        text
    }

    /// The label of a configured channel; None (and nothing recorded) for any other.
    fn channel_label(&self, channel: &str) -> Option<ChannelLabel> {
        if self.channels.iter().any(|c| c == channel) {
            Some(ChannelLabel { channel: channel.to_owned() })
        } else {
            tracing::debug!(channel, "metrics: not a configured channel; not recorded");
            None
        }
    }

    /// The broadcaster families of one channel, ready to count from the playout thread.
    pub fn channel(self: &Arc<Self>, channel: &ChannelId) -> ChannelMetrics {
        ChannelMetrics { metrics: self.clone(), channel: channel.as_str().to_owned() }
    }

    // --- broadcaster: states set at scrape time ---

    /// Freshness of the live edge; `None` (no segment yet, or the broadcaster is gone) removes the sample.
    pub fn set_last_segment_age(&self, channel: &ChannelId, age: Option<Duration>) {
        let Some(label) = self.channel_label(channel.as_str()) else { return };
        match age {
            Some(age) => {
                self.last_segment_age.get_or_create(&label).set(age.as_secs_f64());
            }
            None => {
                self.last_segment_age.remove(&label);
            }
        }
    }

    pub fn set_schedule_ahead(&self, channel: &ChannelId, ahead: Duration) {
        if let Some(label) = self.channel_label(channel.as_str()) {
            self.schedule_ahead.get_or_create(&label).set(ahead.as_secs_f64());
        }
    }

    // --- factory ---

    /// The count of jobs in each status (statuses not listed are 0).
    pub fn set_jobs(&self, counts: &[(JobStatus, i64)]) {
        for status in JobStatus::ALL {
            let n = counts.iter().filter(|(s, _)| s == status).map(|(_, n)| *n).sum();
            self.jobs.get_or_create(&StatusLabel { status: status.as_str() }).set(n);
        }
    }

    /// One job attempt ended after `took`.
    pub fn observe_job(&self, outcome: JobOutcome, took: Duration) {
        self.job_duration.get_or_create(&OutcomeLabel { outcome: outcome.as_str() }).observe(took.as_secs_f64());
    }

    /// One asset normalized: `speed` × real time, the VMAF mean of its top rung, and its loudness minus the target
    /// (None for a source without audio).
    pub fn observe_normalized(&self, speed: f64, vmaf_mean: f64, loudness_deviation_lu: Option<f64>) {
        if speed.is_finite() {
            self.normalize_speed.observe(speed);
        }
        if vmaf_mean.is_finite() {
            self.vmaf.observe(vmaf_mean);
        }
        if let Some(lu) = loudness_deviation_lu.filter(|lu| lu.is_finite()) {
            self.loudness_deviation.observe(lu);
        }
    }

    // --- curator ---

    /// A plan was recorded; `sent` when it went straight to the factory.
    pub fn plan_made(&self, sent: bool) {
        let outcome = if sent { "sent_to_factory" } else { "awaiting_approval" };
        self.plans.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn rejected(&self, why: Rejection) {
        self.rejections.get_or_create(&ReasonLabel { reason: why.as_str() }).inc();
    }

    /// The breaker is in `phase`: its gauge is 1, every other state's 0.
    pub fn set_breaker(&self, phase: BreakerPhase) {
        for p in [BreakerPhase::Closed, BreakerPhase::Open, BreakerPhase::HalfOpen, BreakerPhase::Disabled] {
            self.breaker.get_or_create(&StateLabel { state: p.as_str() }).set(i64::from(p == phase));
        }
    }

    pub fn observe_llm_call(&self, outcome: LlmOutcome, took: Duration) {
        self.llm_duration.get_or_create(&OutcomeLabel { outcome: outcome.as_str() }).observe(took.as_secs_f64());
    }

    // --- http ---

    /// One request of class `route` answered with `status` after `took` (to the response head).
    pub fn observe_http(&self, route: RouteClass, status: u16, took: Duration) {
        self.http_requests.get_or_create(&RequestLabels { route: route.as_str(), code: status }).inc();
        self.http_duration.get_or_create(&RouteLabel { route: route.as_str() }).observe(took.as_secs_f64());
    }

    // --- audience: the families are registered here; the audience room feeds them ---

    /// Viewers watching `channel` now (sessions heard from within the session timeout).
    pub fn set_viewers(&self, channel: &ChannelId, viewers: u64) {
        if let Some(label) = self.channel_label(channel.as_str()) {
            self.viewers.get_or_create(&label).set(i64::try_from(viewers).unwrap_or(i64::MAX));
        }
    }

    /// A new viewer session began on `channel`.
    pub fn observe_session_start(&self, channel: &ChannelId) {
        if let Some(label) = self.channel_label(channel.as_str()) {
            self.sessions_started.get_or_create(&label).inc();
        }
    }

    /// A player took `startup` from opening `channel` to its first frame.
    pub fn observe_startup(&self, channel: &ChannelId, startup: Duration) {
        if let Some(label) = self.channel_label(channel.as_str()) {
            self.startup.get_or_create(&label).observe(startup.as_secs_f64());
        }
    }

    /// A session on `channel` ended having spent `ratio` (0..=1) of its time stalled.
    pub fn observe_rebuffer_ratio(&self, channel: &ChannelId, ratio: f64) {
        if !(0.0..=1.0).contains(&ratio) {
            tracing::debug!(ratio, "metrics: a rebuffer ratio outside 0..=1 is not recorded");
            return;
        }
        if let Some(label) = self.channel_label(channel.as_str()) {
            self.rebuffer.get_or_create(&label).observe(ratio);
        }
    }
}

/// One channel's broadcaster families with the channel filled in: what the playout thread counts.
#[derive(Clone, Debug)]
pub struct ChannelMetrics {
    metrics: Arc<Metrics>,
    channel: String,
}

impl ChannelMetrics {
    /// A segment was written on `rung` (rungs outside the configured ladder are not recorded).
    pub fn segment_written(&self, rung: &str) {
        let m = &self.metrics;
        if m.channel_label(&self.channel).is_some() && m.rungs.iter().any(|r| r == rung) {
            m.segments_written
                .get_or_create(&RungLabels { channel: self.channel.clone(), rung: rung.to_owned() })
                .inc();
        }
    }

    /// The splicer detected `n` more gaps.
    pub fn gaps(&self, n: u64) {
        if let Some(label) = self.metrics.channel_label(&self.channel) {
            self.metrics.playout_gaps.get_or_create(&label).inc_by(n);
        }
    }

    /// The output was rebuilt.
    pub fn restarted(&self) {
        if let Some(label) = self.metrics.channel_label(&self.channel) {
            self.metrics.pipeline_restarts.get_or_create(&label).inc();
        }
    }

    /// An item of `kind` went on air.
    pub fn item_aired(&self, kind: AiringKind) {
        if self.metrics.channel_label(&self.channel).is_some() {
            let labels = AiringLabels { channel: self.channel.clone(), kind: kind.as_str() };
            self.metrics.items_aired.get_or_create(&labels).inc();
        }
    }
}

#[cfg(test)]
mod tests;
