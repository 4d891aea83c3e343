//! A fixture web site for tests: serves fixed pages, feeds and media on 127.0.0.1 and logs every request (path with
//! query, and User-Agent), so a test can check what a crawler asked for and what it never touched.
//!
//! Like the test LLM server it runs on its own thread with its own tokio runtime, so blocking daemon tests can use it.
#![allow(dead_code)]

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// One request the site received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Path and query, e.g. `/search?q=sea`.
    pub target: String,
    pub user_agent: String,
}

struct Content {
    content_type: &'static str,
    body: Vec<u8>,
}

struct Shared {
    files: HashMap<String, Content>,
    log: Mutex<Vec<Hit>>,
}

pub struct Site {
    base: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The files a [`Site`] serves, by path (no query); anything else is a 404 page.
#[derive(Default)]
pub struct Files(HashMap<String, Content>);

impl Files {
    pub fn html(&mut self, path: &str, html: impl Into<String>) -> &mut Files {
        self.add(path, "text/html; charset=utf-8", html.into().into_bytes())
    }

    pub fn add(&mut self, path: &str, content_type: &'static str, body: Vec<u8>) -> &mut Files {
        self.0.insert(path.to_owned(), Content { content_type, body });
        self
    }
}

impl Site {
    /// Serves `files` on 127.0.0.1 on a free port until dropped.
    pub fn start(files: Files) -> Site {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fixture site");
        listener.set_nonblocking(true).expect("non-blocking fixture listener");
        let base = format!("http://{}", listener.local_addr().expect("fixture site address"));
        let shared = Arc::new(Shared { files: files.0, log: Mutex::new(Vec::new()) });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime for the fixture site");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fixture-site".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("register the fixture listener");
                    let app = Router::new().fallback(serve).with_state(served);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                })
            })
            .expect("spawn the fixture site thread");
        Site { base, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Paths with query of every request so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.target).collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let target = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| uri.path().to_owned());
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    shared.log.lock().unwrap_or_else(PoisonError::into_inner).push(Hit { target, user_agent });
    match shared.files.get(uri.path()) {
        Some(c) => ([(header::CONTENT_TYPE, c.content_type)], c.body.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html")], "<h1>Not found</h1>").into_response(),
    }
}
