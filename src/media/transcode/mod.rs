//! The encoder: turns any source (a media file, or a generated test card for the slate and the demo clips) into the
//! [house format](crate::media::house_format), one MP4 per rung.
//!
//! [`encode`] decodes the source once and tees the frames to one x264 encoder per rung, so all rungs get the same
//! frames with the same timestamps and (with a fixed keyint and no scene cuts) keyframes at identical times. The audio
//! is encoded once and teed to every rung's muxer.
//!
//! - `graph.rs`: the pipeline in gst-launch syntax, and the links made once the decoder exposes its streams;
//! - `av_sync.rs`: the gate that keeps the audio exactly as long as the video;
//! - `test_card.rs`: the generated test cards.

mod av_sync;
mod graph;
mod test_card;

pub use test_card::{poster_box, TestPattern};

use crate::media::error::MediaError;
use crate::media::house_format::{HouseFormat, Rung};
use crate::media::pipeline::{launch, require_elements, run_until_eos, Inputs, PipelineError};
use crate::media::vmaf::{self, VmafScore};
use av_sync::AvSync;
use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every element an encode may use, with the Debian package that ships it, so a missing one is reported by name.
const REQUIRED_ELEMENTS: [(&str, &str); 15] = [
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("avdec_h264", "gstreamer1.0-libav"),
    (graph::AAC_ENCODER, "gstreamer1.0-libav"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("qtdemux", "gstreamer1.0-plugins-good"),
    ("aacparse", "gstreamer1.0-plugins-good"),
    ("deinterlace", "gstreamer1.0-plugins-good"),
    ("videoflip", "gstreamer1.0-plugins-good"),
    ("textoverlay", "gstreamer1.0-x"),
    ("timeoverlay", "gstreamer1.0-x"),
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("audiorate", "gstreamer1.0-plugins-base"),
    ("rawaudioparse", "gstreamer1.0-plugins-bad"),
    ("appsink", "gstreamer1.0-plugins-base"),
];
/// Encoding is given `TIMEOUT_BASE + TIMEOUT_FACTOR × duration`, and fails if the video stops advancing for
/// `STALL_LIMIT`, so a wedged pipeline can never hang the factory.
const TIMEOUT_BASE: Duration = Duration::from_secs(60);
const TIMEOUT_FACTOR: u32 = 10;
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// What to encode.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Any media file GStreamer can decode; it needs a video stream, audio is optional (silence otherwise).
    File(PathBuf),
    /// The video of a media file with audio prepared aside (the factory's loudness pass): `pcm` is raw interleaved
    /// F32LE stereo at 48 kHz whose sample 0 is at running time 0 of the file. The file's own audio is ignored.
    FileWithPcm { path: PathBuf, pcm: PathBuf },
    /// A generated card: the pattern, the title burnt in, a running clock, and a sine tone at about −20 dBFS
    /// (`None` = silence) — or, with `pcm`, that prepared audio instead (raw F32LE stereo at 48 kHz, as for
    /// `FileWithPcm`: the factory brings every card it makes to the house loudness that way).
    /// `poster`: a JPEG or PNG shown beside the title (an "up next" card).
    TestCard {
        title: String,
        pattern: TestPattern,
        tone_hz: Option<f64>,
        duration: Duration,
        pcm: Option<PathBuf>,
        poster: Option<PathBuf>,
    },
}

impl Source {
    /// How errors name this source: `encode /x/y.mov` or `encode test card "Slate"`.
    fn describe(&self) -> String {
        match self {
            Source::File(path) | Source::FileWithPcm { path, .. } => format!("encode {}", path.display()),
            Source::TestCard { title, .. } => format!("encode test card {title:?}"),
        }
    }
}

/// The result of one [`encode`].
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Video duration: frames × frame duration. Audio is cut or padded to it.
    pub duration: Duration,
    pub video_frames: u64,
    /// One per rung, in ladder order.
    pub renditions: Vec<Rendition>,
}

/// One rung's file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    pub rung: String,
    pub path: PathBuf,
    pub size_bytes: u64,
}

/// Checks that every GStreamer element the house format needs is installed; the error names the package to install.
/// Cheap: run it at startup (encode runs it too).
pub fn check_elements() -> Result<(), MediaError> {
    Ok(require_elements("house format", &REQUIRED_ELEMENTS)?)
}

