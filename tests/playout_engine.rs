//! The real playout engine, unpaced (appsink sync=false): hours of content in seconds. Proves the splice properties
//! with the engine's own counters AND with an independent reader (ffprobe over the written segments): DTS strictly
//! increasing, constant video steps, audio continuous, |A−V| ≤ ½ AAC frame, every segment starting on a keyframe,
//! segment durations ≤ target — and that the 33-bit MPEG-TS timestamp wrap is survived. Every run also checks that
//! the channel's metrics counted what the runner reports (segments per rung, restarts, gaps, items aired).

use chrono::Utc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vvtv::broadcaster::engine::{EngineSettings, Item, AAC_FRAME_NS};
use vvtv::broadcaster::layout::parse_segment_file_name;
use vvtv::broadcaster::playlist::{Playlist, PlaylistSettings};
use vvtv::broadcaster::runner::{Command as RunnerCommand, Feed, Next, Outcome, Runner, Snapshot, Tag};
use vvtv::config::{Config, HouseFormatConfig, RungConfig};
use vvtv::media::house_format::HouseFormat;
use vvtv::media::transcode::{self, Source, TestPattern};
use vvtv::metrics::{Exposition, Metrics};
use vvtv::store::ChannelId;
use vvtv_testkit::daemon::discontinuities;
use vvtv_testkit::prometheus::sample;

fn small_format_config() -> HouseFormatConfig {
    HouseFormatConfig {
        ladder: vec![
            RungConfig { name: "180p".into(), width: 320, height: 180, video_kbps: 300 },
            RungConfig { name: "90p".into(), width: 160, height: 90, video_kbps: 150 },
        ],
        x264_preset: "ultrafast".into(),
        ..HouseFormatConfig::default()
    }
}

fn small_format() -> HouseFormat {
    HouseFormat::from_config(&small_format_config())
}

/// Three clips whose lengths are not multiples of the GOP, so every boundary exercises audio drop/pad.
/// A work folder with the test items encoded in it; `out` is where the channel's HLS goes.
struct Setup {
    _dir: tempfile::TempDir,
    hf: HouseFormat,
    items: Vec<Item>,
    out: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let hf = small_format();
    let items = make_items(&hf, &dir.path().join("media"));
    let out = dir.path().join("hls");
    Setup { _dir: dir, hf, items, out }
}

fn make_items(hf: &HouseFormat, dir: &Path) -> Vec<Item> {
    let specs = [
        ("A", TestPattern::Bars75, 440.0, 2.5),
        ("B", TestPattern::Ball, 660.0, 3.1),
        ("C", TestPattern::Pinwheel, 880.0, 1.9),
    ];
    specs
        .iter()
        .map(|(name, pattern, tone, secs)| {
            let out = dir.join(name);
            let src = Source::TestCard {
                title: format!("clip {name}"),
                pattern: *pattern,
                tone_hz: Some(*tone),
                duration: Duration::from_secs_f64(*secs),
                pcm: None,
                poster: None,
            };
            let enc = transcode::encode(hf, &src, &out, &|_| {}).expect("encode test clip");
            let files: Vec<PathBuf> = enc.renditions.iter().map(|r| r.path.clone()).collect();
            let scan = vvtv::media::scan::scan(&files[0]).expect("scan");
            Item {
                title: format!("clip {name}"),
                files,
                duration_ns: scan.video_end_ns,
                keyframes_ns: scan.keyframes_ns.clone(),
                start_ns: 0,
                end_ns: None,
            }
        })
        .collect()
}

/// What goes wrong once a given number of items have started.
enum Disturb {
    /// The rebuild command (as the stall watchdog sends it).
    Rebuild,
    /// A rung's folder is replaced by a file for a while: segments cannot be written, nor the folder made again.
    BreakFolder { dir: PathBuf, for_: Duration },
}

/// Cycles the items; sends Stop once `limit` items have started, and disturbs once `disturb.0` have.
struct CycleFeed {
    items: Vec<Item>,
    next: usize,
    started: usize,
    limit: usize,
    disturb: Option<(usize, Disturb)>,
    stop: Sender<RunnerCommand>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    notices: Arc<Mutex<Vec<String>>>,
}

