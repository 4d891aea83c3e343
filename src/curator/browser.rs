//! Web discovery for the curator: a headless Chromium that finds candidate videos on web pages, reads their metadata
//! and license, and checks that a video really plays before anything is downloaded (play-before-download).
//!
//! The station runs unattended against other people's sites, so politeness and safety come first:
//! - robots.txt is fetched once per origin with our User-Agent, cached, and obeyed for every page the browser is sent
//!   to and for every media URL before it is probed. Redirects are covered too: every document request a crawled tab
//!   makes is paused and only released once robots.txt allows it ([`RequestGuard`]).
//! - Requests to one domain are spaced by `max(min_delay, Crawl-delay)` ([`Politeness::wait_turn`]), measured at the
//!   moment the browser's request is released, so the spacing the site sees is the one promised.
//! - The crawler only follows `<a href>` links. It never clicks, types or submits forms. While crawling, images, fonts
//!   and media are not loaded at all (everything we read is in the markup), which keeps the load on sites small.
//! - Chromium runs in its own process group with a throw-away profile. `close()` and `Drop` kill the whole group and
//!   remove the profile, so no browser process outlives its [`Browser`]. A crashed or hung browser is replaced and
//!   the crawl goes on.
//!
//! The curator decides what to accept; this module reports what it found, and why it skipped what it skipped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chromiumoxide::browser::Browser as CdpBrowser;
use chromiumoxide::cdp::browser_protocol::browser::{SetDownloadBehaviorBehavior, SetDownloadBehaviorParams};
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams as FetchEnableParams, EventRequestPaused, FailRequestParams, RequestPattern,
    RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{
    ErrorReason, EventLoadingFailed, EventResponseReceived, EventResponseReceivedExtraInfo, ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::target::CloseTargetParams;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::error::CdpError;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::listeners::EventStream;
use chromiumoxide::Page;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use texting_robots::Robot;
use tokio::sync::{watch, OnceCell};
use tokio::time::Instant;
use url::Url;

/// How long Chromium may take to open its DevTools endpoint.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound for short housekeeping commands (connect, close a tab).
const CDP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a robots.txt fetch may take before the origin counts as unreachable.
const ROBOTS_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 9309 asks crawlers to parse at least 500 KiB of robots.txt; the rest is ignored.
const ROBOTS_MAX_BYTES: usize = 512 * 1024;
/// A robots.txt that was read is trusted for a day (RFC 9309 §2.4).
const ROBOTS_TTL: Duration = Duration::from_secs(24 * 3600);
/// An unreachable robots.txt blocks its origin for this long, then it is tried again (roughly "for this run").
const ROBOTS_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Above this many cached origins, expired entries are dropped.
const ROBOTS_CACHE_SOFT_LIMIT: usize = 10_000;
/// A Crawl-delay above this is treated as this, so one odd robots.txt cannot park the crawler for days.
const MAX_CRAWL_DELAY: Duration = Duration::from_secs(3600);
/// play_probe: how long to wait for `loadedmetadata`.
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);
/// play_probe: how long to wait for `play()` to start once metadata is there.
const PLAY_START_TIMEOUT: Duration = Duration::from_secs(5);
/// play_probe: how long to let the video play.
const PLAY_WINDOW: Duration = Duration::from_secs(2);
/// play_probe: the playhead must move at least this far in [`PLAY_WINDOW`].
const MIN_ADVANCE_S: f64 = 0.5;
/// A crawl gives up after this many browser failures (each one is followed by a relaunch).
const MAX_BROWSER_FAILURES: u32 = 5;
/// Lines of Chromium's stderr kept to explain a failed start.
const STDERR_TAIL_LINES: usize = 12;

/// Files the curator can take as media: links to these are candidates, never pages to crawl.
const MEDIA_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "webm", "mkv", "ogv"];
/// Links to these are not web pages, so the crawler does not navigate to them.
const NOT_PAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "svg", "ico", "bmp", "tif", "tiff", "avif", "mp3", "m4a", "aac", "ogg", "oga",
    "opus", "flac", "wav", "pdf", "zip", "gz", "tgz", "bz2", "xz", "7z", "rar", "tar", "exe", "dmg", "iso", "apk",
    "deb", "rpm", "msi", "css", "js", "json", "xml", "rss", "atom", "csv", "txt", "doc", "docx", "xls", "xlsx", "ppt",
    "pptx", "epub", "avi", "wmv", "flv", "mpg", "mpeg", "ts", "m3u8", "mpd", "srt", "vtt",
];

// ---------------------------------------------------------------------------------------------------------------
// Settings, requests and results
// ---------------------------------------------------------------------------------------------------------------

/// How the browser is started and paced.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The Chromium binary (Debian: `/usr/bin/chromium`).
    pub chromium: PathBuf,
    /// Sent with every request the browser makes, e.g. `VVTV/0.1 (+https://example.org/contact)`. Give
    /// [`Politeness::new`] the same string: it fetches robots.txt with it and matches robots.txt groups against its
    /// product token (`VVTV`).
    pub user_agent: String,
    /// How long one page (or one play probe's setup) may take before the browser counts as hung.
    pub page_timeout: Duration,
    /// Minimum gap between two requests to one domain; a larger robots.txt Crawl-delay wins.
    pub min_delay_per_domain: Duration,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            chromium: PathBuf::from("/usr/bin/chromium"),
            user_agent: format!("VVTV/{}", env!("CARGO_PKG_VERSION")),
            page_timeout: Duration::from_secs(30),
            min_delay_per_domain: Duration::from_secs(1),
        }
    }
}

/// One discovery run: where to start, how far to go.
#[derive(Debug, Clone)]
pub struct CrawlSpec {
    pub start_urls: Vec<String>,
    /// A search page to start from as well, with `{query}` where the (URL-encoded) query goes.
    pub search_url: Option<String>,
    pub query: Option<String>,
    /// Link hops from a start page: 0 visits the start pages only.
    pub depth: u32,
    /// Most pages the browser navigates to in this run.
    pub page_budget: u32,
    /// Checked before each page; a page already loading is finished.
    pub time_budget: Duration,
    /// Follow links only to the start pages' sites (their hosts and subdomains, `www.` ignored).
    pub same_site: bool,
    /// Extra domains (and their subdomains) allowed when `same_site` is on.
    pub allow_domains: Vec<String>,
}

impl Default for CrawlSpec {
    fn default() -> Self {
        CrawlSpec {
            start_urls: Vec::new(),
            search_url: None,
            query: None,
            depth: 1,
            page_budget: 20,
            time_budget: Duration::from_secs(300),
            same_site: true,
            allow_domains: Vec::new(),
        }
    }
}

/// A candidate video as a page declares it. Nothing here has been verified except that the page said so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// The page the candidate was found on (after redirects).
    pub page_url: String,
    /// Absolute http(s) URL of the media file, without fragment.
    pub media_url: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Duration the page declares (JSON-LD `duration`, `og:video:duration`), in seconds.
    pub duration_s: Option<f64>,
    /// `cc0`, `public-domain`, `cc-by`, `cc-by-sa`, `cc-by-nd`, `cc-by-nc`, `cc-by-nc-sa`, `cc-by-nc-nd`, or the raw
    /// declaration lower-cased when it is none of those; `None` when the page declares no license for this video.
    pub license: Option<String>,
    /// Where the license declaration points, when it is a link.
    pub license_url: Option<String>,
}

/// What happened when the browser tried to play a media URL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayProbe {
    pub playable: bool,
    pub width: u32,
    pub height: u32,
    /// `None` for live or unknown-length streams.
    pub duration_s: Option<f64>,
    /// How far the playhead moved while playing.
    pub advanced_s: f64,
    /// Why it is not playable, for a human.
    pub error: Option<String>,
}

impl PlayProbe {
    fn failed(reason: impl Into<String>) -> PlayProbe {
        PlayProbe {
            playable: false,
            width: 0,
            height: 0,
            duration_s: None,
            advanced_s: 0.0,
            error: Some(reason.into()),
        }
    }
}

/// The outcome of one crawl.
#[derive(Debug, Clone, Serialize)]
pub struct Crawl {
    /// Candidates in discovery order, one per media URL.
    pub found: Vec<Found>,
    /// URLs not visited or not usable, with the reason: "disallowed by robots.txt", "off-site", "page budget
    /// reached", "time budget reached", "HTTP 404", a load failure, a timeout or a browser crash.
    pub skipped: Vec<(String, String)>,
    /// Every URL the browser was sent to, in order.
    pub pages: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("cannot create a temporary profile directory for Chromium: {0}")]
    Profile(#[source] std::io::Error),
    #[error("cannot start Chromium {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Chromium {binary} exited while starting; its last output: {stderr}")]
    ExitedAtStart { binary: PathBuf, stderr: String },
    #[error("Chromium {binary} did not open its DevTools endpoint within {} s; its last output: {stderr}", .timeout.as_secs())]
    NoDevTools { binary: PathBuf, timeout: Duration, stderr: String },
    #[error("cannot talk to Chromium {binary} over DevTools at {url}: {reason}")]
    Connect { binary: PathBuf, url: String, reason: String },
    #[error("invalid start URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("the crawl has a search URL ({template}) but no query to put in it")]
    MissingQuery { template: String },
}

// ---------------------------------------------------------------------------------------------------------------
// Politeness: robots.txt and per-domain pacing
// ---------------------------------------------------------------------------------------------------------------

/// robots.txt cache and per-domain pacing, shared by every crawl and probe of the station (and by anything else that
/// fetches from the web on the curator's behalf).
pub struct Politeness {
    user_agent: String,
    /// The product token robots.txt groups are matched against (`VVTV` for `VVTV/0.1 (+…)`).
    robots_agent: String,
    client: reqwest::Client,
    min_delay: Duration,
    /// Per origin; the `OnceCell` makes concurrent callers share a single fetch.
    robots: Mutex<HashMap<String, Arc<OnceCell<Arc<RobotsEntry>>>>>,
    /// Per host: the earliest moment the next request may start.
    next_slot: Mutex<HashMap<String, Instant>>,
}

struct RobotsEntry {
    rules: RobotsRules,
    fetched_at: Instant,
}

enum RobotsRules {
    /// No robots.txt (4xx): everything is allowed.
    AllowAll,
    Parsed(Box<Robot>),
    /// 5xx, 429, unreachable or unreadable: nothing is allowed until it is tried again.
    Unavailable(String),
}

impl RobotsEntry {
    fn expired(&self) -> bool {
        let ttl = match self.rules {
            RobotsRules::Unavailable(_) => ROBOTS_RETRY_AFTER,
            _ => ROBOTS_TTL,
        };
        self.fetched_at.elapsed() > ttl
    }

    fn crawl_delay(&self) -> Option<Duration> {
        match &self.rules {
            RobotsRules::Parsed(robot) => robot
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f64(f64::from(d)).min(MAX_CRAWL_DELAY)),
            _ => None,
        }
    }
}

impl Politeness {
    /// `client` is used for robots.txt only; requests carry `user_agent` whatever the client's default is.
    pub fn new(user_agent: &str, client: reqwest::Client) -> Self {
        let robots_agent = user_agent.split(['/', ' ']).next().unwrap_or_default().trim().to_string();
        Politeness {
            user_agent: user_agent.to_string(),
            robots_agent,
            client,
            min_delay: Duration::from_secs(1),
            robots: Mutex::new(HashMap::new()),
            next_slot: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the minimum gap between two requests to one domain (default 1 s); a larger Crawl-delay still wins.
    pub fn with_min_delay(mut self, min_delay: Duration) -> Self {
        self.min_delay = min_delay;
        self
    }

    /// Whether robots.txt lets us fetch `url`; the error is the reason, for a human.
    pub async fn allowed(&self, url: &str) -> Result<(), String> {
        let parsed = Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("not an http(s) URL ({} scheme)", parsed.scheme()));
        }
        let entry = self.entry(&parsed).await;
        match &entry.rules {
            RobotsRules::AllowAll => Ok(()),
            RobotsRules::Parsed(robot) if robot.allowed(parsed.as_str()) => Ok(()),
            RobotsRules::Parsed(_) => Err("disallowed by robots.txt".to_string()),
            RobotsRules::Unavailable(why) => Err(format!("robots.txt unavailable ({why})")),
        }
    }

    /// Waits until a request to `url`'s domain is polite, and books that slot: concurrent callers queue up.
    pub async fn wait_turn(&self, url: &str) {
        self.wait_turn_at_least(url, Duration::ZERO).await;
    }

