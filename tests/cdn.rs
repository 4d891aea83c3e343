//! A CDN in front of the origin, proven with Debian's nginx as the edge (`config/nginx-cdn.conf`, the setup the README
//! documents): hls.js in headless Chromium plays the channel through it, and 200 simulated players (plain HTTP
//! clients that poll their rung's playlist and fetch each new segment, as a player does) cost the origin about one
//! request per segment and rung, counted from the edge's log of what it asked the origin for.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vvtv_testkit::daemon::{listed_segments, write_config, Daemon, SMALL_LADDER};
use vvtv_testkit::nginx::{free_port, Nginx};

const PLAYERS: usize = 200;
const PLAY_SECONDS: u64 = 30;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `config/nginx-cdn.conf` with the daemon's address, a loopback port and the test's own cache and log paths.
fn edge_config(origin: &str, port: u16, prefix: &Path) -> String {
    let text = std::fs::read_to_string(repo().join("config/nginx-cdn.conf")).expect("config/nginx-cdn.conf");
    let mut conf = text;
    for (from, to) in [
        ("server 127.0.0.1:8080;", format!("server {origin};")),
        ("listen 8081;", format!("listen 127.0.0.1:{port};")),
        ("/var/cache/nginx/vvtv", prefix.join("cache").display().to_string()),
        ("/var/log/nginx/vvtv-edge.log", prefix.join("edge.log").display().to_string()),
    ] {
        assert!(conf.contains(from), "config/nginx-cdn.conf no longer contains {from:?}: update this test with it");
        conf = conf.replace(from, &to);
    }
    conf
}

/// What the simulated players saw.
#[derive(Default)]
struct Seen {
    requests: u64,
    segments: u64,
    failures: Vec<String>,
}

/// One player: the channel playlist once, then its rung's playlist every half target duration and each segment
/// that appears in it (the last three at the start, as hls.js starts a live stream).
async fn player(i: usize, edge: String, seen: Arc<Mutex<Seen>>, until: Instant) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let fail = |what: String| seen.lock().expect("seen").failures.push(format!("player {i}: {what}"));
    let get = |url: String| {
        let client = client.clone();
        let seen = seen.clone();
        async move {
            seen.lock().expect("seen").requests += 1;
            let res = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
            if res.status() != 200 {
                return Err(format!("GET {url}: {}", res.status()));
            }
            res.bytes().await.map_err(|e| format!("GET {url}: {e}"))
        }
    };
    let top = match get(format!("{edge}/hls/main/live.m3u8")).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) => return fail(e),
    };
    let variants: Vec<&str> = top.lines().filter(|l| l.ends_with(".m3u8")).collect();
    let Some(variant) = variants.get(i % variants.len().max(1)) else {
        return fail(format!("no variant in {top:?}"));
    };
    let rung = variant.trim_end_matches("/live.m3u8").to_string();
    let mut fetched: HashSet<u64> = HashSet::new();
    // Players do not start in step.
    tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 2000)).await;
    while Instant::now() < until {
        let playlist = match get(format!("{edge}/hls/main/{variant}")).await {
            Ok(body) => String::from_utf8_lossy(&body).into_owned(),
            Err(e) => return fail(e),
        };
        let listed = listed_segments(&playlist);
        let start = if fetched.is_empty() { listed.len().saturating_sub(3) } else { 0 };
        for &seq in &listed[start..] {
            if fetched.contains(&seq) || fetched.iter().any(|&f| f > seq) {
                continue;
            }
            match get(format!("{edge}/hls/main/{rung}/seg{seq:08}.ts")).await {
                Ok(body) if !body.is_empty() => {
                    fetched.insert(seq);
                    seen.lock().expect("seen").segments += 1;
                }
                Ok(_) => return fail(format!("segment {seq} of {rung} is empty")),
                Err(e) => return fail(e),
            }
        }
        tokio::time::sleep(Duration::from_millis(2000 + (i as u64 * 13) % 400)).await;
    }
}

/// The origin requests the edge made, by URI, from its log (`$upstream_cache_status $status $uri $upstream_addr`).
fn origin_requests(log: &str) -> (BTreeMap<String, u64>, u64) {
    let mut by_uri = BTreeMap::new();
    let mut lines = 0;
    for line in log.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_cache, _status, uri, upstream] = fields[..] else { panic!("unexpected edge log line {line:?}") };
        lines += 1;
        if upstream != "-" {
            *by_uri.entry(uri.to_string()).or_insert(0) += 1;
        }
    }
    (by_uri, lines)
}