impl Feed for CycleFeed {
    fn next(&mut self, _after: Option<&Tag>) -> Next {
        let item = self.items[self.next % self.items.len()].clone();
        self.next += 1;
        Next { item, tag: Tag::Slate }
    }
    fn started(&mut self, _tag: &Tag, _title: &str, _start: chrono::DateTime<Utc>, _offset_ns: i64) {
        self.started += 1;
        match &self.disturb {
            Some((at, Disturb::Rebuild)) if *at == self.started => {
                let _ = self.stop.send(RunnerCommand::Rebuild("test".into()));
            }
            Some((at, Disturb::BreakFolder { dir, for_ })) if *at == self.started => {
                let away = dir.with_extension("away");
                std::fs::rename(dir, &away).unwrap();
                std::fs::write(dir, b"not a folder").unwrap();
                let (dir, for_) = (dir.clone(), *for_);
                std::thread::spawn(move || {
                    std::thread::sleep(for_);
                    std::fs::remove_file(&dir).unwrap();
                    std::fs::rename(&away, &dir).unwrap();
                });
            }
            _ => {}
        }
        if self.started == self.limit {
            let _ = self.stop.send(RunnerCommand::Stop);
        }
    }
    fn ended(&mut self, _tag: &Tag, _end: chrono::DateTime<Utc>, outcome: &Outcome) {
        self.outcomes.lock().unwrap().push(outcome.clone());
    }
    fn notice(&mut self, kind: vvtv::store::EventKind, message: &str) {
        self.notices.lock().unwrap().push(format!("{kind}: {message}"));
    }
}

struct Played {
    snap: Snapshot,
    outcomes: Vec<Outcome>,
    notices: Vec<String>,
}

/// The channel's metrics (classic text) agree with what the runner reports.
fn assert_counted(hf: &HouseFormat, p: &Played, exposition: &str) {
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(exposition, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{exposition}"))
    };
    let main = ("channel", "main");
    for rung in &hf.rungs {
        // A segment counts on its rung when it closes there; the runner counts it once every rung has closed it.
        let written = value("vvtv_segments_written_total", &[main, ("rung", &rung.name)]);
        let published = p.snap.segments_written as f64;
        assert!((published..=published + 1.0).contains(&written), "{}: {written} vs {published}", rung.name);
    }
    assert_eq!(value("vvtv_pipeline_restarts_total", &[main]), p.snap.restarts as f64);
    assert!(value("vvtv_playout_gaps_total", &[main]) >= p.snap.stats.gaps as f64);
    // Every item that went on air also went off it (this feed tags every item as the slate).
    assert_eq!(value("vvtv_items_aired_total", &[main, ("kind", "slate")]), p.outcomes.len() as f64);
    assert_eq!(value("vvtv_items_aired_total", &[main, ("kind", "scheduled")]), 0.0);
}

fn play(hf: &HouseFormat, items: Vec<Item>, out: &Path, limit: usize, origin_ns: i64) -> (Snapshot, Vec<Outcome>) {
    let p = play_with(hf, items, out, limit, None, origin_ns);
    assert!(p.notices.is_empty(), "unexpected notices: {:?}", p.notices);
    (p.snap, p.outcomes)
}

