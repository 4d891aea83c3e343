//! Tests of the metrics registry: names, zero series, closed label sets, promtool, OpenMetrics and the dashboard.

use super::*;
use vvtv_testkit::prometheus::{exported_names, promtool_check, query_metric_names, sample, samples};

fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::new(&Config::default()))
}

fn main() -> ChannelId {
    ChannelId("main".into())
}

/// Every family with at least one sample in it.
fn busy() -> Arc<Metrics> {
    let m = metrics();
    let ch = m.channel(&main());
    ch.segment_written("1080p");
    ch.gaps(2);
    ch.restarted();
    ch.item_aired(AiringKind::Slate);
    m.set_last_segment_age(&main(), Some(Duration::from_millis(1500)));
    m.set_schedule_ahead(&main(), Duration::from_secs(1800));
    m.set_jobs(&[(JobStatus::Ready, 3), (JobStatus::Queued, 1)]);
    m.observe_job(JobOutcome::Ready, Duration::from_secs(42));
    m.observe_normalized(2.5, 93.1, Some(-0.2));
    m.plan_made(true);
    m.rejected(Rejection::License);
    m.set_breaker(BreakerPhase::Open);
    m.observe_llm_call(LlmOutcome::Timeout, Duration::from_secs(30));
    m.observe_http(RouteClass::HlsPlaylist, 200, Duration::from_micros(300));
    m.set_viewers(&main(), 3);
    m.observe_session_start(&main());
    m.observe_startup(&main(), Duration::from_millis(900));
    m.observe_rebuffer_ratio(&main(), 0.01);
    m
}

#[test]
fn route_classes_come_from_the_path_and_are_a_fixed_set() {
    let cases = [
        ("/hls/main/live.m3u8", RouteClass::HlsPlaylist),
        ("/hls/main/720p/index.m3u8", RouteClass::HlsPlaylist),
        ("/hls/main/720p/seg00000042.ts", RouteClass::HlsSegment),
        ("/hls/1767225600/0badc0de/main/720p/seg00000042.ts", RouteClass::HlsSegment),
        ("/posters/12.jpg", RouteClass::Poster),
        ("/api/v1/status", RouteClass::Api),
        ("/api/v1/hls.m3u8", RouteClass::Api),
        ("/", RouteClass::Page),
        ("/watch/main", RouteClass::Page),
        ("/admin", RouteClass::Page),
        ("/metrics", RouteClass::Metrics),
        ("/healthz", RouteClass::Other),
        ("/etc/passwd", RouteClass::Other),
    ];
    for (path, class) in cases {
        assert_eq!(RouteClass::of(path), class, "{path}");
    }
    let names: Vec<_> = RouteClass::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, ["hls_playlist", "hls_segment", "poster", "api", "page", "metrics", "other"]);
}

#[test]
fn counters_end_in_total_and_every_configured_series_starts_at_zero() {
    let text = metrics().encode(Exposition::Prometheus);
    for rung in ["1080p", "720p", "480p", "360p"] {
        let labels = [("channel", "main"), ("rung", rung)];
        assert_eq!(sample(&text, "vvtv_segments_written_total", &labels), Some(0.0), "{rung}\n{text}");
    }
    for kind in ["scheduled", "emergency", "slate"] {
        let labels = [("channel", "main"), ("kind", kind)];
        assert_eq!(sample(&text, "vvtv_items_aired_total", &labels), Some(0.0), "{kind}");
    }
    for status in JobStatus::ALL {
        assert_eq!(sample(&text, "vvtv_factory_jobs", &[("status", status.as_str())]), Some(0.0), "{status}");
    }
    assert_eq!(sample(&text, "vvtv_curator_llm_breaker_state", &[("state", "disabled")]), Some(1.0));
    assert_eq!(sample(&text, "vvtv_curator_llm_breaker_state", &[("state", "closed")]), Some(0.0));
    for line in text.lines().filter(|l| l.starts_with("# TYPE") && l.ends_with(" counter")) {
        assert!(line.split_whitespace().nth(2).is_some_and(|n| n.ends_with("_total")), "{line}");
    }
    // Freshness has no value before the first segment.
    assert_eq!(sample(&text, "vvtv_last_segment_age_seconds", &[]), None);
}

#[test]
fn events_and_states_show_in_the_exposition() {
    let text = busy().encode(Exposition::Prometheus);
    let main = ("channel", "main");
    assert_eq!(sample(&text, "vvtv_segments_written_total", &[main, ("rung", "1080p")]), Some(1.0));
    assert_eq!(sample(&text, "vvtv_segments_written_total", &[main, ("rung", "720p")]), Some(0.0));
    assert_eq!(sample(&text, "vvtv_playout_gaps_total", &[main]), Some(2.0));
    assert_eq!(sample(&text, "vvtv_pipeline_restarts_total", &[main]), Some(1.0));
    assert_eq!(sample(&text, "vvtv_last_segment_age_seconds", &[main]), Some(1.5));
    assert_eq!(sample(&text, "vvtv_schedule_ahead_seconds", &[main]), Some(1800.0));
    assert_eq!(sample(&text, "vvtv_factory_jobs", &[("status", "ready")]), Some(3.0));
    assert_eq!(sample(&text, "vvtv_factory_jobs", &[("status", "failed")]), Some(0.0));
    assert_eq!(sample(&text, "vvtv_factory_job_duration_seconds_sum", &[("outcome", "ready")]), Some(42.0));
    let le = |le: &'static str| [("le", le)];
    assert_eq!(sample(&text, "vvtv_factory_vmaf_score_bucket", &le("92")), Some(0.0));
    assert_eq!(sample(&text, "vvtv_factory_vmaf_score_bucket", &le("94")), Some(1.0));
    assert_eq!(sample(&text, "vvtv_factory_loudness_deviation_lu_bucket", &le("-0.25")), Some(0.0));
    assert_eq!(sample(&text, "vvtv_factory_loudness_deviation_lu_bucket", &le("0")), Some(1.0));
    assert_eq!(sample(&text, "vvtv_curator_rejections_total", &[("reason", "license")]), Some(1.0));
    assert_eq!(sample(&text, "vvtv_curator_llm_breaker_state", &[("state", "open")]), Some(1.0));
    assert_eq!(sample(&text, "vvtv_curator_llm_breaker_state", &[("state", "disabled")]), Some(0.0));
    let request = [("route", "hls_playlist"), ("code", "200")];
    assert_eq!(sample(&text, "vvtv_http_requests_total", &request), Some(1.0));
    assert_eq!(sample(&text, "vvtv_viewers", &[main]), Some(3.0));
    assert_eq!(sample(&text, "vvtv_player_rebuffer_ratio_count", &[main]), Some(1.0));
}

