//! The player page in a real browser against a real daemon: headless Debian Chromium (playwright-core, driven by
//! `web/test/page-check.mjs`) opens three viewers of a channel airing short clips. The first is watched for 26 s;
//! what it showed is judged here against the daemon's own record (the airings in its SQLite file) and its APIs:
//! it played without stalling, the guide named the item on screen and changed at the boundaries, posters loaded,
//! no console errors, nothing fetched from elsewhere, three viewers counted within 30 s and none after they closed.
//! A second test plays a channel with nothing scheduled (the page must say it shows the slate), stops the daemon
//! under it (it must say it is offline) and starts it again (it must play again by itself).

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vvtv::config::Config;
use vvtv::media::house_format::HouseFormat;
use vvtv::media::transcode::{Source, TestPattern};
use vvtv::store::{Airing, AssetKind, ChannelId, SessionEnd, Store};
use vvtv_testkit::daemon::{wait_for, write_config, Daemon, SMALL_LADDER};

/// Short items, so a 26 s watch crosses several boundaries.
const CLIPS: [(&str, TestPattern, f64, f64); 4] = [
    ("Clip A - bars", TestPattern::Bars75, 440.0, 6.5),
    ("Clip B - ball", TestPattern::Ball, 660.0, 7.3),
    ("Clip C - pinwheel", TestPattern::Pinwheel, 880.0, 5.9),
    ("Clip D - spokes", TestPattern::Spokes, 550.0, 6.9),
];
const WATCH_SECONDS: f64 = 26.0;
/// The browser tests run one at a time: two daemons and two browsers on a small machine would stall each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// A sample this close to an item boundary may show either side of it (the guide polls the playhead).
const BOUNDARY_MS: i64 = 1000;

fn config_extra() -> String {
    format!(
        "{SMALL_LADDER}\n[curator]\nenabled = false\n\n[planner]\ndiversity_window = 2\n\n\
         [audience]\nheartbeat_seconds = 2\nsession_timeout_seconds = 6\nsession_beacons_per_minute = 60\n\n\
         [[channels]]\nid = \"main\"\nname = \"Page Test\"\ndemo_clips = false\n\n\
         [[channels]]\nid = \"second\"\nname = \"Second\"\ndemo_clips = false\n"
    )
}

fn seed_library(config_path: &Path) {
    let config = Config::load(config_path).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        std::fs::create_dir_all(&config.storage.data_dir).unwrap();
        let store = Store::open(&config.storage.db_path()).await.unwrap();
        let hf = HouseFormat::from_config(&config.house_format);
        for (i, (title, pattern, tone, secs)) in CLIPS.iter().enumerate() {
            let source = Source::TestCard {
                title: (*title).into(),
                pattern: *pattern,
                tone_hz: Some(*tone),
                duration: Duration::from_secs_f64(*secs),
                pcm: None,
                poster: None,
            };
            let dir = config.storage.assets_dir().join(format!("clip-{i}"));
            vvtv::factory::produce::make_asset(&store, &hf, source, dir, title, AssetKind::Programme, Value::Null)
                .await
                .unwrap();
        }
        store.close().await;
    });
}

/// Waits until every rung lists three segments: what hls.js starts from.
fn wait_for_stream(d: &Daemon) {
    wait_for("three segments on every rung", Duration::from_secs(90), || {
        ["180p", "90p"].iter().all(|r| {
            get(&d.url(&format!("/hls/main/{r}/live.m3u8")))
                .text()
                .map(|t| t.matches(".ts").count() >= 3)
                .unwrap_or(false)
        })
    });
}

fn get(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// `target/page-check/`: where the screenshots and the report stay for people to look at.
fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target dir").join("page-check")
}

fn airings(config_path: &Path) -> Vec<Airing> {
    let config = Config::load(config_path).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&config.storage.db_path()).await.unwrap();
        let now = chrono::Utc::now();
        let list = store.airings(&ChannelId::from("main"), now - chrono::Duration::hours(1), now).await.unwrap();
        store.close().await;
        list
    })
}

/// The airing on the main channel at programme time `ms`, and the distance to its nearest boundary.
fn airing_at(airings: &[Airing], ms: i64) -> Option<(&Airing, Option<&Airing>, i64)> {
    let i = airings.iter().rposition(|a| a.start.timestamp_millis() <= ms)?;
    let a = &airings[i];
    let end = a.end.map(|e| e.timestamp_millis()).unwrap_or(i64::MAX);
    if ms >= end {
        return None;
    }
    let margin = (ms - a.start.timestamp_millis()).min(end - ms);
    Some((a, airings.get(i + 1), margin))
}