    /// [`Politeness::wait_turn`] with a caller's own minimum gap (the largest of it, ours and Crawl-delay wins).
    pub async fn wait_turn_at_least(&self, url: &str, min_gap: Duration) {
        let Ok(parsed) = Url::parse(url) else { return };
        let Some(host) = parsed.host_str().map(str::to_ascii_lowercase) else { return };
        let crawl_delay = match parsed.scheme() {
            "http" | "https" => self.entry(&parsed).await.crawl_delay(),
            _ => None,
        };
        let gap = self.min_delay.max(min_gap).max(crawl_delay.unwrap_or_default());
        let at = {
            let mut slots = lock(&self.next_slot);
            let now = Instant::now();
            let at = slots.get(&host).map_or(now, |next| (*next).max(now));
            slots.insert(host, at + gap);
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Waits until `url`'s domain is free, without booking it. The crawler waits here for the long part, then books
    /// its turn (a short wait at most) right before the browser's request goes out.
    async fn wait_until_free(&self, url: &str) {
        let Some(host) = Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)) else { return };
        loop {
            let free_at = lock(&self.next_slot).get(&host).copied();
            match free_at {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }

    /// The cached robots.txt for `url`'s origin, fetched when missing or expired.
    async fn entry(&self, url: &Url) -> Arc<RobotsEntry> {
        let origin = url.origin().ascii_serialization();
        let cell = {
            let mut cache = lock(&self.robots);
            if cache.get(&origin).and_then(|cell| cell.get()).is_some_and(|entry| entry.expired()) {
                cache.remove(&origin);
            }
            if cache.len() > ROBOTS_CACHE_SOFT_LIMIT {
                cache.retain(|_, cell| cell.get().is_none_or(|entry| !entry.expired()));
            }
            cache.entry(origin).or_default().clone()
        };
        cell.get_or_init(|| async { Arc::new(self.fetch_robots(url).await) }).await.clone()
    }

    async fn fetch_robots(&self, url: &Url) -> RobotsEntry {
        let rules = match texting_robots::get_robots_url(url.as_str()) {
            Ok(robots_url) => self.download_robots(&robots_url).await,
            Err(e) => RobotsRules::Unavailable(format!("no robots.txt address for {url}: {e}")),
        };
        let entry = RobotsEntry { rules, fetched_at: Instant::now() };
        if let RobotsRules::Unavailable(why) = &entry.rules {
            tracing::warn!(origin = %url.origin().ascii_serialization(), "robots.txt unavailable ({why}); not crawling there for now");
        }
        // The robots.txt fetch was a request to that host too: the next one waits its turn after it.
        if let Some(host) = url.host_str() {
            let gap = self.min_delay.max(entry.crawl_delay().unwrap_or_default());
            let mut slots = lock(&self.next_slot);
            let next = Instant::now() + gap;
            let slot = slots.entry(host.to_ascii_lowercase()).or_insert(next);
            *slot = (*slot).max(next);
        }
        entry
    }

    async fn download_robots(&self, robots_url: &str) -> RobotsRules {
        let response = self
            .client
            .get(robots_url)
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .timeout(ROBOTS_TIMEOUT)
            .send()
            .await;
        let mut response = match response {
            Ok(response) => response,
            Err(e) => return RobotsRules::Unavailable(format!("unreachable: {}", error_chain(&e))),
        };
        let status = response.status();
        // RFC 9309 §2.3.1: a missing robots.txt (4xx) allows everything; a server error or throttling (5xx, 429)
        // means "assume complete disallow".
        if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            return RobotsRules::AllowAll;
        }
        if !status.is_success() {
            return RobotsRules::Unavailable(format!("HTTP {}", status.as_u16()));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() >= ROBOTS_MAX_BYTES {
                        body.truncate(ROBOTS_MAX_BYTES);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return RobotsRules::Unavailable(format!("read failed: {}", error_chain(&e))),
            }
        }
        match Robot::new(&self.robots_agent, &body) {
            Ok(robot) => RobotsRules::Parsed(Box::new(robot)),
            Err(e) => RobotsRules::Unavailable(format!("unreadable: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------------------------

/// One headless Chromium, replaced when it crashes or hangs. Prefer [`Browser::close`] in async code: dropping a
/// `Browser` also kills Chromium, but blocks the thread for the few milliseconds that takes.
pub struct Browser {
    opts: BrowserOptions,
    session: Option<Session>,
    /// Every profile directory this browser has used, so tests can check that no process outlives it.
    #[cfg(test)]
    profiles: Vec<PathBuf>,
}

impl Browser {
    /// Starts Chromium with a fresh profile and connects to it.
    pub async fn launch(opts: &BrowserOptions) -> Result<Browser, BrowserError> {
        let mut browser = Browser {
            opts: opts.clone(),
            session: None,
            #[cfg(test)]
            profiles: Vec::new(),
        };
        browser.session().await?;
        Ok(browser)
    }

    /// Visits pages breadth-first from the spec's start pages and collects candidate videos.
    ///
    /// Fails only when the spec is invalid or no browser can be started at all; anything that goes wrong with a
    /// single page (robots.txt, HTTP errors, timeouts, browser crashes) is recorded in [`Crawl::skipped`].
    pub async fn crawl(&mut self, spec: &CrawlSpec, robots: &Politeness) -> Result<Crawl, BrowserError> {
        let seeds = seed_urls(spec)?;
        let scope = SiteScope::new(spec, &seeds);
        let deadline = Instant::now() + spec.time_budget;
        let page_timeout = self.opts.page_timeout;
        let min_gap = self.opts.min_delay_per_domain;
        let mut crawl = Crawl { found: Vec::new(), skipped: Vec::new(), pages: Vec::new() };
        let mut seen_pages: HashSet<String> = HashSet::new();
        let mut seen_media: HashSet<String> = HashSet::new();
        let mut frontier: VecDeque<(Url, u32)> = VecDeque::new();
        for seed in seeds {
            if seen_pages.insert(seed.to_string()) {
                frontier.push_back((seed, 0));
            }
        }
        self.session().await?;
        let mut failures = 0;

        while let Some((url, depth)) = frontier.pop_front() {
            if crawl.pages.len() >= spec.page_budget as usize {
                skip_rest(&mut crawl, url, frontier, "page budget reached");
                break;
            }
            if Instant::now() >= deadline {
                skip_rest(&mut crawl, url, frontier, "time budget reached");
                break;
            }
            if let Err(reason) = robots.allowed(url.as_str()).await {
                crawl.skipped.push((url.to_string(), reason));
                continue;
            }
            if tokio::time::timeout_at(deadline, robots.wait_until_free(url.as_str())).await.is_err() {
                skip_rest(&mut crawl, url, frontier, "time budget reached");
                break;
            }
            let session = match self.session().await {
                Ok(session) => session,
                Err(e) => {
                    skip_rest(
                        &mut crawl,
                        url,
                        frontier,
                        &format!("crawl stopped: the browser could not be started ({e})"),
                    );
                    break;
                }
            };
            let outcome = session.visit(&url, robots, page_timeout, min_gap).await;
            crawl.pages.push(url.to_string());
            match outcome {
                Ok(Visit::HttpError(status)) => crawl.skipped.push((url.to_string(), format!("HTTP {status}"))),
                Ok(Visit::Page(page)) => {
                    for candidate in page.candidates {
                        if let Some(found) = to_found(&page.url, candidate) {
                            if seen_media.insert(found.media_url.clone()) {
                                crawl.found.push(found);
                            }
                        }
                    }
                    if depth >= spec.depth || page.nofollow {
                        continue;
                    }
                    for link in page.links {
                        let Some(next) = page_link(&link) else { continue };
                        if !seen_pages.insert(next.to_string()) {
                            continue;
                        }
                        if scope.contains(&next) {
                            frontier.push_back((next, depth + 1));
                        } else {
                            crawl.skipped.push((next.to_string(), "off-site".to_string()));
                        }
                    }
                }
                Err(VisitError::Page(reason)) => crawl.skipped.push((url.to_string(), reason)),
                Err(VisitError::Browser(reason)) => {
                    tracing::warn!(%url, "browser failure ({reason}); restarting Chromium");
                    crawl.skipped.push((url.to_string(), reason));
                    failures += 1;
                    self.retire_session().await;
                    if failures >= MAX_BROWSER_FAILURES {
                        let why = format!("crawl stopped: the browser failed {failures} times");
                        if let Some((next, _)) = frontier.pop_front() {
                            skip_rest(&mut crawl, next, frontier, &why);
                        }
                        break;
                    }
                    if let Err(e) = self.session().await {
                        let why = format!("crawl stopped: the browser could not be restarted ({e})");
                        if let Some((next, _)) = frontier.pop_front() {
                            skip_rest(&mut crawl, next, frontier, &why);
                        }
                        break;
                    }
                }
            }
        }
        Ok(crawl)
    }

    /// Plays `media_url` muted for a moment in a blank tab and reports its size, duration and whether it played.
    /// Obeys robots.txt and the per-domain pacing; never panics.
    pub async fn play_probe(&mut self, media_url: &str, robots: &Politeness) -> PlayProbe {
        let url = match Url::parse(media_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => return PlayProbe::failed(format!("not an http(s) URL: {media_url}")),
        };
        if let Err(reason) = robots.allowed(url.as_str()).await {
            return PlayProbe::failed(reason);
        }
        robots.wait_until_free(url.as_str()).await;
        let (setup_timeout, min_gap) = (self.opts.page_timeout, self.opts.min_delay_per_domain);
        let outcome = match self.session().await {
            Ok(session) => session.probe(&url, robots, setup_timeout, min_gap).await,
            Err(e) => return PlayProbe::failed(format!("the browser is not available: {e}")),
        };
        match outcome {
            Ok(probe) => probe,
            Err(reason) => {
                tracing::warn!(%url, "browser failure while probing ({reason}); Chromium will be restarted");
                // The next call starts a fresh browser.
                self.retire_session().await;
                PlayProbe::failed(format!("the browser failed while playing it: {reason}"))
            }
        }
    }

    /// Kills Chromium and everything it started, waits for them, and removes the profile.
    pub async fn close(mut self) {
        self.retire_session().await;
    }

    /// The running session, starting a new one if there is none or the old one died.
    async fn session(&mut self) -> Result<&Session, BrowserError> {
        let session = match self.session.take() {
            Some(mut session) => match session.death_reason() {
                None => session,
                Some(reason) => {
                    tracing::warn!(binary = %self.opts.chromium.display(), "Chromium is gone ({reason}); starting a new one");
                    retire(session).await;
                    self.start_session().await?
                }
            },
            None => self.start_session().await?,
        };
        Ok(self.session.insert(session))
    }

    async fn start_session(&mut self) -> Result<Session, BrowserError> {
        let session = Session::start(&self.opts).await?;
        #[cfg(test)]
        self.profiles.push(session.process.profile_dir().to_path_buf());
        Ok(session)
    }

    async fn retire_session(&mut self) {
        if let Some(session) = self.session.take() {
            retire(session).await;
        }
    }

    #[cfg(test)]
    fn chromium_pid(&self) -> Option<u32> {
        self.session.as_ref().map(|s| s.process.child.id())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Dropping the session kills the process group and removes the profile (see `ChromiumProcess`).
        self.session.take();
    }
}

/// Shuts a session down off the async threads: killing and reaping Chromium blocks for a few milliseconds.
async fn retire(session: Session) {
    if let Err(e) = tokio::task::spawn_blocking(move || drop(session)).await {
        tracing::warn!("stopping Chromium failed: {e}");
    }
}

/// A live Chromium process and the DevTools connection to it.
struct Session {
    cdp: CdpBrowser,
    handler: tokio::task::JoinHandle<()>,
    /// Set (with a reason) when the DevTools connection ends or Chromium's stderr closes.
    death: watch::Receiver<Option<String>>,
    process: ChromiumProcess,
}

impl Session {
    async fn start(opts: &BrowserOptions) -> Result<Session, BrowserError> {
        let (death_tx, death) = watch::channel(None);
        let death_tx = Arc::new(death_tx);
        let (process, ws_url) = ChromiumProcess::spawn(opts, death_tx.clone())?;
        let ws_url = match tokio::time::timeout(LAUNCH_TIMEOUT, ws_url).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                return Err(BrowserError::ExitedAtStart {
                    binary: opts.chromium.clone(),
                    stderr: process.stderr_tail(),
                })
            }
            Err(_) => {
                return Err(BrowserError::NoDevTools {
                    binary: opts.chromium.clone(),
                    timeout: LAUNCH_TIMEOUT,
                    stderr: process.stderr_tail(),
                })
            }
        };
        let connect_error =
            |reason: String| BrowserError::Connect { binary: opts.chromium.clone(), url: ws_url.clone(), reason };
        let config = HandlerConfig {
            // Our own per-page timeout should fire first and name the page; this one is a backstop.
            request_timeout: opts.page_timeout + Duration::from_secs(5),
            ..HandlerConfig::default()
        };
        let (cdp, mut handler) =
            match tokio::time::timeout(CDP_TIMEOUT, CdpBrowser::connect_with_config(&ws_url, config)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Err(connect_error(e.to_string())),
                Err(_) => return Err(connect_error(format!("no answer within {} s", CDP_TIMEOUT.as_secs()))),
            };
        // The handler drives the DevTools connection: it must be polled all the time. Its errors are logged, never
        // unwrapped; a broken connection ends it and marks the session dead.
        let handler = tokio::spawn(async move {
            let mut errors_in_a_row = 0u32;
            let reason = loop {
                match handler.next().await {
                    None => break "the DevTools connection closed".to_string(),
                    Some(Ok(())) => errors_in_a_row = 0,
                    Some(Err(CdpError::Ws(e))) => break format!("the DevTools connection broke: {e}"),
                    Some(Err(e)) => {
                        tracing::warn!("Chromium DevTools error: {e}");
                        errors_in_a_row += 1;
                        if errors_in_a_row >= 100 {
                            break format!("the DevTools connection keeps failing: {e}");
                        }
                    }
                }
            };
            tracing::debug!("Chromium DevTools handler ended: {reason}");
            death_tx.send_replace(Some(reason));
        });
        let session = Session { cdp, handler, death, process };
        match tokio::time::timeout(CDP_TIMEOUT, session.cdp.version()).await {
            Ok(Ok(version)) => {
                tracing::debug!(product = %version.product, profile = %session.process.profile_dir().display(), "Chromium ready")
            }
            Ok(Err(e)) => return Err(connect_error(e.to_string())),
            Err(_) => return Err(connect_error(format!("no answer within {} s", CDP_TIMEOUT.as_secs()))),
        }
        // A link that turns out to be a download must not write files anywhere.
        let deny_downloads = SetDownloadBehaviorParams {
            behavior: SetDownloadBehaviorBehavior::Deny,
            browser_context_id: None,
            download_path: None,
            events_enabled: None,
        };
        match tokio::time::timeout(CDP_TIMEOUT, session.cdp.execute(deny_downloads)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(connect_error(e.to_string())),
            Err(_) => return Err(connect_error(format!("no answer within {} s", CDP_TIMEOUT.as_secs()))),
        }
        Ok(session)
    }

    /// `Some(reason)` when this session can no longer be used.
    fn death_reason(&mut self) -> Option<String> {
        if let Some(reason) = self.death_notice() {
            return Some(reason);
        }
        if self.handler.is_finished() {
            return Some("the DevTools handler stopped".to_string());
        }
        if self.process.has_exited() {
            return Some("Chromium exited".to_string());
        }
        None
    }

    /// The reason the session died, if it has been reported.
    fn death_notice(&self) -> Option<String> {
        self.death.borrow().clone()
    }

    /// Resolves when the session dies, with the reason.
    async fn died(&self) -> String {
        let mut death = self.death.clone();
        let reason = match death.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the DevTools connection closed".to_string(),
        };
        reason
    }

    /// Loads one page in a new tab and reads it; the tab is closed afterwards.
    async fn visit(
        &self,
        url: &Url,
        robots: &Politeness,
        page_timeout: Duration,
        min_gap: Duration,
    ) -> Result<Visit, VisitError> {
        let work = async {
            let page = self.cdp.new_page("about:blank").await.map_err(browser_failure)?;
            let result = load_and_read(&page, url, robots, min_gap).await;
            self.close_tab(&page).await;
            result
        };
        let stopped = |reason: String| format!("Chromium stopped while loading the page ({reason})");
        let result = tokio::select! {
            result = tokio::time::timeout(page_timeout, work) => match result {
                Ok(result) => result,
                Err(_) => Err(VisitError::Browser(format!("the page did not load within {}", secs(page_timeout)))),
            },
            reason = self.died() => Err(VisitError::Browser(stopped(reason))),
        };
        // A DevTools call that failed because Chromium just died says so only vaguely ("oneshot canceled").
        match (result, self.death_notice()) {
            (Err(VisitError::Browser(_)), Some(reason)) => Err(VisitError::Browser(stopped(reason))),
            (result, _) => result,
        }
    }

    /// Plays `url` in a blank tab. `Err` means the browser itself failed (and should be replaced).
    async fn probe(
        &self,
        url: &Url,
        robots: &Politeness,
        setup_timeout: Duration,
        min_gap: Duration,
    ) -> Result<PlayProbe, String> {
        let work = async {
            let page = self.cdp.new_page("about:blank").await.map_err(|e| e.to_string())?;
            let result = play_in(&page, url, robots, min_gap).await;
            self.close_tab(&page).await;
            result
        };
        let budget = setup_timeout + METADATA_TIMEOUT + PLAY_START_TIMEOUT + PLAY_WINDOW;
        let result = tokio::select! {
            result = tokio::time::timeout(budget, work) => match result {
                Ok(result) => result,
                Err(_) => Err(format!("no answer from the browser within {}", secs(budget))),
            },
            reason = self.died() => Err(format!("Chromium stopped ({reason})")),
        };
        match (result, self.death_notice()) {
            (Err(_), Some(reason)) => Err(format!("Chromium stopped ({reason})")),
            (result, _) => result,
        }
    }

    async fn close_tab(&self, page: &Page) {
        let close = self.cdp.execute(CloseTargetParams::new(page.target_id().clone()));
        match tokio::time::timeout(CDP_TIMEOUT, close).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("closing a Chromium tab failed: {e}"),
            Err(_) => tracing::debug!("closing a Chromium tab timed out"),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.handler.abort();
        // `self.process` is dropped right after this and kills Chromium.
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The Chromium process
// ---------------------------------------------------------------------------------------------------------------

/// Chromium started as the leader of its own process group, with a profile that lives as long as it does.
struct ChromiumProcess {
    child: Child,
    /// Set once the child has been reaped: from then on its pid may belong to someone else.
    reaped: bool,
    terminated: bool,
    profile: Option<tempfile::TempDir>,
    /// `--user-data-dir=…`: every Chromium process of this instance has it on its command line.
    marker: String,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ChromiumProcess {
    /// Starts Chromium; the receiver yields the DevTools WebSocket address once Chromium prints it.
    fn spawn(
        opts: &BrowserOptions,
        death: Arc<watch::Sender<Option<String>>>,
    ) -> Result<(ChromiumProcess, tokio::sync::oneshot::Receiver<String>), BrowserError> {
        let profile = tempfile::Builder::new().prefix("vvtv-chromium-").tempdir().map_err(BrowserError::Profile)?;
        let marker = format!("--user-data-dir={}", profile.path().display());
        let mut command = Command::new(&opts.chromium);
        command
            .args([
                // The flags that work here as root, in a container, without a GPU.
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Play-before-download: muted autoplay without a user gesture.
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
                // No requests of Chromium's own: no extensions (Debian loads some by default), no prefetching or
                // prerendering of links, no DNS prefetch, no hyperlink-auditing pings, no crash or metrics uploads.
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-features=Prerender2,NoStatePrefetch,SpeculationRulesPrefetchFuture,NavigationPredictor,\
                 OptimizationHints,Translate,MediaRouter,AutofillServerCommunication,InterestFeedContentSuggestions",
                "--dns-prefetch-disable",
                "--no-pings",
                "--disable-breakpad",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--metrics-recording-only",
                "--no-default-browser-check",
                "--password-store=basic",
                "--use-mock-keychain",
                // Small /dev/shm in containers crashes renderers; hidden tabs must keep playing and running timers.
                "--disable-dev-shm-usage",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-agent={}", opts.user_agent))
            .arg(&marker)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that one signal reaches every process Chromium forks.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches only the new process. If the daemon dies without running
        // Drop (SIGKILL, abort), the kernel kills Chromium too. The Debian wrapper script `exec`s Chromium, which
        // keeps this setting. The kernel watches the spawning *thread*: a tokio runtime thread lives as long as the
        // runtime; should one end earlier (`block_in_place`), Chromium dies with it and is simply relaunched.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| BrowserError::Spawn { binary: opts.chromium.clone(), source })?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (ws_tx, ws_rx) = tokio::sync::oneshot::channel();
        let mut process =
            ChromiumProcess { child, reaped: false, terminated: false, profile: Some(profile), marker, stderr_tail };
        let Some(stderr) = process.child.stderr.take() else {
            let source = std::io::Error::other("no stderr pipe");
            return Err(BrowserError::Spawn { binary: opts.chromium.clone(), source });
        };
        let tail = process.stderr_tail.clone();
        // Chromium's stderr must be drained for as long as it runs (a full pipe blocks it). Its end means every
        // Chromium process is gone, which is the quickest crash signal there is.
        let reader = std::thread::Builder::new().name("chromium-stderr".into()).spawn(move || {
            let mut ws_tx = Some(ws_tx);
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if let Some(ws) = text.split_once("DevTools listening on ").map(|(_, ws)| ws.trim()) {
                    if let Some(tx) = ws_tx.take() {
                        let _ = tx.send(ws.to_string());
                    }
                }
                tracing::debug!(target: "vvtv::chromium", "{text}");
                let mut tail = lock(&tail);
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text.to_string());
            }
            death.send_replace(Some("Chromium exited".to_string()));
        });
        match reader {
            Ok(_) => Ok((process, ws_rx)),
            // Dropping `process` kills the Chromium that was just started.
            Err(source) => Err(BrowserError::Spawn { binary: opts.chromium.clone(), source }),
        }
    }

    fn profile_dir(&self) -> &Path {
        self.profile.as_ref().map_or(Path::new(""), |p| p.path())
    }

    fn stderr_tail(&self) -> String {
        let tail = lock(&self.stderr_tail);
        if tail.is_empty() {
            "(nothing)".to_string()
        } else {
            tail.iter().map(String::as_str).collect::<Vec<_>>().join(" | ")
        }
    }

    fn has_exited(&mut self) -> bool {
        if !self.reaped {
            self.reaped = matches!(self.child.try_wait(), Ok(Some(_)) | Err(_));
        }
        self.reaped
    }

    /// Kills every process of this Chromium, reaps the leader and removes the profile. Blocks for a few
    /// milliseconds at most (5 s if the kernel is very slow to deliver SIGKILL).
    fn terminate(&mut self) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        if !self.has_exited() {
            // An unreaped child still owns its pid, so the group id is certainly ours.
            let pgid = self.child.id() as libc::pid_t;
            // SAFETY: a plain syscall; it signals only the process group Chromium leads.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            while !self.has_exited() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Anything still alive with our profile on its command line (a process that left the group, or one that was
        // mid-fork) is ours too.
        while kill_by_marker(&self.marker) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(profile) = self.profile.take() {
            let path = profile.path().to_path_buf();
            if let Err(e) = profile.close() {
                tracing::warn!(profile = %path.display(), "cannot remove the Chromium profile: {e}");
            }
        }
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// SIGKILLs every process with the argument `marker` on its command line; returns how many there were.
fn kill_by_marker(marker: &str) -> usize {
    let marker = marker.as_bytes();
    // Arguments are separated by NUL, or by spaces once a process has rewritten its title (Chromium's children do).
    let has_marker = |cmdline: &[u8]| {
        cmdline.windows(marker.len()).enumerate().any(|(at, window)| {
            window == marker && cmdline.get(at + marker.len()).is_none_or(|next| *next == 0 || *next == b' ')
        })
    };
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if has_marker(&cmdline) {
            // SAFETY: a plain syscall on a process identified by our unique profile path.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed += 1;
        }
    }
    killed
}

// ---------------------------------------------------------------------------------------------------------------
// Loading and reading one page
// ---------------------------------------------------------------------------------------------------------------

enum Visit {
    Page(RawPage),
    HttpError(i64),
}

enum VisitError {
    /// This page could not be used; the browser is fine.
    Page(String),
    /// The browser is broken or hung: replace it.
    Browser(String),
}

fn browser_failure(e: CdpError) -> VisitError {
    VisitError::Browser(format!("DevTools error: {e}"))
}

async fn load_and_read(page: &Page, url: &Url, robots: &Politeness, min_gap: Duration) -> Result<Visit, VisitError> {
    let mut responses = page.event_listener::<EventResponseReceived>().await.map_err(browser_failure)?;
    // Reading the markup needs the document, scripts, styles and XHR; the rest would only cost the site bandwidth.
    let not_needed = [
        ResourceType::Media,
        ResourceType::Image,
        ResourceType::Font,
        ResourceType::CspViolationReport,
        ResourceType::Ping,
        ResourceType::Other,
    ];
    let mut guard = RequestGuard::install(page, robots, ResourceType::Document, &not_needed, min_gap)
        .await
        .map_err(browser_failure)?;
    let main_frame = page.mainframe().await.map_err(browser_failure)?;
    // Without an icon declared by the page, Chromium fetches /favicon.ico on its own, past the request guard and
    // the pacing. Declaring an inline icon before the page is parsed prevents that. This runs in an isolated world,
    // out of the page scripts' sight.
    let mut no_favicon = AddScriptToEvaluateOnNewDocumentParams::new(NO_FAVICON_JS);
    no_favicon.world_name = Some("vvtv-no-favicon".to_string());
    page.evaluate_on_new_document(no_favicon).await.map_err(browser_failure)?;

    match guard.run(page.goto(url.as_str())).await {
        Ok(_) => {}
        Err(CdpError::ChromeMessage(text)) => return Err(VisitError::Page(guard.explain_failure(&text))),
        Err(CdpError::Timeout) => return Err(VisitError::Browser("the page did not finish loading".to_string())),
        Err(e) => return Err(browser_failure(e)),
    }
    // The main document's final response (redirects do not produce one) carries the status.
    let mut status = None;
    while let Some(Some(event)) = responses.next().now_or_never() {
        if event.r#type == ResourceType::Document && (main_frame.is_none() || event.frame_id == main_frame) {
            status = Some(event.response.status);
        }
    }
    if let Some(status) = status.filter(|s| *s >= 400) {
        return Ok(Visit::HttpError(status));
    }
    // Read the page in an isolated world: the page's own scripts cannot tamper with the extraction code there.
    let mut evaluate = EvaluateParams::new(EXTRACT_JS);
    evaluate.context_id = page.secondary_execution_context().await.ok().flatten();
    evaluate.return_by_value = Some(true);
    match guard.run(page.evaluate_expression(evaluate)).await {
        Ok(result) => {
            let json: String = result
                .into_value()
                .map_err(|e| VisitError::Page(format!("could not read the page: unexpected result ({e})")))?;
            let page: RawPage = serde_json::from_str(&json)
                .map_err(|e| VisitError::Page(format!("could not read the page: unexpected result ({e})")))?;
            Ok(Visit::Page(page))
        }
        Err(CdpError::JavascriptException(e)) => {
            Err(VisitError::Page(format!("could not read the page: script error ({})", e.text)))
        }
        Err(e) => Err(browser_failure(e)),
    }
}

/// Answers the requests a tab makes, so that nothing leaves the browser without our consent. Requests of the wanted
/// kind go out once robots.txt allows them, the first one after waiting for its polite turn; every other intercepted
/// kind is refused. A crawled tab wants documents (the page, its redirects, frames, anything a script navigates to)
/// and refuses images, fonts and media; a probe tab wants media. Unanswered requests stay paused: never sent.
struct RequestGuard<'a> {
    page: &'a Page,
    robots: &'a Politeness,
    paused: EventStream<EventRequestPaused>,
    wanted: ResourceType,
    /// The minimum gap the first wanted request books its turn with; `None` once it has.
    pace_first: Option<Duration>,
    /// Wanted requests refused by robots.txt, with the reason.
    refused: Vec<(String, String)>,
}

impl<'a> RequestGuard<'a> {
    /// Starts intercepting `wanted` and `refused` requests in `page` (before it loads anything).
    async fn install(
        page: &'a Page,
        robots: &'a Politeness,
        wanted: ResourceType,
        refused: &[ResourceType],
        min_gap: Duration,
    ) -> Result<RequestGuard<'a>, CdpError> {
        let paused = page.event_listener::<EventRequestPaused>().await?;
        let patterns = std::iter::once(&wanted).chain(refused).map(|kind| RequestPattern {
            resource_type: Some(kind.clone()),
            request_stage: Some(RequestStage::Request),
            ..RequestPattern::default()
        });
        page.execute(FetchEnableParams::builder().patterns(patterns).build()).await?;
        Ok(RequestGuard { page, robots, paused, wanted, pace_first: Some(min_gap), refused: Vec::new() })
    }

    /// Drives `work` to completion while answering paused requests.
    async fn run<F: Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                output = &mut work => return output,
                Some(event) = self.paused.next() => self.answer(&event).await,
            }
        }
    }

    async fn answer(&mut self, event: &EventRequestPaused) {
        let request_id = event.request_id.clone();
        let wanted = event.resource_type == self.wanted;
        let verdict =
            if wanted { self.robots.allowed(&event.request.url).await } else { Err("not needed".to_string()) };
        let answered = match verdict {
            Ok(()) => {
                if let Some(min_gap) = self.pace_first.take() {
                    self.robots.wait_turn_at_least(&event.request.url, min_gap).await;
                }
                self.page.execute(ContinueRequestParams::new(request_id)).await.map(drop)
            }
            Err(reason) => {
                if wanted {
                    tracing::debug!(url = %event.request.url, "refused a request: {reason}");
                    self.refused.push((event.request.url.clone(), reason));
                }
                self.page.execute(FailRequestParams::new(request_id, ErrorReason::BlockedByClient)).await.map(drop)
            }
        };
        if let Err(e) = answered {
            tracing::debug!(url = %event.request.url, "could not answer a paused request: {e}");
        }
    }

    /// Why a wanted request was refused, if one was.
    fn refusal(&self) -> Option<String> {
        self.refused.first().map(|(url, reason)| format!("redirected to {url}, which is {reason}"))
    }

    /// A human reason for a failed navigation (`net::ERR_…`).
    fn explain_failure(&self, error: &str) -> String {
        self.refusal().unwrap_or_else(|| format!("the browser could not load it ({error})"))
    }
}

/// Declares an inline (`data:`) favicon as soon as the document has a `<head>`.
const NO_FAVICON_JS: &str = r#"(() => {
  const declare = () => {
    const link = document.createElement('link');
    link.rel = 'icon';
    link.href = 'data:,';
    (document.head || document.documentElement).prepend(link);
  };
  if (document.head) declare(); else document.addEventListener('DOMContentLoaded', declare, { once: true });
})()"#;

