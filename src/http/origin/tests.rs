//! The origin over real HTTP on 127.0.0.1: types, cache headers, ranges, HEAD, validators, what is refused and why.

use super::*;
use crate::broadcaster::published::{Published, PublishedRung, PublishedSender};
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
    tmp: tempfile::TempDir,
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

const MULTIVARIANT: &str = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/live.m3u8\n";
const MEDIA: &str = "#EXTM3U\n#EXTINF:4.000000,\nseg00000012.ts\n#EXTINF:4.000000,\nseg00000013.ts\n";

/// What a broadcaster of one 720p rung publishes once segments 0 to 13 were listed.
fn published(channel: &str, media: &str) -> Published {
    Published {
        channel: Some(Bytes::from(channel.to_owned())),
        rungs: vec![PublishedRung { name: "720p".into(), playlist: Some(Bytes::from(media.to_owned())) }],
        next_seq: 14,
        ..Default::default()
    }
}

async fn start() -> Server {
    let (server, _senders) = start_publishing().await;
    server
}

async fn start_publishing() -> (Server, Vec<PublishedSender>) {
    start_with_cache(1 << 20).await
}

/// The origin over a folder with a segment, a few hostile files and links; `main` and `escape` are configured
/// (`escape` is a link leading out of the root). The senders publish each channel's playlists.
async fn start_with_cache(cache_bytes: u64) -> (Server, Vec<PublishedSender>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("hls");
    let segment: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    write(&root.join("main/720p/seg00000012.ts"), &segment);
    write(&root.join("main/720p/notes.txt"), b"not a segment");
    // Being written: above the last listed number.
    write(&root.join("main/720p/seg00000014.ts"), b"half a segm");
    // A folder on disk whose channel is not configured any more.
    write(&root.join("old/live.m3u8"), b"#EXTM3U\n");
    write(&root.join("old/720p/seg00000001.ts"), b"old");
    write(&tmp.path().join("secret.txt"), SECRET);
    write(&tmp.path().join("outside/720p/seg00000001.ts"), SECRET);
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("main/720p/seg00000013.ts")).expect("symlink");
    std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("escape")).expect("symlink");

    let mut senders = Vec::new();
    let mut channels = Vec::new();
    for id in ["main", "escape"] {
        let (tx, rx) = crate::broadcaster::published::channel();
        tx.send_replace(published(MULTIVARIANT, MEDIA));
        senders.push(tx);
        channels.push((id.to_string(), rx));
    }
    let app: Router = router(root, cache_bytes, channels, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (Server { addr, client: reqwest::Client::new(), segment, tmp }, senders)
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
        "/hls/old/720p/seg00000001.ts",
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
        "/hls/escape/720p/seg00000001.ts",
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
    let (tx, rx) = crate::broadcaster::published::channel();
    tx.send_replace(published(MULTIVARIANT, MEDIA));
    let app: Router = Router::new()
        .route("/healthz", get(|State(_): State<AppState>| async { "ok" }))
        .merge(router(tmp.path().to_path_buf(), 0, [("main".to_string(), rx)], None))
        .with_state(AppState);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let res = reqwest::get(format!("http://{addr}/hls/main/live.m3u8")).await.expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(reqwest::get(format!("http://{addr}/healthz")).await.expect("request").status(), 200);
}

#[tokio::test]
async fn playlists_come_from_memory_as_published() {
    let (s, senders) = start_publishing().await;
    // Nothing of `main`'s playlists is on disk: what is served is what the broadcaster published.
    assert_eq!(s.get("/hls/main/live.m3u8").await.text().await.expect("body"), MULTIVARIANT);
    assert_eq!(s.get("/hls/main/720p/live.m3u8").await.text().await.expect("body"), MEDIA);
    let newer = "#EXTM3U\n#EXTINF:4.000000,\nseg00000013.ts\n";
    senders[0].send_replace(published(MULTIVARIANT, newer));
    let res = s.get("/hls/main/720p/live.m3u8").await;
    assert_eq!(header(res.headers(), "content-length"), newer.len().to_string());
    assert_eq!(res.text().await.expect("body"), newer, "the next request sees the new playlist");

    // Before the first segment a channel publishes its ladder but no playlist: 404, cached for a second only.
    senders[0].send_replace(Published {
        channel: None,
        rungs: vec![PublishedRung { name: "720p".into(), playlist: None }],
        ..Default::default()
    });
    for path in ["/hls/main/live.m3u8", "/hls/main/720p/live.m3u8", "/hls/main/720p/seg00000012.ts"] {
        let res = s.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(header(res.headers(), "cache-control"), "max-age=1", "{path}");
    }
}