/// Encodes `source` into every rung of `hf`, writing `out_dir/{rung}.mp4`; blocking (run it on a blocking thread).
///
/// ```text
/// source ─ (decode, deinterlace, rotate) ─ videorate ─ tee ─┬─ scale+box ─ x264enc ─ mp4mux ─ {rung}.mp4
///                                                           └─ …one branch per rung…     ▲
/// audio ─ convert ─ resample ─ audiorate ─ [gate] ─ avenc_aac ─ tee ──────────────────────┘ (to every muxer)
/// ```
/// One decode feeds all rungs. `progress` gets the fraction done (0..=1) about every 500 ms, ending with 1.0.
/// Nothing is left in `out_dir` on failure; on success each file appears complete (written aside, then renamed).
pub fn encode(
    hf: &HouseFormat,
    source: &Source,
    out_dir: &Path,
    progress: &dyn Fn(f64),
) -> Result<Encoded, MediaError> {
    encode_with(hf, source, out_dir, None, progress).map(|(encoded, _)| encoded)
}

/// [`encode`], also scoring the top rung with VMAF (every `subsample`-th frame) in the same run: the frames the top
/// rung's encoder is given are the reference, and its output is decoded again as it is written. The source is decoded
/// and prepared only once, for the encoders and the gate together, instead of a second time afterwards.
///
/// ```text
/// … tee ─ scale+box ─ tee ─ x264enc ─ tee ─ mp4mux ─ {top}.mp4
///                         │             └─ avdec_h264 ─ appsink ─┐
///                         └─ queue ─────────────────── appsink ─┴─ libvmaf (a thread of its own)
/// ```
pub fn encode_scored(
    hf: &HouseFormat,
    source: &Source,
    out_dir: &Path,
    subsample: u32,
    progress: &dyn Fn(f64),
) -> Result<(Encoded, VmafScore), MediaError> {
    let (encoded, score) = encode_with(hf, source, out_dir, Some(subsample), progress)?;
    let score = score.ok_or_else(|| PipelineError::Build {
        what: source.describe(),
        reason: "the VMAF tap produced no score".into(),
    })?;
    Ok((encoded, score))
}

fn encode_with(
    hf: &HouseFormat,
    source: &Source,
    out_dir: &Path,
    vmaf_subsample: Option<u32>,
    progress: &dyn Fn(f64),
) -> Result<(Encoded, Option<VmafScore>), MediaError> {
    let what = source.describe();
    require_elements(&what, &REQUIRED_ELEMENTS)?;
    hf.check().map_err(|reason| MediaError::Settings { what: what.clone(), reason })?;
    match source {
        Source::File(path) => {
            std::fs::metadata(path).map_err(|e| MediaError::io(&what, path, e))?;
        }
        Source::FileWithPcm { path, pcm } => {
            std::fs::metadata(path).map_err(|e| MediaError::io(&what, path, e))?;
            std::fs::metadata(pcm).map_err(|e| MediaError::io(&what, pcm, e))?;
        }
        Source::TestCard { pcm, poster, .. } if pcm.is_some() || poster.is_some() => {
            for path in pcm.iter().chain(poster) {
                std::fs::metadata(path).map_err(|e| MediaError::io(&what, path, e))?;
            }
        }
        Source::TestCard { .. } => {}
    }
    std::fs::create_dir_all(out_dir).map_err(|e| MediaError::io(&what, out_dir, e))?;
    let parts: Vec<PathBuf> = hf.rungs.iter().map(|r| out_dir.join(format!("{}.mp4.part", r.name))).collect();
    let started = Instant::now();

    let result = run_encode(hf, source, &what, &parts, vmaf_subsample, progress);
    let encoded = result.and_then(|(video_end_ns, video_frames, score)| {
        let mut renditions = Vec::with_capacity(hf.rungs.len());
        for (rung, part) in hf.rungs.iter().zip(&parts) {
            let path = out_dir.join(format!("{}.mp4", rung.name));
            std::fs::rename(part, &path).map_err(|e| MediaError::io(&what, part, e))?;
            let size_bytes = std::fs::metadata(&path).map_err(|e| MediaError::io(&what, &path, e))?.len();
            renditions.push(Rendition { rung: rung.name.clone(), path, size_bytes });
        }
        Ok((Encoded { duration: Duration::from_nanos(video_end_ns), video_frames, renditions }, score))
    });
    match encoded {
        Ok((encoded, score)) => {
            let took = started.elapsed().as_secs_f64();
            tracing::info!(
                source = %what,
                frames = encoded.video_frames,
                seconds = encoded.duration.as_secs_f64(),
                speed = encoded.duration.as_secs_f64() / took.max(1e-3),
                "encoded to the house format"
            );
            progress(1.0);
            Ok((encoded, score))
        }
        Err(e) => {
            for part in &parts {
                // Best effort: the file may never have been created.
                let _ = std::fs::remove_file(part);
            }
            Err(e)
        }
    }
}

