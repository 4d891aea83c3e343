//! robots.txt (fetched, cached and obeyed) and per-domain pacing: what makes the curator a polite visitor.
//!
//! The station runs unattended against other people's sites, so politeness comes first. Every request the curator
//! makes on the web (a page the browser is sent to, a media URL before it is probed, a feed) asks a [`Politeness`]:
//! - robots.txt is fetched once per origin with our User-Agent, cached (a day; an unreachable one blocks its origin
//!   for a while, then is tried again), and obeyed ([`Politeness::allowed`]). The browser also pauses every document
//!   request a crawled tab makes, redirects included, until robots.txt allows it (see `browser/request_guard.rs`).
//! - Requests to one domain are spaced by `max(min_delay, Crawl-delay)` ([`Politeness::wait_turn`]). The browser
//!   books its turn at the moment its request is released, so the spacing the site sees is the one promised.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use texting_robots::Robot;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use url::Url;

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
    pub(super) async fn wait_until_free(&self, url: &str) {
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    use crate::curator::browser::test_support::politeness;
    use vvtv_testkit::site::Site;

    // Real HTTP, no browser.
    #[tokio::test]
    async fn robots_txt_is_fetched_once_cached_and_obeyed() {
        let rules = "User-agent: VVTV\nDisallow: /nope/\nCrawl-delay: 0.5\n\nUser-agent: *\nDisallow: /\n";
        let site = Site::builder().robots(200, rules).start();
        let base = site.base();
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
        let missing = Site::builder().robots(404, "").start();
        assert_eq!(robots.allowed(&missing.url("/anything")).await, Ok(()));
        // A server error: nothing allowed.
        let failing = Site::builder().robots(503, "").start();
        let refused = robots.allowed(&failing.url("/anything")).await.expect_err("5xx disallows");
        assert!(refused.contains("HTTP 503"), "{refused}");
        // Unreachable: nothing allowed.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = closed.local_addr().expect("address").port();
        drop(closed);
        let refused = robots.allowed(&format!("http://127.0.0.1:{port}/x")).await.expect_err("unreachable");
        assert!(refused.contains("unreachable"), "{refused}");
    }
}
