//! End-to-end checks of the foundation against a real daemon: auth, vvtvctl, shutdown, crash safety, check-config.

use std::process::Command;
use std::time::{Duration, Instant};
use vvtv_testkit::daemon::{vvtv_bin, vvtvctl_bin, write_config, Daemon, SMALL_LADDER};

/// Keeps the foundation tests light: no demo clips, a small ladder for the slate.
fn quiet() -> String {
    format!("[[channels]]\nid = \"main\"\nname = \"Test\"\ndemo_clips = false\n{SMALL_LADDER}")
}

#[test]
fn control_api_requires_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &write_config(dir.path(), &quiet()));
    let http = reqwest::blocking::Client::new();

    let none = http.get(d.url("/api/v1/status")).send().unwrap();
    assert_eq!(none.status(), 401);
    let body: serde_json::Value = none.json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("missing bearer token"), "{body}");

    let wrong = http.get(d.url("/api/v1/status")).bearer_auth("not-the-token").send().unwrap();
    assert_eq!(wrong.status(), 401);

    let ok = http.get(d.url("/api/v1/status")).bearer_auth(d.token()).send().unwrap();
    assert_eq!(ok.status(), 200);
    let status: serde_json::Value = ok.json().unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["channels"][0]["id"], "main");
    assert!(status["factory"]["state"].is_string(), "{status}");
    assert!(status["curator"]["breaker"].is_string(), "{status}");

    assert_eq!(http.get(d.url("/healthz")).send().unwrap().status(), 200);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.data_dir().join("control.token")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file must be private");
}

#[test]
fn loopback_exemption_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vvtv.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nallow_loopback_without_token = true\n[storage]\ndata_dir = \"{}\"\n{}",
            dir.path().join("data").display(),
            quiet()
        ),
    )
    .unwrap();
    let d = Daemon::start(dir.path(), &path);
    let resp = reqwest::blocking::get(d.url("/api/v1/status")).unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn vvtvctl_drives_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &write_config(dir.path(), &quiet()));

    let out = d.vvtvctl(&["status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CHANNEL") && text.contains("main"), "{text}");

    let out = d.vvtvctl(&["--json", "status"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json status is JSON");
    assert_eq!(v["channels"][0]["id"], "main");

    let out = d.vvtvctl(&["--json", "queue", "show"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["channels"][0]["items"].is_array(), "{v}");

    let out = d.vvtvctl(&["business-logic", "set", "buffer.target_minutes=45", "planner.min_score=0.25"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = d.vvtvctl(&["--json", "business-logic", "show"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["buffer.target_minutes"], 45);
    assert_eq!(v["planner.min_score"], 0.25);
    let text = String::from_utf8_lossy(&d.vvtvctl(&["business-logic", "show"]).stdout).to_string();
    assert!(text.contains("buffer.target_minutes") && text.contains("45"), "{text}");

    // The seed's own command, and an old key that still works for one release (with a deprecation event).
    let out = d.vvtvctl(&["business-logic", "set", "exploration.epsilon=0.15"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(d.api_get("/api/v1/business-logic")["exploration.epsilon"], 0.15);
    let out = d.vvtvctl(&["business-logic", "set", "planner.exploration_rate=0.2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(d.api_get("/api/v1/business-logic")["exploration.epsilon"], 0.2);
    let ev = d.api_get("/api/v1/events?limit=50");
    let deprecated = ev["events"].as_array().unwrap().iter().find(|e| e["kind"] == "deprecated_key");
    assert!(deprecated.is_some_and(|e| e["message"].as_str().unwrap_or("").contains("exploration.epsilon")), "{ev}");

    // Refusals: non-zero exit and the daemon's one-line reason; nothing changes.
    let out = d.vvtvctl(&["business-logic", "set", "buffer.target_minutes=0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("buffer.target_minutes") && err.contains("1..=1440"), "{err}");
    let out = d.vvtvctl(&["business-logic", "set", "no.such.key=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key"));
    let v = d.api_get("/api/v1/business-logic");
    assert_eq!(v["buffer.target_minutes"], 45);

    // The change is recorded as an event.
    let ev = d.api_get("/api/v1/events?limit=50");
    assert!(ev["events"].as_array().unwrap().iter().any(|e| e["kind"] == "business_logic_set"), "{ev}");

    // Wrong token: refused with a non-zero exit.
    let out = Command::new(vvtvctl_bin()).args(["--api", &d.base, "--token", "bad", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid token"));
}

#[test]
fn vvtvctl_says_when_the_daemon_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let api = format!("http://127.0.0.1:{port}");
    let out = Command::new(vvtvctl_bin()).args(["--api", &api, "--token", "x", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&format!("cannot reach vvtv at {api}: ")), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn sigterm_exits_zero_within_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), &write_config(dir.path(), &quiet()));
    let started = Instant::now();
    let status = d.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)).expect("did not exit within 10 s");
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn kill_9_loses_no_committed_row() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &quiet());
    let mut d = Daemon::start(dir.path(), &cfg);
    let client = reqwest::blocking::Client::new();
    // Each PUT answers only after its setting and event rows are committed.
    for minutes in 10..40 {
        let resp = client
            .put(d.url("/api/v1/business-logic"))
            .bearer_auth(d.token())
            .json(&serde_json::json!({ "buffer.target_minutes": minutes }))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let before = d.api_get("/api/v1/events?limit=10000")["events"].as_array().unwrap().len();
    d.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)).expect("killed");
    drop(d);

    let d = Daemon::start(dir.path(), &cfg);
    assert_eq!(d.api_get("/api/v1/business-logic")["buffer.target_minutes"], 39);
    let events = d.api_get("/api/v1/events?limit=10000")["events"].as_array().unwrap().clone();
    let set_events = events.iter().filter(|e| e["kind"] == "business_logic_set").count();
    assert_eq!(set_events, 30, "every committed change survives kill -9");
    assert!(events.len() > before, "restart adds its own events on top of the old ones");
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[channels]]\nid = \"Main Channel\"\nname = \"x\"\n").unwrap();
    let out = Command::new(vvtv_bin()).arg("check-config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("channels[0].id: \"Main Channel\" must match [a-z0-9-]+"), "{err}");

    std::fs::write(&bad, "[planner.buffer]\ntarget_minutes = \"x\"\n").unwrap();
    let out = Command::new(vvtv_bin()).arg("check-config").arg(&bad).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("planner.buffer.target_minutes"));

    let good = dir.path().join("good.toml");
    std::fs::write(&good, include_str!("../config/vvtv.toml")).unwrap();
    let out = Command::new(vvtv_bin()).arg("check-config").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
