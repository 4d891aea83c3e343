//! `make bench-origin`: the origin beside nginx, on the same files, under the same load (`wrk -c32`).
//!
//! A real daemon plays a generated clip of moving bars and noise (every rung at its bitrate cap) on the two-rung test
//! ladder; the 90p rung's segments are then ~190 KB. Once a few are out, Debian's nginx is started on loopback with
//! its root at the daemon's data folder, so both serve the very same playlist (the daemon from memory, nginx from the
//! file the daemon writes beside it) and the very same segment file. nginx gets a config as
//! fast as it goes for this (sendfile, tcp_nopush, no access log, keep-alive without a request limit, one worker a
//! core) and the headers the origin sends. wrk then loads each server in turn, for the playlist and for the segment,
//! and a table gives requests per second, p99 latency and the ratio. The goal is ≥ 0.8 × nginx on both.
//!
//! Options (environment): BENCH_SECONDS=10 (per wrk run), BENCH_ROUNDS=1 (the best round of each server is kept),
//! BENCH_CONNECTIONS=32, BENCH_CACHE_MB (the daemon's `server.segment_cache_mb`; 0 reads every segment from disk),
//! VVTV_BIN (another daemon binary, e.g. an older build, to compare).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vvtv::config::Config;
use vvtv::media::house_format::HouseFormat;
use vvtv::media::transcode::Source;
use vvtv::store::{AssetKind, Store};
use vvtv_testkit::daemon::{listed_segments, write_config, Daemon, SMALL_LADDER};
use vvtv_testkit::media;
use vvtv_testkit::nginx::{free_port, Nginx};

/// The rung whose segments are about the size the issue measured (150 kbit/s video + 192 kbit/s audio, 4 s).
const RUNG: &str = "90p";
const CLIP_SECONDS: u32 = 60;

const GOAL: f64 = 0.8;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let seconds = env_number("BENCH_SECONDS", 10);
    let rounds = env_number("BENCH_ROUNDS", 1).max(1);
    let connections = env_number("BENCH_CONNECTIONS", 32);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk missing: run scripts/install-deps.sh (make bench-origin does)"
    );
    let work = tempfile::tempdir().expect("temp dir");
    // Segments outlive the benchmark.
    let extra = format!(
        "{SMALL_LADDER}\n[broadcaster]\nsegment_grace_seconds = 3600\n\n[[channels]]\nid = \"main\"\nname = \"Bench\"\n\
         demo_clips = false\n"
    );
    let config = write_config(work.path(), &extra);
    if let Ok(mb) = std::env::var("BENCH_CACHE_MB") {
        let text = std::fs::read_to_string(&config).expect("read the config");
        let text = text.replacen("[server]\n", &format!("[server]\nsegment_cache_mb = {mb}\n"), 1);
        std::fs::write(&config, text).expect("write the config");
    }
    println!("bench-origin: encoding a {CLIP_SECONDS} s clip of moving bars ...");
    seed_library(&config, work.path());
    let daemon = Daemon::start(work.path(), &config);
    println!("bench-origin: daemon at {}, waiting for the clip to air ...", daemon.base);
    let (playlist_path, segment_path) = wait_for_segment(&daemon);

    let port = free_port();
    let http = nginx_http(port, &daemon.data_dir());
    let nginx = Nginx::start(&work.path().join("nginx"), port, cores, &http);
    let version = Command::new("/usr/sbin/nginx").arg("-v").output().map_or_else(
        |_| "nginx".to_string(),
        |o| String::from_utf8_lossy(&o.stderr).trim().trim_start_matches("nginx version: ").to_string(),
    );
    let playlist_size = same_bytes(&daemon.url(&playlist_path), &nginx.url(&playlist_path));
    let segment_size = same_bytes(&daemon.url(&segment_path), &nginx.url(&segment_path));
    println!(
        "bench-origin: {version} at {}, {cores} cores (wrk shares them), wrk -t2 -c{connections} -d{seconds}s, \
         best of {rounds} round(s)",
        nginx.addr
    );

    let mut rows = Vec::new();
    for (what, path, size) in [("playlist", &playlist_path, playlist_size), ("segment", &segment_path, segment_size)] {
        let (mut best_nginx, mut best_vvtv) = (Wrk::default(), Wrk::default());
        for _ in 0..rounds {
            let n = wrk(&nginx.url(path), connections, seconds);
            let v = wrk(&daemon.url(path), connections, seconds);
            println!("  {what}: nginx {:.0} req/s, vvtv {:.0} req/s", n.requests_per_s, v.requests_per_s);
            best_nginx = best_nginx.best(n);
            best_vvtv = best_vvtv.best(v);
        }
        rows.push((what, path.clone(), size, best_nginx, best_vvtv));
    }

    println!();
    println!(
        "{:<10} {:>9}  {:>13} {:>9}  {:>13} {:>9}  {:>10}",
        "", "size", "nginx req/s", "p99", "vvtv req/s", "p99", "vvtv/nginx"
    );
    let mut met = true;
    for (what, _path, size, n, v) in &rows {
        let ratio = v.requests_per_s / n.requests_per_s.max(1.0);
        met &= ratio >= GOAL;
        println!(
            "{what:<10} {:>9}  {:>13} {:>9}  {:>13} {:>9}  {:>10.2}",
            human_size(*size),
            thousands(n.requests_per_s),
            n.p99,
            thousands(v.requests_per_s),
            v.p99,
            ratio
        );
        for (server, w) in [("nginx", n), ("vvtv", v)] {
            if w.errors > 0 {
                println!("  ! {server} answered {} {what} request(s) with an error status or a socket error", w.errors);
                met = false;
            }
        }
    }
    println!(
        "goal vvtv ≥ {GOAL} × nginx on both: {}   (playlist {}, segment {})",
        if met { "met" } else { "NOT met" },
        rows[0].1,
        rows[1].1
    );
}