#[test]
fn channels_and_rungs_outside_the_config_never_become_labels() {
    let m = busy();
    let stranger = ChannelId("no-such-channel".into());
    m.set_viewers(&stranger, 7);
    m.observe_session_start(&stranger);
    m.set_last_segment_age(&stranger, Some(Duration::from_secs(1)));
    m.channel(&stranger).segment_written("1080p");
    m.channel(&main()).segment_written("4k-from-nowhere");
    m.observe_rebuffer_ratio(&main(), 7.0);
    let text = m.encode(Exposition::Prometheus);
    assert!(!text.contains("no-such-channel") && !text.contains("4k-from-nowhere"), "{text}");
    assert_eq!(sample(&text, "vvtv_player_rebuffer_ratio_count", &[("channel", "main")]), Some(1.0));
    // Only closed sets: every label value of every sample is a configured channel or rung or a fixed name.
    for s in samples(&text) {
        for (k, v) in &s.labels {
            assert!(v.len() < 20 && !v.contains('/'), "{}: {k}={v}", s.name);
        }
    }
}

#[test]
fn a_freshness_without_a_segment_is_removed_not_left_stale() {
    let m = busy();
    m.set_last_segment_age(&main(), None);
    assert_eq!(sample(&m.encode(Exposition::Prometheus), "vvtv_last_segment_age_seconds", &[]), None);
}

#[test]
fn promtool_accepts_the_exposition_with_every_family_in_use() {
    let text = busy().encode(Exposition::Prometheus);
    if let Err(complaint) = promtool_check(&text) {
        panic!("{complaint}\n{text}");
    }
}

#[test]
fn openmetrics_is_served_to_scrapers_that_ask_for_it() {
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
        version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Exposition::negotiate(Some(prometheus_accept)), Exposition::OpenMetrics);
    assert_eq!(Exposition::negotiate(Some("text/plain")), Exposition::Prometheus);
    assert_eq!(Exposition::negotiate(None), Exposition::Prometheus);
    let text = busy().encode(Exposition::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("\n# TYPE vvtv_segments_written counter\n"), "{text}");
    assert!(text.contains("vvtv_segments_written_total{channel=\"main\",rung=\"1080p\"} 1\n"), "{text}");
}

#[test]
fn every_query_of_the_dashboard_names_a_series_the_registry_exports() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("config/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    // Families without a sample are not in the text, so every family is given one first.
    let exported = exported_names(&busy().encode(Exposition::Prometheus));
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 15, "{queries:?}");
    for expr in &queries {
        let names = query_metric_names(expr, "vvtv_");
        assert!(!names.is_empty(), "a query that reads no vvtv_ series: {expr}");
        for name in names {
            assert!(exported.contains(&name), "{name} (in {expr}) is not exported; exported: {exported:?}");
        }
    }
}

/// Every `targets[].expr` of every panel (rows included) and every templating query.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    fn panels(list: &serde_json::Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.extend(target["expr"].as_str().map(str::to_owned));
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        out.extend(variable["query"]["query"].as_str().or(variable["query"].as_str()).map(str::to_owned));
    }
    out
}

#[test]
fn the_dashboard_is_an_importable_model_with_a_row_per_area() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/grafana-dashboard.json");
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    let input = &d["__inputs"][0];
    assert_eq!((input["name"].as_str(), input["pluginId"].as_str()), (Some("DS_PROMETHEUS"), Some("prometheus")));
    for key in ["title", "uid"] {
        assert!(d[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    let panels = d["panels"].as_array().expect("panels");
    let rows: Vec<_> = panels.iter().filter(|p| p["type"] == "row").filter_map(|p| p["title"].as_str()).collect();
    assert_eq!(rows, ["Playout", "Factory", "Curator", "HTTP", "Audience"]);
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("a panel id")), "duplicate id {}", p["id"]);
        let grid = &p["gridPos"];
        let (x, w) = (grid["x"].as_u64().expect("x"), grid["w"].as_u64().expect("w"));
        assert!(x + w <= 24 && grid["h"].as_u64().is_some() && grid["y"].as_u64().is_some(), "{}", p["title"]);
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        let targets = p["targets"].as_array().filter(|t| !t.is_empty()).expect("targets");
        let refs: std::collections::BTreeSet<_> = targets.iter().map(|t| t["refId"].as_str().expect("refId")).collect();
        assert_eq!(refs.len(), targets.len(), "refIds of {}", p["title"]);
    }
}