/// One player page in headless Chromium (`web/test/offline-check.mjs`), reporting what it shows every 500 ms.
struct PageWatch {
    node: std::process::Child,
    stdin: std::cell::RefCell<Option<std::process::ChildStdin>>,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl PageWatch {
    fn open(url: &str) -> PageWatch {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/test/offline-check.mjs");
        let mut node = Command::new("node")
            .arg(&script)
            .args(["--url", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node: {e}"));
        let (tx, lines) = std::sync::mpsc::channel::<Value>();
        let stdout = node.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let stdin = std::cell::RefCell::new(node.stdin.take());
        PageWatch { node, stdin, lines }
    }

    /// Waits until the page shows `want`; returns that line.
    fn expect(&self, what: &str, limit: Duration, want: &dyn Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("the page never showed {what}"));
            if want(&line) {
                return line;
            }
        }
    }

    /// A viewer's tap on `selector`.
    fn tap(&self, selector: &str) {
        let mut stdin = self.stdin.borrow_mut();
        let stdin = stdin.as_mut().expect("the page is still open");
        writeln!(stdin, "click {selector}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the page; its last line lists the page's errors and what it fetched from elsewhere.
    fn finish(mut self) -> Value {
        drop(self.stdin.borrow_mut().take());
        let last = self.expect("the page's error report", Duration::from_secs(20), &|l| l["done"] == true);
        let _ = self.node.wait();
        last
    }
}

fn run_page_check(d: &Daemon, out: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/test/page-check.mjs");
    let _ = std::fs::remove_dir_all(out);
    let run = Command::new("node")
        .arg(&script)
        .args(["--base", &d.base, "--token", &d.token(), "--out"])
        .arg(out)
        .args(["--seconds", &WATCH_SECONDS.to_string(), "--viewers", "3", "--viewer-limit", "30", "--gone-limit", "30"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (Node.js 18+ is needed for the browser tests): {e}"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("page-check: {stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "page-check did not run: {}", String::from_utf8_lossy(&run.stderr));
    let text = std::fs::read_to_string(out.join("report.json")).expect("page-check wrote no report");
    serde_json::from_str(&text).expect("report.json")
}

#[test]
fn the_player_page_plays_shows_now_and_next_and_counts_its_viewers() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &config_extra());
    seed_library(&cfg);
    let d = Daemon::start(dir.path(), &cfg);

    // The pages and their files come from the daemon, with a policy that allows nothing from elsewhere.
    let page = get(&d.url("/"));
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'self'") && !csp.contains("http"), "{csp}");
    assert!(page.text().unwrap().contains("/web/hls.min.js"));
    assert_eq!(get(&d.url("/web/hls.min.js")).status(), 200);
    let unknown = get(&d.url("/watch/nope"));
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().unwrap().contains("/watch/main"), "the 404 page lists the channels");
    // A beacon over the size limit is refused by the real daemon too (the other cases: src/http/api/playback.rs).
    let big = reqwest::blocking::Client::new()
        .post(d.url("/api/v1/playback"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"session":"oversize-aaaaaaaaaa","channel":"main","kind":"start","x":"{}"}}"#,
            "x".repeat(4096)
        ))
        .send()
        .unwrap();
    assert_eq!(big.status(), 413);

    // Open the page once the stream is there.
    wait_for_stream(&d);
    let out = out_dir();
    let report = run_page_check(&d, &out);
    let samples = report["samples"].as_array().unwrap();
    let airings = airings(&cfg);

