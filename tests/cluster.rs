//! Two `vvtv` nodes sharing one station on one machine: a throwaway PostgreSQL 15 cluster for the store and SeaweedFS
//! (`weed mini`) for the objects, both on loopback, as the README's deployment section sets them up.
//!
//! Both nodes ingest (jobs submitted to both at once, each done exactly once); the channel plays through either
//! node; a SIGKILL of the holder hands the channel to the other node within 12 s, the media sequence continuing with
//! one discontinuity and every listed segment fetchable; a SIGSTOP/SIGCONT'd holder's late writes are refused (no
//! row of its epoch after the takeover); a worker killed in the middle of a job has the job requeued and finished by
//! the other node. What aired is checked at the end: no two airings overlap, and an item interrupted by a takeover
//! resumes near where it was instead of starting again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vvtv_testkit::cluster::{get, playlist, Station};
use vvtv_testkit::daemon::{discontinuities, listed_segments, vvtvctl_bin, wait_for, Daemon};

/// A takeover must be this quick (issue budget): lease expiry, a tick, and the new holder's first segment.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(12);
/// How long the player watches: about 12 s before the kill and the rest after it.
const PLAYER_SECONDS: u64 = 32;

/// `config/nginx-cluster.conf` with the two nodes' addresses (`first` asked first), the listen port and paths.
fn edge_config(first: &str, second: &str, port: u16, prefix: &Path) -> String {
    let mut conf = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/nginx-cluster.conf"))
        .expect("config/nginx-cluster.conf");
    for (from, to) in [
        ("server 10.0.0.11:8080 ", format!("server {first} ")),
        ("server 10.0.0.12:8080 ", format!("server {second} ")),
        ("listen 8081;", format!("listen 127.0.0.1:{port};")),
        ("/var/cache/nginx/vvtv-cluster", prefix.join("cache").display().to_string()),
        ("/var/log/nginx/vvtv-cluster.log", prefix.join("edge.log").display().to_string()),
    ] {
        assert!(conf.contains(from), "config/nginx-cluster.conf no longer contains {from:?}: update this test");
        conf = conf.replace(from, &to);
    }
    conf
}

/// A node's `host:port`.
fn addr(node: &Daemon) -> String {
    node.base.trim_start_matches("http://").to_string()
}

/// Every segment `playlist` lists is served by `node` as MPEG-TS.
fn assert_all_fetchable(node: &Daemon, playlist: &str, label: &str) {
    for seq in listed_segments(playlist) {
        for rung in ["180p", "90p"] {
            let url = node.url(&format!("/hls/main/{rung}/seg{seq:08}.ts"));
            let (status, body) = get(&url).unwrap_or_else(|| panic!("{label}: GET {url} failed"));
            assert_eq!(status, 200, "{label}: {url}");
            assert!(body.len() > 188 && body[0] == 0x47, "{label}: {url} is not MPEG-TS ({} bytes)", body.len());
        }
    }
}

fn ingest(node: &Daemon, path: &Path) -> i64 {
    ingest_at(&node.base, &node.token(), path)
}

