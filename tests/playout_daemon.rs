//! The whole broadcaster in a real daemon, paced in real time: a library of short clips is recorded into the real
//! SQLite file, the daemon plays it out, ffmpeg (an independent reader) records the live playlist across several
//! item boundaries, an emergency interrupts, and a kill -9 + restart continues the same playlist.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vvtv::config::Config;
use vvtv::media::house_format::HouseFormat;
use vvtv::media::transcode::{Source, TestPattern};
use vvtv::store::{AssetKind, Store};
use vvtv_testkit::daemon::{discontinuities, listed_segments, wait_for, write_config, Daemon, SMALL_LADDER};

fn config_extra() -> String {
    format!("{SMALL_LADDER}\n[broadcaster]\nplaylist_segments = 5\nsegment_grace_seconds = 30\n\n[[channels]]\nid = \"main\"\nname = \"Test\"\ndemo_clips = false\n")
}

/// Records three short clips (lengths not multiples of the GOP) into the daemon's database before it starts.
fn seed_library(config_path: &Path) {
    let config = Config::load(config_path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        std::fs::create_dir_all(&config.storage.data_dir).unwrap();
        let store = Store::open(&config.storage.db_path()).await.unwrap();
        let hf = HouseFormat::from_config(&config.house_format);
        for (i, (pattern, tone, secs)) in
            [(TestPattern::Bars75, 440.0, 5.5), (TestPattern::Ball, 660.0, 4.1), (TestPattern::Pinwheel, 880.0, 6.3)]
                .iter()
                .enumerate()
        {
            let source = Source::TestCard {
                title: format!("clip {i}"),
                pattern: *pattern,
                tone_hz: Some(*tone),
                duration: Duration::from_secs_f64(*secs),
                pcm: None,
                poster: None,
            };
            let dir = config.storage.assets_dir().join(format!("clip-{i}"));
            vvtv::factory::produce::make_asset(
                &store,
                &hf,
                source,
                dir,
                &format!("clip {i}"),
                AssetKind::Programme,
                serde_json::json!({}),
            )
            .await
            .unwrap();
        }
        // An asset whose files are not media: the broadcaster must skip it, mark it bad and keep playing.
        let bad = config.storage.assets_dir().join("clip-bad");
        std::fs::create_dir_all(&bad).unwrap();
        let mut renditions = Vec::new();
        for rung in &hf.rungs {
            let path = bad.join(format!("{}.mp4", rung.name));
            std::fs::write(&path, b"<html>this is not a video</html>").unwrap();
            renditions.push(vvtv::store::NewRendition {
                rung: rung.name.clone(),
                path,
                width: rung.width,
                height: rung.height,
                video_kbps: rung.video_kbps,
                size_bytes: 32,
            });
        }
        store
            .insert_asset(&vvtv::store::NewAsset {
                title: "broken clip".into(),
                dir: bad,
                duration: Duration::from_secs(5),
                keyframes: [0, 2, 4].map(Duration::from_secs).to_vec(),
                renditions,
                ..Default::default()
            })
            .await
            .unwrap();
        store.close().await;
    });
}

/// H.264 level of a segment as ffprobe reads it (e.g. 13 for level 1.3).
fn segment_level(url: &str, dir: &Path) -> u32 {
    let file = dir.join("probe.ts");
    std::fs::write(&file, get(url).bytes().unwrap()).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "stream=level", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split(|c: char| !c.is_ascii_digit())
        .find(|t| !t.is_empty())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no level in {text:?}"))
}

fn get(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("MEDIA-SEQUENCE")
}

fn last_segment_seq(playlist: &str) -> u64 {
    *listed_segments(playlist).last().expect("a segment")
}

