//! `/metrics` on a real daemon: the demo channel airs, the curator runs a folder source through the LLM stand-in and
//! the factory normalizes what it planned, then the scrape (no token) is checked by `promtool check metrics`, its
//! values are held to what happened, and every query of `config/grafana-dashboard.json` must name a series in it.

use std::path::Path;
use std::time::{Duration, Instant};
use vvtv_testkit::daemon::{write_config, Daemon, SMALL_LADDER};
use vvtv_testkit::llm::{LlmServer, Mode};
use vvtv_testkit::media::test_video;
use vvtv_testkit::prometheus::{exported_names, promtool_check, query_metric_names, sample};

/// The house segment length (the default): freshness is judged against it.
const SEGMENT_SECONDS: f64 = 4.0;

fn config_extra(media: &Path, llm_url: &str) -> String {
    format!(
        "{SMALL_LADDER}
[factory]
min_height = 120
min_duration_seconds = 2
vmaf_min = 30.0
[curator]
llm_cool_down_seconds = 3600
[curator.llm]
protocol = \"ollama\"
url = \"{llm_url}\"
model = \"test-model\"
timeout_seconds = 10
[[curator.sources]]
name = \"drop-folder\"
kind = \"folder\"
interval_minutes = 60
path = \"{}\"
",
        media.display()
    )
}

