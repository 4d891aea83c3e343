//! The factory end to end, in the real daemon: odd inputs made with GStreamer go in through `vvtvctl ingest`, the API,
//! a URL on a misbehaving HTTP server and the inbox; each ends ready (checked with ffprobe and ffmpeg's own loudness
//! meter) or rejected with a reason a human understands, and the channel keeps playing throughout.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vvtv_testkit::daemon::{write_config, Daemon, SMALL_LADDER};
use vvtv_testkit::flaky::{file_reply, Server};
use vvtv_testkit::media;

fn factory_config(extra: &str) -> String {
    format!(
        "{SMALL_LADDER}\n[factory]\nmin_height = 90\nallow_private_addresses = true\nvmaf_subsample = 3\nvmaf_min = 30.0\n\
         {extra}\n[[channels]]\nid = \"main\"\nname = \"Factory test\"\ndemo_clips = false\n"
    )
}

/// A 6 s clip: `video` caps, a moving pattern, and `audio` (a gst-launch fragment ending in raw audio caps) if any.
fn clip(out: &Path, video: &str, audio: Option<&str>, fps: u32) {
    let frames = 6 * fps;
    let mut d = format!(
        "videotestsrc pattern=ball num-buffers={frames} ! {video} ! videoconvert ! x264enc speed-preset=ultrafast \
         key-int-max=30 ! h264parse ! mp4mux name=m ! filesink location={}",
        out.display()
    );
    if let Some(a) = audio {
        d += &format!(" {a} ! audioconvert ! avenc_aac ! aacparse ! m.");
    }
    media::launch(&d).expect("make the clip");
}