/// `vvtvctl ingest PATH` against the node at `base`; returns the job id.
fn ingest_at(base: &str, token: &str, path: &Path) -> i64 {
    let out = std::process::Command::new(vvtvctl_bin())
        .args(["--api", base, "--token", token, "--json", "ingest"])
        .arg(path)
        .output()
        .expect("run vvtvctl");
    assert!(out.status.success(), "ingest {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["id"].as_i64().or(v["job"]["id"].as_i64()).unwrap_or_else(|| panic!("no job id in {v}"))
}

#[test]
fn two_nodes_share_a_station_and_survive_kill_and_pause() {
    let tmp = tempfile::tempdir().unwrap();
    if std::env::var_os("VVTV_KEEP_CLUSTER_DIR").is_some() {
        eprintln!("keeping {}", tmp.path().display());
    }
    let station = Station::start(tmp.path());
    let media = station.media_dir();
    let clips: Vec<PathBuf> = (0..4)
        .map(|i| {
            let path = media.join(format!("clip{i}.mp4"));
            let pattern = ["smpte", "ball", "pinwheel", "colors"][i];
            vvtv_testkit::media::test_video(&path, (320, 180), 24, pattern);
            path
        })
        .collect();

    let mut nodes: BTreeMap<String, Daemon> =
        ["node-a", "node-b"].into_iter().map(|n| (n.to_string(), station.start_node(n))).collect();
    let other = |name: &str| if name == "node-a" { "node-b".to_string() } else { "node-a".to_string() };

    // Ingest through both nodes at once: each job is claimed by one worker and done once.
    let targets: Vec<(String, String)> = nodes.values().map(|n| (n.base.clone(), n.token())).collect();
    let jobs: Vec<i64> = std::thread::scope(|s| {
        let targets = &targets;
        let handles: Vec<_> = clips
            .iter()
            .enumerate()
            .map(|(i, clip)| {
                s.spawn(move || {
                    let (base, token) = &targets[i % 2];
                    ingest_at(base, token, clip)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids = jobs.iter().map(|j| j.to_string()).collect::<Vec<_>>().join(",");
    wait_for("the four jobs to be ready", Duration::from_secs(300), || {
        let bad = station.sql(&format!("SELECT string_agg(id || ': ' || reason, '; ') FROM jobs WHERE id IN ({ids}) AND status IN ('rejected', 'failed')"));
        assert!(bad.is_empty(), "jobs that should have been ready: {bad}");
        station.number(&format!("SELECT COUNT(*) FROM jobs WHERE id IN ({ids}) AND status = 'ready'")) == 4
    });
    assert_eq!(station.number("SELECT COUNT(DISTINCT asset_id) FROM jobs WHERE status = 'ready'"), 4);
    for job in &jobs {
        let ends = station.number(&format!(
            "SELECT COUNT(*) FROM events WHERE kind IN ('job_ready', 'job_failed', 'job_rejected') \
             AND CAST(data AS jsonb)->>'job_id' = '{job}'"
        ));
        assert_eq!(ends, 1, "job {job} ended exactly once");
    }
    eprintln!("jobs done by: {}", station.sql("SELECT string_agg(node, ',' ORDER BY id) FROM jobs"));

    // The channel plays, programme on air, through either node.
    wait_for("a programme on air", Duration::from_secs(120), || {
        station.number("SELECT COUNT(*) FROM airings WHERE channel_id = 'main' AND kind = 'scheduled'") > 0
    });
    let (holder, epoch) = station.lease("main").expect("a lease");
    eprintln!("holder {holder} epoch {epoch}");
    wait_for("both nodes to serve the same window", Duration::from_secs(20), || {
        let lists: Vec<Vec<u64>> = nodes.values().filter_map(playlist).map(|p| listed_segments(&p)).collect();
        lists.len() == 2 && lists[0].len() >= 3 && lists[0].last() == lists[1].last()
    });
    for node in nodes.values() {
        assert_all_fetchable(node, &playlist(node).unwrap(), "before the kill");
        let (status, master) = get(&node.url("/hls/main/live.m3u8")).unwrap();
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&master).contains("180p/live.m3u8"), "multivariant on {}", node.base);
    }
    // Either node tells who plays the channel and which nodes are alive.
    let status = nodes[&other(&holder)].vvtvctl(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "vvtvctl status: {}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains(&format!("{holder} (epoch {epoch})")) && text.contains("standby"), "{text}");
    assert!(text.contains("node-a [") && text.contains("node-b [") && text.contains("PostgreSQL"), "{text}");
    let seq = *listed_segments(&playlist(&nodes["node-a"]).unwrap()).last().unwrap();
    let seg = |n: &Daemon| get(&n.url(&format!("/hls/main/180p/seg{seq:08}.ts"))).unwrap().1;
    assert_eq!(seg(&nodes["node-a"]), seg(&nodes["node-b"]), "segment {seq} differs between the origins");

    // SIGKILL the holder: the other node continues the stream within the limit, and a real player (hls.js in
    // Chromium) watching through the README's edge (config/nginx-cluster.conf: the holder first, the other node when
    // it fails) plays on across the takeover without an error or a stall.
    let survivor = other(&holder);
    let port = vvtv_testkit::nginx::free_port();
    let prefix = tmp.path().join("edge");
    let (first, second) = (addr(&nodes[&holder]), addr(&nodes[&survivor]));
    let mut edge = vvtv_testkit::nginx::Nginx::start(&prefix, port, 1, &edge_config(&first, &second, port, &prefix));
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/player-check");
    let player = std::process::Command::new("node")
        .arg(check.join("check.mjs"))
        .arg(edge.url("/hls/main/live.m3u8"))
        .arg(PLAYER_SECONDS.to_string())
        .arg("--out")
        .arg(tmp.path().join("player-check.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("run node scripts/player-check/check.mjs");
    std::thread::sleep(Duration::from_secs(12));
    let before = playlist(&nodes[&survivor]).unwrap();
    let killed_at = Instant::now();
    let mut victim = nodes.remove(&holder).unwrap();
    victim.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)).expect("killed");
    drop(victim);
    wait_for("a new lease epoch", TAKEOVER_LIMIT, || station.lease("main").is_some_and(|(_, e)| e > epoch));
    let (new_holder, new_epoch) = station.lease("main").unwrap();
    assert_eq!(new_holder, survivor);
    let (seen_at, after) = station.wait_for_epoch(&nodes[&survivor], new_epoch, TAKEOVER_LIMIT);
    let takeover = seen_at - killed_at;
    eprintln!("takeover after SIGKILL: {:.2} s (epoch {new_epoch})", takeover.as_secs_f64());
    assert!(takeover <= TAKEOVER_LIMIT, "takeover took {takeover:?}");
    let old_last =
        station.number(&format!("SELECT MAX(seq) FROM segments WHERE channel_id = 'main' AND epoch = {epoch}"));
    let new_first =
        station.number(&format!("SELECT MIN(seq) FROM segments WHERE channel_id = 'main' AND epoch = {new_epoch}"));
    assert_eq!(new_first, old_last + 1, "the media sequence continues");
    let (old_listed, new_listed) = (listed_segments(&before), listed_segments(&after));
    assert!(new_listed.windows(2).all(|w| w[1] == w[0] + 1), "consecutive: {new_listed:?}");
    assert!(new_listed.first() >= old_listed.first(), "never back: {old_listed:?} then {new_listed:?}");
    assert_eq!(discontinuities(&after), discontinuities(&before) + 1, "one discontinuity:\n{before}\n{after}");
    assert_all_fetchable(&nodes[&survivor], &after, "after the kill");

    // The killed node comes back as a standby and serves the new holder's stream.
    nodes.insert(holder.clone(), station.start_node(&holder));
    wait_for("the restarted node to serve the channel", Duration::from_secs(20), || {
        let (x, y) = (playlist(&nodes[&holder]), playlist(&nodes[&survivor]));
        x.zip(y).is_some_and(|(x, y)| listed_segments(&x).last() == listed_segments(&y).last())
    });
    assert_eq!(
        station.lease("main").unwrap(),
        (survivor.clone(), new_epoch),
        "a restart does not take the channel back"
    );
    assert_all_fetchable(&nodes[&holder], &playlist(&nodes[&holder]).unwrap(), "restarted standby");
    let output = player.wait_with_output().expect("wait for the player check");
    edge.stop();
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("hls.js across the takeover:\n{report}");
    assert!(output.status.success(), "hls.js did not play on across the takeover:\n{report}");
    let log = std::fs::read_to_string(prefix.join("edge.log")).unwrap_or_default();
    assert!(log.contains(&second), "the edge never asked the surviving node: the player was not failed over");

    // SIGSTOP the holder: the standby takes over; after SIGCONT the paused holder's writes are refused.
    let zombie = survivor.clone();
    let zombie_epoch = new_epoch;
    // SAFETY: plain syscalls on daemons this test started.
    unsafe { libc::kill(nodes[&zombie].child.id() as i32, libc::SIGSTOP) };
    let stopped_at = Instant::now();
    wait_for("a takeover of the paused holder", TAKEOVER_LIMIT, || {
        station.lease("main").is_some_and(|(_, e)| e > zombie_epoch)
    });
    let (third_holder, third_epoch) = station.lease("main").unwrap();
    assert_eq!(third_holder, holder);
    let (seen, _) = station.wait_for_epoch(&nodes[&holder], third_epoch, TAKEOVER_LIMIT);
    eprintln!("takeover after SIGSTOP: {:.2} s (epoch {third_epoch})", (seen - stopped_at).as_secs_f64());
    let zombie_rows = station.number(&format!("SELECT COUNT(*) FROM segments WHERE epoch = {zombie_epoch}"));
    unsafe { libc::kill(nodes[&zombie].child.id() as i32, libc::SIGCONT) };
    wait_for("the woken holder to notice it lost the channel", Duration::from_secs(15), || {
        station.number(&format!(
            "SELECT COUNT(*) FROM events WHERE kind = 'lease_lost' AND CAST(data AS jsonb)->>'epoch' = '{zombie_epoch}'"
        )) == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        station.number(&format!("SELECT COUNT(*) FROM segments WHERE epoch = {zombie_epoch}")),
        zombie_rows,
        "the woken holder published nothing after the takeover"
    );
    for node in nodes.values() {
        let text = playlist(node).expect("served");
        assert_all_fetchable(node, &text, "after the pause");
    }

    // A worker killed in the middle of a job: the job is requeued and finished by the other node.
    let long = media.join("long.mp4");
    vvtv_testkit::media::test_video(&long, (640, 360), 40, "smpte");
    let job = ingest(&nodes[&zombie], &long);
    wait_for("the long job to be claimed", Duration::from_secs(60), || {
        station.number(&format!(
            "SELECT COUNT(*) FROM jobs WHERE id = {job} AND node IS NOT NULL \
             AND status IN ('downloading', 'probing', 'normalizing', 'gating')"
        )) == 1
    });
    let worker = station.sql(&format!("SELECT node FROM jobs WHERE id = {job}"));
    let mut killed = nodes.remove(&worker).unwrap();
    killed.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)).expect("worker killed");
    drop(killed);
    wait_for("the job requeued and finished by the other node", Duration::from_secs(240), || {
        let row = station.sql(&format!("SELECT status || ' ' || COALESCE(node, '-') FROM jobs WHERE id = {job}"));
        row == format!("ready {}", other(&worker))
    });
    let requeued = station.number(&format!(
        "SELECT COUNT(*) FROM events WHERE kind = 'jobs_requeued' AND CAST(data AS jsonb)->'job_ids' @> '[{job}]'"
    ));
    assert!(requeued >= 1, "the requeue is recorded");
    assert_all_fetchable(&nodes[&other(&worker)], &playlist(&nodes[&other(&worker)]).unwrap(), "at the end");

    let skipped = station.sql("SELECT string_agg(message, '; ') FROM events WHERE kind = 'asset_skipped'");
    assert!(skipped.is_empty(), "every asset stays airable across the takeovers: {skipped}");
    let resumed = station.sql("SELECT string_agg(message, '; ') FROM events WHERE kind = 'resumed'");
    eprintln!("resumed: {resumed}");

    // What aired: no overlap, and each item a takeover interrupted resumed near its position.
    let rows = station.sql(
        "SELECT COALESCE(schedule_id, 0) || ' ' || start_ms || ' ' || COALESCE(end_ms, 0) || ' ' || offset_ms \
         FROM airings WHERE channel_id = 'main' ORDER BY start_ms",
    );
    let airings: Vec<[i64; 4]> = rows
        .lines()
        .map(|l| {
            let v: Vec<i64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect();
    for w in airings.windows(2) {
        let (prev, next) = (w[0], w[1]);
        if prev[2] != 0 {
            assert!(next[1] >= prev[2] - 100, "airings overlap: {prev:?} then {next:?}");
        }
    }
    for (i, a) in airings.iter().enumerate() {
        if a[0] == 0 || a[2] == 0 {
            continue;
        }
        if let Some(next) = airings[i + 1..].iter().find(|n| n[0] == a[0]) {
            let reached = a[3] + (a[2] - a[1]);
            assert!(
                next[3] >= reached - 4_000,
                "schedule row {} started again at {} ms after reaching {reached} ms",
                a[0],
                next[3]
            );
        }
    }
    drop(nodes);
    if std::env::var_os("VVTV_KEEP_CLUSTER_DIR").is_some() {
        let _ = tmp.keep();
    }
}