/// Records one clip of moving bars and pink noise in the daemon's database before it starts.
fn seed_library(config_path: &Path, work: &Path) {
    let source = work.join("busy.mkv");
    let frames = CLIP_SECONDS * 30;
    media::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=7 ! \
         video/x-raw,width=640,height=360,framerate=30/1 ! x264enc speed-preset=ultrafast quantizer=16 pass=quant ! \
         matroskamux name=m ! filesink location={} audiotestsrc num-buffers={frames} samplesperbuffer=1600 \
         wave=pink-noise volume=0.2 ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac ! m.",
        source.display()
    ))
    .expect("could not make the busy source");
    let config = Config::load(config_path).expect("bench config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        std::fs::create_dir_all(&config.storage.data_dir).expect("data dir");
        let store = Store::open(&config.storage.db_path()).await.expect("store");
        let hf = HouseFormat::from_config(&config.house_format);
        let dir = config.storage.assets_dir().join("busy");
        let facts = serde_json::json!({});
        vvtv::factory::produce::make_asset(
            &store,
            &hf,
            Source::File(source),
            dir,
            "Busy bars",
            AssetKind::Programme,
            facts,
        )
        .await
        .expect("encode the bench clip");
        store.close().await;
    });
}

/// Waits until the clip is on air and its rung lists a few of its segments; returns the URL paths of the rung's
/// playlist and of the largest of the last segments it lists.
fn wait_for_segment(daemon: &Daemon) -> (String, String) {
    let playlist = format!("/hls/main/{RUNG}/live.m3u8");
    let dir = daemon.data_dir().join("hls/main").join(RUNG);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut on_air_since: Option<u64> = None;
    loop {
        assert!(Instant::now() < deadline, "the clip did not air within 5 minutes");
        std::thread::sleep(Duration::from_secs(1));
        let Ok(res) = reqwest::blocking::get(daemon.url(&playlist)) else { continue };
        if !res.status().is_success() {
            continue;
        }
        let listed = listed_segments(&res.text().unwrap_or_default());
        let on_air = daemon.api_get("/api/v1/channels/main/streaming").to_string().contains("Busy bars");
        let Some(&last) = listed.last() else { continue };
        if !on_air {
            continue;
        }
        // Segments listed after the clip went on air are all of the clip.
        let since = *on_air_since.get_or_insert(last + 1);
        if last < since + 1 {
            continue;
        }
        let name = format!("seg{last:08}.ts");
        if std::fs::metadata(dir.join(&name)).is_ok() {
            return (playlist, format!("/hls/main/{RUNG}/{name}"));
        }
    }
}

/// The nginx side: the daemon's data folder as root, the origin's content types and headers.
fn nginx_http(port: u16, data_dir: &Path) -> String {
    format!(
        r#"
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port} reuseport;
    root {root};
    location ~ \.m3u8$ {{
      add_header Cache-Control "max-age=1";
      add_header Access-Control-Allow-Origin "*";
    }}
    location ~ \.ts$ {{
      add_header Cache-Control "public, max-age=31536000, immutable";
      add_header Access-Control-Allow-Origin "*";
    }}
  }}
"#,
        root = data_dir.display()
    )
}

/// Both servers answer 200 with the same bytes (the playlist may move on between two reads: tried a few times).
fn same_bytes(a: &str, b: &str) -> usize {
    for _ in 0..5 {
        let get = |url: &str| {
            let res = reqwest::blocking::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
            assert!(res.status().is_success(), "GET {url}: {}", res.status());
            res.bytes().unwrap_or_else(|e| panic!("GET {url}: {e}"))
        };
        let (x, y) = (get(a), get(b));
        if x == y {
            return x.len();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("{a} and {b} keep answering different bytes");
}

#[derive(Debug, Clone, Default)]
struct Wrk {
    requests_per_s: f64,
    p99: String,
    /// Non-2xx answers plus socket errors.
    errors: u64,
}

impl Wrk {
    fn best(self, other: Wrk) -> Wrk {
        if other.requests_per_s > self.requests_per_s {
            other
        } else {
            self
        }
    }
}

fn wrk(url: &str, connections: u64, seconds: u64) -> Wrk {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", url])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "wrk {url}: {text}{}", String::from_utf8_lossy(&out.stderr));
    let field = |prefix: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string())).unwrap_or_default()
    };
    let requests_per_s = field("Requests/sec:").parse().unwrap_or(0.0);
    let p99 = field("99%");
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").parse().unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket: u64 = field("Socket errors:")
        .split(',')
        .filter_map(|part| part.split_whitespace().last().and_then(|n| n.parse::<u64>().ok()))
        .sum();
    Wrk { requests_per_s, p99, errors: non_2xx + socket }
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_size(bytes: usize) -> String {
    if bytes >= 1024 {
        format!("{:.0} KB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}