/// What the extraction script returns.
#[derive(Debug, Deserialize)]
struct RawPage {
    url: String,
    links: Vec<String>,
    nofollow: bool,
    candidates: Vec<RawCandidate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCandidate {
    media_url: String,
    title: String,
    description: String,
    tags: Vec<String>,
    duration: String,
    /// License declarations that apply to this video, most specific first.
    licenses: Vec<RawLicense>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLicense {
    url: Option<String>,
    text: Option<String>,
}

/// Reads a page in one go and returns JSON: candidate videos with their metadata, the page's links, and whether the
/// page asks robots not to follow them. Candidates come from `<video>` (its `src`, else the best `<source>`),
/// `og:video*`, JSON-LD `VideoObject`s and `<a href>` links to media files, merged by absolute URL.
///
/// License links (`rel=license`) are attributed by document structure: each belongs to the video(s) it shares the
/// deepest common ancestor with, so a link inside a video's `<figure>` or `<article>` applies to that video only and
/// a footer link applies to all of them.
const EXTRACT_JS: &str = r#"(() => {
  const MEDIA_FILE = /\.(mp4|m4v|mov|webm|mkv|ogv)$/i;
  const clean = (value) => (value == null ? '' : String(value)).replace(/\s+/g, ' ').trim();
  const absolute = (value) => {
    if (typeof value !== 'string' || !value.trim()) return null;
    try {
      const url = new URL(value.trim(), document.baseURI);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (e) {
      return null;
    }
  };
  const isMediaFile = (url) => {
    try { return MEDIA_FILE.test(new URL(url).pathname); } catch (e) { return false; }
  };

  // <meta> values by lower-cased name or property.
  const metas = new Map();
  for (const m of document.querySelectorAll('meta[content]')) {
    const key = clean(m.getAttribute('property') || m.getAttribute('name') || m.getAttribute('itemprop')).toLowerCase();
    const value = clean(m.getAttribute('content'));
    if (!key || !value) continue;
    if (!metas.has(key)) metas.set(key, []);
    metas.get(key).push(value);
  }
  const meta = (...keys) => {
    for (const key of keys) if (metas.has(key)) return metas.get(key)[0];
    return '';
  };
  const metaAll = (...keys) => keys.flatMap((key) => metas.get(key) || []);

  // JSON-LD VideoObjects, wherever they are nested (@graph, mainEntity, video, ...).
  const ldVideos = [];
  const isVideoObject = (node) => [].concat(node['@type'] || [])
    .some((type) => typeof type === 'string' && /(^|[:\/#])VideoObject$/.test(type));
  const walk = (node, depth) => {
    if (!node || typeof node !== 'object' || depth > 10) return;
    if (Array.isArray(node)) { for (const item of node) walk(item, depth + 1); return; }
    if (isVideoObject(node)) ldVideos.push(node);
    for (const value of Object.values(node)) if (value && typeof value === 'object') walk(value, depth + 1);
  };
  for (const script of document.querySelectorAll('script[type="application/ld+json" i]')) {
    try { walk(JSON.parse(script.textContent), 0); } catch (e) { /* broken JSON-LD is common: skip it */ }
  }
  const ldText = (value) => {
    for (const item of [].concat(value == null ? [] : value)) {
      const text = item && typeof item === 'object' ? clean(item['@value'] || item.name || '') : clean(item);
      if (text) return text;
    }
    return '';
  };
  const ldUrls = (value) => [].concat(value == null ? [] : value)
    .map((item) => (item && typeof item === 'object' ? item.url || item.contentUrl || item['@id'] : item))
    .map(absolute).filter(Boolean);
  const ldKeywords = (value) => [].concat(value == null ? [] : value)
    .flatMap((item) => (item && typeof item === 'object' ? [item.name || item['@value'] || ''] : String(item).split(',')))
    .map(clean).filter(Boolean);
  const looksLikeUrl = (text) => /^(https?:)?\/\//i.test(text) || text.startsWith('/');
  const ldLicense = (value) => {
    for (const item of [].concat(value == null ? [] : value)) {
      if (item && typeof item === 'object') {
        const url = absolute(item.url || item['@id'] || '');
        const text = clean(item.name || '');
        if (url || text) return { url, text };
      } else if (clean(item)) {
        const text = clean(item);
        return looksLikeUrl(text) ? { url: absolute(text), text: '' } : { url: null, text };
      }
    }
    return null;
  };

  // Candidates by absolute media URL.
  const found = new Map();
  const add = (url, extra) => {
    if (!url) return;
    const candidate = found.get(url) || { url, elements: [], ld: null, og: false };
    if (extra.element && !candidate.elements.includes(extra.element)) candidate.elements.push(extra.element);
    if (extra.ld && !candidate.ld) candidate.ld = extra.ld;
    if (extra.og) candidate.og = true;
    found.set(url, candidate);
  };
  for (const video of ldVideos) {
    const urls = ldUrls(video.contentUrl).concat(ldUrls(video.embedUrl).filter(isMediaFile));
    if (urls.length) add(urls[0], { ld: video });
  }
  const preference = (source) => {
    const hint = (source.type || '') + ' ' + new URL(source.url).pathname;
    if (/mp4|m4v/i.test(hint)) return 0;
    if (/webm/i.test(hint)) return 1;
    return 2;
  };
  for (const video of document.querySelectorAll('video')) {
    let url = absolute(video.getAttribute('src'));
    if (!url) {
      const sources = [...video.querySelectorAll('source[src]')]
        .map((s) => ({ url: absolute(s.getAttribute('src')), type: s.getAttribute('type') }))
        .filter((s) => s.url);
      sources.sort((a, b) => preference(a) - preference(b));
      url = sources.length ? sources[0].url : null;
    }
    add(url, { element: video });
  }
  const ogType = meta('og:video:type');
  if (!ogType || /^video\//i.test(ogType)) {
    const seen = new Set();
    for (const value of metaAll('og:video:secure_url', 'og:video:url', 'og:video')) {
      const url = absolute(value);
      if (!url || (!ogType && !isMediaFile(url))) continue;
      const key = url.replace(/^https?:/, '');
      if (seen.has(key)) continue;
      seen.add(key);
      add(url, { og: true });
    }
  }
  for (const link of document.querySelectorAll('a[href]')) {
    const url = absolute(link.getAttribute('href'));
    if (url && isMediaFile(url)) add(url, { element: link });
  }
  const candidates = [...found.values()];

  // License declarations.
  const licenseElements = [...document.querySelectorAll('a[rel][href], link[rel][href], area[rel][href]')]
    .filter((e) => /(^|\s)license(\s|$)/i.test(e.getAttribute('rel')));
  const licenseOf = (e) => ({
    url: absolute(e.getAttribute('href')),
    text: clean(e.tagName === 'LINK' ? e.getAttribute('title') : (e.textContent || e.getAttribute('title'))),
  });
  const depthOf = (node) => { let depth = 0; for (let n = node.parentElement; n; n = n.parentElement) depth++; return depth; };
  const commonDepth = (a, b) => {
    const mine = new Set();
    for (let n = a; n; n = n.parentElement) mine.add(n);
    for (let n = b; n; n = n.parentElement) if (mine.has(n)) return depthOf(n);
    return -1;
  };
  const placed = candidates.filter((c) => c.elements.length);
  const owners = licenseElements.map((license) => {
    let depth = -1, who = [];
    for (const c of placed) {
      const d = Math.max(...c.elements.map((e) => commonDepth(e, license)));
      if (d > depth) { depth = d; who = [c]; } else if (d === depth) who.push(c);
    }
    return { license, depth, who };
  });
  const linkLicense = (c) => {
    let best = null;
    for (const o of owners) if (o.who.includes(c) && (!best || o.depth > best.depth)) best = o;
    return best ? licenseOf(best.license) : null;
  };
  const pageWide = owners.find((o) => o.who.length === placed.length);
  const pageLicense = pageWide ? licenseOf(pageWide.license) : null;
  const metaLicenseText = meta('license', 'dcterms.license', 'dc.rights', 'dcterms.rights', 'dc.license');
  const metaLicense = !metaLicenseText ? null
    : looksLikeUrl(metaLicenseText) ? { url: absolute(metaLicenseText), text: '' } : { url: null, text: metaLicenseText };

  // Titles: JSON-LD, og:title (for the page's own video), the element's own label, its caption or heading.
  const ogTitle = meta('og:title', 'twitter:title');
  const nearbyHeading = (element) => {
    const figure = element.closest('figure');
    const caption = figure && figure.querySelector('figcaption');
    if (caption && clean(caption.textContent)) return clean(caption.textContent);
    let node = element;
    for (let level = 0; node && node !== document.body && level < 4; level++, node = node.parentElement) {
      let sibling = node.previousElementSibling;
      for (let i = 0; sibling && i < 6; i++, sibling = sibling.previousElementSibling) {
        if (/^H[1-6]$/.test(sibling.tagName) && clean(sibling.textContent)) return clean(sibling.textContent);
      }
    }
    return '';
  };
  const ownLabel = (element) => {
    const label = clean(element.getAttribute('title') || element.getAttribute('aria-label'));
    if (label) return label;
    if (element.tagName === 'A') {
      const text = clean(element.textContent);
      if (text && !MEDIA_FILE.test(text) && !/^(download|video|link|here|click here|mp4|webm)$/i.test(text)) return text;
    }
    return '';
  };
  const titleOf = (c) => {
    const ld = c.ld ? ldText(c.ld.name) : '';
    if (ld) return ld;
    if (ogTitle && (c.og || candidates.length === 1)) return ogTitle;
    for (const element of c.elements) {
      const title = ownLabel(element) || nearbyHeading(element);
      if (title) return title;
    }
    return ogTitle || clean(document.title);
  };

  const pageTags = [
    ...metaAll('keywords', 'news_keywords').flatMap((k) => k.split(',')),
    ...metaAll('article:tag', 'video:tag', 'og:video:tag'),
  ].map(clean).filter(Boolean);
  const pageDescription = meta('og:description', 'description', 'twitter:description');

  const out = candidates.map((c) => ({
    media_url: c.url,
    title: titleOf(c),
    description: (c.ld && ldText(c.ld.description)) || pageDescription,
    tags: (c.ld ? ldKeywords(c.ld.keywords) : []).concat(pageTags),
    duration: (c.ld && ldText(c.ld.duration)) || (c.og ? meta('og:video:duration', 'video:duration') : ''),
    licenses: [
      c.ld ? ldLicense(c.ld.license) : null,
      c.elements.length ? linkLicense(c) : pageLicense,
      metaLicense,
    ].filter(Boolean),
  }));
  const robots = meta('robots').toLowerCase();
  const links = [...new Set([...document.querySelectorAll('a[href]')]
    .map((a) => absolute(a.getAttribute('href'))).filter(Boolean))].slice(0, 5000);
  return JSON.stringify({ url: location.href, links, nofollow: /\b(nofollow|none)\b/.test(robots), candidates: out });
})()"#;

/// Turns what a page declared into a [`Found`], normalizing URL, title, tags, duration and license.
fn to_found(page_url: &str, raw: RawCandidate) -> Option<Found> {
    let mut media = Url::parse(&raw.media_url).ok()?;
    if !matches!(media.scheme(), "http" | "https") {
        return None;
    }
    media.set_fragment(None);
    let title = match raw.title.trim() {
        "" => file_name(&media),
        title => title.to_string(),
    };
    let (license, license_url) = resolve_license(&raw.licenses);
    Some(Found {
        page_url: page_url.to_string(),
        media_url: media.to_string(),
        title,
        description: raw.description.trim().to_string(),
        tags: clean_tags(raw.tags),
        duration_s: parse_duration(&raw.duration),
        license,
        license_url,
    })
}

fn file_name(url: &Url) -> String {
    url.path_segments().and_then(|mut segments| segments.next_back()).unwrap_or_default().to_string()
}

/// Trimmed, without empties or case-insensitive duplicates, at most 32.
fn clean_tags(tags: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    tags.into_iter()
        .map(|tag| tag.trim().to_string())
        .filter(|tag| !tag.is_empty() && seen.insert(tag.to_lowercase()))
        .take(32)
        .collect()
}

/// The first (most specific) declaration wins, normalized: its URL if that is a known license, else its text if
/// that is, else the raw text (or URL) lower-cased.
fn resolve_license(declarations: &[RawLicense]) -> (Option<String>, Option<String>) {
    let present =
        |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    for declaration in declarations {
        let (url, text) = (present(&declaration.url), present(&declaration.text));
        let known = url.as_deref().and_then(known_license).or_else(|| text.as_deref().and_then(known_license));
        let license = match known {
            Some(known) => Some(known.to_string()),
            None => text.clone().or_else(|| url.clone()).map(|raw| raw.to_lowercase()),
        };
        if license.is_some() {
            return (license, url);
        }
    }
    (None, None)
}

/// Normalizes a license URL or text: `cc0`, `public-domain` or `cc-by[-nc][-sa|-nd]`, else the raw value
/// lower-cased; `None` when empty.
pub fn normalize_license(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(known_license(raw).map_or_else(|| raw.to_lowercase(), str::to_string))
}

/// The normalized name of a license we recognize.
fn known_license(raw: &str) -> Option<&'static str> {
    let lower = raw.trim().to_ascii_lowercase();
    if let Some(at) = lower.find("creativecommons.org/") {
        let path = &lower[at + "creativecommons.org/".len()..];
        if path.starts_with("publicdomain/zero") {
            return Some("cc0");
        }
        if path.starts_with("publicdomain") {
            return Some("public-domain");
        }
        if let Some(rest) = path.strip_prefix("licenses/") {
            return match rest.split(['/', '?', '#']).next().unwrap_or_default() {
                "by" => Some("cc-by"),
                "by-sa" => Some("cc-by-sa"),
                "by-nd" => Some("cc-by-nd"),
                "by-nc" => Some("cc-by-nc"),
                "by-nc-sa" => Some("cc-by-nc-sa"),
                "by-nc-nd" | "by-nd-nc" => Some("cc-by-nc-nd"),
                _ => None,
            };
        }
    }
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has = |word: &str| words.contains(&word);
    let has_pair = |a: &str, b: &str| words.windows(2).any(|w| w[0] == a && w[1] == b);
    let creative_commons = has("cc") || has("creativecommons") || has_pair("creative", "commons");
    if has("cc0") || (creative_commons && has("zero")) {
        return Some("cc0");
    }
    // Wikimedia's PD-* templates ("PD-old", "PD-USGov") all mean public domain.
    if has_pair("public", "domain") || has("publicdomain") || words.first() == Some(&"pd") {
        return Some("public-domain");
    }
    if !creative_commons {
        return None;
    }
    let by = has("by") || has("attribution");
    let nc = has("nc") || has("noncommercial") || has_pair("non", "commercial");
    let sa = has("sa") || has("sharealike") || has_pair("share", "alike");
    let nd = has("nd") || has("noderivs") || has("noderivatives") || has_pair("no", "derivatives");
    match (by || nc || sa || nd, nc, sa, nd) {
        (false, ..) | (true, _, true, true) => None,
        (true, false, false, false) => Some("cc-by"),
        (true, false, true, false) => Some("cc-by-sa"),
        (true, false, false, true) => Some("cc-by-nd"),
        (true, true, false, false) => Some("cc-by-nc"),
        (true, true, true, false) => Some("cc-by-nc-sa"),
        (true, true, false, true) => Some("cc-by-nc-nd"),
    }
}

/// Seconds from an ISO-8601 duration (`PT1M30S`, `P1DT2H`, `PT4.5S`), plain seconds (`90`) or `h:mm:ss`.
pub fn parse_duration(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let seconds = if let Ok(plain) = raw.parse::<f64>() {
        plain
    } else if raw.contains(':') {
        raw.split(':').try_fold(0.0, |acc, part| part.trim().parse::<f64>().ok().map(|v| acc * 60.0 + v))?
    } else {
        let upper = raw.to_ascii_uppercase();
        let rest = upper.strip_prefix('P')?;
        let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
        let date_units: &[(char, f64)] =
            &[('Y', 365.0 * 86400.0), ('M', 30.0 * 86400.0), ('W', 7.0 * 86400.0), ('D', 86400.0)];
        let time_units: &[(char, f64)] = &[('H', 3600.0), ('M', 60.0), ('S', 1.0)];
        iso_part(date, date_units)? + iso_part(time, time_units)?
    };
    (seconds.is_finite() && seconds > 0.0).then_some(seconds)
}

/// Sums `<number><unit>` pairs; `None` on anything else.
fn iso_part(part: &str, units: &[(char, f64)]) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    for c in part.chars() {
        if c.is_ascii_digit() || c == '.' || c == ',' {
            number.push(if c == ',' { '.' } else { c });
        } else {
            let (_, scale) = units.iter().find(|(unit, _)| *unit == c)?;
            total += number.parse::<f64>().ok()? * scale;
            number.clear();
        }
    }
    number.is_empty().then_some(total)
}

// ---------------------------------------------------------------------------------------------------------------
// Play-before-download
// ---------------------------------------------------------------------------------------------------------------

/// Plays a URL in a muted, autoplaying `<video>` and reports what happened, as JSON. Called with the URL and the
/// metadata, play-start and play-window timeouts in milliseconds.
const PROBE_JS: &str = r#"async (url, metadataMs, startMs, playMs) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const video = document.createElement('video');
  video.muted = true;
  video.defaultMuted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.preload = 'auto';
  (document.body || document.documentElement).appendChild(video);
  const report = (stage, extra) => JSON.stringify(Object.assign({
    stage,
    width: video.videoWidth,
    height: video.videoHeight,
    duration: Number.isFinite(video.duration) ? video.duration : null,
    error_code: video.error ? video.error.code : 0,
    error_message: video.error ? (video.error.message || '') : '',
  }, extra || {}));
  const stage = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), metadataMs);
    video.addEventListener('loadedmetadata', () => { clearTimeout(timer); resolve('metadata'); }, { once: true });
    video.addEventListener('error', () => { clearTimeout(timer); resolve('error'); }, { once: true });
    video.src = url;
  });
  if (stage !== 'metadata') return report(stage);
  const start = video.currentTime;
  let playError = '';
  try {
    const started = await Promise.race([video.play().then(() => true), sleep(startMs).then(() => false)]);
    if (!started) playError = 'playback did not start';
  } catch (e) {
    playError = String((e && (e.message || e.name)) || e);
  }
  if (!playError) await sleep(playMs);
  const result = report('played', { advanced: video.currentTime - start, ended: video.ended, play_error: playError });
  // Stop downloading right away; the tab is closed next anyway.
  video.pause();
  video.removeAttribute('src');
  video.load();
  return result;
}"#;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawProbe {
    stage: String,
    width: u32,
    height: u32,
    duration: Option<f64>,
    error_code: u32,
    error_message: String,
    advanced: f64,
    ended: bool,
    play_error: String,
}