#[test]
fn hls_js_plays_through_an_nginx_cache_and_200_players_cost_about_one_origin_request_per_segment() {
    let check = repo().join("scripts/player-check");
    assert!(
        check.join("node_modules/hls.js").is_dir() && check.join("node_modules/playwright-core").is_dir(),
        "hls.js and playwright-core are not installed: run `npm ci --prefix scripts/player-check` (make test does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!("{SMALL_LADDER}\n[[channels]]\nid = \"main\"\nname = \"Edge test\"\ndemo_clips = false\n");
    let config = write_config(dir.path(), &extra);
    let daemon = Daemon::start(dir.path(), &config);
    let deadline = Instant::now() + Duration::from_secs(120);
    // hls.js starts three segments from the live edge; it is started once that is past segment 0. When hls.js opens
    // a fresh channel whose playlist lists fewer than three segments (here: the edge's one-second copy from the
    // channel's first moment) it reports a 0.13 s hole at time 0 in segment 0 (`bufferSeekOverHole`, non-fatal, it
    // plays on): the broadcaster's first segment, not the edge, is the matter there.
    let newest = || {
        let res = reqwest::blocking::get(daemon.url("/hls/main/180p/live.m3u8")).ok().filter(|r| r.status() == 200);
        res.and_then(|r| r.text().ok()).and_then(|text| listed_segments(&text).last().copied())
    };
    while newest().is_none_or(|seq| seq < 4) {
        assert!(Instant::now() < deadline, "the channel did not go on air");
        std::thread::sleep(Duration::from_millis(200));
    }

    let port = free_port();
    let prefix = dir.path().join("edge");
    let origin = daemon.base.trim_start_matches("http://").to_string();
    let mut edge = Nginx::start(&prefix, port, 2, &edge_config(&origin, port, &prefix));
    let edge_url = edge.url("");

    // The real player, through the edge, while the simulated ones load it.
    let browser = Command::new("node")
        .arg(check.join("check.mjs"))
        .arg(format!("{edge_url}/hls/main/live.m3u8"))
        .arg(PLAY_SECONDS.to_string())
        .arg("--out")
        .arg(dir.path().join("player-check.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node scripts/player-check/check.mjs");

    let seen = Arc::new(Mutex::new(Seen::default()));
    let until = Instant::now() + Duration::from_secs(PLAY_SECONDS);
    let started = Instant::now();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let players: Vec<_> =
            (0..PLAYERS).map(|i| tokio::spawn(player(i, edge_url.clone(), seen.clone(), until))).collect();
        for p in players {
            p.await.expect("player task");
        }
    });
    let played = started.elapsed();
    let output = browser.wait_with_output().expect("wait for the player check");
    edge.stop();

    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("hls.js through the edge:\n{stdout}");
    assert!(output.status.success(), "hls.js did not play through the edge:\n{stdout}");
    let seen = seen.lock().expect("seen");
    let first = &seen.failures[..5.min(seen.failures.len())];
    assert!(seen.failures.is_empty(), "{} player failure(s), first: {first:?}", seen.failures.len());
    // Every player fetched its three start segments and then each new one: about one every 4 s.
    let expected = PLAYERS as u64 * (3 + PLAY_SECONDS / 4 - 2);
    assert!(seen.segments >= expected, "the players fetched only {} segments (expected ≥ {expected})", seen.segments);

    let log = std::fs::read_to_string(prefix.join("edge.log")).expect("the edge's log");
    let (origin, edge_lines) = origin_requests(&log);
    let segment_counts: Vec<(&String, &u64)> = origin.iter().filter(|(uri, _)| uri.ends_with(".ts")).collect();
    let playlist_counts: Vec<(&String, &u64)> = origin.iter().filter(|(uri, _)| uri.ends_with(".m3u8")).collect();
    let origin_total: u64 = origin.values().sum();
    let most_per_segment = segment_counts.iter().map(|(_, n)| **n).max().unwrap_or(0);
    eprintln!(
        "edge: {edge_lines} requests from the players ({} segments), {origin_total} reached the origin: {} segment \
         files (at most {most_per_segment} request(s) each), playlists {playlist_counts:?} in {:.0} s",
        seen.segments,
        segment_counts.len(),
        played.as_secs_f64()
    );
    assert!(seen.requests <= edge_lines, "the edge logged fewer requests than the players made: the count is wrong");
    assert!(!segment_counts.is_empty(), "no segment reached the origin: the log format or the test is broken");
    for (uri, n) in &segment_counts {
        assert!(**n <= 2, "{uri} was asked of the origin {n} times: concurrent misses did not collapse");
    }
    // A playlist is cached for the second the origin allows: about one origin request a second, whatever the number
    // of players.
    let limit = played.as_secs() + 10;
    for (uri, n) in &playlist_counts {
        assert!(**n <= limit, "{uri} was asked of the origin {n} times in {} s", played.as_secs());
    }
    assert!(
        origin_total * 20 < edge_lines,
        "{origin_total} of {edge_lines} requests reached the origin: the edge is not caching"
    );
}