    // It played, with the clock advancing and no stall.
    let playing: Vec<&Value> = samples.iter().filter(|s| s["ct"].as_f64().unwrap_or(0.0) > 0.0).collect();
    assert!(playing.len() > 30, "only {} samples while playing", playing.len());
    let (first, last) = (playing[0], playing[playing.len() - 1]);
    let played = last["ct"].as_f64().unwrap() - first["ct"].as_f64().unwrap();
    let wall = last["t"].as_f64().unwrap() - first["t"].as_f64().unwrap();
    assert!(played >= 20.0, "played {played:.1} s");
    assert!((0.9..=1.3).contains(&(played / wall)), "played {played:.1} s in {wall:.1} s of wall time");
    let mut still_since: Option<f64> = None;
    for w in playing.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b["ct"].as_f64() > a["ct"].as_f64() || b["paused"] == true {
            still_since = None;
        } else {
            let since = *still_since.get_or_insert(a["t"].as_f64().unwrap());
            assert!(b["t"].as_f64().unwrap() - since <= 2.0, "stalled from {since:.1} s: {b}");
        }
    }
    assert!(playing.iter().all(|s| s["width"].as_u64() > Some(0)), "no picture");
    assert!(playing.iter().any(|s| s["badge"] == "Live"));
    assert_eq!((last["levels"].as_u64(), last["qualityOptions"].as_u64()), (Some(2), Some(3)), "two rungs and Auto");
    assert!(last["muted"] == true && last["unmuteShown"] == true, "muted autoplay offers to unmute: {last}");
    let switcher: Vec<&str> = last["switcher"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(switcher, ["Page Test*", "Second"], "the channel switcher, this channel marked");

    // The guide names the item on screen, as the daemon recorded it, and the API agrees.
    let mut checked = 0;
    let mut titles: Vec<String> = Vec::new();
    for s in &playing {
        let now = s["now"].as_str().unwrap().to_string();
        if titles.last() != Some(&now) {
            titles.push(now.clone());
        }
        let Some(playhead) = s["playhead"].as_i64() else { continue };
        let Some((airing, following, margin)) = airing_at(&airings, playhead) else { continue };
        if margin < BOUNDARY_MS {
            continue;
        }
        checked += 1;
        assert_eq!(now, airing.title, "the guide at playhead {playhead}: {s}");
        assert_eq!(s["api"]["title"].as_str(), Some(airing.title.as_str()), "the now API at playhead {playhead}: {s}");
        if let Some(next) = following {
            assert_eq!(s["next"][0].as_str(), Some(next.title.as_str()), "next at playhead {playhead}: {s}");
        }
    }
    assert!(checked >= 30, "only {checked} samples could be checked against the airings");
    assert!(titles.len() >= 3, "the guide should change at item boundaries: {titles:?}");
    for w in playing.windows(2) {
        if w[0]["now"] == w[1]["now"] {
            continue;
        }
        let (Some(p0), Some(p1)) = (w[0]["playhead"].as_i64(), w[1]["playhead"].as_i64()) else { continue };
        let boundary =
            airings.iter().map(|a| a.start.timestamp_millis()).any(|b| b >= p0 - BOUNDARY_MS && b <= p1 + BOUNDARY_MS);
        assert!(boundary, "the guide changed from {} to {} away from a boundary", w[0]["now"], w[1]["now"]);
    }
    assert!(playing.iter().any(|s| s["poster"] == true), "the poster never loaded");
    assert!(playing.iter().any(|s| s["thumbs"].as_u64() >= Some(1)), "no thumbnail of what follows loaded");

    // Nothing went wrong in the browser and nothing was fetched from elsewhere.
    for p in report["pages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        assert_eq!(p["pageErrors"], Value::Array(vec![]), "{name}");
        assert_eq!(p["foreign"], Value::Array(vec![]), "{name} fetched from another origin");
        for c in p["console"].as_array().unwrap() {
            // Until this daemon serves /metrics, the operator page's one probe for it is a 404 it tolerates.
            let metrics_probe = name == "admin" && c["url"].as_str().unwrap_or("").ends_with("/metrics");
            assert!(metrics_probe, "{name} console: {c}");
        }
    }
    for png in ["player.png", "admin.png"] {
        let len = std::fs::metadata(out.join(png)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{png}: {len} bytes");
    }
    let admin = &report["admin"];
    assert_eq!(admin["loggedIn"], true, "{admin}");
    assert_eq!(admin["channels"].as_array().map(Vec::len), Some(2), "{admin}");
    assert!(admin["events"].as_u64() > Some(0) && admin["queue"].as_u64() > Some(0), "{admin}");
    assert!(admin["charts"].as_u64() >= Some(2) && admin["tokenKept"] == true, "{admin}");

    // The guide grid shows both channels, this page's marked, with titles the guide API has and something on air.
    let grid = report["grid"].as_array().expect("no guide grid in the report");
    let ids: Vec<&str> = grid.iter().map(|r| r["channel"].as_str().unwrap()).collect();
    assert_eq!(ids, ["main", "second"], "{grid:?}");
    assert_eq!(grid[0]["current"], "page", "{grid:?}");
    let epg = d.api_get("/api/v1/epg?channel=main");
    let known: Vec<&str> =
        epg["channels"][0]["programmes"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    let shown = grid[0]["titles"].as_array().unwrap();
    assert!(shown.len() >= 2, "{grid:?}");
    for t in shown {
        assert!(known.contains(&t.as_str().unwrap()), "grid title {t} is not in the guide: {known:?}");
    }
    assert!(grid[0]["onAir"].is_string(), "{grid:?}");

    // Three viewers within 30 s, none once they closed; each ended with its end beacon.
    let up = report["viewers_up_after_s"].as_f64().expect("3 viewers never counted");
    assert!(up <= 30.0, "{up}");
    let gone = report["viewers_gone_after_s"].as_f64().expect("viewers still counted after the pages closed");
    assert!(gone <= 30.0, "{gone}");
    // The operator sees them: viewers in status, and the audience per airing.
    let status = d.vvtvctl(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("VIEWERS"), "{status:?}");
    let audience = d.vvtvctl(&["--json", "audience", "--channel", "main", "--since", "10m"]);
    assert!(audience.status.success(), "{}", String::from_utf8_lossy(&audience.stderr));
    let audience: Value = serde_json::from_slice(&audience.stdout).unwrap();
    let rows = audience["airings"].as_array().unwrap();
    let starts: u64 = rows.iter().map(|a| a["starts"].as_u64().unwrap()).sum();
    let peak = rows.iter().map(|a| a["peak_viewers"].as_u64().unwrap()).max();
    assert_eq!((starts, peak), (3, Some(3)), "{audience}");
    let table = d.vvtvctl(&["audience", "--since", "10m"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("LEFT DURING") && text.contains("Clip "), "{text}");
    // And so does Prometheus: three sessions started, their startup times, and each one's rebuffer share once it
    // ended; nobody watching now.
    let metrics = reqwest::blocking::get(d.url("/metrics")).and_then(|r| r.text()).expect("GET /metrics");
    let main = [("channel", "main")];
    let figure = |name: &str| vvtv_testkit::prometheus::sample(&metrics, name, &main);
    assert_eq!(figure("vvtv_viewer_sessions_started_total"), Some(3.0), "{metrics}");
    assert_eq!(figure("vvtv_player_startup_seconds_count"), Some(3.0), "{metrics}");
    assert_eq!(figure("vvtv_player_rebuffer_ratio_count"), Some(3.0), "{metrics}");
    assert_eq!(figure("vvtv_viewers"), Some(0.0), "{metrics}");

    // What the report wrote first (the room writes every couple of seconds) is in the store: each session ended
    // with its end beacon.
    let config = Config::load(&cfg).unwrap();
    let sessions = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&config.storage.db_path()).await.unwrap();
        let open = store.audience_open_sessions().await.unwrap();
        assert!(open.is_empty(), "{open:?}");
        let since = chrono::Utc::now() - chrono::Duration::hours(1);
        let sessions = store.audience_sessions(&ChannelId::from("main"), since).await.unwrap();
        store.close().await;
        sessions
    });
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    for s in &sessions {
        assert_eq!(s.ended.map(|(_, why)| why), Some(SessionEnd::Closed), "{s:?}");
        assert!(s.totals.watch >= Duration::from_secs(20), "{s:?}");
        assert!(s.totals.startup.is_some() && s.totals.last_bitrate.is_some(), "{s:?}");
    }
}