#[tokio::test]
async fn a_segment_above_the_last_listed_one_is_not_served_while_it_is_written() {
    let (s, senders) = start_publishing().await;
    let path = "/hls/main/720p/seg00000014.ts";
    assert_eq!(s.get(path).await.status(), 404, "the file exists but was not listed yet");
    let mut next = published(MULTIVARIANT, MEDIA);
    next.next_seq = 15;
    senders[0].send_replace(next);
    let res = s.get(path).await;
    assert_eq!(res.status(), 200, "listed now");
    assert_eq!(res.text().await.expect("body"), "half a segm");
}

#[tokio::test]
async fn segments_carry_validators_that_revalidate() {
    let s = start().await;
    let url = s.url("/hls/main/720p/seg00000012.ts");
    let res = s.get("/hls/main/720p/seg00000012.ts").await;
    let (etag, modified) =
        (header(res.headers(), "etag").to_string(), header(res.headers(), "last-modified").to_string());
    assert!(etag.starts_with('"') && etag.ends_with("-3e8\""), "{etag}");
    assert!(modified.ends_with(" GMT"), "{modified}");

    let res = s.client.get(&url).header("if-none-match", &etag).send().await.expect("request");
    assert_eq!(res.status(), 304);
    assert_eq!(header(res.headers(), "etag"), etag);
    assert_eq!(header(res.headers(), "access-control-allow-origin"), "*");
    assert!(res.bytes().await.expect("body").is_empty());
    let res = s.client.get(&url).header("if-none-match", "\"other\"").send().await.expect("request");
    assert_eq!(res.status(), 200);
    let res = s.client.get(&url).header("if-match", "\"other\"").send().await.expect("request");
    assert_eq!(res.status(), 412);

    // If-Range: the range only while the validator still names the file.
    for (validator, status) in [(etag.as_str(), 206), (modified.as_str(), 206), ("\"other\"", 200)] {
        let res = s.client.get(&url).header(RANGE, "bytes=0-9").header("if-range", validator).send().await;
        assert_eq!(res.expect("request").status(), status, "{validator}");
    }
    // Playlists have no validators: an If-Range never holds, the whole playlist comes back.
    let res = s.client.get(s.url("/hls/main/720p/live.m3u8")).header(RANGE, "bytes=0-6").header("if-range", &etag);
    let res = res.send().await.expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), MEDIA);
}

#[tokio::test]
async fn head_of_a_range_and_of_a_playlist_tell_the_length() {
    let s = start().await;
    let res = s.client.head(s.url("/hls/main/720p/live.m3u8")).send().await.expect("request");
    assert_eq!(header(res.headers(), "content-length"), MEDIA.len().to_string());
    let res = s.client.head(s.url("/hls/main/720p/seg00000012.ts")).header(RANGE, "bytes=100-199").send().await;
    let res = res.expect("request");
    assert_eq!(res.status(), 206);
    assert_eq!(header(res.headers(), "content-length"), "100");
    assert_eq!(header(res.headers(), "content-range"), "bytes 100-199/1000");
}