fn play_with(
    hf: &HouseFormat,
    items: Vec<Item>,
    out: &Path,
    limit: usize,
    disturb: Option<(usize, Disturb)>,
    origin_ns: i64,
) -> Played {
    let rungs = vvtv::broadcaster::playlist_rungs(hf, &items[0].files);
    let playlist = Playlist::recover(PlaylistSettings {
        dir: out.to_path_buf(),
        rungs,
        window: 6,
        segment_duration: Duration::from_secs(u64::from(hf.segment_seconds)),
        // keep every segment: the test reads them all afterwards
        grace: Duration::from_secs(1_000_000),
    })
    .expect("playlist");
    let (tx, rx) = channel();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let notices = Arc::new(Mutex::new(Vec::new()));
    let feed = CycleFeed {
        items,
        next: 0,
        started: 0,
        limit,
        disturb,
        stop: tx,
        outcomes: outcomes.clone(),
        notices: notices.clone(),
    };
    let shared = Arc::new(Mutex::new(Snapshot::default()));
    let settings = EngineSettings {
        out_dir: out.to_path_buf(),
        rungs: hf.rungs.iter().map(|r| r.name.clone()).collect(),
        segment: Duration::from_secs(u64::from(hf.segment_seconds)),
        gop: Duration::from_secs(u64::from(hf.gop_seconds)),
        frame_ns: hf.frame_pts_ns(1),
        sync: false,
        origin_ns,
    };
    let silence = vvtv::media::silence::silent_aac_frame(hf.audio_kbps).expect("silence");
    let registry = Arc::new(Metrics::new(&Config { house_format: small_format_config(), ..Config::default() }));
    let metrics = registry.channel(&ChannelId("main".into()));
    let runner = Runner { settings, feed, playlist, commands: rx, shared: shared.clone(), silence, metrics };
    runner.run();
    let snap = shared.lock().unwrap().clone();
    let outcomes = outcomes.lock().unwrap().clone();
    let notices = notices.lock().unwrap().clone();
    let played = Played { snap, outcomes, notices };
    assert_counted(hf, &played, &registry.encode(Exposition::Prometheus));
    played
}

struct Packet {
    video: bool,
    pts: f64,
    dts: f64,
    duration: f64,
    key: bool,
    pos: u64,
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ts"))
        .collect();
    segs.sort();
    segs
}

fn probe_packets(file: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time,dts_time,duration_time,flags,pos",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (installed by scripts/install-deps.sh)");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(errors.trim().is_empty(), "ffprobe reported errors: {errors}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() < 6 {
                return None;
            }
            Some(Packet {
                video: f[0] == "video",
                pts: f[1].parse().ok()?,
                dts: f[2].parse().ok()?,
                duration: f[3].parse().unwrap_or(0.0),
                pos: f[4].parse().ok()?,
                key: f[5].contains('K'),
            })
        })
        .collect()
}

/// Independent checks over one rung, read the way a player reads it: every segment in order, concatenated.
/// Only the part up to `complete_s` (the end of the last item that finished) is held to the splice rules; the stop
/// at the end of the test interrupts the last item mid-GOP.
fn verify_rung(dir: &Path, hf: &HouseFormat, complete_s: f64) -> Vec<usize> {
    let segs = segments(dir);
    assert!(segs.len() > 3, "too few segments in {}", dir.display());
    let frame = hf.frame_pts_ns(1) as f64 / 1e9;
    let target = f64::from(hf.segment_seconds);
    let all = dir.join("all.ts.check");
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for seg in &segs {
        starts.push(bytes.len() as u64);
        bytes.extend(std::fs::read(seg).unwrap());
    }
    std::fs::write(&all, bytes).unwrap();
    let pk = probe_packets(&all);
    let _ = std::fs::remove_file(&all);

    // Per segment: starts with a keyframe, holds at most the target duration of video.
    let mut frames_per_segment = vec![0usize; segs.len()];
    let mut first_video_seen = vec![false; segs.len()];
    for p in pk.iter().filter(|p| p.video) {
        let i = starts.partition_point(|&s| s <= p.pos) - 1;
        if !first_video_seen[i] {
            assert!(p.key, "{} does not start with a keyframe", segs[i].display());
            first_video_seen[i] = true;
        }
        frames_per_segment[i] += 1;
    }
    for (i, n) in frames_per_segment.iter().enumerate() {
        assert!(
            *n as f64 * frame <= target + 1e-3,
            "{} holds {n} frames, over the {target} s target",
            segs[i].display()
        );
    }

    let base = pk.iter().filter(|p| p.video).map(|p| p.pts).fold(f64::MAX, f64::min);
    let end = base + complete_s;
    let mut v: Vec<&Packet> = pk.iter().filter(|p| p.video && p.pts < end - 1e-4).collect();
    for w in v.windows(2) {
        assert!(w[1].dts > w[0].dts, "video DTS not increasing: {} then {}", w[0].dts, w[1].dts);
    }
    v.sort_by(|a, b| a.pts.total_cmp(&b.pts));
    for w in v.windows(2) {
        let step = w[1].pts - w[0].pts;
        assert!(
            (step - frame).abs() < 0.0015,
            "video PTS step {step:.4} s at {:.3} (frame {frame:.4})",
            w[0].pts - base
        );
    }
    let aframe = AAC_FRAME_NS as f64 / 1e9;
    let a: Vec<&Packet> = pk.iter().filter(|p| !p.video && p.pts < end - aframe / 2.0).collect();
    for w in a.windows(2) {
        let gap = w[1].pts - (w[0].pts + w[0].duration.max(aframe));
        assert!(gap.abs() < aframe * 0.5 + 0.0015, "audio gap/overlap {gap:.4} s at {:.3}", w[0].pts - base);
    }
    let v_end = v.last().unwrap().pts + frame;
    let a_end = a.last().unwrap().pts + aframe;
    assert!(
        (v_end - end).abs() < 0.002,
        "video of complete items ends at {:.3}, expected {complete_s:.3}",
        v_end - base
    );
    assert!((a_end - v_end).abs() <= aframe / 2.0 + 0.0015, "A/V end offset {:.4} s", a_end - v_end);
    frames_per_segment
}