fn ffprobe(path: &Path, args: &[&str]) -> Value {
    let out =
        Command::new("ffprobe").args(["-v", "error", "-of", "json"]).args(args).arg(path).output().expect("ffprobe");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn keyframe_times(path: &Path) -> Vec<String> {
    let v = ffprobe(path, &["-select_streams", "v:0", "-show_entries", "packet=pts_time,flags"]);
    v["packets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["flags"].as_str().is_some_and(|f| f.starts_with('K')))
        .map(|p| p["pts_time"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn stream_duration(path: &Path, kind: &str) -> f64 {
    let v = ffprobe(path, &["-select_streams", kind, "-show_entries", "stream=duration"]);
    v["streams"][0]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(-1.0)
}

/// Integrated loudness and true peak by ffmpeg's ebur128 filter: a meter independent of the product's.
fn ffmpeg_loudness(path: &Path) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-hide_banner", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.rsplit("Summary:").next().unwrap_or_default();
    let value = |label: &str| {
        summary
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {label} in ffmpeg output:\n{summary}"))
    };
    (value("I:"), value("Peak:"))
}

/// Submits `input` through the API and waits for the job to end; returns the job.
fn ingest_api(d: &Daemon, body: Value) -> Value {
    let resp = reqwest::blocking::Client::new()
        .post(d.url("/api/v1/ingest"))
        .bearer_auth(d.token())
        .json(&body)
        .send()
        .expect("POST ingest");
    assert_eq!(resp.status().as_u16(), 201, "ingest {body}");
    let job: Value = resp.json().unwrap();
    wait_job(d, job["id"].as_i64().unwrap())
}

fn wait_job(d: &Daemon, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let job = d.api_get(&format!("/api/v1/jobs/{id}"));
        if matches!(job["status"].as_str(), Some("ready" | "rejected" | "failed")) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not end: {job}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Checks a ready job's asset against the house format with independent tools.
fn check_ready(job: &Value, what: &str) {
    assert_eq!(job["status"], "ready", "{what}: {job}");
    let asset = &job["asset"];
    let renditions: Vec<PathBuf> = asset["renditions"]
        .as_array()
        .expect("renditions")
        .iter()
        .map(|r| PathBuf::from(r["path"].as_str().unwrap()))
        .collect();
    assert_eq!(renditions.len(), 2, "{what}: {asset}");
    let keys: Vec<Vec<String>> = renditions.iter().map(|p| keyframe_times(p)).collect();
    assert!(keys[0].len() >= 2, "{what}: keyframes {:?}", keys[0]);
    assert_eq!(keys[0], keys[1], "{what}: keyframes differ between rungs");
    for path in &renditions {
        let (v, a) = (stream_duration(path, "v:0"), stream_duration(path, "a:0"));
        assert!((v - a).abs() <= 1.0 / 30.0 + 1e-3, "{what}: {}: video {v} s vs audio {a} s", path.display());
    }
    let (i, tp) = ffmpeg_loudness(&renditions[0]);
    assert!((i - -14.0).abs() <= 1.0, "{what}: integrated loudness {i} LUFS, want -14 ±1");
    assert!(tp <= -1.0, "{what}: true peak {tp} dBTP above -1");
    let stored = asset["loudness_out_lufs"].as_f64().expect("stored loudness");
    assert!((stored - i).abs() < 1.0, "{what}: stored {stored} vs measured {i}");
    assert!(asset["vmaf"]["mean"].as_f64().is_some_and(|v| v > 30.0), "{what}: {asset}");
}

/// Serves `body` over HTTP on 127.0.0.1, honouring Range; the first `drops` connections send half the asked
/// bytes slowly, then hang up.
fn flaky_server(body: Vec<u8>, drops: usize) -> Server {
    Server::start(move |request, index| {
        let reply = file_reply(request, &body, None);
        if index < drops {
            // Dropped: the connection closes with half the body sent.
            let half = reply.body.len() / 2;
            reply.paced(16 * 1024, Duration::from_millis(20)).cut_at(half)
        } else {
            reply
        }
    })
}

#[test]
fn odd_inputs_end_ready_or_rejected_with_a_reason_while_the_channel_plays() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let config =
        write_config(tmp.path(), &factory_config(&format!("ingest_roots = [{:?}]", media.display().to_string())));
    let d = Daemon::start(tmp.path(), &config);

    // A path outside the ingest roots is refused before it is opened, with the reason, and makes no job.
    for outside in ["/etc/shadow", "/etc/hostname"] {
        let resp = reqwest::blocking::Client::new()
            .post(d.url("/api/v1/ingest"))
            .bearer_auth(d.token())
            .json(&serde_json::json!({ "path": outside }))
            .send()
            .expect("POST ingest");
        assert_eq!(resp.status().as_u16(), 400, "{outside}");
        let answer: Value = resp.json().unwrap();
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(outside) && error.contains("factory.ingest_roots"), "{outside}: {answer}");
    }
    assert_eq!(d.api_get("/api/v1/jobs")["jobs"].as_array().map(Vec::len), Some(0), "a refused path made a job");

    // 25 fps 640x360 with quiet mono 44.1 kHz audio (about -35 LUFS): through vvtvctl ingest --wait.
    let quiet = media.join("quiet mono.mp4");
    let made = media.join("quiet.mp4");
    clip(
        &made,
        "video/x-raw,width=640,height=360,framerate=25/1",
        Some("audiotestsrc wave=sine freq=440 volume=0.025 num-buffers=260 ! audio/x-raw,rate=44100,channels=1"),
        25,
    );
    std::fs::rename(&made, &quiet).unwrap(); // a name with a space, as users have
    let out = d.vvtvctl(&["--json", "ingest", quiet.to_str().unwrap(), "--wait"]);
    assert!(out.status.success(), "ingest --wait: {}", String::from_utf8_lossy(&out.stderr));
    let job: Value = serde_json::from_slice(&out.stdout).expect("job json");
    assert_eq!(job["origin"], "cli");
    check_ready(&job, "quiet mono");
    let before = job["asset"]["loudness_in_lufs"].as_f64().unwrap();
    assert!((-40.0..-30.0).contains(&before), "measured before: {before}");

    // Loud, clipped noise (about -5 LUFS): limited, not just turned down past the peak limit.
    let loud = media.join("loud.mp4");
    clip(
        &loud,
        "video/x-raw,width=640,height=360,framerate=30/1",
        Some("audiotestsrc wave=white-noise volume=1.0 num-buffers=290 ! audio/x-raw,rate=48000,channels=2"),
        30,
    );
    check_ready(&ingest_api(&d, serde_json::json!({ "path": loud, "title": "Loud one" })), "loud clipped");

    // Vertical video without audio: pillarboxed, with a silent track of the right length.
    let vertical = media.join("vertical.mp4");
    clip(&vertical, "video/x-raw,width=180,height=320,framerate=30/1", None, 30);
    let job = ingest_api(&d, serde_json::json!({ "path": vertical }));
    assert_eq!(job["status"], "ready", "{job}");
    let top = PathBuf::from(job["asset"]["renditions"][0]["path"].as_str().unwrap());
    let v = stream_duration(&top, "v:0");
    assert!((v - stream_duration(&top, "a:0")).abs() <= 0.034, "silent track length");

    // Same bytes again: the same asset, not a second one.
    let again = ingest_api(&d, serde_json::json!({ "path": loud }));
    assert_eq!(again["status"], "ready");
    assert!(again["reason"].as_str().unwrap_or_default().contains("same content"), "{again}");

    // A URL on a slow server that drops the connection halfway, twice: resumed to the end.
    let body = std::fs::read(&quiet).unwrap();
    let server = flaky_server(body, 2);
    let job = ingest_api(&d, serde_json::json!({ "url": server.url("/media/clip.mp4") }));
    assert_eq!(job["status"], "ready", "flaky download: {job}");
    assert!(job["reason"].as_str().unwrap_or_default().contains("same content"), "resumed bytes hash the same: {job}");

    // Rejections, each with a reason a human understands.
    let zero = media.join("zero.mp4");
    std::fs::write(&zero, b"").unwrap();
    let html = media.join("page.mp4");
    std::fs::write(&html, "<!DOCTYPE html>\n<html><head><title>Video</title></head><body>Not a video</body></html>\n")
        .unwrap();
    // Cut off at 60 %: once with the index at the end (lost), once with it at the start (the data runs out).
    let truncated = media.join("truncated.mp4");
    let whole = std::fs::read(&quiet).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() * 6 / 10]).unwrap();
    let faststart = media.join("faststart.mp4");
    media::render(
        "videotestsrc pattern=ball num-buffers=180 ! video/x-raw,width=640,height=360,framerate=30/1 ! \
         x264enc speed-preset=ultrafast ! mp4mux faststart=true",
        &faststart,
    )
    .expect("make the faststart clip");
    let truncated_front = media.join("truncated-front.mp4");
    let whole = std::fs::read(&faststart).unwrap();
    std::fs::write(&truncated_front, &whole[..whole.len() * 6 / 10]).unwrap();
    let audio_only = media.join("audio.m4a");
    media::render("audiotestsrc num-buffers=300 ! audioconvert ! avenc_aac ! mp4mux", &audio_only)
        .expect("make the audio-only file");
    for (path, expect) in [
        (&zero, "empty"),
        (&html, "HTML"),
        (&truncated, "incomplete"),
        (&truncated_front, "truncated"),
        (&audio_only, "audio-only"),
    ] {
        let out = d.vvtvctl(&["ingest", path.to_str().unwrap(), "--wait"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", path.display());
        assert!(stderr.contains("rejected"), "{}: {stderr}", path.display());
        assert!(stderr.contains(expect), "{}: want {expect:?} in {stderr}", path.display());
    }

    // The quality gate: an impossible minimum rejects with the score in the reason.
    let out = d.vvtvctl(&["business-logic", "set", "factory.vmaf_min=99.9"]);
    assert!(out.status.success());
    let strict = media.join("strict.mp4");
    clip(&strict, "video/x-raw,width=640,height=360,framerate=30/1", None, 30);
    let job = ingest_api(&d, serde_json::json!({ "path": strict }));
    assert_eq!(job["status"], "rejected", "{job}");
    assert!(job["reason"].as_str().unwrap().contains("VMAF"), "{job}");

    // The channel kept playing, and nothing is left in the work folder.
    let streaming = d.api_get("/api/v1/channels/main/streaming");
    assert_eq!(streaming["gaps_detected"], 0, "{streaming}");
    let leftovers: Vec<_> =
        std::fs::read_dir(d.data_dir().join("work")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.is_empty(), "work files left: {leftovers:?}");
    // The poster of a ready asset is a JPEG; an unknown one answers a stand-in, not an error.
    for path in [format!("/posters/{}.jpg", job_asset(&d)), "/posters/999999_thumb.jpg".into()] {
        let resp = reqwest::blocking::get(d.url(&path)).unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        assert!(resp.bytes().unwrap().starts_with(&[0xFF, 0xD8]), "{path} is not a JPEG");
    }
}

fn job_asset(d: &Daemon) -> i64 {
    let ready = d.api_get("/api/v1/jobs?status=ready");
    ready["jobs"][0]["asset_id"].as_i64().expect("a ready job")
}

#[test]
fn inbox_files_become_jobs_and_a_restart_finishes_unfinished_work() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &factory_config(""));
    let mut d = Daemon::start(tmp.path(), &config);
    let inbox = d.data_dir().join("inbox");
    let source = tmp.path().join("long.mp4");
    clip(
        &source,
        "video/x-raw,width=640,height=360,framerate=30/1",
        Some("audiotestsrc wave=pink-noise volume=0.2 num-buffers=290 ! audio/x-raw,rate=48000,channels=2"),
        30,
    );
    // Written aside and renamed in, as a copy tool would.
    std::fs::copy(&source, inbox.join("drop.mp4.part")).unwrap();
    std::fs::rename(inbox.join("drop.mp4.part"), inbox.join("drop.mp4")).unwrap();

    // Kill the daemon while the job is being worked on…
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let jobs = d.api_get("/api/v1/jobs");
        if let Some(j) = jobs["jobs"].as_array().and_then(|a| a.first()) {
            if j["status"] != "queued" {
                assert_eq!(j["origin"], "inbox");
                break j["id"].as_i64().unwrap();
            }
        }
        assert!(Instant::now() < deadline, "the inbox file never became a job");
        std::thread::sleep(Duration::from_millis(100));
    };
    d.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)).expect("killed");
    drop(d);

    // …and the restart takes it up again and finishes it; the file is filed away.
    let d = Daemon::start(tmp.path(), &config);
    let job = wait_job(&d, id);
    check_ready(&job, "inbox after restart");
    assert!(inbox.join("done/drop.mp4").exists(), "inbox file not moved to done/");
    let events = d.api_get("/api/v1/events?limit=200");
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["kind"] == "jobs_requeued"), "no requeue event");
    let leftovers: Vec<_> =
        std::fs::read_dir(d.data_dir().join("work")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.is_empty(), "work files left: {leftovers:?}");
}
