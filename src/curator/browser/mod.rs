//! Web discovery for the curator: a headless Chromium that finds candidate videos on web pages, reads their metadata
//! and license, and checks that a video really plays before anything is downloaded (play-before-download).
//!
//! The station runs unattended against other people's sites, so politeness and safety come first:
//! - robots.txt and the per-domain pacing are obeyed for every page the browser is sent to and for every media URL
//!   before it is probed ([`Politeness`], in `curator/politeness.rs`). Redirects are covered too: every document
//!   request a crawled tab makes is paused and only released once robots.txt allows it, and the browser books its
//!   polite turn at the moment its request is released (`request_guard.rs`).
//! - The crawler only follows `<a href>` links. It never clicks, types or submits forms. While crawling, images, fonts
//!   and media are not loaded at all (everything we read is in the markup), which keeps the load on sites small.
//! - Chromium runs in its own process group with a throw-away profile. `close()` and `Drop` kill the whole group and
//!   remove the profile, so no browser process outlives its [`Browser`]. A crashed or hung browser is replaced and
//!   the crawl goes on.
//!
//! The curator decides what to accept; this module reports what it found, and why it skipped what it skipped.
//!
//! # Layout
//! - this file: the settings, requests and results, and the [`Browser`]: the crawl loop and replacing a dead session;
//! - `session.rs`: one live Chromium and its DevTools connection, running a page visit or a probe in a tab;
//! - `chromium.rs`: the Chromium process itself (flags, process group, kill, profile directory);
//! - `request_guard.rs`: what lets a tab's request leave the browser;
//! - `page.rs` (+ `extract.js`, `no_favicon.js`): loading one page and reading it into [`Found`] candidates;
//! - `play_probe.rs` (+ `probe.js`): play-before-download;
//! - `scope.rs`: seed URLs, which links are pages, and which sites a crawl may follow links to;
//! - `test_support.rs` (tests only): the fixture site's pages and the settings the browser and robots.txt tests use.

mod chromium;
mod page;
mod play_probe;
mod request_guard;
mod scope;
mod session;
#[cfg(test)]
pub(super) mod test_support;

pub use page::parse_duration;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use super::politeness::Politeness;
use page::{to_found, Visit, VisitError};
use scope::{page_link, seed_urls, SiteScope};
use session::{retire, Session};

/// A crawl gives up after this many browser failures (each one is followed by a relaunch).
const MAX_BROWSER_FAILURES: u32 = 5;

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
        self.session.as_ref().map(|s| s.process.pid())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Dropping the session kills the process group and removes the profile (see `ChromiumProcess`).
        self.session.take();
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

#[cfg(test)]
mod tests {
    use super::test_support::{chromium_processes, fixture_site, init_tracing, options, politeness};
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crawl_finds_candidates_politely() {
        init_tracing();
        let site = fixture_site().start();
        let base = site.base();
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

        let hits = site.hits();
        let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
        assert!(!paths.iter().any(|p| p.starts_with("/private/")), "a disallowed page was requested: {paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with("/media/")), "media is not loaded while crawling: {paths:?}");
        assert!(!paths.contains(&"/deep.html"), "depth was exceeded: {paths:?}");
        assert_eq!(paths.iter().filter(|p| **p == "/robots.txt").count(), 1);
        assert!(!paths.contains(&"/favicon.ico"), "Chromium fetched a favicon on its own: {paths:?}");
        // Crawl-delay: 1 is obeyed between page requests (the browser's minimum is only 100 ms).
        let times: Vec<std::time::Instant> = hits.iter().filter(|h| h.path != "/robots.txt").map(|h| h.at).collect();
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_millis(950), "requests {gap:?} apart: {paths:?}");
        }

        // A second run in the same browser: the page budget and the depth hold.
        let before = site.hits().len();
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
    async fn crawl_survives_a_crashed_browser_and_a_hung_page() {
        init_tracing();
        let site = fixture_site().start();
        let base = site.base();
        let robots = politeness();
        let mut browser = Browser::launch(&options(Duration::from_secs(5))).await.expect("Chromium starts");
        let pid = browser.chromium_pid().expect("a running Chromium") as libc::pid_t;
        site.kill_on_request("/crash.html", pid);

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
}