#[test]
fn thousand_items_splice_without_gaps() {
    let Setup { _dir, hf, items, out } = setup();
    let started = std::time::Instant::now();
    let (snap, outcomes) = play(&hf, items, &out, 1000, 1_000_000_000);
    eprintln!("1000 items in {:.1} s: {:?}", started.elapsed().as_secs_f64(), snap.stats);
    assert!(snap.stats.items >= 999, "items aired: {}", snap.stats.items);
    assert_eq!(snap.stats.gaps, 0, "engine counted gaps");
    assert!(snap.stats.max_av_offset_ns <= AAC_FRAME_NS / 2, "A/V offset {} ns", snap.stats.max_av_offset_ns);
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Complete | Outcome::Interrupted { .. })), "{outcomes:?}");
    assert!(snap.segments_written > 500, "segments: {}", snap.segments_written);
    let complete_s = snap.stats.video_end_ns as f64 / 1e9;
    let counts: Vec<Vec<usize>> = hf.rungs.iter().map(|r| verify_rung(&out.join(&r.name), &hf, complete_s)).collect();
    // Rungs are cut at identical boundaries: same segment names and the same number of video frames in each.
    // The stop may leave one extra partial segment on one rung; everything published before it must match.
    let names = |r: &str| segments(&out.join(r)).iter().map(|p| p.file_name().unwrap().to_owned()).collect::<Vec<_>>();
    let (a, b) = (names(&hf.rungs[0].name), names(&hf.rungs[1].name));
    let common = a.len().min(b.len()) - 1;
    assert!(a.len().abs_diff(b.len()) <= 1, "rungs hold {} and {} segments", a.len(), b.len());
    assert!(a[..common] == b[..common], "segment names differ between rungs");
    let mismatch = (0..common).find(|&i| counts[0][i] != counts[1][i]);
    assert!(mismatch.is_none(), "segment {mismatch:?} holds different frame counts on the two rungs");
    let text = std::fs::read_to_string(out.join("live.m3u8")).unwrap();
    assert!(!text.contains("#EXT-X-ENDLIST"), "the stream never ends");
}