#[test]
fn the_page_says_when_it_shows_the_slate_or_is_offline_and_plays_again_after_a_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so the page finds the daemon again where it was.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.path().join("vvtv.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\ndata_dir = \"{}\"\n\n{}",
        dir.path().join("data").display(),
        config_extra()
    );
    std::fs::write(&cfg, text).unwrap();
    // No library: nothing is scheduled, so the channel airs its slate.
    let mut d = Daemon::start(dir.path(), &cfg);
    wait_for_stream(&d);

    let page = PageWatch::open(&d.url("/watch/main"));
    let expect = |what: &str, limit: Duration, want: &dyn Fn(&Value) -> bool| page.expect(what, limit, want);
    let slate = |l: &Value| l["badge"] == "Slate" && l["text"].as_str().unwrap_or("").contains("shows its slate");
    let playing = expect("the slate state", Duration::from_secs(30), &|l| l["ct"].as_f64() > Some(2.0) && slate(l));
    assert_eq!(playing["overlay"], true, "{playing}");

    // Gone: once the buffer runs out and loads fail, the page says so (and only then).
    assert_eq!(d.signal_and_wait(libc::SIGKILL, Duration::from_secs(10)).map(|s| s.success()), Some(false));
    let offline = expect("the offline state", Duration::from_secs(30), &|l| l["badge"] == "Offline");
    assert_eq!(offline["overlay"], true, "{offline}");
    assert!(offline["text"].as_str().unwrap_or("").contains("cannot be reached"), "{offline}");
    let stopped_at = offline["ct"].as_f64().unwrap();

    // Back: the same page plays on without a reload.
    let d = Daemon::start(dir.path(), &cfg);
    expect("playback after the restart", Duration::from_secs(60), &|l| {
        slate(l) && l["ct"].as_f64() > Some(stopped_at + 4.0)
    });
    // The viewer is still one viewer: its session (timed out while the daemon was down) is taken up again.
    wait_for("the viewer counted again", Duration::from_secs(20), || {
        d.api_get("/api/v1/status")["channels"][0]["viewers"] == 1
    });
    let config = Config::load(&cfg).unwrap();
    let sessions = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&config.storage.db_path()).await.unwrap();
        let since = chrono::Utc::now() - chrono::Duration::hours(1);
        store.audience_sessions(&ChannelId::from("main"), since).await.unwrap()
    });
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let last = page.finish();
    assert_eq!(last["pageErrors"], Value::Array(vec![]), "{last}");
    assert_eq!(last["foreign"], Value::Array(vec![]), "{last}");
    drop(d);
}