fn scrape(daemon: &Daemon, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::blocking::Client::new().get(daemon.url("/metrics"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let resp = request.send().expect("GET /metrics");
    assert_eq!(resp.status(), 200, "GET /metrics without a token");
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (content_type, resp.text().expect("metrics body"))
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{text}"))
}

#[test]
fn a_live_daemon_exports_metrics_that_promtool_accepts_and_the_dashboard_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).expect("media dir");
    // One candidate that makes it, one below factory.min_height, one that is not media at all.
    test_video(&media.join("good.mp4"), (320, 180), 4, "ball");
    test_video(&media.join("tiny.mp4"), (160, 90), 4, "smpte");
    std::fs::write(media.join("broken.mp4"), b"<html>this is not a video</html>").expect("broken file");
    let llm = LlmServer::start(Mode::Good(0.9));
    let config = write_config(dir.path(), &config_extra(&media, &llm.url()));
    let daemon = Daemon::start(dir.path(), &config);

    let client = reqwest::blocking::Client::new();
    let unauthorized = client.get(daemon.url("/api/v1/status")).send().expect("GET /api/v1/status");
    assert_eq!(unauthorized.status(), 401, "the control API still wants its token");
    let missing = client.get(daemon.url("/no-such-page")).send().expect("GET /no-such-page");
    assert_eq!(missing.status(), 404);

    // Until the channel has aired a few segments, the player's playlist answered, and the curator's plan became an
    // asset (the folder source runs 15 s after start).
    let started = Instant::now();
    let mut playlist_ok = false;
    loop {
        assert!(started.elapsed() < Duration::from_secs(300), "timed out; last scrape:\n{}", scrape(&daemon, None).1);
        std::thread::sleep(Duration::from_secs(1));
        if !playlist_ok {
            let resp = client.get(daemon.url("/hls/main/live.m3u8")).send().expect("GET live.m3u8");
            playlist_ok = resp.status() == 200;
        }
        let (_, text) = scrape(&daemon, None);
        let count = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels).unwrap_or(0.0);
        let done = playlist_ok
            && count("vvtv_segments_written_total", &[("channel", "main"), ("rung", "90p")]) >= 3.0
            && count("vvtv_factory_job_duration_seconds_count", &[("outcome", "ready")]) >= 1.0
            && count("vvtv_curator_rejections_total", &[("reason", "too_small")]) >= 1.0
            && count("vvtv_curator_rejections_total", &[("reason", "not_playable")]) >= 1.0;
        if done {
            break;
        }
    }
    // One more scrape after everything happened: this is the text that is checked.
    let (content_type, text) = scrape(&daemon, None);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    if let Err(complaint) = promtool_check(&text) {
        panic!("{complaint}\n{text}");
    }

    // Playout: the demo channel writes segments on every rung, and its live edge is fresh.
    let main = ("channel", "main");
    for rung in ["180p", "90p"] {
        assert!(value(&text, "vvtv_segments_written_total", &[main, ("rung", rung)]) >= 3.0, "{rung}");
    }
    let age = value(&text, "vvtv_last_segment_age_seconds", &[main]);
    assert!((0.0..3.0 * SEGMENT_SECONDS).contains(&age), "last segment {age} s ago");
    let aired: f64 = ["scheduled", "emergency", "slate"]
        .iter()
        .map(|kind| value(&text, "vvtv_items_aired_total", &[main, ("kind", kind)]))
        .sum();
    assert!(aired >= 1.0, "items aired: {aired}");
    assert!(value(&text, "vvtv_schedule_ahead_seconds", &[main]) >= 0.0);
    assert_eq!(value(&text, "vvtv_playout_gaps_total", &[main]), 0.0);

    // Factory: the planned clip became an asset; its attempt, speed, VMAF and loudness were observed.
    assert!(value(&text, "vvtv_factory_jobs", &[("status", "ready")]) >= 1.0);
    for family in
        ["vvtv_factory_normalize_speed_ratio", "vvtv_factory_vmaf_score", "vvtv_factory_loudness_deviation_lu"]
    {
        assert!(value(&text, &format!("{family}_count"), &[]) >= 1.0, "{family}");
    }
    let vmaf = value(&text, "vvtv_factory_vmaf_score_sum", &[]) / value(&text, "vvtv_factory_vmaf_score_count", &[]);
    assert!((30.0..=100.0).contains(&vmaf), "mean VMAF {vmaf}");

    // Curator: one plan sent to the factory after one good LLM call; two rejections by class; the breaker closed.
    assert!(value(&text, "vvtv_curator_plans_total", &[("outcome", "sent_to_factory")]) >= 1.0);
    let ok_calls = value(&text, "vvtv_curator_llm_request_duration_seconds_count", &[("outcome", "ok")]);
    assert!(ok_calls >= 1.0 && ok_calls <= llm.request_count() as f64, "{ok_calls} ok calls");
    assert_eq!(value(&text, "vvtv_curator_llm_breaker_state", &[("state", "closed")]), 1.0);
    assert_eq!(value(&text, "vvtv_curator_llm_breaker_state", &[("state", "open")]), 0.0);
    assert_eq!(value(&text, "vvtv_curator_rejections_total", &[("reason", "license")]), 0.0);

    // HTTP: the player's playlist, the scrapes, the refused API call and the unknown path, each under its class and
    // code.
    assert!(value(&text, "vvtv_http_requests_total", &[("route", "hls_playlist"), ("code", "200")]) >= 1.0);
    assert!(value(&text, "vvtv_http_requests_total", &[("route", "metrics"), ("code", "200")]) >= 1.0);
    assert!(value(&text, "vvtv_http_requests_total", &[("route", "api"), ("code", "401")]) >= 1.0);
    assert!(value(&text, "vvtv_http_requests_total", &[("route", "other"), ("code", "404")]) >= 1.0);
    assert!(value(&text, "vvtv_http_request_duration_seconds_count", &[("route", "hls_playlist")]) >= 1.0);

    // Audience: registered from the start, at zero until beacons arrive.
    assert_eq!(value(&text, "vvtv_viewers", &[main]), 0.0);

    // The dashboard reads only what this daemon exports.
    let dashboard_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard_path).expect("dashboard")).expect("dashboard JSON");
    let exported = exported_names(&text);
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target's expr");
            for name in query_metric_names(expr, "vvtv_") {
                assert!(exported.contains(&name), "panel {:?} reads {name}, which is not exported", panel["title"]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} series names in the dashboard");

    // A Prometheus server asks for OpenMetrics and gets it.
    let (content_type, open) = scrape(&daemon, Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"));
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(open.ends_with("# EOF\n"), "{open}");
}