/// What the network said about the media request, to explain a failure.
#[derive(Debug, Default)]
struct MediaHttp {
    status: Option<i64>,
    failure: Option<String>,
}

async fn play_in(page: &Page, url: &Url, robots: &Politeness, min_gap: Duration) -> Result<PlayProbe, String> {
    // The blank tab requests nothing but the media (and its redirects), so every response status seen here is the
    // media's. The "extra info" event also reports responses the browser then refuses to hand to the page (an HTML
    // error page is blocked as "not media" before the page sees it).
    let mut responses = page.event_listener::<EventResponseReceivedExtraInfo>().await.map_err(|e| e.to_string())?;
    let mut failures = page.event_listener::<EventLoadingFailed>().await.map_err(|e| e.to_string())?;
    let mut guard =
        RequestGuard::install(page, robots, ResourceType::Media, &[], min_gap).await.map_err(|e| e.to_string())?;
    let json_url = serde_json::to_string(url.as_str()).map_err(|e| e.to_string())?;
    let expression = format!(
        "({PROBE_JS})({json_url}, {}, {}, {})",
        METADATA_TIMEOUT.as_millis(),
        PLAY_START_TIMEOUT.as_millis(),
        PLAY_WINDOW.as_millis()
    );
    let mut evaluate = EvaluateParams::new(expression);
    evaluate.await_promise = Some(true);
    evaluate.return_by_value = Some(true);
    let result = match guard.run(page.evaluate_expression(evaluate)).await {
        Ok(result) => result,
        Err(CdpError::JavascriptException(e)) => {
            return Ok(PlayProbe::failed(format!("probe script error ({})", e.text)))
        }
        Err(e) => return Err(e.to_string()),
    };
    let json: String = result.into_value().map_err(|e| format!("unexpected probe result ({e})"))?;
    let raw: RawProbe = serde_json::from_str(&json).map_err(|e| format!("unexpected probe result ({e})"))?;
    if let Some(refusal) = guard.refusal() {
        return Ok(PlayProbe::failed(refusal));
    }
    let mut http = MediaHttp::default();
    while let Some(Some(event)) = responses.next().now_or_never() {
        http.status = Some(event.status_code);
    }
    while let Some(Some(event)) = failures.next().now_or_never() {
        if event.r#type == ResourceType::Media && event.canceled != Some(true) {
            http.failure = Some(event.error_text.clone());
        }
    }
    Ok(interpret_probe(&raw, &http))
}