#[test]
fn behind_an_age_gate_the_page_plays_nothing_until_confirmed_then_plays_the_signed_stream() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let gate = "Adults only: confirm that you are 18 or over.";
    let extra =
        format!("{}\n[access]\nsigned_urls = true\nage_gate = true\nage_gate_text = \"{gate}\"\n", config_extra());
    let cfg = write_config(dir.path(), &extra);
    let d = Daemon::start(dir.path(), &cfg);

    // The page is told about the gate and given a signed stream; the unsigned one is refused.
    let directory = d.api_get("/api/v1/channels");
    assert_eq!(directory["age_gate"], gate, "{directory}");
    let playlist = directory["channels"][0]["playlist"].as_str().unwrap().to_owned();
    assert!(playlist.starts_with("/s/") && playlist.ends_with("/hls/main/live.m3u8"), "{playlist}");
    assert_eq!(get(&d.url("/hls/main/live.m3u8")).status(), 403);
    let variant = playlist.replace("/live.m3u8", "/180p/live.m3u8");
    wait_for("three segments on the signed rung", Duration::from_secs(90), || {
        get(&d.url(&variant)).text().map(|t| t.matches(".ts").count() >= 3).unwrap_or(false)
    });

    let page = PageWatch::open(&d.url("/watch/main"));
    let expect = |what: &str, limit: Duration, want: &dyn Fn(&Value) -> bool| page.expect(what, limit, want);
    // The gate, its text, and for five seconds behind it: no stream request, no picture.
    let shown = expect("the age gate", Duration::from_secs(20), &|l| l["gate"] == true);
    assert_eq!(shown["gateText"], gate, "{shown}");
    let held = expect("five seconds behind the gate", Duration::from_secs(20), &|l| {
        l["t"].as_f64().unwrap_or(0.0) >= shown["t"].as_f64().unwrap() + 5.0
    });
    assert_eq!(held["gate"], true, "{held}");
    assert_eq!(held["ct"].as_f64(), Some(0.0), "{held}");
    let none = serde_json::json!({ "signed": 0, "unsigned": 0, "refused": 0 });
    assert_eq!(held["streamRequests"], none, "{held}");

    // Confirmed: it plays, through signed URLs only, none refused.
    page.tap("#age-ok");
    let playing = expect("playback after the confirmation", Duration::from_secs(30), &|l| l["ct"].as_f64() > Some(2.0));
    assert_eq!(playing["gate"], false, "{playing}");
    let requests = &playing["streamRequests"];
    assert!(requests["signed"].as_u64() >= Some(3), "{playing}");
    assert_eq!((requests["unsigned"].as_u64(), requests["refused"].as_u64()), (Some(0), Some(0)), "{playing}");
    let last = page.finish();
    assert_eq!(last["pageErrors"], Value::Array(vec![]), "{last}");
    assert_eq!(last["foreign"], Value::Array(vec![]), "{last}");
}
