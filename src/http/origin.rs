//! The HLS origin: serves `GET /hls/{channel}/live.m3u8`, `…/{rung}/live.m3u8` and `…/{rung}/seg00000012.ts` from
//! `data_dir/hls` to players and to the CDN that pulls from us.
//!
//! It is the only part of VVTV that turns a URL into a file path, so it trusts nothing in the URL: each path
//! component must match a whitelist (`[a-z0-9-]+` for channel and rung, `live.m3u8` or `seg<digits>.ts` for the
//! file), the channel must be one the station runs, and the resolved file must still be inside the HLS root after
//! following symlinks. Caching is what a CDN needs: playlists change every segment (`max-age=1`), segments never
//! change once written (their number is never reused, see `broadcaster::playlist`), so they are `immutable`.
//! Every answer, errors included, carries `Access-Control-Allow-Origin: *` so web players on any origin can play.

use crate::broadcaster::layout::{parse_segment_file_name, PLAYLIST_FILE};
use crate::config::is_slug;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use tower_http::services::ServeFile;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const SEGMENT_TYPE: &str = "video/mp2t";
/// Players reload the playlist every target duration; one second keeps a CDN from hammering us without making
/// anyone late.
const PLAYLIST_CACHE: &str = "max-age=1";
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";
/// Errors may turn into successes a moment later (the first segment of a starting channel).
const ERROR_CACHE: &str = "max-age=1";

#[derive(Clone)]
struct Origin {
    root: Arc<PathBuf>,
    channels: Arc<HashSet<String>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Playlist,
    Segment,
}

/// The origin's routes, ready to `.merge()` into the main router whatever its state type. `hls_root` is
/// `data_dir/hls`; only `channels` (the configured channel ids) are served, so folders left by removed channels
/// are not.
pub fn router<S>(hls_root: PathBuf, channels: impl IntoIterator<Item = impl Into<String>>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let origin =
        Origin { root: Arc::new(hls_root), channels: Arc::new(channels.into_iter().map(Into::into).collect()) };
    // One catch-all route: matchit cannot mix it with `{channel}/{file}` routes, and answering every /hls path
    // here (too deep, raw `..`) gives those answers the CORS header too.
    Router::new()
        .route("/hls/{*path}", get(hls_file).options(preflight))
        .layer(middleware::map_response(allow_any_origin))
        .with_state(origin)
}

/// `path` is what follows `/hls/`, percent-decoded by axum (so `%2e%2e` arrives as `..`, `%2f` as `/`).
async fn hls_file(State(origin): State<Origin>, UrlPath(path): UrlPath<String>, req: Request) -> Response {
    let components: Vec<&str> = path.split('/').collect();
    if components.iter().copied().any(is_hostile) {
        tracing::debug!(path, "refused a path that tries to leave the HLS folder");
        return refuse(StatusCode::BAD_REQUEST, "bad path");
    }
    match components.as_slice() {
        [channel, file] => origin.serve(channel, None, file, req).await,
        [channel, rung, file] => origin.serve(channel, Some(rung), file, req).await,
        _ => refuse(StatusCode::NOT_FOUND, "not found"),
    }
}