fn interpret_probe(raw: &RawProbe, http: &MediaHttp) -> PlayProbe {
    let mut probe = PlayProbe {
        playable: false,
        width: raw.width,
        height: raw.height,
        duration_s: raw.duration.filter(|d| d.is_finite() && *d > 0.0),
        advanced_s: raw.advanced.max(0.0),
        error: None,
    };
    let network = || match (http.status.filter(|s| *s >= 400), &http.failure) {
        (Some(status), _) => format!("network error (HTTP {status})"),
        (None, Some(failure)) if failure.contains("ERR_BLOCKED_BY_ORB") => {
            "the server did not send a video (the browser blocked the response as not media)".to_string()
        }
        (None, Some(failure)) => format!("network error ({failure})"),
        (None, None) => "network error".to_string(),
    };
    let detail = if raw.error_message.is_empty() { String::new() } else { format!(" ({})", raw.error_message) };
    let error = if raw.error_code != 0 {
        // HTMLMediaElement error codes; Chromium reports a failed HTTP request as "source not supported", so the
        // network events decide between the two.
        Some(match raw.error_code {
            1 => "the browser cannot play it: loading was aborted".to_string(),
            2 => format!("the browser cannot play it: {}", network()),
            3 => format!("the browser cannot play it: decode error{detail}"),
            _ if http.status.is_some_and(|s| s >= 400) || http.failure.is_some() => {
                format!("the browser cannot play it: {}", network())
            }
            _ => format!("the browser cannot play it: format not supported{detail}"),
        })
    } else if raw.stage == "timeout" {
        Some(format!("no metadata within {}", secs(METADATA_TIMEOUT)))
    } else if raw.stage != "played" {
        Some(format!("the browser cannot play it ({})", raw.stage))
    } else if raw.width == 0 || raw.height == 0 {
        Some("the browser cannot play it: no video track".to_string())
    } else if !raw.play_error.is_empty() {
        Some(format!("the browser would not play it ({})", raw.play_error))
    } else if raw.advanced < MIN_ADVANCE_S && !raw.ended {
        Some(format!("playback stalled: {:.1} s played in {}", raw.advanced.max(0.0), secs(PLAY_WINDOW)))
    } else {
        None
    };
    probe.playable = error.is_none();
    probe.error = error;
    probe
}

