//! The whole TOML schema of the daemon, with an embedded default for every key and validation that names the key.
//!
//! `vvtv run` with no file uses `Config::default()`, which is a complete demo station. A file only needs the keys it
//! changes. `config/vvtv.toml` documents every key; a test keeps it in step with the defaults here.

mod cluster;
mod planner;
mod programming;
mod viewer;

pub use cluster::{NodeConfig, Role, S3Config, ALL_ROLES};
pub use planner::{
    BufferConfig, DiversityConfig, ExplorationConfig, PlannerConfig, RerankConfig, ScheduleConfig, WeightConfig,
};
pub use programming::{ClockTime, DaypartConfig, Days, LibraryConfig, OverrideConfig, SlotConfig, SlotStart};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
pub use viewer::{AccessConfig, AudienceConfig};

/// A configuration problem, always naming the file or key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), reason: reason.into() }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub house_format: HouseFormatConfig,
    pub broadcaster: BroadcasterConfig,
    pub channels: Vec<ChannelConfig>,
    pub factory: FactoryConfig,
    pub curator: CuratorConfig,
    pub planner: PlannerConfig,
    pub audience: AudienceConfig,
    pub log: LogConfig,
    pub access: AccessConfig,
    pub node: NodeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            house_format: HouseFormatConfig::default(),
            broadcaster: BroadcasterConfig::default(),
            channels: vec![ChannelConfig::default()],
            factory: FactoryConfig::default(),
            curator: CuratorConfig::default(),
            planner: PlannerConfig::default(),
            audience: AudienceConfig::default(),
            log: LogConfig::default(),
            access: AccessConfig::default(),
            node: NodeConfig::default(),
        }
    }
}

/// How log lines are written (to stdout; the journal under systemd).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event; coloured only when stdout is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server (origin, player page, control API, metrics) listens on.
    pub listen: String,
    /// Let requests from 127.0.0.1/::1 use the control API without the bearer token.
    pub allow_loopback_without_token: bool,
    /// Memory the origin may keep the segments players are fetching in (MB); 0 reads every one from disk.
    pub segment_cache_mb: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { listen: "127.0.0.1:8080".into(), allow_loopback_without_token: false, segment_cache_mb: 64 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Holds `vvtv.db`, `assets/`, `hls/`, `inbox/` and `control.token`.
    pub data_dir: PathBuf,
    /// "" = SQLite in `data_dir/vvtv.db`; `sqlite://PATH`; or `postgres://…` for nodes sharing one database.
    pub database_url: String,
    /// "" = media stays in `data_dir` on this machine; `s3://bucket/prefix` for nodes sharing an object store.
    pub object_url: String,
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./var"),
            database_url: String::new(),
            object_url: String::new(),
            s3: S3Config::default(),
        }
    }
}

impl StorageConfig {
    /// The database to open: `database_url`, else SQLite in `data_dir`.
    pub fn database(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.db_path().display())
        } else {
            self.database_url.clone()
        }
    }

    /// True when nodes share the store: media and segments go to the object store, channels are leased.
    pub fn is_shared(&self) -> bool {
        !self.object_url.is_empty()
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("vvtv.db")
    }
    pub fn token_path(&self) -> PathBuf {
        self.data_dir.join("control.token")
    }
    pub fn assets_dir(&self) -> PathBuf {
        self.data_dir.join("assets")
    }
    pub fn hls_dir(&self) -> PathBuf {
        self.data_dir.join("hls")
    }
    pub fn access_secret_path(&self) -> PathBuf {
        self.data_dir.join("access.secret")
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }
}

/// One rung of the ABR ladder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HouseFormatConfig {
    pub fps: u32,
    pub gop_seconds: u32,
    /// HLS segment length; a multiple of `gop_seconds`.
    pub segment_seconds: u32,
    pub audio_kbps: u32,
    pub target_lufs: f64,
    pub true_peak_dbtp: f64,
    /// x264 speed preset used for every rung (ingest only; playout never encodes).
    pub x264_preset: String,
    pub ladder: Vec<RungConfig>,
}

