//! The player page (`/` and `/watch/{channel}`), the operator page (`/admin`) and the files they load (`/web/…`):
//! `web/src/` and hls.js, embedded at build time by `build.rs`, served from memory with ETags.
//!
//! The pages load nothing but this origin, and say so to the browser: a Content-Security-Policy that allows only
//! `'self'` (plus the `blob:` URLs hls.js makes for its worker and for Media Source playback).

use super::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub etag: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'self'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route("/watch/{channel}", get(watch))
        .route("/admin", get(|headers: HeaderMap| async move { serve("admin.html", &headers) }))
        .route("/web/{file}", get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }))
        .route("/favicon.ico", get(|headers: HeaderMap| async move { serve("favicon.svg", &headers) }))
}

/// An embedded file by name.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

async fn watch(State(s): State<AppState>, Path(channel): Path<String>, headers: HeaderMap) -> Response {
    if s.config.channels.iter().any(|c| c.id == channel) {
        return serve("index.html", &headers);
    }
    let links: String = s
        .config
        .channels
        .iter()
        .map(|c| format!("<li><a href=\"/watch/{id}\">{name}</a></li>", id = c.id, name = html_escape(&c.name)))
        .collect();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unknown channel</title>\
         <link rel=\"stylesheet\" href=\"/web/style.css\"></head><body class=\"notice\"><h1>No channel \
         \u{201c}{}\u{201d}</h1><p>This station runs:</p><ul>{links}</ul></body></html>",
        html_escape(&channel)
    );
    let mut resp = (StatusCode::NOT_FOUND, body).into_response();
    page_headers(resp.headers_mut(), "text/html; charset=utf-8");
    resp
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(a) = asset(name) else {
        return (StatusCode::NOT_FOUND, format!("no file {name:?} in the page's files\n")).into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == a.etag || tag.trim() == "*"));
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { a.body.into_response() };
    page_headers(resp.headers_mut(), a.content_type);
    resp.headers_mut().insert(header::ETAG, HeaderValue::from_static(a.etag));
    resp
}

fn page_headers(h: &mut HeaderMap, content_type: &'static str) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated every time (a 304 while unchanged): a new daemon's page is never mixed with an old one's files.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_and_the_locked_hls_js_are_embedded() {
        for name in ["index.html", "admin.html", "player.js", "admin.js", "style.css", "favicon.svg", "hls.min.js"] {
            let a = asset(name).unwrap_or_else(|| panic!("{name} is not embedded"));
            assert!(!a.body.is_empty(), "{name} is empty");
            assert!(a.etag.starts_with('"') && a.etag.len() == 18, "{name}: {}", a.etag);
        }
        let lock: serde_json::Value =
            serde_json::from_str(include_str!("../../web/package-lock.json")).expect("web/package-lock.json");
        let version = lock["packages"]["node_modules/hls.js"]["version"].as_str().expect("hls.js is locked");
        let hls = std::str::from_utf8(asset("hls.min.js").unwrap().body).unwrap();
        assert!(hls.contains(&format!("\"{version}\"")), "the embedded hls.js is not {version}");
    }

    #[test]
    fn the_pages_load_nothing_from_another_origin() {
        for a in ASSETS.iter().filter(|a| a.name != "hls.min.js") {
            // The SVG namespace is a name, not something fetched.
            let text = std::str::from_utf8(a.body).unwrap().replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(needle), "{} mentions {needle}", a.name);
            }
        }
    }

    #[test]
    fn an_unchanged_file_answers_304_and_an_unknown_one_404() {
        let a = asset("player.js").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(a.etag));
        assert_eq!(serve("player.js", &headers).status(), StatusCode::NOT_MODIFIED);
        let resp = serve("player.js", &HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(resp.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().starts_with("default-src 'self'"));
        assert_eq!(serve("../Cargo.toml", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
