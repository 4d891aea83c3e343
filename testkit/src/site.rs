//! The fixture web site: serves fixed pages, files, a robots.txt and redirects on 127.0.0.1, and logs every request
//! (when, path with query, User-Agent), so a test can check what a crawler asked for, how fast, and what it never
//! touched.
//!
//! Build one with [`Site::builder`], then [`SiteBuilder::start`] it; it serves until dropped. Anything it was not
//! given is a 404 page. A path can also be set to kill a process group when requested
//! ([`Site::kill_on_request`]), to simulate a browser that crashes while loading a page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::background::Background;

/// One request the site received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// When it arrived.
    pub at: Instant,
    /// The path alone, e.g. `/search`.
    pub path: String,
    /// Path and query, e.g. `/search?q=sea`.
    pub target: String,
    pub user_agent: String,
}

struct Content {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

/// What a [`Site`] will serve, by path (no query).
#[derive(Default)]
pub struct SiteBuilder {
    files: HashMap<String, Content>,
    redirects: HashMap<String, String>,
}

impl SiteBuilder {
    /// `/robots.txt` answered with `status` and these rules as plain text (`(404, "")` for a site without one).
    pub fn robots(self, status: u16, rules: &str) -> SiteBuilder {
        self.answer("/robots.txt", status, "text/plain", rules.as_bytes().to_vec())
    }

    /// An HTML page.
    pub fn page(self, path: &str, html: impl Into<String>) -> SiteBuilder {
        self.file(path, "text/html; charset=utf-8", html.into().into_bytes())
    }

    /// A video file, served as `video/mp4` (whatever the bytes are: a test may serve noise under that name).
    pub fn video(self, path: &str, bytes: impl Into<Vec<u8>>) -> SiteBuilder {
        self.file(path, "video/mp4", bytes)
    }

    /// Any file with its content type.
    pub fn file(self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> SiteBuilder {
        self.answer(path, 200, content_type, body.into())
    }

    /// A `302 Found` from `from` to `to` (a path or a URL).
    pub fn redirect(mut self, from: &str, to: &str) -> SiteBuilder {
        self.redirects.insert(from.to_owned(), to.to_owned());
        self
    }

    fn answer(mut self, path: &str, status: u16, content_type: &str, body: Vec<u8>) -> SiteBuilder {
        let status = StatusCode::from_u16(status).unwrap_or_else(|_| panic!("{status} is not an HTTP status"));
        self.files.insert(path.to_owned(), Content { status, content_type: content_type.to_owned(), body });
        self
    }

    /// Serves on 127.0.0.1 on a free port until the returned [`Site`] is dropped.
    pub fn start(self) -> Site {
        let shared = Arc::new(Shared {
            files: self.files,
            redirects: self.redirects,
            log: Mutex::new(Vec::new()),
            kill_on: Mutex::new(None),
        });
        let served = shared.clone();
        let (addr, background) = Background::serve("fixture-site", move |listener| async move {
            let app = Router::new().fallback(serve).with_state(served);
            let _ = axum::serve(listener, app).await;
        });
        Site { base: format!("http://{addr}"), shared, _background: background }
    }
}

struct Shared {
    files: HashMap<String, Content>,
    redirects: HashMap<String, String>,
    log: Mutex<Vec<Hit>>,
    /// A path whose next request kills a process group, and that group.
    kill_on: Mutex<Option<(String, libc::pid_t)>>,
}

/// A running fixture site.
pub struct Site {
    base: String,
    shared: Arc<Shared>,
    _background: Background,
}

impl Site {
    pub fn builder() -> SiteBuilder {
        SiteBuilder::default()
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far, in order.
    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.shared.log).clone()
    }

    /// Paths with query of every request so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.target).collect()
    }

    /// Paths (without query) of every request so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.path).collect()
    }

    /// The next request for `path` first kills process group `pgid` with SIGKILL, then is answered as usual.
    pub fn kill_on_request(&self, path: &str, pgid: libc::pid_t) {
        *lock(&self.shared.kill_on) = Some((path.to_owned(), pgid));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    let target = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| path.clone());
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    lock(&shared.log).push(Hit { at: Instant::now(), path: path.clone(), target, user_agent });
    let kill = lock(&shared.kill_on).take_if(|(on, _)| *on == path);
    if let Some((_, pgid)) = kill {
        // SAFETY: a plain syscall on the process group the test handed over.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    if let Some(to) = shared.redirects.get(&path) {
        return (StatusCode::FOUND, [(header::LOCATION, to.clone())]).into_response();
    }
    match shared.files.get(&path) {
        Some(c) => (c.status, [(header::CONTENT_TYPE, c.content_type.clone())], c.body.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html")], "<h1>Not found</h1>").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str) -> reqwest::blocking::Response {
        let client = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build();
        client.expect("client").get(url).header("User-Agent", "kit-test").send().expect("GET")
    }

    #[test]
    fn serves_what_it_was_given_and_logs_every_request() {
        let site = Site::builder()
            .robots(200, "User-agent: *\nDisallow: /private/\n")
            .page("/", "<h1>Home</h1>")
            .video("/media/a.mp4", b"not really a video".to_vec())
            .redirect("/moved", "/private/x.html")
            .start();

        let robots = get(&site.url("/robots.txt"));
        assert_eq!(
            (robots.status().as_u16(), robots.headers()["content-type"].to_str().ok()),
            (200, Some("text/plain"))
        );
        assert_eq!(robots.text().expect("body"), "User-agent: *\nDisallow: /private/\n");
        let home = get(&site.url("/?q=sea"));
        assert_eq!(home.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(home.text().expect("body"), "<h1>Home</h1>");
        assert_eq!(get(&site.url("/media/a.mp4")).headers()["content-type"], "video/mp4");
        let moved = get(&site.url("/moved"));
        assert_eq!(
            (moved.status().as_u16(), moved.headers()["location"].to_str().ok()),
            (302, Some("/private/x.html"))
        );
        assert_eq!(get(&site.url("/missing.html")).status().as_u16(), 404);

        assert_eq!(site.targets(), ["/robots.txt", "/?q=sea", "/media/a.mp4", "/moved", "/missing.html"]);
        assert_eq!(site.paths()[1], "/");
        let hits = site.hits();
        assert!(hits.iter().all(|h| h.user_agent == "kit-test"), "{hits:?}");
        assert!(hits.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn robots_can_answer_an_error() {
        let site = Site::builder().robots(503, "").start();
        assert_eq!(get(&site.url("/robots.txt")).status().as_u16(), 503);
    }

    #[test]
    fn a_request_for_the_marked_path_kills_the_process_group() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .expect("spawn sleep in its own process group");
        let site = Site::builder().page("/crash.html", "<p>boom</p>").start();
        site.kill_on_request("/crash.html", child.id() as libc::pid_t);
        assert_eq!(get(&site.url("/crash.html")).status().as_u16(), 200);
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Only once: the next request is answered without killing anything.
        assert_eq!(get(&site.url("/crash.html")).status().as_u16(), 200);
    }
}