impl Origin {
    async fn serve(&self, channel: &str, rung: Option<&str>, file: &str, mut req: Request) -> Response {
        let kind = match file {
            PLAYLIST_FILE => Kind::Playlist,
            _ if rung.is_some() && parse_segment_file_name(file).is_some() => Kind::Segment,
            _ => return refuse(StatusCode::NOT_FOUND, "not found"),
        };
        if !self.channels.contains(channel) || !rung.is_none_or(is_slug) {
            return refuse(StatusCode::NOT_FOUND, "not found");
        }
        let mut path = self.root.join(channel);
        if let Some(rung) = rung {
            path.push(rung);
        }
        path.push(file);
        // A symlink inside the root must not lead out of it (a whitelisted name can still be a link).
        let (Ok(root), Ok(real)) = (tokio::fs::canonicalize(&*self.root).await, tokio::fs::canonicalize(&path).await)
        else {
            return refuse(StatusCode::NOT_FOUND, "not found");
        };
        if !real.starts_with(&root) {
            tracing::warn!(path = %path.display(), target = %real.display(), "refused a symlink leading out of the HLS folder");
            return refuse(StatusCode::NOT_FOUND, "not found");
        }
        if !tokio::fs::metadata(&real).await.is_ok_and(|m| m.is_file()) {
            return refuse(StatusCode::NOT_FOUND, "not found");
        }
        if kind == Kind::Playlist {
            // Last-Modified has one-second resolution and a playlist can change twice in a second: a conditional
            // request could get a stale 304. Playlists are tiny, always send them.
            for h in [header::IF_MODIFIED_SINCE, header::IF_NONE_MATCH, header::IF_RANGE, header::IF_UNMODIFIED_SINCE] {
                req.headers_mut().remove(h);
            }
        }
        // ServeFile does Range (206/416), HEAD and conditional requests.
        let mut res = match ServeFile::new(&real).try_call(req).await {
            Ok(res) => res.map(Body::new),
            Err(e) => {
                tracing::warn!(path = %real.display(), error = %e, "cannot serve HLS file");
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file");
            }
        };
        let (content_type, cache) = match kind {
            Kind::Playlist => (PLAYLIST_TYPE, PLAYLIST_CACHE),
            Kind::Segment => (SEGMENT_TYPE, SEGMENT_CACHE),
        };
        let status = res.status();
        let headers = res.headers_mut();
        // ServeFile guesses the type from the extension; HLS players insist on these exact ones.
        if status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        let cache = if status.is_success() || status == StatusCode::NOT_MODIFIED { cache } else { ERROR_CACHE };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        res
    }
}

/// A component that could only be meant to climb out of the folder (after percent-decoding, which axum did).
fn is_hostile(component: &str) -> bool {
    component.contains("..") || component.contains(['/', '\\', '\0']) || component.starts_with('.')
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, [(header::CACHE_CONTROL, ERROR_CACHE)], message).into_response()
}

/// CORS preflight: players on any page may GET (with Range) from us.
async fn preflight(headers: HeaderMap) -> Response {
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    let allow_headers = requested.unwrap_or_else(|| HeaderValue::from_static("range"));
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS")),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers),
            (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400")),
        ],
    )
        .into_response()
}