#[test]
fn mpeg_ts_timestamp_wrap_is_survived() {
    let Setup { _dir, hf, items, out } = setup();
    // TS timestamps are 33 bits at 90 kHz (wrap after ~26.5 h). Start 40 s before the wrap.
    let wrap_s = (1u64 << 33) as f64 / 90_000.0;
    let origin_ns = ((wrap_s - 40.0) * 1e9) as i64;
    let (snap, _) = play(&hf, items, &out, 40, origin_ns);
    assert_eq!(snap.stats.gaps, 0);
    assert!(snap.stats.video_end_ns > 80_000_000_000, "played past the wrap: {} ns", snap.stats.video_end_ns);
    // The files really carry wrapped timestamps: the first segment starts just below 2^33 ticks (ffprobe reads a
    // lone file there as slightly negative), the last one just above 0.
    let segs = segments(&out.join(&hf.rungs[0].name));
    let first_pts = |seg: &Path| probe_packets(seg).iter().find(|p| p.video).map(|p| p.pts).expect("video");
    let (first, last) = (first_pts(&segs[0]), first_pts(&segs[segs.len() - 1]));
    let below_wrap = first > wrap_s - 60.0 || (-60.0..0.0).contains(&first);
    assert!(below_wrap && (0.0..60.0).contains(&last), "first segment at {first} s, last at {last} s: no wrap");
    verify_rung(&out.join(&hf.rungs[0].name), &hf, snap.stats.video_end_ns as f64 / 1e9);
}

#[test]
fn rebuild_continues_numbering_with_one_discontinuity() {
    let Setup { _dir, hf, items, out } = setup();
    let p = play_with(&hf, items, &out, 40, Some((12, Disturb::Rebuild)), 1_000_000_000);
    assert_eq!(p.snap.restarts, 1, "{:?}", p.notices);
    assert_rebuilt_cleanly(&hf, &out, &p);
}

#[test]
fn unwritable_segments_rebuild_with_back_off() {
    let Setup { _dir, hf, items, out } = setup();
    let broken = out.join(&hf.rungs[1].name);
    let disturb = Disturb::BreakFolder { dir: broken.clone(), for_: Duration::from_millis(2500) };
    let p = play_with(&hf, items, &out, 40, Some((12, disturb)), 1_000_000_000);
    // The write error (rebuild 1), the folder that cannot be made again (2), retried after 0.5 s (3), after 1 s more
    // (4), and 2 s later the folder is back: 4 rebuilds, where retrying every 0.5 s would have made 6 or 7.
    assert_eq!(p.snap.restarts, 4, "{:?}", p.notices);
    let first = p.notices.first().expect("a notice");
    assert!(first.contains(&broken.display().to_string()), "the error names the file: {first}");
    assert!(
        p.outcomes.iter().filter(|o| matches!(o, Outcome::Complete)).count() >= 30,
        "playout went on: {:?}",
        p.outcomes
    );
    assert_rebuilt_cleanly(&hf, &out, &p);
}

/// After one or more rebuilds: the item on air was interrupted, segment numbers go on without reuse or hole on every
/// rung, the playlists carry exactly one discontinuity and every segment opens with a keyframe.
fn assert_rebuilt_cleanly(hf: &HouseFormat, out: &Path, p: &Played) {
    assert!(p.notices.iter().all(|n| n.starts_with("pipeline_rebuilt")), "{:?}", p.notices);
    // The item on air when it happened, and the one the final stop takes off the air.
    let interrupted = p.outcomes.iter().filter(|o| matches!(o, Outcome::Interrupted { .. })).count();
    assert_eq!(interrupted, 2, "{:?}", p.outcomes);
    for rung in &hf.rungs {
        let seqs: Vec<u64> = segments(&out.join(&rung.name))
            .iter()
            .map(|p| parse_segment_file_name(p.file_name().unwrap().to_str().unwrap()).expect("segment name"))
            .collect();
        assert!(seqs.len() > 10);
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "segment numbers on {}: {seqs:?}", rung.name);
        }
        // Exactly one discontinuity: still listed, or counted by DISCONTINUITY-SEQUENCE once it slid out.
        let text = std::fs::read_to_string(out.join(&rung.name).join("live.m3u8")).unwrap();
        assert_eq!(discontinuities(&text), 1, "{text}");
        for seg in segments(&out.join(&rung.name)) {
            let first_video = probe_packets(&seg).into_iter().find(|p| p.video).expect("video");
            assert!(first_video.key, "{} does not start with a keyframe", seg.display());
        }
    }
}