// ---------------------------------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------------------------------

/// The start pages plus the search page, validated, fragments stripped.
fn seed_urls(spec: &CrawlSpec) -> Result<Vec<Url>, BrowserError> {
    let mut raw: Vec<String> = spec.start_urls.clone();
    if let Some(template) = &spec.search_url {
        let query = spec.query.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let Some(query) = query else { return Err(BrowserError::MissingQuery { template: template.clone() }) };
        let encoded: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
        raw.push(template.replace("{query}", &encoded));
    }
    raw.iter()
        .map(|text| {
            let invalid = |reason: String| BrowserError::InvalidUrl { url: text.clone(), reason };
            let mut url = Url::parse(text.trim()).map_err(|e| invalid(e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid("only http(s) URLs with a host can be crawled".to_string()));
            }
            url.set_fragment(None);
            Ok(url)
        })
        .collect()
}

/// A link worth navigating to: http(s), fragment stripped, not a media or other non-page file.
fn page_link(raw: &str) -> Option<Url> {
    let mut url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    url.set_fragment(None);
    let extension = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension {
        Some(ext) if MEDIA_EXTENSIONS.contains(&ext.as_str()) || NOT_PAGE_EXTENSIONS.contains(&ext.as_str()) => None,
        _ => Some(url),
    }
}

/// Which hosts a crawl may follow links to.
struct SiteScope {
    any: bool,
    domains: Vec<String>,
}

impl SiteScope {
    fn new(spec: &CrawlSpec, seeds: &[Url]) -> SiteScope {
        let bare = |host: &str| host.trim().trim_matches('.').trim_start_matches("www.").to_ascii_lowercase();
        let mut domains: Vec<String> = seeds.iter().filter_map(Url::host_str).map(bare).collect();
        domains.extend(spec.allow_domains.iter().map(|d| bare(d)).filter(|d| !d.is_empty()));
        domains.sort();
        domains.dedup();
        SiteScope { any: !spec.same_site, domains }
    }

    fn contains(&self, url: &Url) -> bool {
        if self.any {
            return true;
        }
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else { return false };
        self.domains.iter().any(|d| host == *d || host.strip_suffix(d.as_str()).is_some_and(|rest| rest.ends_with('.')))
    }
}