async fn allow_any_origin(mut res: Response) -> Response {
    let headers = res.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    // Range-reading players (hls.js byte ranges) need to see these from script.
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Content-Length, Content-Range"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap as Headers, RANGE};
    use reqwest::Method;
    use std::net::SocketAddr;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SECRET: &[u8] = b"secret outside the HLS root";

    struct Server {
        addr: SocketAddr,
        client: reqwest::Client,
        segment: Vec<u8>,
        _tmp: tempfile::TempDir,
    }

    impl Server {
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        async fn get(&self, path: &str) -> reqwest::Response {
            self.client.get(self.url(path)).send().await.expect("request")
        }

        /// Sends `path` verbatim in the request line: reqwest would resolve `..` before sending.
        async fn raw(&self, path: &str) -> (u16, String) {
            let mut stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
            let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            stream.write_all(req.as_bytes()).await.expect("send");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.expect("read");
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            (status, answer)
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(path, bytes).expect("write");
    }

    async fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("hls");
        let segment: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        write(&root.join("main/live.m3u8"), b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/live.m3u8\n");
        write(&root.join("main/720p/live.m3u8"), b"#EXTM3U\n#EXTINF:4.000000,\nseg00000012.ts\n");
        write(&root.join("main/720p/seg00000012.ts"), &segment);
        write(&root.join("main/720p/notes.txt"), b"not a segment");
        // A folder on disk whose channel is not configured any more.
        write(&root.join("old/live.m3u8"), b"#EXTM3U\n");
        write(&tmp.path().join("secret.txt"), SECRET);
        write(&tmp.path().join("outside/live.m3u8"), SECRET);
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("main/720p/seg00000013.ts"))
            .expect("symlink");
        std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("escape")).expect("symlink");

        let app: Router = router(root, ["main", "escape"]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { addr, client: reqwest::Client::new(), segment, _tmp: tmp }
    }

    fn header<'a>(headers: &'a Headers, name: &str) -> &'a str {
        headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[tokio::test]
    async fn serves_playlists_and_segments_with_types_and_cache() {
        let s = start().await;
        for path in ["/hls/main/live.m3u8", "/hls/main/720p/live.m3u8"] {
            let res = s.get(path).await;
            assert_eq!(res.status(), 200, "{path}");
            let h = res.headers();
            assert_eq!(header(h, "content-type"), "application/vnd.apple.mpegurl", "{path}");
            assert_eq!(header(h, "cache-control"), "max-age=1", "{path}");
            assert_eq!(header(h, "access-control-allow-origin"), "*", "{path}");
            assert!(res.text().await.expect("body").starts_with("#EXTM3U"));
        }
        let res = s.get("/hls/main/720p/seg00000012.ts").await;
        assert_eq!(res.status(), 200);
        let h = res.headers();
        assert_eq!(header(h, "content-type"), "video/mp2t");
        assert_eq!(header(h, "cache-control"), "public, max-age=31536000, immutable");
        assert_eq!(header(h, "access-control-allow-origin"), "*");
        assert_eq!(header(h, "accept-ranges"), "bytes");
        assert_eq!(res.bytes().await.expect("body").as_ref(), s.segment.as_slice());
    }

    #[tokio::test]
    async fn ranges_give_exact_bytes_or_416() {
        let s = start().await;
        let url = s.url("/hls/main/720p/seg00000012.ts");
        for (range, from, to) in [("bytes=10-19", 10, 19), ("bytes=990-", 990, 999), ("bytes=-5", 995, 999)] {
            let res = s.client.get(&url).header(RANGE, range).send().await.expect("request");
            assert_eq!(res.status(), 206, "{range}");
            assert_eq!(header(res.headers(), "content-range"), format!("bytes {from}-{to}/1000"), "{range}");
            assert_eq!(header(res.headers(), "content-type"), "video/mp2t");
            assert_eq!(header(res.headers(), "access-control-allow-origin"), "*");
            assert_eq!(res.bytes().await.expect("body").as_ref(), &s.segment[from..=to], "{range}");
        }
        let res = s.client.get(&url).header(RANGE, "bytes=5000-").send().await.expect("request");
        assert_eq!(res.status(), 416);
        assert_eq!(header(res.headers(), "content-range"), "bytes */1000");
        assert_eq!(header(res.headers(), "access-control-allow-origin"), "*");

        let playlist = s.url("/hls/main/720p/live.m3u8");
        let res = s.client.get(&playlist).header(RANGE, "bytes=0-6").send().await.expect("request");
        assert_eq!(res.status(), 206);
        assert_eq!(res.text().await.expect("body"), "#EXTM3U");
    }

    #[tokio::test]
    async fn head_answers_headers_only() {
        let s = start().await;
        let res = s.client.head(s.url("/hls/main/720p/seg00000012.ts")).send().await.expect("request");
        assert_eq!(res.status(), 200);
        assert_eq!(header(res.headers(), "content-length"), "1000");
        assert_eq!(header(res.headers(), "content-type"), "video/mp2t");
        assert_eq!(header(res.headers(), "access-control-allow-origin"), "*");
        assert!(res.bytes().await.expect("body").is_empty());
        let res = s.client.head(s.url("/hls/main/live.m3u8")).send().await.expect("request");
        assert_eq!(res.status(), 200);
        assert_eq!(header(res.headers(), "content-type"), "application/vnd.apple.mpegurl");
    }

    #[tokio::test]
    async fn playlists_are_never_answered_304() {
        let s = start().await;
        let future = "Fri, 01 Jan 2100 00:00:00 GMT";
        let res = s.client.get(s.url("/hls/main/live.m3u8")).header("if-modified-since", future).send().await;
        assert_eq!(res.expect("request").status(), 200);
        let res = s.client.get(s.url("/hls/main/720p/seg00000012.ts")).header("if-modified-since", future).send().await;
        let res = res.expect("request");
        assert_eq!(res.status(), 304, "segments never change: revalidation is fine");
        assert_eq!(header(res.headers(), "cache-control"), "public, max-age=31536000, immutable");
    }

    #[tokio::test]
    async fn unknown_channels_rungs_and_files_are_404() {
        let s = start().await;
        for path in [
            "/hls/other/live.m3u8",
            "/hls/old/live.m3u8",
            "/hls/main/1080p/live.m3u8",
            "/hls/main/720p/seg00000099.ts",
            "/hls/main/720p/notes.txt",
            "/hls/main/seg00000012.ts",
            "/hls/main/720p/SEG00000012.TS",
            "/hls/main/720p/seg.ts",
            "/hls/Main/live.m3u8",
            "/hls/main/720p/seg00000012.ts/more",
            "/hls/main",
        ] {
            let res = s.get(path).await;
            assert_eq!(res.status(), 404, "{path}");
            assert_eq!(header(res.headers(), "access-control-allow-origin"), "*", "{path}");
        }
    }

    #[tokio::test]
    async fn traversal_is_refused() {
        let s = start().await;
        let secret = String::from_utf8_lossy(SECRET).into_owned();
        for path in [
            "/hls/main/../../secret.txt",
            "/hls/../secret.txt",
            "/hls/main/720p/../../../secret.txt",
            "/hls/main/%2e%2e/%2e%2e/secret.txt",
            "/hls/%2e%2e/secret.txt",
            "/hls/%2E%2E/live.m3u8",
            "/hls/main/720p/..%2f..%2f..%2fsecret.txt",
            "/hls/main/720p/%2Fetc%2Fpasswd",
            "/hls/main/..%5C..%5Csecret.txt",
            "/hls/main\\..\\..\\secret.txt",
            "/hls/main/720p/seg00000013.ts",
            "/hls/escape/live.m3u8",
            "/hls/main/720p/.live.m3u8.tmp",
            "/hls/main/720p/%00live.m3u8",
        ] {
            let (status, answer) = s.raw(path).await;
            assert!(status == 400 || status == 404, "{path}: {status}");
            assert!(!answer.contains(&secret), "{path} leaked the file");
            assert!(answer.to_ascii_lowercase().contains("access-control-allow-origin: *"), "{path}: {answer}");
        }
    }

    #[tokio::test]
    async fn cors_preflight_and_other_methods() {
        let s = start().await;
        let res = s
            .client
            .request(Method::OPTIONS, s.url("/hls/main/720p/seg00000012.ts"))
            .header("origin", "https://player.example")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "range")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 204);
        let h = res.headers();
        assert_eq!(header(h, "access-control-allow-origin"), "*");
        assert!(header(h, "access-control-allow-methods").contains("GET"));
        assert_eq!(header(h, "access-control-allow-headers"), "range");

        let res = s.client.request(Method::OPTIONS, s.url("/hls/main/live.m3u8")).send().await.expect("request");
        assert_eq!(res.status(), 204);
        assert_eq!(header(res.headers(), "access-control-allow-origin"), "*");

        let res = s.client.post(s.url("/hls/main/live.m3u8")).send().await.expect("request");
        assert_eq!(res.status(), 405);
        assert_eq!(header(res.headers(), "access-control-allow-origin"), "*");
    }

    #[tokio::test]
    async fn merges_into_a_router_with_state() {
        #[derive(Clone)]
        struct AppState;
        let tmp = tempfile::tempdir().expect("tempdir");
        write(&tmp.path().join("main/live.m3u8"), b"#EXTM3U\n");
        let app: Router = Router::new()
            .route("/healthz", get(|State(_): State<AppState>| async { "ok" }))
            .merge(router(tmp.path().to_path_buf(), ["main"]))
            .with_state(AppState);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let res = reqwest::get(format!("http://{addr}/hls/main/live.m3u8")).await.expect("request");
        assert_eq!(res.status(), 200);
        assert_eq!(reqwest::get(format!("http://{addr}/healthz")).await.expect("request").status(), 200);
    }
}
