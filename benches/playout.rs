//! `make bench-playout`: what playout without re-encoding costs, measured side by side with the peers' way.
//!
//! For N = 1, 10, 50 channels on the default 4-rung 1080p ladder, one real daemon plays a pre-seeded library for
//! 60 s; the daemon's CPU time and RSS are read from /proc and divided per channel, and every channel's gap and
//! restart counters are read from the control API. In the same run one channel of live re-encoding (decode + x264
//! veryfast at 1080p30, paced in real time) is measured the same way, so the ratio is printed from one machine.
//!
//! Options (environment): BENCH_CHANNELS="1,10,50", BENCH_SECONDS=60, BENCH_SOURCE="card,busy" (card: a test card like
//! the demo clips, ~1.4 Mbit/s per channel over all rungs; busy: moving bars that keep every rung at its bitrate cap,
//! ~10.6 Mbit/s, the worst case), BENCH_KEEP=1 to keep the work dir.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};
use vvtv::config::Config;
use vvtv::media::house_format::HouseFormat;
use vvtv::media::transcode::Source;
use vvtv::store::{AssetKind, Store};
use vvtv_testkit::daemon::{vvtv_bin, write_config, Daemon};
use vvtv_testkit::media;

fn main() {
    let counts: Vec<usize> = std::env::var("BENCH_CHANNELS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let work = tempfile::tempdir().expect("temp dir");
    // BENCH_KEEP=1 leaves the work dir (library, segments, configs) for inspection.
    let work_path = work.path().to_path_buf();
    let work = if std::env::var("BENCH_KEEP").is_ok() { Err(work.keep()) } else { Ok(work) };
    let work = Workdir(work, work_path);
    // Found before any encoding starts: a missing daemon binary fails the bench at once.
    vvtv_bin();
    println!("bench-playout: default ladder, {seconds} s per run, work dir {}", work.path().display());

    let sources: Vec<String> = std::env::var("BENCH_SOURCE")
        .unwrap_or_else(|_| "card,busy".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for kind in &sources {
        let source = match kind.as_str() {
            "card" => None,
            _ => Some(busy_source(work.path(), 12)),
        };
        let library = work.path().join(format!("library-{kind}"));
        println!("encoding the {kind} library (3 × 12 s clips, 4 rungs) ...");
        let db = seed_library(&library, &source);
        for &n in &counts {
            let r = run_channels(&work.path().join(kind), &db, n, seconds);
            println!(
            "N={n:>3}: {:.3} cores total, {:.4} cores/channel, RSS {:.0} MB ({:.1} MB/channel), {:.2} Mbit/s/channel, \
             gaps {} restarts {} segments/channel {:.1} ({:.0} % of real time)",
            r.cores,
            r.cores / n as f64,
            r.rss_mb,
            r.rss_mb / n as f64,
            r.mbit_per_channel,
            r.gaps,
            r.restarts,
            r.segments as f64 / n as f64,
            r.realtime * 100.0
        );
            rows.push((kind.clone(), n, r));
        }
    }

    let reencode = reencode_cores(work.path(), seconds);
    println!("live re-encode (decode + x264 veryfast 1080p30, one rendition): {reencode:.3} cores/channel");
    println!();
    println!(
        "| content | channels | cores/channel | RSS MB/channel | Mbit/s/channel | gaps | restarts | real time | × cheaper than re-encode |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (kind, n, r) in &rows {
        let per = r.cores / *n as f64;
        println!(
            "| {kind} | {n} | {per:.4} | {:.1} | {:.2} | {} | {} | {:.0} % | {:.0}× |",
            r.rss_mb / *n as f64,
            r.mbit_per_channel,
            r.gaps,
            r.restarts,
            r.realtime * 100.0,
            reencode / per.max(1e-6)
        );
    }
}

/// The work dir: removed at the end unless kept (the TempDir is held only for its drop).
struct Workdir(#[allow(dead_code)] Result<tempfile::TempDir, PathBuf>, PathBuf);

impl Workdir {
    fn path(&self) -> &Path {
        &self.1
    }
}

/// A 1080p source that keeps the encoder near its bitrate cap (moving ball over noise-free bars is too easy): the
/// bench should measure realistic bytes per second, not a nearly static card.
fn busy_source(dir: &Path, seconds: u32) -> PathBuf {
    let out = dir.join("busy.mkv");
    let frames = seconds * 30;
    media::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=7 ! video/x-raw,width=1920,height=1080,framerate=30/1 ! \
         x264enc speed-preset=ultrafast quantizer=16 pass=quant ! matroskamux name=m ! filesink location={} \
         audiotestsrc num-buffers={} samplesperbuffer=1600 wave=pink-noise volume=0.2 ! audio/x-raw,rate=48000,channels=2 ! \
         audioconvert ! avenc_aac ! m.",
        out.display(),
        frames
    ))
    .expect("could not make the busy source");
    out
}

/// Encodes three clips into the house format and records them in a database that each run copies.
fn seed_library(dir: &Path, source: &Option<PathBuf>) -> PathBuf {
    std::fs::create_dir_all(dir).expect("library dir");
    let db = dir.join("vvtv.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = Store::open(&db).await.expect("store");
        let hf = HouseFormat::from_config(&Config::default().house_format);
        let started = Instant::now();
        let first = vvtv::factory::produce::make_asset(
            &store,
            &hf,
            match source {
                Some(file) => Source::File(file.clone()),
                None => Source::TestCard {
                    title: "bench card".into(),
                    pattern: vvtv::media::transcode::TestPattern::Ball,
                    tone_hz: Some(440.0),
                    duration: Duration::from_secs(12),
                    pcm: None,
                    poster: None,
                },
            },
            dir.join("clip-0"),
            "bench clip 0",
            AssetKind::Programme,
            serde_json::json!({}),
        )
        .await
        .expect("encode bench clip");
        println!("  clip 0 encoded in {:.1} s", started.elapsed().as_secs_f64());
        // The same renditions under other ids: the playout reads each item afresh either way.
        for i in 1..3 {
            let copy = dir.join(format!("clip-{i}"));
            std::fs::create_dir_all(&copy).expect("copy dir");
            let mut renditions = Vec::new();
            for r in store.renditions(first.id).await.expect("renditions") {
                let to = copy.join(Path::new(&r.path).file_name().expect("file name"));
                std::fs::copy(&r.path, &to).expect("copy rendition");
                renditions.push(vvtv::store::NewRendition {
                    rung: r.rung.clone(),
                    path: to,
                    width: r.width,
                    height: r.height,
                    video_kbps: r.video_kbps,
                    size_bytes: r.size_bytes,
                });
            }
            store
                .insert_asset(&vvtv::store::NewAsset {
                    title: format!("bench clip {i}"),
                    dir: copy,
                    duration: first.duration,
                    keyframes: first.keyframes.clone(),
                    renditions,
                    ..Default::default()
                })
                .await
                .expect("insert copy");
        }
        store.close().await;
    });
    db
}

