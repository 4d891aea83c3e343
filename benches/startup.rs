//! `make bench-startup`: time to the first playable stream, from the daemon's spawn to the moment a player that
//! polls from the start has the channel's `live.m3u8`, every variant playlist it lists and the first segment of each.
//!
//! Three starts of one station, in one data folder, with the embedded defaults (`make run`: the demo channel on the
//! 4-rung 1080p ladder):
//! - first start: nothing on disk; the slate is encoded first (a short one; the full one follows while it plays)
//!   and the demo clips after it;
//! - warm start: the slate is cached and `hls/` is emptied, so the stream starts from nothing;
//! - restart: `hls/` kept, as after a crash or an upgrade; the recovered playlists are served at once.
//!
//! Options (environment): BENCH_LADDER=small for the two-rung test ladder, BENCH_RUNS=1 (warm starts and restarts
//! are repeated and each is printed).

use std::time::{Duration, Instant};
use vvtv_testkit::daemon::{listed_segments, write_config, Daemon, SMALL_LADDER};

fn main() {
    let small = std::env::var("BENCH_LADDER").is_ok_and(|l| l == "small");
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let work = tempfile::tempdir().expect("temp dir");
    let config = write_config(work.path(), if small { SMALL_LADDER } else { "" });
    let ladder = if small { "2-rung test ladder" } else { "default 4-rung 1080p ladder" };
    println!("bench-startup: demo channel, {ladder}, work dir {}", work.path().display());

    let mut rows: Vec<(String, Duration, Duration)> = Vec::new();
    let (daemon, first) = start(work.path(), &config);
    rows.push(("first start (nothing on disk)".into(), first.0, first.1));
    let mut daemon = Some(daemon);
    for run in 0..runs {
        stop(daemon.take().expect("daemon"));
        let hls = work.path().join("data/hls");
        std::fs::remove_dir_all(&hls).expect("empty hls/");
        let (d, warm) = start(work.path(), &config);
        rows.push((format!("warm start, empty hls/ #{}", run + 1), warm.0, warm.1));
        stop(d);
        let (d, restart) = start(work.path(), &config);
        rows.push((format!("restart, hls/ kept #{}", run + 1), restart.0, restart.1));
        daemon = Some(d);
    }
    drop(daemon);

    println!();
    println!("{:<32} {:>12} {:>22}", "", "listening", "first playable stream");
    for (what, listening, playable) in &rows {
        println!("{what:<32} {:>10.2} s {:>20.2} s", listening.as_secs_f64(), playable.as_secs_f64());
    }
    println!("goal: warm start ≤ 3 s; first start as short as it can be");
}

/// Starts the daemon; returns it with the time to its listening address and to the first playable stream.
fn start(dir: &std::path::Path, config: &std::path::Path) -> (Daemon, (Duration, Duration)) {
    let t0 = Instant::now();
    let daemon = Daemon::start(dir, config);
    let listening = t0.elapsed();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let deadline = t0 + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "no playable stream within 10 minutes");
        if playable(&client, &daemon) {
            return (daemon, (listening, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a player needs to start: the channel playlist, each variant it lists, and a first segment of each.
fn playable(client: &reqwest::blocking::Client, d: &Daemon) -> bool {
    let get = |path: &str| -> Option<reqwest::blocking::Response> {
        client.get(d.url(path)).send().ok().filter(|r| r.status() == 200)
    };
    let Some(top) = get("/hls/main/live.m3u8").and_then(|r| r.text().ok()) else { return false };
    let variants: Vec<&str> = top.lines().filter(|l| !l.starts_with('#') && l.ends_with(".m3u8")).collect();
    if variants.is_empty() {
        return false;
    }
    variants.iter().all(|variant| {
        let Some(playlist) = get(&format!("/hls/main/{variant}")).and_then(|r| r.text().ok()) else { return false };
        let rung = variant.trim_end_matches("/live.m3u8");
        listed_segments(&playlist)
            .first()
            .is_some_and(|seq| get(&format!("/hls/main/{rung}/seg{seq:08}.ts")).is_some_and(|r| r.bytes().is_ok()))
    })
}

/// A clean stop (SIGTERM), as systemd or Ctrl-C does.
fn stop(mut d: Daemon) {
    d.signal_and_wait(libc::SIGTERM, Duration::from_secs(30)).expect("the daemon did not stop within 30 s");
}
