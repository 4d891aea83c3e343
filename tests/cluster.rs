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
use vvtv_testkit::daemon::{discontinuities, listed_segments, vvtvctl_bin, wait_for, Daemon};
use vvtv_testkit::postgres::Postgres;
use vvtv_testkit::seaweed::Seaweed;

/// A takeover must be this quick (issue budget): lease expiry, a tick, and the new holder's first segment.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(12);

const LADDER: &str = r#"
[house_format]
x264_preset = "ultrafast"
segment_seconds = 2
gop_seconds = 2
[[house_format.ladder]]
name = "180p"
width = 320
height = 180
video_kbps = 300
[[house_format.ladder]]
name = "90p"
width = 160
height = 90
video_kbps = 150
"#;

struct Station {
    pg: Postgres,
    _weed: Seaweed,
    dir: PathBuf,
}

impl Station {
    fn sql(&self, sql: &str) -> String {
        self.pg.psql("vvtv", sql).trim().to_string()
    }

    fn number(&self, sql: &str) -> i64 {
        let text = self.sql(sql);
        text.parse().unwrap_or_else(|_| panic!("{sql}: {text:?} is not a number"))
    }

    /// (holder, epoch) of the channel's lease.
    fn lease(&self) -> Option<(String, i64)> {
        let row = self.sql("SELECT holder || ' ' || epoch FROM channel_lease WHERE channel_id = 'main'");
        let (holder, epoch) = row.split_once(' ')?;
        Some((holder.to_string(), epoch.parse().ok()?))
    }

    /// Writes node `name`'s config (its own data dir and port; the shared database and object store).
    fn config(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let weed = &self._weed;
        let text = format!(
            r#"[server]
listen = "127.0.0.1:0"
allow_loopback_without_token = true

[storage]
data_dir = "{data}"
database_url = "{db}"
object_url = "s3://vvtv/station"

[storage.s3]
endpoint = "{endpoint}"
region = "{region}"
access_key_id = "{key}"
secret_access_key = "{secret}"
allow_http = true

[node]
id = "{name}"
lease_seconds = 4
dead_after_seconds = 6

[factory]
ingest_roots = ["{media}"]
vmaf_subsample = 61
min_height = 180

[broadcaster]
playlist_segments = 5
segment_grace_seconds = 30

[curator]
enabled = false
{LADDER}
[[channels]]
id = "main"
name = "Main"
demo_clips = false
"#,
            data = dir.join("data").display(),
            db = self.pg.url("vvtv"),
            endpoint = weed.endpoint(),
            region = weed.region(),
            key = weed.access_key(),
            secret = weed.secret_key(),
            media = self.dir.join("media").display(),
        );
        let path = dir.join("vvtv.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start(&self, name: &str) -> Daemon {
        let config = self.config(name);
        Daemon::start(&self.dir.join(name), &config)
    }
}

fn get(url: &str) -> Option<(u16, Vec<u8>)> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let res = client.get(url).send().ok()?;
    let status = res.status().as_u16();
    Some((status, res.bytes().ok()?.to_vec()))
}

/// The rung playlist a node serves, if it serves one.
fn playlist(node: &Daemon) -> Option<String> {
    match get(&node.url("/hls/main/180p/live.m3u8")) {
        Some((200, body)) => Some(String::from_utf8_lossy(&body).into_owned()),
        _ => None,
    }
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

/// Waits until `node` lists a segment of lease epoch `epoch` (the new holder's first), returning when it saw it.
fn wait_for_epoch(station: &Station, node: &Daemon, epoch: i64, limit: Duration) -> (Instant, String) {
    let deadline = Instant::now() + limit;
    loop {
        let first: Option<u64> = station
            .sql(&format!("SELECT MIN(seq) FROM segments WHERE channel_id = 'main' AND epoch = {epoch}"))
            .parse()
            .ok();
        if let (Some(first), Some(text)) = (first, playlist(node)) {
            if listed_segments(&text).contains(&first) {
                return (Instant::now(), text);
            }
        }
        assert!(Instant::now() < deadline, "no segment of epoch {epoch} listed by {} within {limit:?}", node.base);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_nodes_share_a_station_and_survive_kill_and_pause() {
    let tmp = tempfile::tempdir().unwrap();
    if std::env::var_os("VVTV_KEEP_CLUSTER_DIR").is_some() {
        eprintln!("keeping {}", tmp.path().display());
    }
    let pg = Postgres::start();
    pg.create_database("vvtv");
    let weed = Seaweed::start(&tmp.path().join("weed"));
    weed.create_bucket("vvtv");
    let station = Station { pg, _weed: weed, dir: tmp.path().to_path_buf() };
    let media = tmp.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let clips: Vec<PathBuf> = (0..4)
        .map(|i| {
            let path = media.join(format!("clip{i}.mp4"));
            let pattern = ["smpte", "ball", "pinwheel", "colors"][i];
            vvtv_testkit::media::test_video(&path, (320, 180), 24, pattern);
            path
        })
        .collect();

    let mut nodes: BTreeMap<String, Daemon> =
        ["node-a", "node-b"].into_iter().map(|n| (n.to_string(), station.start(n))).collect();
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
    let (holder, epoch) = station.lease().expect("a lease");
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
    let seq = *listed_segments(&playlist(&nodes["node-a"]).unwrap()).last().unwrap();
    let seg = |n: &Daemon| get(&n.url(&format!("/hls/main/180p/seg{seq:08}.ts"))).unwrap().1;
    assert_eq!(seg(&nodes["node-a"]), seg(&nodes["node-b"]), "segment {seq} differs between the origins");

    // SIGKILL the holder: the other node continues the stream within the limit.
    let survivor = other(&holder);
    let before = playlist(&nodes[&survivor]).unwrap();
    let killed_at = Instant::now();
    let mut victim = nodes.remove(&holder).unwrap();
    victim.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)).expect("killed");
    drop(victim);
    wait_for("a new lease epoch", TAKEOVER_LIMIT, || station.lease().is_some_and(|(_, e)| e > epoch));
    let (new_holder, new_epoch) = station.lease().unwrap();
    assert_eq!(new_holder, survivor);
    let (seen_at, after) = wait_for_epoch(&station, &nodes[&survivor], new_epoch, TAKEOVER_LIMIT);
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
    nodes.insert(holder.clone(), station.start(&holder));
    wait_for("the restarted node to serve the channel", Duration::from_secs(20), || {
        let (x, y) = (playlist(&nodes[&holder]), playlist(&nodes[&survivor]));
        x.zip(y).is_some_and(|(x, y)| listed_segments(&x).last() == listed_segments(&y).last())
    });
    assert_eq!(station.lease().unwrap(), (survivor.clone(), new_epoch), "a restart does not take the channel back");
    assert_all_fetchable(&nodes[&holder], &playlist(&nodes[&holder]).unwrap(), "restarted standby");

    // SIGSTOP the holder: the standby takes over; after SIGCONT the paused holder's writes are refused.
    let zombie = survivor.clone();
    let zombie_epoch = new_epoch;
    // SAFETY: plain syscalls on daemons this test started.
    unsafe { libc::kill(nodes[&zombie].child.id() as i32, libc::SIGSTOP) };
    let stopped_at = Instant::now();
    wait_for("a takeover of the paused holder", TAKEOVER_LIMIT, || {
        station.lease().is_some_and(|(_, e)| e > zombie_epoch)
    });
    let (third_holder, third_epoch) = station.lease().unwrap();
    assert_eq!(third_holder, holder);
    let (seen, _) = wait_for_epoch(&station, &nodes[&holder], third_epoch, TAKEOVER_LIMIT);
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