struct RunResult {
    cores: f64,
    rss_mb: f64,
    mbit_per_channel: f64,
    gaps: u64,
    restarts: u64,
    segments: u64,
    /// Segments made per channel against what real time calls for: below 100 % the box cannot keep up.
    realtime: f64,
}

fn run_channels(work: &Path, db: &Path, n: usize, seconds: u64) -> RunResult {
    let run = work.join(format!("run-{n}"));
    let data = run.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // WAL mode: committed rows may still sit in the -wal file; copy the database as SQLite left it.
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            std::fs::copy(&from, data.join(format!("vvtv.db{suffix}"))).expect("copy db");
        }
    }
    let mut extra = "[planner]\nbuffer_minutes = 3\n".to_string();
    for i in 0..n {
        extra.push_str(&format!("[[channels]]\nid = \"ch{i}\"\nname = \"Bench\"\ndemo_clips = false\n"));
    }
    let daemon = Daemon::start(&run, &write_config(&run, &extra));
    let pid = daemon.child.id();
    let token = daemon.token();
    let http = reqwest::blocking::Client::new();
    let status = |ch: usize| -> Option<serde_json::Value> {
        let url = daemon.url(&format!("/api/v1/channels/ch{ch}/streaming"));
        http.get(url).bearer_auth(&token).send().ok()?.json().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while (0..n).any(|ch| status(ch).and_then(|s| s["segments_written"].as_u64()).unwrap_or(0) < 2) {
        assert!(Instant::now() < deadline, "N={n}: channels did not all come on air within 300 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let before: Vec<u64> =
        (0..n).map(|ch| status(ch).and_then(|s| s["segments_written"].as_u64()).unwrap_or(0)).collect();
    let bytes_before = hls_bytes(&data.join("hls"));
    let (cpu0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, elapsed) = (cpu_ticks(pid), t0.elapsed().as_secs_f64());
    let rss_mb = rss_kb(pid) as f64 / 1024.0;
    let bytes = hls_bytes(&data.join("hls")).saturating_sub(bytes_before);
    let mut gaps = 0;
    let mut restarts = 0;
    let mut segments = 0;
    for (ch, b) in before.iter().enumerate() {
        let s = status(ch).unwrap_or_default();
        gaps += s["gaps_detected"].as_u64().unwrap_or(0);
        restarts += s["restarts"].as_u64().unwrap_or(0);
        segments += s["segments_written"].as_u64().unwrap_or(0).saturating_sub(*b);
    }
    drop(daemon);
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    RunResult {
        cores: (cpu1 - cpu0) as f64 / ticks / elapsed,
        rss_mb,
        // The top rung is what a viewer on a good link pulls; all rungs are written.
        mbit_per_channel: bytes as f64 * 8.0 / elapsed / 1e6 / n as f64,
        gaps,
        restarts,
        segments,
        realtime: segments as f64 / n as f64 / (elapsed / 4.0),
    }
}

/// Bytes of segments written under the HLS root (grace keeps the recent ones on disk; the bench counts growth).
fn hls_bytes(root: &Path) -> u64 {
    fn walk(p: &Path, total: &mut u64) {
        if let Ok(entries) = std::fs::read_dir(p) {
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, total);
                } else if path.extension().is_some_and(|x| x == "ts") {
                    *total += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
    }
    let mut total = 0;
    walk(root, &mut total);
    total
}

/// utime + stime of a process and its threads, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // fields after the command: state is 0, utime is 11, stime is 12
    get(11) + get(12)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The peers' way: decode the source and encode it live with x264 veryfast at 1080p30, paced to real time.
fn reencode_cores(work: &Path, seconds: u64) -> f64 {
    let src = busy_source(work, seconds as u32 + 5);
    let out = work.join("reencode.ts");
    let mut child: Child = media::command(&format!(
        "filesrc location={} ! matroskademux ! h264parse ! avdec_h264 ! clocksync ! videoconvert ! \
         x264enc speed-preset=veryfast bitrate=4500 key-int-max=60 ! h264parse ! mpegtsmux ! \
         filesink location={}",
        src.display(),
        out.display()
    ))
    .spawn()
    .expect("start the live re-encode");
    std::thread::sleep(Duration::from_secs(2));
    let (c0, t0) = (cpu_ticks(child.id()), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (c1, elapsed) = (cpu_ticks(child.id()), t0.elapsed().as_secs_f64());
    let _ = child.kill();
    let _ = child.wait();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (c1 - c0) as f64 / ticks / elapsed
}