/// Records `first` and everything left in the frontier as skipped for `reason`.
fn skip_rest(crawl: &mut Crawl, first: Url, frontier: VecDeque<(Url, u32)>, reason: &str) {
    crawl.skipped.push((first.to_string(), reason.to_string()));
    crawl.skipped.extend(frontier.into_iter().map(|(url, _)| (url.to_string(), reason.to_string())));
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn secs(duration: Duration) -> String {
    let s = duration.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// An error with its causes: reqwest's own message hides the useful part ("connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{header, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use axum::Router;

    const UA: &str = "VVTV/0.1 (+https://vvtv.invalid/contact)";

    fn init_tracing() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }

    fn options(page_timeout: Duration) -> BrowserOptions {
        BrowserOptions {
            chromium: PathBuf::from("/usr/bin/chromium"),
            user_agent: UA.to_string(),
            page_timeout,
            min_delay_per_domain: Duration::from_millis(100),
        }
    }

    fn politeness() -> Politeness {
        Politeness::new(UA, reqwest::Client::new()).with_min_delay(Duration::from_millis(100))
    }

    /// Chromium processes still running with `profile` on their command line.
    fn chromium_processes(profile: &Path) -> String {
        let output = Command::new("pgrep").arg("-f").arg(profile).output().expect("pgrep runs");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    // ------------------------------------------------------------------------------------------------------------
    // A fixture web site on 127.0.0.1 that logs every request
    // ------------------------------------------------------------------------------------------------------------

    struct Site {
        robots: (StatusCode, String),
        pages: HashMap<&'static str, &'static str>,
        media: HashMap<String, Vec<u8>>,
        redirects: HashMap<&'static str, &'static str>,
        log: Mutex<Vec<(std::time::Instant, String)>>,
        /// A path whose request kills a Chromium process group, to simulate a browser crash.
        kill_on: Mutex<Option<(String, libc::pid_t)>>,
    }

    impl Site {
        fn new(robots: (StatusCode, &str)) -> Site {
            Site {
                robots: (robots.0, robots.1.to_string()),
                pages: HashMap::new(),
                media: HashMap::new(),
                redirects: HashMap::from([("/redirect-private", "/private/trap.html")]),
                log: Mutex::new(Vec::new()),
                kill_on: Mutex::new(None),
            }
        }

        fn requests(&self) -> Vec<(std::time::Instant, String)> {
            lock(&self.log).clone()
        }

        fn paths(&self) -> Vec<String> {
            self.requests().into_iter().map(|(_, path)| path).collect()
        }
    }

    async fn serve(State(site): State<Arc<Site>>, uri: Uri) -> Response {
        let path = uri.path().to_string();
        lock(&site.log).push((std::time::Instant::now(), path.clone()));
        let kill = lock(&site.kill_on).take_if(|(on, _)| *on == path);
        if let Some((_, pgid)) = kill {
            // SAFETY: a plain syscall on the test's own Chromium.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        if path == "/robots.txt" {
            return (site.robots.0, [(header::CONTENT_TYPE, "text/plain")], site.robots.1.clone()).into_response();
        }
        if let Some(target) = site.redirects.get(path.as_str()) {
            return (StatusCode::FOUND, [(header::LOCATION, *target)]).into_response();
        }
        if let Some(bytes) = site.media.get(&path) {
            return ([(header::CONTENT_TYPE, "video/mp4")], bytes.clone()).into_response();
        }
        match site.pages.get(path.as_str()) {
            Some(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], *html).into_response(),
            None => {
                (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html")], "<h1>Not found</h1>").into_response()
            }
        }
    }

    /// Serves `site` on 127.0.0.1 and returns its base URL (no trailing slash).
    async fn start(site: Arc<Site>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new().fallback(serve).with_state(site);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    const ROBOTS: &str = "User-agent: *\nDisallow: /private/\nCrawl-delay: 1\n";

    const INDEX: &str = r#"<!doctype html><html><head><title>VVTV fixture</title></head><body>
        <h1>Fixture</h1>
        <a href="/cc-by.html">CC BY video</a> <a href="/cc0.html#top">CC0 video</a>
        <a href="/unlicensed.html">Unlicensed</a> <a href="/links.html">Links</a> <a href="/gallery.html">Gallery</a>
        <a href="/og.html">Open Graph</a>
        <a href="/private/secret.html">Private</a> <a href="/redirect-private">Moved</a>
        <a href="/missing.html">Missing</a> <a href="/cc-by.html#again">CC BY again</a>
        <a href="http://elsewhere.invalid/page.html">Elsewhere</a> <a href="mailto:someone@example.org">Mail</a>
        <form action="/private/form-target" method="post"><input name="q" value="x"><button>Go</button></form>
        </body></html>"#;

    const CC_BY: &str = r#"<!doctype html><html><head><title>CC BY page</title>
        <meta name="description" content="A test pattern in HD."><meta name="keywords" content="test, pattern, HD">
        </head><body><h1>Test pattern</h1>
        <video src="/media/good.mp4" title="Test pattern in HD" controls></video>
        <script>JSON.stringify = () => "null"; /* page scripts cannot tamper with the extraction */</script>
        <p>Licensed under <a rel="license" href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a>.</p>
        </body></html>"#;

    const CC0: &str = r#"<!doctype html><html><head><title>CC0 page</title>
        <script type="application/ld+json">{"@context": "https://schema.org", "@graph": [
          {"@type": "WebPage", "name": "A page"},
          {"@type": "VideoObject", "name": "Zero Rights Clip", "description": "Dedicated to the public domain.",
           "contentUrl": "/media/cc0.mp4", "duration": "PT1M30S", "keywords": "zero, clip",
           "license": "https://creativecommons.org/publicdomain/zero/1.0/"}]}</script>
        </head><body><h1>Nothing to see</h1></body></html>"#;

    const UNLICENSED: &str = r#"<!doctype html><html><head><title>Unlicensed page</title>
        <meta property="og:title" content="An unlicensed clip"></head><body>
        <video controls><source src="/media/unlicensed.webm" type="video/webm">
        <source src="/media/unlicensed.mp4" type="video/mp4"></video></body></html>"#;

    const LINKS: &str = r#"<!doctype html><html><head><title>Links</title></head><body><h1>Downloads</h1>
        <p><a href="/media/linked.mp4">Linked clip</a> <a href="/media/good.mp4">Same clip again</a></p>
        <a href="/deep.html">Deeper</a> <a href="/deeper1.html">One</a> <a href="/deeper2.html">Two</a>
        </body></html>"#;

    const DEEP: &str = r#"<!doctype html><html><head><title>Deep</title></head><body>
        <video src="/media/deep.mp4" aria-label="Deep clip"></video><a href="/deepest.html">Deepest</a>
        </body></html>"#;

    const GALLERY: &str = r#"<!doctype html><html><head><title>Gallery</title></head><body><h1>Gallery</h1>
        <figure><video src="/media/low.mp4"></video><figcaption>Low resolution sample</figcaption>
          <a rel="license" href="/terms.html">CC BY-SA 4.0</a></figure>
        <figure><video src="/media/broken.mp4"></video><figcaption>Broken file</figcaption>
          <small><a rel="license" href="https://creativecommons.org/licenses/by-nc-nd/4.0/">license</a></small></figure>
        <figure><video src="/media/bare.mp4"></video><figcaption>No license here</figcaption></figure>
        <footer>Gallery footer</footer></body></html>"#;

    const OPEN_GRAPH: &str = r#"<!doctype html><html><head><title>OG page</title>
        <meta property="og:title" content="Open Graph clip">
        <meta property="og:description" content="Declared with Open Graph.">
        <meta property="og:video" content="/media/og.mp4"><meta property="og:video:secure_url" content="/media/og.mp4">
        <meta property="og:video:type" content="video/mp4"><meta property="video:duration" content="42">
        <meta property="article:tag" content="graph"><meta name="dcterms.license" content="CC BY-NC 4.0">
        <script type="application/ld+json">{"@type": "VideoObject", "name": "A player, not a file",
          "embedUrl": "https://player.example/embed/1"}</script>
        </head><body><p>A player would be here.</p></body></html>"#;

    const PLAIN: &str = "<!doctype html><html><head><title>Plain</title></head><body><p>Nothing.</p></body></html>";
    const HANG: &str = "<!doctype html><html><body><script>for (;;) {}</script></body></html>";
    const RECOVER: &str = r#"<!doctype html><html><body><a href="/crash.html">Crash</a> <a href="/hang.html">Hang</a>
        <a href="/cc-by.html">CC BY</a></body></html>"#;

    fn fixture_site() -> Site {
        let mut site = Site::new((StatusCode::OK, ROBOTS));
        site.pages = HashMap::from([
            ("/", INDEX),
            ("/cc-by.html", CC_BY),
            ("/cc0.html", CC0),
            ("/unlicensed.html", UNLICENSED),
            ("/links.html", LINKS),
            ("/deep.html", DEEP),
            ("/deeper1.html", PLAIN),
            ("/deeper2.html", PLAIN),
            ("/deepest.html", PLAIN),
            ("/gallery.html", GALLERY),
            ("/og.html", OPEN_GRAPH),
            ("/terms.html", PLAIN),
            ("/private/secret.html", PLAIN),
            ("/private/trap.html", PLAIN),
            ("/hang.html", HANG),
            ("/crash.html", PLAIN),
            ("/recover.html", RECOVER),
        ]);
        for name in ["good", "cc0", "unlicensed", "linked", "deep", "low", "broken", "bare", "og"] {
            site.media.insert(format!("/media/{name}.mp4"), b"not really a video".to_vec());
        }
        site
    }

    /// Test videos made with GStreamer: 3 s of H.264/AAC in MP4 at `width`x`height`.
    fn make_video(dir: &Path, name: &str, width: u32, height: u32) -> Vec<u8> {
        let path = dir.join(name);
        let pipeline = format!(
            "videotestsrc num-buffers=90 ! video/x-raw,format=I420,width={width},height={height},framerate=30/1 \
             ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux name=mux faststart=true ! filesink location={} \
             audiotestsrc num-buffers=140 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 ! audioconvert \
             ! avenc_aac ! aacparse ! mux.",
            path.display()
        );
        let status = Command::new("gst-launch-1.0")
            .arg("-q")
            .arg("-e")
            .args(pipeline.split_whitespace())
            .status()
            .expect("gst-launch-1.0 runs");
        assert!(status.success(), "gst-launch-1.0 failed for {name}");
        std::fs::read(&path).expect("read the generated video")
    }

    // ------------------------------------------------------------------------------------------------------------
    // Pure functions
    // ------------------------------------------------------------------------------------------------------------

    #[test]
    fn licenses_are_normalized() {
        let cases = [
            ("https://creativecommons.org/licenses/by/4.0/", Some("cc-by")),
            ("http://creativecommons.org/licenses/by-sa/3.0/deed.en", Some("cc-by-sa")),
            ("https://creativecommons.org/licenses/by-nd/4.0", Some("cc-by-nd")),
            ("https://creativecommons.org/licenses/by-nc/2.0/", Some("cc-by-nc")),
            ("https://creativecommons.org/licenses/by-nc-sa/4.0/", Some("cc-by-nc-sa")),
            ("https://creativecommons.org/licenses/by-nc-nd/4.0/", Some("cc-by-nc-nd")),
            ("https://creativecommons.org/publicdomain/zero/1.0/", Some("cc0")),
            ("https://creativecommons.org/publicdomain/mark/1.0/", Some("public-domain")),
            ("CC BY-SA 4.0", Some("cc-by-sa")),
            ("CC-BY-4.0", Some("cc-by")),
            ("CC0-1.0", Some("cc0")),
            ("cc by nc nd", Some("cc-by-nc-nd")),
            ("Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International", Some("cc-by-nc-sa")),
            ("Public Domain", Some("public-domain")),
            ("PD-USGov", Some("public-domain")),
            ("Creative Commons Zero", Some("cc0")),
            ("CC0 1.0 Universal", Some("cc0")),
            ("cc-by", Some("cc-by")),
            ("All Rights Reserved", Some("all rights reserved")),
            ("https://example.org/Terms", Some("https://example.org/terms")),
            ("  ", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_license(raw).as_deref(), expected, "{raw}");
        }
    }

    #[test]
    fn the_most_specific_license_declaration_wins() {
        let declaration = |url: Option<&str>, text: Option<&str>| RawLicense {
            url: url.map(str::to_string),
            text: text.map(str::to_string),
        };
        // A link whose address says nothing but whose text names the license.
        let (license, url) = resolve_license(&[declaration(Some("http://h/terms"), Some("CC BY-SA 4.0"))]);
        assert_eq!(license.as_deref(), Some("cc-by-sa"));
        assert_eq!(url.as_deref(), Some("http://h/terms"));
        // An unrecognized but more specific declaration is not overridden by a recognized page-wide one.
        let (license, _) = resolve_license(&[
            declaration(None, Some("All rights reserved")),
            declaration(Some("https://creativecommons.org/licenses/by/4.0/"), None),
        ]);
        assert_eq!(license.as_deref(), Some("all rights reserved"));
        assert_eq!(resolve_license(&[declaration(Some(" "), Some(""))]), (None, None));
    }

    #[test]
    fn durations_are_parsed() {
        let cases = [
            ("PT1M30S", Some(90.0)),
            ("PT1H2M3.5S", Some(3723.5)),
            ("P1DT1S", Some(86401.0)),
            ("pt45s", Some(45.0)),
            ("90", Some(90.0)),
            ("1:02:03", Some(3723.0)),
            ("PT0S", None),
            ("PT1X", None),
            ("soon", None),
            ("", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse_duration(raw), expected, "{raw}");
        }
    }

    #[test]
    fn links_are_normalized_and_scoped() {
        assert_eq!(page_link("https://a.example/x#frag").map(String::from), Some("https://a.example/x".into()));
        assert_eq!(page_link("https://a.example/video.MP4"), None);
        assert_eq!(page_link("https://a.example/poster.jpg"), None);
        assert_eq!(page_link("mailto:x@a.example"), None);
        assert_eq!(page_link("javascript:void(0)"), None);

        let spec = CrawlSpec {
            start_urls: vec!["https://www.a.example/".into()],
            search_url: Some("https://search.b.example/?q={query}".into()),
            query: Some("test pattern & more".into()),
            allow_domains: vec!["c.example".into()],
            ..CrawlSpec::default()
        };
        let seeds = seed_urls(&spec).expect("valid seeds");
        assert_eq!(seeds[1].as_str(), "https://search.b.example/?q=test+pattern+%26+more");
        let scope = SiteScope::new(&spec, &seeds);
        for (url, inside) in [
            ("https://a.example/page", true),
            ("https://media.a.example/page", true),
            ("https://search.b.example/next", true),
            ("https://b.example/", false),
            ("https://c.example/x", true),
            ("https://evil-a.example/", false),
            ("https://a.example.evil/", false),
        ] {
            assert_eq!(scope.contains(&Url::parse(url).expect("url")), inside, "{url}");
        }
        let open = SiteScope::new(&CrawlSpec { same_site: false, ..spec.clone() }, &seeds);
        assert!(open.contains(&Url::parse("https://anywhere.example/").expect("url")));

        let missing_query = CrawlSpec { query: None, ..spec };
        assert!(matches!(seed_urls(&missing_query), Err(BrowserError::MissingQuery { .. })));
        let bad = CrawlSpec { start_urls: vec!["ftp://a.example/".into()], ..CrawlSpec::default() };
        let error = seed_urls(&bad).expect_err("ftp is refused").to_string();
        assert!(error.contains("ftp://a.example/"), "{error}");
    }

    #[test]
    fn probe_failures_are_explained() {
        let raw = |code: u32| RawProbe { stage: "error".into(), error_code: code, ..RawProbe::default() };
        let not_found = MediaHttp { status: Some(404), failure: None };
        let probe = interpret_probe(&raw(4), &not_found);
        assert_eq!(probe.error.as_deref(), Some("the browser cannot play it: network error (HTTP 404)"));
        let probe = interpret_probe(&raw(4), &MediaHttp { status: Some(200), failure: None });
        assert!(probe.error.as_deref().is_some_and(|e| e.contains("format not supported")), "{probe:?}");
        let timeout = RawProbe { stage: "timeout".into(), ..RawProbe::default() };
        assert_eq!(interpret_probe(&timeout, &MediaHttp::default()).error.as_deref(), Some("no metadata within 15 s"));
        let stalled = RawProbe { stage: "played".into(), width: 2, height: 2, advanced: 0.1, ..RawProbe::default() };
        assert!(interpret_probe(&stalled, &MediaHttp::default()).error.is_some_and(|e| e.contains("stalled")));
        let good = RawProbe {
            stage: "played".into(),
            width: 640,
            height: 360,
            duration: Some(f64::INFINITY),
            advanced: 2.0,
            ..RawProbe::default()
        };
        let probe = interpret_probe(&good, &MediaHttp::default());
        assert!(probe.playable && probe.error.is_none() && probe.duration_s.is_none(), "{probe:?}");
    }

    // ------------------------------------------------------------------------------------------------------------
    // robots.txt and pacing (real HTTP, no browser)
    // ------------------------------------------------------------------------------------------------------------

    #[tokio::test]
    async fn robots_txt_is_fetched_once_cached_and_obeyed() {
        let rules = "User-agent: VVTV\nDisallow: /nope/\nCrawl-delay: 0.5\n\nUser-agent: *\nDisallow: /\n";
        let site = Arc::new(Site::new((StatusCode::OK, rules)));
        let base = start(site.clone()).await;
        let robots = politeness();
        // Our own group applies, not the catch-all one.
        assert_eq!(robots.allowed(&format!("{base}/fine.html")).await, Ok(()));
        assert_eq!(robots.allowed(&format!("{base}/nope/x.html")).await, Err("disallowed by robots.txt".into()));
        assert!(robots.allowed("ftp://127.0.0.1/x").await.is_err());
        // Crawl-delay spaces the requests to one domain, and turns queue up.
        let started = Instant::now();
        for _ in 0..3 {
            robots.wait_turn(&format!("{base}/fine.html")).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(950), "{:?}", started.elapsed());
        let fetches = site.paths().iter().filter(|p| *p == "/robots.txt").count();
        assert_eq!(fetches, 1, "robots.txt is cached per origin");

        // No robots.txt: everything allowed.
        let missing = start(Arc::new(Site::new((StatusCode::NOT_FOUND, "")))).await;
        assert_eq!(robots.allowed(&format!("{missing}/anything")).await, Ok(()));
        // A server error: nothing allowed.
        let failing = start(Arc::new(Site::new((StatusCode::SERVICE_UNAVAILABLE, "")))).await;
        let refused = robots.allowed(&format!("{failing}/anything")).await.expect_err("5xx disallows");
        assert!(refused.contains("HTTP 503"), "{refused}");
        // Unreachable: nothing allowed.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = closed.local_addr().expect("address").port();
        drop(closed);
        let refused = robots.allowed(&format!("http://127.0.0.1:{port}/x")).await.expect_err("unreachable");
        assert!(refused.contains("unreachable"), "{refused}");
    }

    // ------------------------------------------------------------------------------------------------------------
    // The browser (real Chromium)
    // ------------------------------------------------------------------------------------------------------------

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crawl_finds_candidates_politely() {
        init_tracing();
        let site = Arc::new(fixture_site());
        let base = start(site.clone()).await;
        let robots = politeness();
        let mut browser = Browser::launch(&options(Duration::from_secs(30))).await.expect("Chromium starts");

        let spec = CrawlSpec { start_urls: vec![format!("{base}/")], depth: 1, ..CrawlSpec::default() };
        let started = std::time::Instant::now();
        let crawl = browser.crawl(&spec, &robots).await.expect("crawl runs");
        eprintln!("crawl of {} pages took {:.1} s", crawl.pages.len(), started.elapsed().as_secs_f64());
        eprintln!("{}", serde_json::to_string_pretty(&crawl).expect("json"));

        let by_media = |name: &str| {
            let url = format!("{base}/media/{name}");
            crawl.found.iter().find(|f| f.media_url == url).unwrap_or_else(|| panic!("{url} not found: {crawl:#?}"))
        };
        let cc_by = by_media("good.mp4");
        assert_eq!(cc_by.title, "Test pattern in HD");
        assert_eq!(cc_by.page_url, format!("{base}/cc-by.html"));
        assert_eq!(cc_by.license.as_deref(), Some("cc-by"));
        assert_eq!(cc_by.license_url.as_deref(), Some("https://creativecommons.org/licenses/by/4.0/"));
        assert_eq!(cc_by.description, "A test pattern in HD.");
        assert_eq!(cc_by.tags, ["test", "pattern", "HD"]);

        let cc0 = by_media("cc0.mp4");
        assert_eq!(cc0.title, "Zero Rights Clip");
        assert_eq!(cc0.license.as_deref(), Some("cc0"));
        assert_eq!(cc0.duration_s, Some(90.0));
        assert_eq!(cc0.description, "Dedicated to the public domain.");
        assert_eq!(cc0.tags, ["zero", "clip"]);

        let unlicensed = by_media("unlicensed.mp4");
        assert_eq!(unlicensed.title, "An unlicensed clip");
        assert_eq!(unlicensed.license, None);
        assert!(crawl.found.iter().all(|f| !f.media_url.ends_with(".webm")), "one candidate per <video>");

        assert_eq!(by_media("linked.mp4").title, "Linked clip");

        let low = by_media("low.mp4");
        assert_eq!((low.title.as_str(), low.license.as_deref()), ("Low resolution sample", Some("cc-by-sa")));
        assert_eq!(low.license_url, Some(format!("{base}/terms.html")));
        let broken = by_media("broken.mp4");
        assert_eq!((broken.title.as_str(), broken.license.as_deref()), ("Broken file", Some("cc-by-nc-nd")));
        let bare = by_media("bare.mp4");
        assert_eq!((bare.title.as_str(), bare.license.as_deref()), ("No license here", None));
        let og = by_media("og.mp4");
        assert_eq!(og.title, "Open Graph clip");
        assert_eq!(og.description, "Declared with Open Graph.");
        assert_eq!(og.duration_s, Some(42.0));
        assert_eq!(og.tags, ["graph"]);
        assert_eq!(og.license.as_deref(), Some("cc-by-nc"));
        // One candidate per media URL: the links page points at the CC BY clip again.
        assert_eq!(crawl.found.iter().filter(|f| f.media_url.ends_with("/good.mp4")).count(), 1);
        assert_eq!(crawl.found.len(), 8, "{:#?}", crawl.found);

        let reason = |url: &str| crawl.skipped.iter().find(|(u, _)| u == url).map(|(_, r)| r.as_str());
        assert_eq!(reason(&format!("{base}/private/secret.html")), Some("disallowed by robots.txt"));
        let moved = reason(&format!("{base}/redirect-private")).unwrap_or_default();
        assert!(moved.contains("/private/trap.html") && moved.contains("disallowed by robots.txt"), "{moved}");
        assert_eq!(reason(&format!("{base}/missing.html")), Some("HTTP 404"));
        assert_eq!(reason("http://elsewhere.invalid/page.html"), Some("off-site"));

        // Depth 1: the links page was read, but nothing it links to.
        assert!(crawl.pages.contains(&format!("{base}/links.html")));
        assert!(!crawl.pages.contains(&format!("{base}/deep.html")));
        assert_eq!(crawl.pages.len(), 9, "{:#?}", crawl.pages);
        assert_eq!(crawl.pages.iter().filter(|p| p.contains("cc-by.html")).count(), 1, "fragments are stripped");

        let requests = site.requests();
        let paths: Vec<&str> = requests.iter().map(|(_, p)| p.as_str()).collect();
        assert!(!paths.iter().any(|p| p.starts_with("/private/")), "a disallowed page was requested: {paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with("/media/")), "media is not loaded while crawling: {paths:?}");
        assert!(!paths.contains(&"/deep.html"), "depth was exceeded: {paths:?}");
        assert_eq!(paths.iter().filter(|p| **p == "/robots.txt").count(), 1);
        assert!(!paths.contains(&"/favicon.ico"), "Chromium fetched a favicon on its own: {paths:?}");
        // Crawl-delay: 1 is obeyed between page requests (the browser's minimum is only 100 ms).
        let times: Vec<std::time::Instant> =
            requests.iter().filter(|(_, p)| *p != "/robots.txt").map(|(t, _)| *t).collect();
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_millis(950), "requests {gap:?} apart: {paths:?}");
        }

        // A second run in the same browser: the page budget and the depth hold.
        let before = site.requests().len();
        let spec = CrawlSpec { start_urls: vec![format!("{base}/links.html")], depth: 1, page_budget: 2, ..spec };
        let crawl = browser.crawl(&spec, &robots).await.expect("crawl runs");
        assert_eq!(crawl.pages, [format!("{base}/links.html"), format!("{base}/deep.html")]);
        assert_eq!(reason_in(&crawl, &format!("{base}/deeper1.html")), Some("page budget reached"));
        assert_eq!(reason_in(&crawl, &format!("{base}/deeper2.html")), Some("page budget reached"));
        let found: Vec<&str> = crawl.found.iter().map(|f| f.title.as_str()).collect();
        assert_eq!(found, ["Linked clip", "Same clip again", "Deep clip"]);
        let later: Vec<String> = site.paths().split_off(before);
        assert_eq!(later, ["/links.html", "/deep.html"], "robots.txt is cached and nothing else is requested");

        // No time left: nothing is visited.
        let spec = CrawlSpec { time_budget: Duration::ZERO, ..spec };
        let crawl = browser.crawl(&spec, &robots).await.expect("crawl runs");
        assert!(crawl.pages.is_empty());
        assert_eq!(reason_in(&crawl, &format!("{base}/links.html")), Some("time budget reached"));

        let profile = browser.profiles[0].clone();
        browser.close().await;
        assert_eq!(chromium_processes(&profile), "");
        assert!(!profile.exists());
    }

    fn reason_in<'a>(crawl: &'a Crawl, url: &str) -> Option<&'a str> {
        crawl.skipped.iter().find(|(u, _)| u == url).map(|(_, r)| r.as_str())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn play_probe_reports_what_the_browser_can_play() {
        init_tracing();
        let media = tempfile::tempdir().expect("temp dir");
        let mut site = Site::new((StatusCode::OK, "User-agent: *\nDisallow: /private/\n"));
        site.media.insert("/media/good.mp4".into(), make_video(media.path(), "good.mp4", 1280, 720));
        site.media.insert("/media/low.mp4".into(), make_video(media.path(), "low.mp4", 320, 240));
        let noise: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        site.media.insert("/media/broken.mp4".into(), noise);
        site.media.insert("/private/clip.mp4".into(), Vec::new());
        site.redirects.insert("/media/moved.mp4", "/private/clip.mp4");
        let site = Arc::new(site);
        let base = start(site.clone()).await;
        let robots = politeness();
        let mut browser = Browser::launch(&options(Duration::from_secs(30))).await.expect("Chromium starts");

        let good = browser.play_probe(&format!("{base}/media/good.mp4"), &robots).await;
        assert!(good.playable, "{good:?}");
        assert_eq!((good.width, good.height), (1280, 720));
        assert!(good.duration_s.is_some_and(|d| (d - 3.0).abs() < 0.2), "{good:?}");
        assert!(good.advanced_s > MIN_ADVANCE_S, "{good:?}");

        let low = browser.play_probe(&format!("{base}/media/low.mp4"), &robots).await;
        assert!(low.playable, "{low:?}");
        assert_eq!((low.width, low.height), (320, 240));

        let broken = browser.play_probe(&format!("{base}/media/broken.mp4"), &robots).await;
        assert!(!broken.playable, "{broken:?}");
        let reason = broken.error.clone().unwrap_or_default();
        assert!(reason.starts_with("the browser cannot play it"), "{reason}");
        eprintln!("good: {good:?}\nlow: {low:?}\nbroken: {broken:?}");

        let missing = browser.play_probe(&format!("{base}/media/missing.mp4"), &robots).await;
        assert!(!missing.playable);
        assert_eq!(missing.error.as_deref(), Some("the browser cannot play it: network error (HTTP 404)"));

        let private = browser.play_probe(&format!("{base}/private/clip.mp4"), &robots).await;
        assert_eq!(private.error.as_deref(), Some("disallowed by robots.txt"));
        let moved = browser.play_probe(&format!("{base}/media/moved.mp4"), &robots).await;
        let expected = format!("redirected to {base}/private/clip.mp4, which is disallowed by robots.txt");
        assert_eq!(moved.error, Some(expected));
        let not_web = browser.play_probe("file:///etc/passwd", &robots).await;
        assert!(!not_web.playable);

        let paths = site.paths();
        assert!(!paths.iter().any(|p| p.starts_with("/private/")), "{paths:?}");
        browser.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crawl_survives_a_crashed_browser_and_a_hung_page() {
        init_tracing();
        let site = Arc::new(fixture_site());
        let base = start(site.clone()).await;
        let robots = politeness();
        let mut browser = Browser::launch(&options(Duration::from_secs(5))).await.expect("Chromium starts");
        let pid = browser.chromium_pid().expect("a running Chromium") as libc::pid_t;
        *lock(&site.kill_on) = Some(("/crash.html".to_string(), pid));

        let spec = CrawlSpec { start_urls: vec![format!("{base}/recover.html")], depth: 1, ..CrawlSpec::default() };
        let crawl = browser.crawl(&spec, &robots).await.expect("crawl runs");
        eprintln!("{}", serde_json::to_string_pretty(&crawl).expect("json"));

        let crashed = reason_in(&crawl, &format!("{base}/crash.html")).unwrap_or_default();
        assert!(crashed.starts_with("Chromium stopped while loading the page"), "{crashed}");
        let hung = reason_in(&crawl, &format!("{base}/hang.html")).unwrap_or_default();
        assert_eq!(hung, "the page did not load within 5 s");
        assert!(crawl.found.iter().any(|f| f.media_url == format!("{base}/media/good.mp4")), "{crawl:#?}");
        assert_eq!(crawl.pages.len(), 4);
        assert_eq!(browser.profiles.len(), 3, "one relaunch per failure");

        let profiles = browser.profiles.clone();
        browser.close().await;
        for profile in profiles {
            assert_eq!(chromium_processes(&profile), "", "{}", profile.display());
            assert!(!profile.exists());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_chromium_outlives_close_or_drop() {
        init_tracing();
        let opts = options(Duration::from_secs(30));

        let browser = Browser::launch(&opts).await.expect("Chromium starts");
        let profile = browser.profiles[0].clone();
        assert_ne!(chromium_processes(&profile), "", "Chromium runs with its own profile");
        browser.close().await;
        assert_eq!(chromium_processes(&profile), "");
        assert!(!profile.exists(), "the profile is removed");

        let browser = Browser::launch(&opts).await.expect("Chromium starts");
        let profile = browser.profiles[0].clone();
        assert_ne!(chromium_processes(&profile), "");
        drop(browser);
        assert_eq!(chromium_processes(&profile), "");
        assert!(!profile.exists(), "the profile is removed");

        let missing = BrowserOptions { chromium: PathBuf::from("/nonexistent/chromium"), ..opts };
        let error = Browser::launch(&missing).await.err().expect("no such binary").to_string();
        assert!(error.contains("/nonexistent/chromium"), "{error}");
    }
}