/// Builds and runs the pipeline; returns the video end (ns), the frame count and, with `vmaf_subsample`, the top
/// rung's VMAF.
fn run_encode(
    hf: &HouseFormat,
    source: &Source,
    what: &str,
    parts: &[PathBuf],
    vmaf_subsample: Option<u32>,
    progress: &dyn Fn(f64),
) -> Result<(u64, u64, Option<VmafScore>), MediaError> {
    let pipeline_error = |reason: String| MediaError::from(PipelineError::Build { what: what.to_owned(), reason });
    let top = hf.top_rung_index().ok_or_else(|| MediaError::Settings {
        what: what.to_owned(),
        reason: "the house format has no rungs".into(),
    })?;
    let description = graph::describe(hf, source, vmaf_subsample.map(|_| top))?;
    let pipeline = launch(what, &description)?;
    let by_name = |name: &str| pipeline.by_name(name).ok_or_else(|| pipeline_error(format!("no element {name}")));

    for (i, part) in parts.iter().enumerate() {
        by_name(&format!("sink{i}"))?.set_property("location", part);
        by_name(&format!("venc{i}"))?.set_property("option-string", graph::X264_OPTIONS);
    }

    let sync = Arc::new(AvSync::default());
    let pad = |element: &str, pad: &str| {
        by_name(element)?.static_pad(pad).ok_or_else(|| pipeline_error(format!("{element} has no {pad} pad")))
    };
    av_sync::watch_video(&pad("vcaps", "src")?, sync.clone());
    av_sync::gate_audio(&pad("acaps", "src")?, sync.clone());

    let mut expected_ns = None;
    // The file's reader and decodebin (with the demuxer, parsers and decoders it adds) read the input; the prepared
    // PCM, the test card and everything downstream are ours.
    let inputs = match source {
        Source::File(path) => {
            by_name("src")?.set_property("location", path.as_path());
            graph::link_decoder(&pipeline, &by_name("dec")?, &pad("vin", "sink")?, Some(&pad("ain", "sink")?));
            Inputs::new([by_name("src")?, by_name("dec")?])
        }
        Source::FileWithPcm { path, pcm } => {
            by_name("src")?.set_property("location", path.as_path());
            by_name("pcm")?.set_property("location", pcm.as_path());
            graph::link_decoder(&pipeline, &by_name("dec")?, &pad("vin", "sink")?, None);
            Inputs::new([by_name("src")?, by_name("dec")?])
        }
        Source::TestCard { title, duration, pcm, poster, .. } => {
            if let Some(pcm) = pcm {
                by_name("pcm")?.set_property("location", pcm.as_path());
            }
            // `describe` refused a house format without rungs already.
            let full_hd = || Rung { name: "1080p".into(), width: 1920, height: 1080, video_kbps: 0 };
            let canvas = hf.top_rung().cloned().unwrap_or_else(full_hd);
            let overlay = match poster {
                Some(path) => Some((by_name("poster")?, path.as_path())),
                None => None,
            };
            let overlay = overlay.as_ref().map(|(e, p)| (e, *p));
            test_card::dress(&by_name("title")?, &by_name("clock")?, overlay, title, &canvas);
            expected_ns = Some(hf.frame_pts_ns(hf.frames_in(*duration)) as u64);
            Inputs::none()
        }
    };

    let started = Instant::now();
    let mut last_advance = (0u64, Instant::now());
    let vrate_sink = pad("vrate", "sink")?;
    let mut tick = || {
        let (video_end_ns, _, _) = sync.video();
        if expected_ns.is_none() {
            // Asked upstream of videorate: the demuxer knows the duration once it has parsed the headers.
            expected_ns = vrate_sink.peer_query_duration::<gst::ClockTime>().map(|d| d.nseconds()).filter(|&d| d > 0);
        }
        if let Some(total) = expected_ns {
            progress((video_end_ns as f64 / total as f64).clamp(0.0, 1.0));
            let budget = TIMEOUT_BASE + Duration::from_nanos(total) * TIMEOUT_FACTOR;
            if started.elapsed() > budget {
                return Err(PipelineError::Timeout {
                    what: what.to_owned(),
                    elapsed: started.elapsed(),
                    reason: format!("{:.1}s of {:.1}s encoded", video_end_ns as f64 / 1e9, total as f64 / 1e9),
                });
            }
        }
        if video_end_ns > last_advance.0 {
            last_advance = (video_end_ns, Instant::now());
        } else if last_advance.1.elapsed() > STALL_LIMIT {
            return Err(PipelineError::Timeout {
                what: what.to_owned(),
                elapsed: started.elapsed(),
                reason: format!("video stuck at {:.1}s", video_end_ns as f64 / 1e9),
            });
        }
        Ok(())
    };
    let tap = match vmaf_subsample {
        Some(subsample) => {
            let sink = |name: &str| {
                by_name(name)?
                    .downcast::<gst_app::AppSink>()
                    .map_err(|_| pipeline_error(format!("{name} is not an appsink")))
            };
            Some((sink("vmafref")?, sink("vmafout")?, subsample))
        }
        None => None,
    };
    let rung = &hf.rungs[top];
    let frame = vmaf::Frame { width: rung.width, height: rung.height, fps: hf.fps };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ran, score) = std::thread::scope(|scope| {
        let scoring = tap.as_ref().map(|(reference, output, subsample)| {
            let (frame, stop, rendition) = (&frame, &stop, &parts[top]);
            scope.spawn(move || vmaf::score_stream(reference, output, frame, *subsample, stop, rendition))
        });
        // Whatever happened, no streaming thread may stay parked in the audio gate. The VMAF thread ends with the
        // appsinks' EOS, or when told the encode failed (the stopped pipeline delivers nothing more).
        let ran = run_until_eos(&pipeline, what, &inputs, &mut tick, &|| sync.cancel());
        if ran.is_err() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        (ran, scoring.map(|handle| handle.join()))
    });
    ran?;
    let (video_end_ns, video_frames, _) = sync.video();
    if video_frames == 0 {
        return Err(PipelineError::NoVideo { what: what.to_owned() }.into());
    }
    let score = match score {
        None => None,
        Some(Ok(Ok(score))) => Some(score),
        Some(Ok(Err(source))) => return Err(MediaError::Quality { what: what.to_owned(), source: Box::new(source) }),
        Some(Err(_)) => return Err(pipeline_error("the VMAF thread panicked".into())),
    };
    Ok((video_end_ns, video_frames, score))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HouseFormatConfig;
    use crate::media::pipeline::Fault;
    use crate::media::test_support::{card, check_rendition, encode_quietly, make_media, small, stream};

    #[test]
    fn test_card_is_encoded_to_every_rung_in_the_house_format() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let seen = std::cell::RefCell::new(vec![]);
        let source = card("Demo 1", TestPattern::Ball, Some(440.0), 5.0);
        let encoded = encode(&hf, &source, dir.path(), &|f| seen.borrow_mut().push(f)).expect("encode");
        assert_eq!(encoded.video_frames, 150);
        assert_eq!(encoded.duration, Duration::from_secs(5));
        assert_eq!(encoded.renditions.len(), 2);
        let mut keys = vec![];
        for (rung, r) in hf.rungs.iter().zip(&encoded.renditions) {
            assert_eq!(r.rung, rung.name);
            assert_eq!(r.path, dir.path().join(format!("{}.mp4", rung.name)));
            assert_eq!(r.size_bytes, std::fs::metadata(&r.path).expect("rendition").len());
            keys.push(check_rendition(&hf, rung, &r.path, 5.0));
        }
        assert_eq!(keys[0], keys[1], "keyframes differ between rungs");

        let seen = seen.into_inner();
        assert_eq!(seen.last(), Some(&1.0));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress went backwards: {seen:?}");
        let mut files: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.file_name()).collect();
        files.sort();
        assert_eq!(files, ["180p.mp4", "360p.mp4"], "nothing but the renditions is left behind");
    }

    #[test]
    fn the_gate_scored_during_the_encode_equals_a_separate_vmaf_run() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        // 10-bit 4:4:4 at 25 fps: converted once at the head, rate-converted, scaled down for the lower rung.
        let source = dir.path().join("hi10.mp4");
        make_media(
            "videotestsrc pattern=ball num-buffers=75 ! \
             video/x-raw,format=Y444_10LE,width=640,height=360,framerate=25/1 ! \
             x264enc speed-preset=ultrafast ! mp4mux ! filesink location={out}",
            &source,
        );
        let (encoded, inline) =
            encode_scored(&hf, &Source::File(source.clone()), &dir.path().join("out"), 4, &|_| {}).expect("encode");
        assert_eq!(encoded.video_frames, 90);
        let top = &encoded.renditions[0].path;
        let frame = vmaf::Frame { width: 640, height: 360, fps: hf.fps };
        let separate = vmaf::score(&source, top, &frame, 4, &|_| {}).expect("separate VMAF run");
        // Frames 0, 4, …, 88 in both; the same reference frames and the same rendition give the same scores.
        assert_eq!((inline.frames, separate.frames), (23, 23));
        assert!((inline.mean - separate.mean).abs() < 0.01, "inline {inline:?}, separate {separate:?}");
        assert!((inline.min - separate.min).abs() < 0.01, "inline {inline:?}, separate {separate:?}");
        assert!(inline.mean > 80.0, "{inline:?}");
        let profile = stream(top, "v")["profile"].as_str().unwrap_or_default().to_owned();
        assert_eq!(profile, "High", "the top rung is 8-bit 4:2:0 High profile");
    }

    #[test]
    fn default_ladder_keeps_keyframes_aligned_on_all_four_rungs() {
        let hf = HouseFormat::from_config(&HouseFormatConfig::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let encoded = encode_quietly(&hf, &card("VVTV", TestPattern::HdBars, Some(440.0), 4.0), dir.path());
        let keys: Vec<Vec<f64>> = hf
            .rungs
            .iter()
            .zip(&encoded.renditions)
            .map(|(rung, r)| check_rendition(&hf, rung, &r.path, 4.0))
            .collect();
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(keys[0], [0.0, 2.0]);
    }

    #[test]
    fn unreadable_input_is_refused_with_its_name_and_the_reason() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let bogus = dir.path().join("bogus.mov");
        std::fs::write(&bogus, b"this is not a movie at all, just some text pretending to be one").expect("write");
        let out = dir.path().join("out");
        let err = encode(&hf, &Source::File(bogus.clone()), &out, &|_| {}).expect_err("garbage must fail");
        let text = err.to_string();
        assert!(text.starts_with(&format!("encode {}: ", bogus.display())), "{text}");
        assert!(matches!(err, MediaError::Pipeline(PipelineError::Element { .. })), "{text}");
        assert_eq!(err.fault(), Some(Fault::Input), "a broken file is the input's fault: {text}");
        assert_eq!(std::fs::read_dir(&out).expect("out dir").count(), 0, "no partial renditions are left");

        let missing = dir.path().join("missing.mp4");
        let err = encode(&hf, &Source::File(missing.clone()), &out, &|_| {}).expect_err("missing file");
        assert!(matches!(err, MediaError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.mp4"), "{err}");

        let audio_only = dir.path().join("audio.ogg");
        make_media("audiotestsrc num-buffers=50 ! vorbisenc ! oggmux ! filesink location={out}", &audio_only);
        let err = encode(&hf, &Source::File(audio_only), &out, &|_| {}).expect_err("no video");
        assert!(matches!(err, MediaError::Pipeline(PipelineError::NoVideo { .. })), "{err}");

        let err = crate::media::scan::scan(&dir.path().join("bogus.mov")).expect_err("scan of garbage");
        assert!(err.to_string().starts_with("scan "), "{err}");
    }

    #[test]
    fn bad_house_format_is_refused_before_anything_runs() {
        let mut hf = small();
        hf.x264_preset = "warp9".into();
        let dir = tempfile::tempdir().expect("tempdir");
        let err = encode(&hf, &card("x", TestPattern::Black, None, 1.0), dir.path(), &|_| {}).expect_err("bad preset");
        assert!(matches!(err, MediaError::Settings { .. }), "{err}");
        assert!(err.to_string().contains("warp9"), "{err}");
        check_elements().expect("every element the house format needs is installed here");
    }
}