#[test]
fn live_channel_plays_cuts_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &config_extra());
    seed_library(&cfg);
    let mut d = Daemon::start(dir.path(), &cfg);

    // The multivariant playlist appears and lists both rungs.
    let live = d.url("/hls/main/live.m3u8");
    wait_for("live.m3u8", Duration::from_secs(60), || get(&live).status() == 200);
    let master = get(&live).text().unwrap();
    assert!(
        master.contains("#EXT-X-STREAM-INF") && master.contains("RESOLUTION=320x180") && master.contains("CODECS="),
        "{master}"
    );
    // CODECS names each rung's real profile and level (what its SPS says), not one value for all.
    let media = d.url("/hls/main/180p/live.m3u8");
    wait_for("one segment on each rung", Duration::from_secs(60), || {
        ["180p", "90p"].iter().all(|r| {
            get(&d.url(&format!("/hls/main/{r}/live.m3u8"))).text().map(|t| t.contains(".ts")).unwrap_or(false)
        })
    });
    for rung in ["180p", "90p"] {
        let playlist = get(&d.url(&format!("/hls/main/{rung}/live.m3u8"))).text().unwrap();
        let seg = playlist.lines().find(|l| l.ends_with(".ts")).unwrap();
        let level = segment_level(&d.url(&format!("/hls/main/{rung}/{seg}")), dir.path());
        let line = master
            .lines()
            .zip(master.lines().skip(1))
            .find(|(_, uri)| uri.starts_with(rung))
            .map(|(inf, _)| inf)
            .unwrap();
        assert!(line.contains(&format!("avc1.64{:04x}", level)), "{rung}: level {level} but {line}");
    }
    wait_for("three segments", Duration::from_secs(60), || {
        get(&media).text().map(|t| t.matches(".ts").count() >= 3).unwrap_or(false)
    });

    // An independent player records 24 s (several item boundaries) with a plain remux.
    let rec = dir.path().join("rec.ts");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&media)
        .args(["-t", "24", "-c", "copy", "-f", "mpegts"])
        .arg(&rec)
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let errs = String::from_utf8_lossy(&out.stderr);
    assert!(errs.trim().is_empty(), "ffmpeg printed errors: {errs}");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(&rec)
        .output()
        .unwrap();
    let mut pts: Vec<f64> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    pts.sort_by(f64::total_cmp);
    assert!(pts.len() > 24 * 30 - 60, "recorded {} frames", pts.len());
    for w in pts.windows(2) {
        assert!((w[1] - w[0] - 1.0 / 30.0).abs() < 0.002, "frame step {:.4} at {:.3}", w[1] - w[0], w[0]);
    }

    let status = d.api_get("/api/v1/channels/main/streaming");
    assert!(status["items_aired"].as_u64().unwrap() >= 3, "{status}");
    assert_eq!(status["gaps_detected"], 0, "{status}");
    assert!(status["on_air"]["title"].as_str().unwrap().starts_with("clip "), "{status}");

    // Emergency: the pool is empty, so a slate showing the reason airs from the next keyframe.
    let out = d.vvtvctl(&["streaming", "emergency", "--inject", "1", "--reason", "storm warning"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("emergency on air", Duration::from_secs(30), || {
        let s = d.api_get("/api/v1/channels/main/streaming");
        s["on_air"]["kind"] == "emergency" && s["on_air"]["title"].as_str().unwrap_or("").contains("storm warning")
    });
    wait_for("schedule resumes", Duration::from_secs(30), || {
        d.api_get("/api/v1/channels/main/streaming")["on_air"]["kind"] == "scheduled"
    });
    let events = d.api_get("/api/v1/events?limit=200");
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["kind"] == "emergency"), "{events}");
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "asset_skipped" && e["message"].as_str().unwrap_or("").contains("asset 4")),
        "the broken asset is skipped with a reason: {events}"
    );
    assert_eq!(d.api_get("/api/v1/channels/main/streaming")["gaps_detected"], 0);
    // With an asset in the emergency pool, that asset airs instead of the reason slate.
    let out = d.vvtvctl(&["assets", "emergency", "3", "on"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = d.vvtvctl(&["streaming", "emergency", "--inject", "1", "--reason", "pool test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("pool asset on air", Duration::from_secs(30), || {
        let s = d.api_get("/api/v1/channels/main/streaming");
        s["on_air"]["kind"] == "emergency" && s["on_air"]["asset_id"] == 3
    });
    wait_for("schedule resumes after the pool item", Duration::from_secs(30), || {
        d.api_get("/api/v1/channels/main/streaming")["on_air"]["kind"] == "scheduled"
    });
    let out = d.vvtvctl(&["streaming", "status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("segments written"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // kill -9, restart: the same playlist continues above the last sequence served, with one discontinuity.
    let before = get(&media).text().unwrap();
    let last_before = last_segment_seq(&before);
    let listed: Vec<String> = before.lines().filter(|l| l.ends_with(".ts")).map(String::from).collect();
    d.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)).expect("killed");
    drop(d);
    let d = Daemon::start(dir.path(), &cfg);
    // Segments listed before the crash stay fetchable.
    let seg_url = d.url(&format!("/hls/main/180p/{}", listed.last().unwrap()));
    assert_eq!(get(&seg_url).status(), 200, "{seg_url}");
    let media = d.url("/hls/main/180p/live.m3u8");
    wait_for("new segments after restart", Duration::from_secs(60), || {
        last_segment_seq(&get(&media).text().unwrap()) > last_before + 1
    });
    let after = get(&media).text().unwrap();
    assert!(media_sequence(&after) >= media_sequence(&before), "{before}\n---\n{after}");
    // Exactly one discontinuity, right before the first segment written after the restart (or already counted in
    // DISCONTINUITY-SEQUENCE if it slid out of the window).
    assert_eq!(discontinuities(&after) - discontinuities(&before), 1, "{before}\n---\n{after}");
    if let Some(at) = after.find("#EXT-X-DISCONTINUITY\n") {
        let seq = listed_segments(&after[at..])[0];
        // Segments may have been listed between our last read and the kill; the join comes after all of them.
        assert!(seq > last_before, "the discontinuity marks the join: {after}");
    }
    let seqs = listed_segments(&after);
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "sequence numbers continue: {after}");
    }
    let events = d.api_get("/api/v1/events?limit=200");
    assert!(
        events["events"].as_array().unwrap().iter().any(|e| e["kind"] == "resumed"),
        "the interrupted item resumes: {events}"
    );
}