impl Default for HouseFormatConfig {
    fn default() -> Self {
        let rung = |name: &str, width, height, video_kbps| RungConfig { name: name.into(), width, height, video_kbps };
        HouseFormatConfig {
            fps: 30,
            gop_seconds: 2,
            segment_seconds: 4,
            audio_kbps: 192,
            target_lufs: -14.0,
            true_peak_dbtp: -1.0,
            x264_preset: "veryfast".into(),
            ladder: vec![
                rung("1080p", 1920, 1080, 4500),
                rung("720p", 1280, 720, 2500),
                rung("480p", 854, 480, 1200),
                rung("360p", 640, 360, 700),
            ],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BroadcasterConfig {
    /// Segments listed in each media playlist (the sliding window).
    pub playlist_segments: u32,
    /// Seconds a segment stays on disk after leaving the window (players still fetching it).
    pub segment_grace_seconds: u32,
    /// No new segment for this many segment durations → the pipeline is rebuilt.
    pub stall_factor: u32,
}

impl Default for BroadcasterConfig {
    fn default() -> Self {
        BroadcasterConfig { playlist_segments: 6, segment_grace_seconds: 60, stall_factor: 3 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelConfig {
    /// Used in URLs (`/hls/{id}/live.m3u8`): lowercase letters, digits and dashes.
    pub id: String,
    pub name: String,
    /// With an empty library, generate a few demo clips so the channel shows something real.
    pub demo_clips: bool,
    /// Style of the channel, given to the curator's scorer.
    pub style: String,
    /// The channel's number in guides (`tvg-chno`; 0: its position in `[[channels]]`).
    pub number: u32,
    /// IANA timezone of the channel's grid (dayparts, slots, overrides): DST-correct.
    pub timezone: String,
    /// The channel's logo for guides (`<icon>` in `/epg.xml`, `tvg-logo` in `/channels.m3u`): an http(s) URL or
    /// a path on this server; empty: none.
    pub logo: String,
    /// `group-title` of the channel in `/channels.m3u`.
    pub group: String,
    /// Which assets the channel airs.
    pub library: LibraryConfig,
    pub dayparts: Vec<DaypartConfig>,
    pub overrides: Vec<OverrideConfig>,
    pub slots: Vec<SlotConfig>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            id: "main".into(),
            name: "VVTV".into(),
            demo_clips: true,
            style: "calm nature, science and culture documentaries".into(),
            number: 0,
            timezone: "UTC".into(),
            logo: String::new(),
            group: "VVTV".into(),
            library: LibraryConfig::default(),
            dayparts: Vec::new(),
            overrides: Vec::new(),
            slots: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FactoryConfig {
    pub workers: u32,
    /// Drop folder watched for new media; empty means `data_dir/inbox`.
    pub inbox_dir: Option<PathBuf>,
    /// Folders whose files may be ingested by path (`vvtvctl ingest FILE`, `POST /api/v1/ingest {"path": …}`);
    /// empty means the inbox and the data dir. Any other path is refused before it is opened.
    pub ingest_roots: Vec<PathBuf>,
    pub vmaf_min: f64,
    /// Score every Nth frame for the VMAF gate. The default, 31, is about one frame a second and a prime: the scored
    /// frames walk through every position of the GOP and of the B-frame pattern instead of landing on the same frame
    /// types (a multiple of 3 would score only I- and P-frames, the best ones).
    pub vmaf_subsample: u32,
    pub min_height: u32,
    pub min_duration_seconds: u32,
    pub max_duration_seconds: u32,
    pub max_download_mb: u64,
    pub download_timeout_seconds: u64,
    /// Allow downloads from private and loopback addresses (tests, closed networks).
    pub allow_private_addresses: bool,
    pub assets_quota_gb: f64,
    pub min_free_disk_gb: f64,
}

impl Default for FactoryConfig {
    fn default() -> Self {
        FactoryConfig {
            workers: 1,
            inbox_dir: None,
            ingest_roots: Vec::new(),
            vmaf_min: 85.0,
            vmaf_subsample: 31,
            min_height: 720,
            min_duration_seconds: 5,
            max_duration_seconds: 4 * 3600,
            max_download_mb: 8192,
            download_timeout_seconds: 3600,
            allow_private_addresses: false,
            assets_quota_gb: 200.0,
            min_free_disk_gb: 5.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// `ollama` or `openai`; empty `url` disables the LLM and the deterministic scorer decides.
    pub protocol: String,
    pub url: String,
    pub model: String,
    pub timeout_seconds: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig { protocol: "ollama".into(), url: String::new(), model: "llama3.2".into(), timeout_seconds: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CuratorConfig {
    pub enabled: bool,
    pub user_agent_contact: String,
    pub chromium_path: PathBuf,
    pub license_allowlist: Vec<String>,
    /// Least time between two requests to one domain; a robots.txt Crawl-delay that is longer wins.
    pub min_delay_per_domain_ms: u64,
    /// Seconds a page (or a video's play-before-download) may take.
    pub page_timeout_seconds: u64,
    /// Minutes the LLM circuit breaker stays open before one trial call is let through.
    pub llm_cool_down_seconds: u64,
    pub llm: LlmConfig,
    pub sources: Vec<SourceConfig>,
}

/// Where a source's candidates come from (`browser`, `feed` or `folder`; `manual` is for plans entered by hand).
pub use vvtv_api::SourceKind;

/// One `[[curator.sources]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique; recorded on every plan it yields.
    pub name: String,
    pub kind: SourceKind,
    /// Polled this often (0: only on `vvtvctl discover`).
    pub interval_minutes: u32,
    /// Plans made per run at most.
    pub max_plans: u32,
    /// browser: pages to start from.
    pub start_urls: Vec<String>,
    /// browser: a search page with `{query}` where the query goes.
    pub search_url: Option<String>,
    /// browser: the query of scheduled runs (`vvtvctl discover --query` gives its own).
    pub query: Option<String>,
    /// browser: links followed from the start pages, in hops.
    pub depth: u32,
    pub page_budget: u32,
    pub time_budget_seconds: u64,
    /// browser: stay on the start pages' sites (plus `allow_domains`).
    pub same_site: bool,
    pub allow_domains: Vec<String>,
    /// feed: its URL.
    pub url: Option<String>,
    /// folder: the directory.
    pub path: Option<PathBuf>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            name: String::new(),
            kind: SourceKind::Browser,
            interval_minutes: 60,
            max_plans: 10,
            start_urls: Vec::new(),
            search_url: None,
            query: None,
            depth: 1,
            page_budget: 20,
            time_budget_seconds: 300,
            same_site: true,
            allow_domains: Vec::new(),
            url: None,
            path: None,
        }
    }
}

impl Default for CuratorConfig {
    fn default() -> Self {
        CuratorConfig {
            enabled: true,
            user_agent_contact: "https://example.invalid/vvtv-contact".into(),
            chromium_path: PathBuf::from("/usr/bin/chromium"),
            license_allowlist: vec!["cc-by".into(), "cc-by-sa".into(), "cc0".into(), "public-domain".into()],
            min_delay_per_domain_ms: 1000,
            page_timeout_seconds: 20,
            llm_cool_down_seconds: 60,
            llm: LlmConfig::default(),
            sources: Vec::new(),
        }
    }
}

impl Config {
    /// The User-Agent of every request the station makes: names VVTV and where to reach its operator.
    pub fn user_agent(&self) -> String {
        format!("VVTV/{} (+{})", env!("CARGO_PKG_VERSION"), self.curator.user_agent_contact)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses and validates TOML text; missing keys take their defaults.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let parse_error = |message| ConfigError::Parse { path: PathBuf::from("<config>"), message };
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            match path.as_str() {
                "." | "" => parse_error(format!("{}{at}", inner.message().trim())),
                key => parse_error(format!("{key}: {}{at}", inner.message().trim())),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .listen
            .parse()
            .map_err(|e| invalid("server.listen", format!("{:?} is not an address:port ({e})", self.server.listen)))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.server.segment_cache_mb > 65_536 {
            let reason = format!("{} MB is above 65536", self.server.segment_cache_mb);
            return Err(invalid("server.segment_cache_mb", reason));
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(invalid("storage.data_dir", "must not be empty"));
        }
        let st = &self.storage;
        cluster::validate_urls(&st.database_url, &st.object_url, &st.s3)?;
        if st.is_shared()
            && !(st.database_url.starts_with("postgres://") || st.database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "storage.object_url",
                "a shared object store needs a shared database: set storage.database_url to postgres://…",
            ));
        }
        self.node.validate()?;
        let hf = &self.house_format;
        if !(1..=120).contains(&hf.fps) {
            return Err(invalid("house_format.fps", format!("{} is outside 1..=120", hf.fps)));
        }
        if !(1..=10).contains(&hf.gop_seconds) {
            return Err(invalid("house_format.gop_seconds", format!("{} is outside 1..=10", hf.gop_seconds)));
        }
        if hf.segment_seconds == 0 || !hf.segment_seconds.is_multiple_of(hf.gop_seconds) {
            return Err(invalid(
                "house_format.segment_seconds",
                format!("{} must be a positive multiple of gop_seconds ({})", hf.segment_seconds, hf.gop_seconds),
            ));
        }
        if !(32..=512).contains(&hf.audio_kbps) {
            return Err(invalid("house_format.audio_kbps", format!("{} is outside 32..=512", hf.audio_kbps)));
        }
        if !(-40.0..=-5.0).contains(&hf.target_lufs) {
            return Err(invalid("house_format.target_lufs", format!("{} is outside -40..=-5", hf.target_lufs)));
        }
        if !(-10.0..=0.0).contains(&hf.true_peak_dbtp) {
            return Err(invalid("house_format.true_peak_dbtp", format!("{} is outside -10..=0", hf.true_peak_dbtp)));
        }
        const PRESETS: [&str; 9] =
            ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"];
        if !PRESETS.contains(&hf.x264_preset.as_str()) {
            return Err(invalid(
                "house_format.x264_preset",
                format!("{:?} is not one of {}", hf.x264_preset, PRESETS.join(", ")),
            ));
        }
        if hf.ladder.is_empty() {
            return Err(invalid("house_format.ladder", "needs at least one rung"));
        }
        for (i, r) in hf.ladder.iter().enumerate() {
            let key = |k: &str| format!("house_format.ladder[{i}].{k}");
            if !is_slug(&r.name) {
                return Err(invalid(key("name"), format!("{:?} must match [a-z0-9-]+", r.name)));
            }
            if hf.ladder[..i].iter().any(|o| o.name == r.name) {
                return Err(invalid(key("name"), format!("{:?} is used by another rung", r.name)));
            }
            if r.width < 16 || r.width > 7680 || r.width % 2 != 0 {
                return Err(invalid(key("width"), format!("{} must be even and within 16..=7680", r.width)));
            }
            if r.height < 16 || r.height > 4320 || r.height % 2 != 0 {
                return Err(invalid(key("height"), format!("{} must be even and within 16..=4320", r.height)));
            }
            if !(100..=100_000).contains(&r.video_kbps) {
                return Err(invalid(key("video_kbps"), format!("{} is outside 100..=100000", r.video_kbps)));
            }
        }
        let b = &self.broadcaster;
        if !(3..=100).contains(&b.playlist_segments) {
            return Err(invalid(
                "broadcaster.playlist_segments",
                format!("{} is outside 3..=100", b.playlist_segments),
            ));
        }
        if !(2..=20).contains(&b.stall_factor) {
            return Err(invalid("broadcaster.stall_factor", format!("{} is outside 2..=20", b.stall_factor)));
        }
        if self.channels.is_empty() {
            return Err(invalid("channels", "needs at least one [[channels]] entry"));
        }
        for (i, c) in self.channels.iter().enumerate() {
            if !is_slug(&c.id) {
                return Err(invalid(format!("channels[{i}].id"), format!("{:?} must match [a-z0-9-]+", c.id)));
            }
            if self.channels[..i].iter().any(|o| o.id == c.id) {
                return Err(invalid(format!("channels[{i}].id"), format!("{:?} is used by another channel", c.id)));
            }
            if c.name.trim().is_empty() {
                return Err(invalid(format!("channels[{i}].name"), "must not be empty"));
            }
            c.validate_programming(i)?;
        }
        let f = &self.factory;
        if let Some((i, root)) = f.ingest_roots.iter().enumerate().find(|(_, r)| !r.is_absolute()) {
            return Err(invalid(format!("factory.ingest_roots[{i}]"), format!("{} must be absolute", root.display())));
        }
        if !(1..=16).contains(&f.workers) {
            return Err(invalid("factory.workers", format!("{} is outside 1..=16", f.workers)));
        }
        if !(0.0..=100.0).contains(&f.vmaf_min) {
            return Err(invalid("factory.vmaf_min", format!("{} is outside 0..=100", f.vmaf_min)));
        }
        if f.vmaf_subsample == 0 {
            return Err(invalid("factory.vmaf_subsample", "must be at least 1"));
        }
        if f.min_duration_seconds >= f.max_duration_seconds {
            return Err(invalid(
                "factory.min_duration_seconds",
                format!("{} must be below max_duration_seconds ({})", f.min_duration_seconds, f.max_duration_seconds),
            ));
        }
        let llm = &self.curator.llm;
        if !["ollama", "openai"].contains(&llm.protocol.as_str()) {
            return Err(invalid("curator.llm.protocol", format!("{:?} is not \"ollama\" or \"openai\"", llm.protocol)));
        }
        if !(llm.url.is_empty() || llm.url.starts_with("http://") || llm.url.starts_with("https://")) {
            return Err(invalid("curator.llm.url", format!("{:?} is not an http(s) URL", llm.url)));
        }
        let mut names = std::collections::HashSet::new();
        for (i, src) in self.curator.sources.iter().enumerate() {
            let key = |field: &str| format!("curator.sources[{i}].{field}");
            if src.name.trim().is_empty() {
                return Err(invalid(key("name"), "every source needs a name"));
            }
            if !names.insert(src.name.as_str()) {
                return Err(invalid(key("name"), format!("{:?} is used by two sources", src.name)));
            }
            let is_http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
            match src.kind {
                SourceKind::Browser => {
                    if src.start_urls.is_empty() && src.search_url.is_none() {
                        return Err(invalid(key("start_urls"), "a browser source needs start_urls or search_url"));
                    }
                    if let Some(u) = src.start_urls.iter().find(|u| !is_http(u)) {
                        return Err(invalid(key("start_urls"), format!("{u:?} is not an http(s) URL")));
                    }
                    if let Some(t) = src.search_url.as_deref().filter(|t| !is_http(t) || !t.contains("{query}")) {
                        return Err(invalid(
                            key("search_url"),
                            format!("{t:?} must be an http(s) URL containing {{query}}"),
                        ));
                    }
                }
                SourceKind::Feed => {
                    if !src.url.as_deref().is_some_and(is_http) {
                        return Err(invalid(key("url"), "a feed source needs an http(s) url"));
                    }
                }
                SourceKind::Folder => {
                    if src.path.is_none() {
                        return Err(invalid(key("path"), "a folder source needs a path"));
                    }
                }
                SourceKind::Manual => {
                    return Err(invalid(key("kind"), "\"manual\" is not a source kind: use browser, feed or folder"));
                }
            }
        }
        let a = &self.access;
        if !(60..=366 * 24 * 3600).contains(&a.default_ttl_seconds) {
            return Err(invalid(
                "access.default_ttl_seconds",
                format!("{} is outside 60..=31622400", a.default_ttl_seconds),
            ));
        }
        if a.geo_header.trim().is_empty() || axum::http::HeaderName::try_from(a.geo_header.trim()).is_err() {
            return Err(invalid("access.geo_header", format!("{:?} is not a header name", a.geo_header)));
        }
        for (key, list) in [("access.geo_allow", &a.geo_allow), ("access.geo_deny", &a.geo_deny)] {
            if let Some((i, code)) = list.iter().enumerate().find(|(_, c)| !is_country(c)) {
                return Err(invalid(
                    format!("{key}[{i}]"),
                    format!("{code:?} is not an ISO 3166 alpha-2 code like \"DE\""),
                ));
            }
        }
        self.validate_audience()?;
        // The planner's values are business-logic defaults: the same validation as `vvtvctl business-logic set`.
        crate::business_logic::BusinessLogic::check_config(self)
    }

    fn validate_audience(&self) -> Result<(), ConfigError> {
        let a = &self.audience;
        if !(1..=300).contains(&a.heartbeat_seconds) {
            return Err(invalid("audience.heartbeat_seconds", format!("{} is outside 1..=300", a.heartbeat_seconds)));
        }
        if a.session_timeout_seconds <= a.heartbeat_seconds || a.session_timeout_seconds > 3600 {
            return Err(invalid(
                "audience.session_timeout_seconds",
                format!(
                    "{} must be above heartbeat_seconds ({}) and at most 3600",
                    a.session_timeout_seconds, a.heartbeat_seconds
                ),
            ));
        }
        if !(1..=3650).contains(&a.retention_days) {
            return Err(invalid("audience.retention_days", format!("{} is outside 1..=3650", a.retention_days)));
        }
        if !(1..=1_000_000).contains(&a.max_sessions) {
            return Err(invalid("audience.max_sessions", format!("{} is outside 1..=1000000", a.max_sessions)));
        }
        if !(2..=1000).contains(&a.session_burst) {
            return Err(invalid("audience.session_burst", format!("{} is outside 2..=1000", a.session_burst)));
        }
        // A session must at least be able to send its heartbeats.
        let needed = 60u64.div_ceil(a.heartbeat_seconds) as u32;
        if a.session_beacons_per_minute < needed || a.session_beacons_per_minute > 6000 {
            return Err(invalid(
                "audience.session_beacons_per_minute",
                format!(
                    "{} must cover the heartbeats ({needed} a minute) and be at most 6000",
                    a.session_beacons_per_minute
                ),
            ));
        }
        Ok(())
    }
}

impl ChannelConfig {
    /// The channel's timezone (validated at load; UTC if it somehow is not one).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    fn validate_programming(&self, i: usize) -> Result<(), ConfigError> {
        let key = |k: &str| format!("channels[{i}].{k}");
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(invalid(
                key("timezone"),
                format!("{:?} is not an IANA timezone like \"Europe/Berlin\"", self.timezone),
            ));
        }
        let logo = self.logo.trim();
        let served = logo.starts_with('/') || logo.starts_with("http://") || logo.starts_with("https://");
        if !logo.is_empty() && !served {
            return Err(invalid(key("logo"), format!("{logo:?} is neither an http(s) URL nor a path like /logo.png")));
        }
        // Guides put these in quoted attributes and after the comma of an #EXTINF line.
        for (k, v) in [("name", &self.name), ("group", &self.group), ("logo", &self.logo)] {
            if v.contains(['"', '\n', '\r']) {
                return Err(invalid(key(k), "must not contain double quotes or line breaks (guides quote it)"));
            }
        }
        let l = &self.library;
        if l.max_duration_seconds > 0 && l.min_duration_seconds > l.max_duration_seconds {
            return Err(invalid(key("library.min_duration_seconds"), "must not exceed max_duration_seconds"));
        }
        let check_dayparts = |prefix: String, dayparts: &[DaypartConfig]| -> Result<(), ConfigError> {
            for (j, d) in dayparts.iter().enumerate() {
                if d.name.trim().is_empty() {
                    return Err(invalid(format!("{prefix}[{j}].name"), "every daypart needs a name"));
                }
                if d.start == d.end {
                    return Err(invalid(format!("{prefix}[{j}].end"), "a daypart needs start and end to differ"));
                }
                if !(0.0..=10.0).contains(&d.weight) {
                    return Err(invalid(format!("{prefix}[{j}].weight"), format!("{} is outside 0..=10", d.weight)));
                }
            }
            Ok(())
        };
        check_dayparts(key("dayparts"), &self.dayparts)?;
        for (j, o) in self.overrides.iter().enumerate() {
            if o.from > o.to {
                return Err(invalid(
                    key(&format!("overrides[{j}].to")),
                    format!("{} is before from ({})", o.to, o.from),
                ));
            }
            check_dayparts(key(&format!("overrides[{j}].dayparts")), &o.dayparts)?;
        }
        for (j, s) in self.slots.iter().enumerate() {
            if s.tags.is_empty() {
                return Err(invalid(key(&format!("slots[{j}].tags")), "a slot needs the tags of what airs in it"));
            }
            if s.max_late_minutes > 120 {
                return Err(invalid(key(&format!("slots[{j}].max_late_minutes")), "is over 120"));
            }
        }
        Ok(())
    }
}

/// Two ASCII capital letters (`DE`, `US`): the form CDNs send countries in.
fn is_country(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// `[a-z0-9-]+`: safe in URLs and file names.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_demo_station() {
        let c = Config::parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.channels[0].id, "main");
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.house_format.ladder.len(), 4);
    }

    #[test]
    fn the_cluster_node_example_is_a_valid_shared_node() {
        let c = Config::parse(include_str!("../../config/cluster-node.toml")).expect("config/cluster-node.toml");
        c.validate().expect("config/cluster-node.toml validates");
        assert!(c.storage.is_shared());
        assert!(c.storage.database().starts_with("postgres://"));
        assert_eq!((c.node.id.as_str(), c.node.roles.len()), ("node-1", 4));
        // One box by default: SQLite in data_dir, media in data_dir, every role.
        let d = Config::default();
        assert!(!d.storage.is_shared());
        assert_eq!(d.storage.database(), format!("sqlite://{}", d.storage.db_path().display()));
        assert!(ALL_ROLES.iter().all(|r| d.node.runs(*r)));
        assert_eq!(d.node.resolved_id(8080).rsplit('-').next(), Some("8080"));
    }

    #[test]
    fn cluster_keys_are_validated_by_name() {
        let cases = [
            ("[storage]\nobject_url = \"s3://b/p\"\n", "storage.object_url"),
            ("[storage]\nobject_url = \"gs://b\"\ndatabase_url = \"postgres://h/db\"\n", "storage.object_url"),
            ("[storage]\nobject_url = \"s3://\"\ndatabase_url = \"postgres://h/db\"\n", "storage.object_url"),
            ("[storage]\ndatabase_url = \"mysql://h/db\"\n", "storage.database_url"),
            ("[node]\nroles = []\n", "node.roles"),
            ("[node]\nid = \"a b\"\n", "node.id"),
            ("[node]\nlease_seconds = 1\n", "node.lease_seconds"),
            ("[node]\nlease_seconds = 10\ndead_after_seconds = 10\n", "node.dead_after_seconds"),
        ];
        for (text, key) in cases {
            let err = Config::parse(text).and_then(|c| c.validate().map(|_| c)).expect_err(text).to_string();
            assert!(err.starts_with(key), "{text}: {err}");
        }
        let err = Config::parse("[node]\nroles = [\"encoder\"]\n").expect_err("unknown role").to_string();
        assert!(err.contains("node.roles"), "{err}");
    }

    #[test]
    fn documented_example_matches_the_defaults() {
        let text = include_str!("../../config/vvtv.toml");
        let c = Config::parse(text).expect("config/vvtv.toml must parse");
        assert_eq!(c, Config::default(), "config/vvtv.toml must document the embedded defaults");
    }

    #[test]
    fn bad_channel_id_names_the_key() {
        let err = Config::parse("[[channels]]\nid = \"Main Channel\"\nname = \"x\"\n").unwrap_err();
        assert_eq!(err.to_string(), "channels[0].id: \"Main Channel\" must match [a-z0-9-]+");
    }

    #[test]
    fn a_guide_logo_or_group_that_would_break_the_guides_is_refused() {
        let err = Config::parse("[[channels]]\nid = \"main\"\nname = \"x\"\nlogo = \"ftp://h/l.png\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "channels[0].logo: \"ftp://h/l.png\" is neither an http(s) URL nor a path like /logo.png"
        );
        let err = Config::parse("[[channels]]\nid = \"main\"\nname = \"x\"\ngroup = \"a\\\"b\"\n").unwrap_err();
        assert!(err.to_string().starts_with("channels[0].group: must not contain double quotes"), "{err}");
        let ok = Config::parse("[[channels]]\nid = \"main\"\nname = \"x\"\nlogo = \"/posters/1.jpg\"\n").unwrap();
        assert_eq!((ok.channels[0].logo.as_str(), ok.channels[0].group.as_str()), ("/posters/1.jpg", "VVTV"));
    }

    #[test]
    fn segment_must_be_multiple_of_gop() {
        let err = Config::parse("[house_format]\ngop_seconds = 3\nsegment_seconds = 4\n").unwrap_err();
        assert!(err.to_string().starts_with("house_format.segment_seconds:"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let err = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn wrong_type_is_refused() {
        let err = Config::parse("[planner]\nbuffer_minutes = \"lots\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("planner.buffer_minutes: invalid type"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn bad_listen_address_names_the_key() {
        let err = Config::parse("[server]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(err.to_string().starts_with("server.listen:"), "{err}");
    }

    #[test]
    fn an_oversized_segment_cache_names_the_key() {
        let err = Config::parse("[server]\nsegment_cache_mb = 100000\n").unwrap_err();
        assert_eq!(err.to_string(), "server.segment_cache_mb: 100000 MB is above 65536");
    }

    #[test]
    fn duplicate_channel_ids_are_refused() {
        let err = Config::parse("[[channels]]\nid = \"a\"\nname = \"A\"\n[[channels]]\nid = \"a\"\nname = \"B\"\n")
            .unwrap_err();
        assert!(err.to_string().starts_with("channels[1].id:"), "{err}");
    }
}