#[tokio::test]
async fn the_segment_cache_changes_no_answer() {
    let ((cached, _a), (uncached, _b)) = (start_with_cache(1 << 20).await, start_with_cache(0).await);
    let seg = "/hls/main/720p/seg00000012.ts";
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    type Headers = Vec<(&'static str, &'static str)>;
    let requests: Vec<(Method, &str, Headers)> = vec![
        (Method::HEAD, seg, vec![]),
        (Method::GET, seg, vec![("range", "bytes=10-19")]),
        (Method::GET, seg, vec![]),
        (Method::GET, seg, vec![]),
        (Method::GET, seg, vec![("range", "bytes=-5")]),
        (Method::GET, seg, vec![("range", "bytes=5000-")]),
        (Method::GET, seg, vec![("if-modified-since", future)]),
        (Method::HEAD, seg, vec![("range", "bytes=0-0")]),
        (Method::GET, "/hls/main/720p/seg00000013.ts", vec![]),
        (Method::GET, "/hls/main/720p/seg00000014.ts", vec![]),
    ];
    for (method, path, headers) in requests {
        let mut answers = Vec::new();
        for s in [&cached, &uncached] {
            let mut req = s.client.request(method.clone(), s.url(path));
            for (k, v) in &headers {
                req = req.header(*k, *v);
            }
            let res = req.send().await.expect("request");
            let h = res.headers().clone();
            let keep = ["content-type", "content-length", "content-range", "cache-control", "etag", "last-modified"];
            let picked: Vec<String> = keep.iter().map(|k| format!("{k}: {}", header(&h, k))).collect();
            answers.push((res.status(), picked, res.bytes().await.expect("body")));
        }
        assert_eq!(answers[0], answers[1], "{method} {path} {headers:?}");
    }
}

#[tokio::test]
async fn a_cached_segment_is_answered_from_memory() {
    let ((cached, _a), (uncached, _b)) = (start_with_cache(1 << 20).await, start_with_cache(0).await);
    let path = "/hls/main/720p/seg00000012.ts";
    for s in [&cached, &uncached] {
        assert_eq!(s.get(path).await.status(), 200);
        std::fs::remove_file(s.tmp.path().join("hls").join(&path[5..])).expect("remove the segment");
    }
    let res = cached.get(path).await;
    assert_eq!(res.status(), 200, "kept since its first read");
    assert_eq!(res.bytes().await.expect("body").as_ref(), cached.segment.as_slice());
    assert_eq!(uncached.get(path).await.status(), 404, "read from disk every time");
}

/// Nodes sharing a station: a listed segment this node did not write comes from the object store under the key of
/// its epoch, and a playlist that stopped advancing answers 503 so a CDN can fail over.
#[tokio::test]
async fn a_shared_origin_fetches_other_nodes_segments_and_refuses_a_stalled_playlist() {
    use crate::broadcaster::published::SegmentObject;
    use std::time::{Duration, SystemTime};
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // The data folder's own object store stands in for S3 here: the origin reads the object by its key all the same.
    let objects =
        crate::objects::Objects::open(&crate::config::StorageConfig { data_dir: data.clone(), ..Default::default() })
            .expect("objects");
    let body: Vec<u8> = (0..4000u32).map(|i| (i % 249) as u8).collect();
    write(&data.join("hls/main/720p/e7/seg00000013.ts"), &body);
    let (tx, rx) = crate::broadcaster::published::channel();
    let end = SystemTime::now();
    let mut p = published(MULTIVARIANT, MEDIA);
    p.objects = vec![SegmentObject { seq: 13, epoch: 7, end }];
    p.last_end = Some(end);
    tx.send_replace(p.clone());
    let shared = super::Shared { objects, stale_after: Duration::from_secs(30) };
    let app: Router = router(data.join("hls"), 1 << 20, [("main".to_string(), rx)], Some(shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));

    let res = get("/hls/main/720p/seg00000013.ts").await.expect("request");
    assert_eq!(res.status(), 200);
    let etag = header(res.headers(), "etag").to_string();
    assert_eq!(res.bytes().await.expect("body").as_ref(), body.as_slice(), "fetched by its epoch's key");
    assert!(!etag.is_empty(), "validators from its end time, alike on every origin");
    assert_eq!(get("/hls/main/720p/seg00000012.ts").await.expect("request").status(), 404, "no object named");
    assert_eq!(get("/hls/main/live.m3u8").await.expect("request").status(), 200);

    p.last_end = Some(SystemTime::now() - Duration::from_secs(60));
    tx.send_replace(p);
    for path in ["/hls/main/live.m3u8", "/hls/main/720p/live.m3u8"] {
        let res = get(path).await.expect("request");
        assert_eq!(res.status(), 503, "{path}: a minute without a new segment");
        assert_eq!(header(res.headers(), "cache-control"), "max-age=1", "{path}");
    }
}
