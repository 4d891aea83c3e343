//! The house format — the one contract between the factory and the broadcaster — and the encoder that turns any
//! source (a media file, or a generated test card for the slate and the demo clips) into it.
//!
//! Every asset on air must have exactly the same codec parameters so the broadcaster can splice encoded buffers
//! without re-encoding (see DESIGN.md, "Playout without re-encoding"). That is why everything that decides those
//! parameters lives here and nowhere else:
//! - video: H.264 High, 8-bit 4:2:0, BT.709, fixed fps, closed GOP of exactly `gop_seconds`, no scene-cut keyframes,
//!   a fixed B-frame delay, square pixels letter/pillar-boxed into each rung's frame;
//! - audio: AAC-LC 48 kHz stereo, cut or padded to the video's duration;
//! - container: one MP4 per rung.
//!
//! [`encode`] decodes the source once and tees the frames to one x264 encoder per rung, so all rungs get the same
//! frames with the same timestamps and (with a fixed keyint and no scene cuts) keyframes at identical times. The audio
//! is encoded once and teed to every rung's muxer.

use crate::config::HouseFormatConfig;
use crate::media::vmaf::{self, VmafError, VmafScore};
use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Audio sample rate of the house format.
pub const AUDIO_RATE: u32 = 48_000;
/// Audio channels of the house format.
pub const AUDIO_CHANNELS: u32 = 2;
/// Samples in one AAC-LC frame.
pub const AAC_FRAME_SAMPLES: u32 = 1024;
/// Consecutive B-frames between references. Fixed (no adaptive B-frames, no pyramid) so every asset has the same
/// reorder delay: the first DTS is always exactly one frame before the first PTS, which the playout relies on to keep
/// DTS continuous across item boundaries.
pub const B_FRAMES: u32 = 2;
/// x264 constant-rate factor of the capped-CRF rate control (x264enc `pass=qual`: CRF, with the VBV max rate set to
/// the rung's `bitrate` and the buffer to `vbv-buf-capacity` ms of it). Quality-targeted, so easy content (a slate)
/// takes few bits, while the cap bounds the peak the ladder advertises. Plain ABR (`pass=cbr`) would spend the full
/// bitrate on a still picture; two-pass would double the ingest time.
pub const CRF: u32 = 21;
/// VBV buffer in milliseconds at the rung's bitrate: two seconds is the usual bound for streaming ladders.
pub const VBV_BUFFER_MS: u32 = 2000;

/// x264 options that have no element property. `scenecut=0`: keyframes only every GOP; `open-gop=0`: every GOP
/// decodes on its own, so a segment or an item can start at any keyframe; `stitchable=1`: headers do not depend on
/// the content, so two assets encoded with the same settings get byte-identical SPS/PPS.
const X264_OPTIONS: &str = "scenecut=0:open-gop=0:stitchable=1";
/// The AAC-LC encoder. Debian 12 ships two: `avenc_aac` (FFmpeg's native encoder, gstreamer1.0-libav) and
/// `voaacenc` (VisualOn, plugins-bad); FFmpeg's is the better one at 96–192 kbit/s and takes float input directly.
/// (fdkaacenc is not in Debian's main archive.)
const AAC_ENCODER: &str = "avenc_aac";
/// Every element an encode may use, with the Debian package that ships it, so a missing one is reported by name.
const REQUIRED_ELEMENTS: [(&str, &str); 15] = [
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("avdec_h264", "gstreamer1.0-libav"),
    (AAC_ENCODER, "gstreamer1.0-libav"),
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
/// avenc_aac (FFmpeg's native AAC-LC encoder) starts every stream with one frame of priming samples and does not
/// mark them, and mp4mux 1.22 writes no edit list for them; the audio is therefore fed this many samples early so
/// decoded audio lines up with the video.
const AAC_ENCODER_DELAY_SAMPLES: u64 = AAC_FRAME_SAMPLES as u64;
/// Bytes per audio frame at the gate: interleaved F32 stereo.
const AUDIO_BYTES_PER_FRAME: usize = 4 * AUDIO_CHANNELS as usize;
/// Raw frames buffered per rung: enough for the encoders to run in parallel, small enough for 1080p memory.
const RAW_QUEUE_FRAMES: u32 = 8;
/// Encoded data buffered in front of each muxer, so the muxer's interleaving never stalls the encoders.
const MUX_QUEUE_NS: u64 = 10_000_000_000;
/// The first steps for a decoded source, up to the frame-rate conversion; the VMAF reference repeats them exactly.
/// The conversion to 8-bit 4:2:0 BT.709 comes first, once at the source size, so a 10-bit or 4:4:4 source is not
/// converted again by every rung; deinterlace only acts on interlaced input; videoflip applies the rotation tag of
/// phone videos. The first element is named `vin` (decodebin's video is linked to it).
pub(crate) const PREPARE_SOURCE: &str = "videoconvert name=vin ! \
    video/x-raw,format=I420,colorimetry=bt709,chroma-site=mpeg2 ! deinterlace ! videoflip video-direction=auto";
/// Decoded frames each VMAF appsink holds: enough to keep the encoder busy while libvmaf works.
const VMAF_SINK_FRAMES: u32 = 4;
const POLL: Duration = Duration::from_millis(500);
/// Encoding is given `TIMEOUT_BASE + TIMEOUT_FACTOR × duration`, and fails if the video stops advancing for
/// `STALL_LIMIT`, so a wedged pipeline can never hang the factory.
const TIMEOUT_BASE: Duration = Duration::from_secs(60);
const TIMEOUT_FACTOR: u32 = 10;
const STALL_LIMIT: Duration = Duration::from_secs(120);
const X264_PRESETS: [&str; 9] =
    ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"];

/// The house format: what every asset on air looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct HouseFormat {
    pub fps: u32,
    pub gop_seconds: u32,
    pub segment_seconds: u32,
    pub audio_kbps: u32,
    /// Loudness target; applied by the loudness stage, carried here because it is part of the contract.
    pub target_lufs: f64,
    pub true_peak_dbtp: f64,
    pub x264_preset: String,
    pub rungs: Vec<Rung>,
}

/// One rung of the ABR ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    /// Used as the rendition's file name: `{name}.mp4`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
}

impl HouseFormat {
    /// The house format described by an (already validated) config section.
    pub fn from_config(c: &HouseFormatConfig) -> HouseFormat {
        HouseFormat {
            fps: c.fps,
            gop_seconds: c.gop_seconds,
            segment_seconds: c.segment_seconds,
            audio_kbps: c.audio_kbps,
            target_lufs: c.target_lufs,
            true_peak_dbtp: c.true_peak_dbtp,
            x264_preset: c.x264_preset.clone(),
            rungs: c
                .ladder
                .iter()
                .map(|r| Rung { name: r.name.clone(), width: r.width, height: r.height, video_kbps: r.video_kbps })
                .collect(),
        }
    }

    /// Frames in one GOP: the fixed keyframe interval.
    pub fn gop_frames(&self) -> u32 {
        self.fps * self.gop_seconds
    }

    /// Duration of one video frame, truncated to whole nanoseconds (use [`HouseFormat::frame_pts_ns`] for positions,
    /// which does not accumulate the truncation).
    pub fn frame_duration(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.fps.max(1)))
    }

    /// PTS of frame `n` counted from 0, exactly as GStreamer computes it (truncated, never accumulated).
    pub fn frame_pts_ns(&self, n: u64) -> i64 {
        (u128::from(n) * 1_000_000_000 / u128::from(self.fps.max(1))) as i64
    }

    /// Duration of one AAC frame (1024 samples at 48 kHz), in nanoseconds.
    pub fn aac_frame_ns() -> i64 {
        i64::from(AAC_FRAME_SAMPLES) * 1_000_000_000 / i64::from(AUDIO_RATE)
    }

    /// The rung with the largest frame; test cards are drawn at this size and scaled down for the others.
    pub fn top_rung(&self) -> Option<&Rung> {
        self.top_rung_index().map(|i| &self.rungs[i])
    }

    /// Where [`HouseFormat::top_rung`] stands in the ladder (and its rendition in [`Encoded::renditions`]).
    pub fn top_rung_index(&self) -> Option<usize> {
        (0..self.rungs.len()).max_by_key(|&i| u64::from(self.rungs[i].width) * u64::from(self.rungs[i].height))
    }

    /// Whole frames closest to `duration` (at least one).
    pub fn frames_in(&self, duration: Duration) -> u64 {
        let frames = (duration.as_nanos() * u128::from(self.fps) + 500_000_000) / 1_000_000_000;
        (frames as u64).max(1)
    }

    /// Refuses settings the encoder cannot honour; the config validation normally catches them first.
    fn check(&self, what: &str) -> Result<(), MediaError> {
        let invalid = |reason: String| MediaError::Settings { what: what.to_owned(), reason };
        if self.rungs.is_empty() {
            return Err(invalid("the house format has no rungs".into()));
        }
        if self.fps == 0 || self.gop_seconds == 0 {
            return Err(invalid(format!("fps {} and gop_seconds {} must be positive", self.fps, self.gop_seconds)));
        }
        if !X264_PRESETS.contains(&self.x264_preset.as_str()) {
            return Err(invalid(format!("{:?} is not an x264 preset", self.x264_preset)));
        }
        for r in &self.rungs {
            if !crate::config::is_slug(&r.name)
                || r.width % 2 != 0
                || r.height % 2 != 0
                || r.width == 0
                || r.height == 0
            {
                return Err(invalid(format!("rung {:?} {}x{} is not a valid rung", r.name, r.width, r.height)));
            }
        }
        Ok(())
    }
}

/// A `videotestsrc` pattern for test cards; each demo clip uses a different one so they are easy to tell apart.
/// (videotestsrc's plain "smpte" is left out on purpose: its noise patch costs the encoder its whole bit budget.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestPattern {
    /// SMPTE RP 219 HD bars.
    HdBars,
    /// 75 % colour bars.
    Bars75,
    /// 100 % colour bars.
    Bars100,
    Ball,
    Pinwheel,
    Spokes,
    Circular,
    Gradient,
    Colors,
    Black,
}

impl TestPattern {
    /// Patterns that look clearly different from each other, for cycling through demo clips.
    pub const DISTINCT: [TestPattern; 8] = [
        TestPattern::HdBars,
        TestPattern::Ball,
        TestPattern::Pinwheel,
        TestPattern::Bars75,
        TestPattern::Spokes,
        TestPattern::Gradient,
        TestPattern::Colors,
        TestPattern::Circular,
    ];

    /// The `videotestsrc pattern` nick.
    pub fn nick(self) -> &'static str {
        match self {
            TestPattern::HdBars => "smpte-rp-219",
            TestPattern::Bars75 => "smpte75",
            TestPattern::Bars100 => "smpte100",
            TestPattern::Ball => "ball",
            TestPattern::Pinwheel => "pinwheel",
            TestPattern::Spokes => "spokes",
            TestPattern::Circular => "circular",
            TestPattern::Gradient => "gradient",
            TestPattern::Colors => "colors",
            TestPattern::Black => "black",
        }
    }
}

/// What to encode.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Any media file GStreamer can decode; it needs a video stream, audio is optional (silence otherwise).
    File(PathBuf),
    /// The video of a media file with audio prepared aside (the factory's loudness pass): `pcm` is raw interleaved
    /// F32LE stereo at 48 kHz whose sample 0 is at running time 0 of the file. The file's own audio is ignored.
    FileWithPcm { path: PathBuf, pcm: PathBuf },
    /// A generated card: the pattern, the title burnt in, a running clock, and a sine tone at about −20 dBFS
    /// (`None` = silence). Used for the slate and the demo clips.
    TestCard { title: String, pattern: TestPattern, tone_hz: Option<f64>, duration: Duration },
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

/// A media failure, naming what was being done (`encode /x/y.mov`), the element or file, and the reason.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{what}: cannot initialise GStreamer: {reason}")]
    Init { what: String, reason: String },
    #[error("{what}: {path}: {source}")]
    Io { what: String, path: PathBuf, source: std::io::Error },
    #[error("{what}: house format: {reason}")]
    Settings { what: String, reason: String },
    #[error("{what}: GStreamer element {element} is missing (install {package})")]
    MissingElement { what: String, element: String, package: String },
    #[error("{what}: cannot build the pipeline: {reason}")]
    Pipeline { what: String, reason: String },
    #[error("{what}: {element}: {reason}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Element { what: String, element: String, reason: String, detail: Option<String> },
    #[error("{what}: no decodable video stream")]
    NoVideo { what: String },
    #[error("{what}: timed out after {}s ({reason})", elapsed.as_secs())]
    Timeout { what: String, elapsed: Duration, reason: String },
    /// The VMAF measured during the encode ([`encode_scored`]) could not be computed.
    #[error("{what}: {source}")]
    Quality { what: String, source: Box<VmafError> },
}

impl MediaError {
    fn io(what: &str, path: &Path, source: std::io::Error) -> MediaError {
        MediaError::Io { what: what.to_owned(), path: path.to_owned(), source }
    }

    /// Turns a bus error into a typed error naming the element that posted it.
    fn from_bus(what: &str, err: &gst::message::Error) -> MediaError {
        // The debug string reads "file.c(123): function (): /Gst/Path:\nactual detail"; only the detail helps an
        // operator, and without one the debug string is just the source location.
        let detail = err.debug().and_then(|d| d.split_once('\n').map(|(_, tail)| tail.trim().to_owned()));
        MediaError::Element {
            what: what.to_owned(),
            element: err.src().map(|s| s.name().to_string()).unwrap_or_else(|| "pipeline".into()),
            reason: err.error().to_string(),
            detail: detail.filter(|d| !d.is_empty()),
        }
    }
}

/// Initialises GStreamer (idempotent) for an entry point of this module.
pub(crate) fn init(what: &str) -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init { what: what.to_owned(), reason: e.to_string() })
}

/// Checks that every GStreamer element the house format needs is installed; the error names the package to install.
/// Cheap: run it at startup (encode runs it too).
pub fn check_elements() -> Result<(), MediaError> {
    require_elements("house format")
}

fn require_elements(what: &str) -> Result<(), MediaError> {
    init(what)?;
    match REQUIRED_ELEMENTS.iter().find(|(element, _)| gst::ElementFactory::find(element).is_none()) {
        Some((element, package)) => Err(MediaError::MissingElement {
            what: what.to_owned(),
            element: (*element).to_owned(),
            package: (*package).to_owned(),
        }),
        None => Ok(()),
    }
}

/// Name of the bus message an element callback posts when a source turns out to have no usable video.
pub(crate) const NO_VIDEO_MESSAGE: &str = "vvtv-no-video";

/// Runs `pipeline` to EOS. `tick` is called about every 500 ms (and once at the end) to report progress and enforce
/// deadlines; an error from it, or from the bus, stops the pipeline. `release` is called before the pipeline is
/// stopped, to wake streaming threads parked in the caller's own code (stopping waits for every streaming thread).
/// The pipeline is always left in `Null`.
pub(crate) fn run_until_eos(
    pipeline: &gst::Pipeline,
    what: &str,
    tick: &mut dyn FnMut() -> Result<(), MediaError>,
    release: &dyn Fn(),
) -> Result<(), MediaError> {
    let result = drive(pipeline, what, tick);
    release();
    let stopped = pipeline.set_state(gst::State::Null);
    match (result, stopped) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(MediaError::Pipeline { what: what.to_owned(), reason: format!("cannot stop: {e}") }),
        (Ok(()), Ok(_)) => Ok(()),
    }
}

fn drive(
    pipeline: &gst::Pipeline,
    what: &str,
    tick: &mut dyn FnMut() -> Result<(), MediaError>,
) -> Result<(), MediaError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Pipeline { what: what.to_owned(), reason: "pipeline has no bus".into() })?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus; a failed state change without one is reported as such.
        return match bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error]) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(err) => Err(MediaError::from_bus(what, err)),
                _ => Err(MediaError::Pipeline { what: what.to_owned(), reason: "cannot start".into() }),
            },
            None => Err(MediaError::Pipeline { what: what.to_owned(), reason: "cannot start".into() }),
        };
    }
    let poll = gst::ClockTime::from_nseconds(POLL.as_nanos() as u64);
    let types = [gst::MessageType::Eos, gst::MessageType::Error, gst::MessageType::Application];
    loop {
        if let Some(msg) = bus.timed_pop_filtered(poll, &types) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(err) => return Err(MediaError::from_bus(what, err)),
                gst::MessageView::Application(app) if app.structure().is_some_and(|s| s.name() == NO_VIDEO_MESSAGE) => {
                    return Err(MediaError::NoVideo { what: what.to_owned() });
                }
                _ => {}
            }
        }
        tick()?;
    }
    tick()
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
    let score = score.ok_or_else(|| MediaError::Pipeline {
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
    require_elements(&what)?;
    hf.check(&what)?;
    match source {
        Source::File(path) => {
            std::fs::metadata(path).map_err(|e| MediaError::io(&what, path, e))?;
        }
        Source::FileWithPcm { path, pcm } => {
            std::fs::metadata(path).map_err(|e| MediaError::io(&what, path, e))?;
            std::fs::metadata(pcm).map_err(|e| MediaError::io(&what, pcm, e))?;
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
    let pipeline_error = |reason: String| MediaError::Pipeline { what: what.to_owned(), reason };
    let top = hf.top_rung_index().ok_or_else(|| MediaError::Settings {
        what: what.to_owned(),
        reason: "the house format has no rungs".into(),
    })?;
    let description = describe_pipeline(hf, source, vmaf_subsample.map(|_| top))?;
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| pipeline_error(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| pipeline_error("not a pipeline".into()))?;
    let by_name = |name: &str| pipeline.by_name(name).ok_or_else(|| pipeline_error(format!("no element {name}")));

    for (i, part) in parts.iter().enumerate() {
        by_name(&format!("sink{i}"))?.set_property("location", part);
        by_name(&format!("venc{i}"))?.set_property("option-string", X264_OPTIONS);
    }

    let sync = Arc::new(AvSync::default());
    let pad = |element: &str, pad: &str| {
        by_name(element)?.static_pad(pad).ok_or_else(|| pipeline_error(format!("{element} has no {pad} pad")))
    };
    watch_video(&pad("vcaps", "src")?, sync.clone());
    gate_audio(&pad("acaps", "src")?, sync.clone());

    let mut expected_ns = None;
    match source {
        Source::File(path) => {
            by_name("src")?.set_property("location", path.as_path());
            link_decoder(&pipeline, &by_name("dec")?, &pad("vin", "sink")?, Some(&pad("ain", "sink")?));
        }
        Source::FileWithPcm { path, pcm } => {
            by_name("src")?.set_property("location", path.as_path());
            by_name("pcm")?.set_property("location", pcm.as_path());
            link_decoder(&pipeline, &by_name("dec")?, &pad("vin", "sink")?, None);
        }
        Source::TestCard { title, duration, .. } => {
            let canvas_h = hf.top_rung().map(|r| r.height).unwrap_or(1080);
            let title_overlay = by_name("title")?;
            // textoverlay reads its text as Pango markup: a title like "Q&A <live>" must be escaped to show at all.
            title_overlay.set_property("text", gst::glib::markup_escape_text(title));
            title_overlay.set_property("font-desc", format!("Sans Bold {}px", (canvas_h / 10).max(8)));
            by_name("clock")?.set_property("font-desc", format!("Monospace {}px", (canvas_h / 16).max(8)));
            expected_ns = Some(hf.frame_pts_ns(hf.frames_in(*duration)) as u64);
        }
    }

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
                return Err(MediaError::Timeout {
                    what: what.to_owned(),
                    elapsed: started.elapsed(),
                    reason: format!("{:.1}s of {:.1}s encoded", video_end_ns as f64 / 1e9, total as f64 / 1e9),
                });
            }
        }
        if video_end_ns > last_advance.0 {
            last_advance = (video_end_ns, Instant::now());
        } else if last_advance.1.elapsed() > STALL_LIMIT {
            return Err(MediaError::Timeout {
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
        let ran = run_until_eos(&pipeline, what, &mut tick, &|| sync.cancel());
        if ran.is_err() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        (ran, scoring.map(|handle| handle.join()))
    });
    ran?;
    let (video_end_ns, video_frames, _) = sync.video();
    if video_frames == 0 {
        return Err(MediaError::NoVideo { what: what.to_owned() });
    }
    let score = match score {
        None => None,
        Some(Ok(Ok(score))) => Some(score),
        Some(Ok(Err(source))) => return Err(MediaError::Quality { what: what.to_owned(), source: Box::new(source) }),
        Some(Err(_)) => return Err(pipeline_error("the VMAF thread panicked".into())),
    };
    Ok((video_end_ns, video_frames, score))
}

/// The pipeline in gst-launch syntax. Strings that would need quoting (paths, titles, fonts, x264 options) are set as
/// properties afterwards.
///
/// With `vmaf_tap`, that rung's encoder input and its decoded output also go to the appsinks `vmafref` and `vmafout`.
fn describe_pipeline(hf: &HouseFormat, source: &Source, vmaf_tap: Option<usize>) -> Result<String, MediaError> {
    let fps = hf.fps;
    let (video_head, audio_head) = match source {
        Source::File(_) | Source::FileWithPcm { .. } => (
            format!("filesrc name=src ! decodebin name=dec {PREPARE_SOURCE} ! "),
            if matches!(source, Source::FileWithPcm { .. }) {
                format!(
                    "filesrc name=pcm ! rawaudioparse use-sink-caps=false format=pcm pcm-format=f32le \
                     sample-rate={AUDIO_RATE} num-channels={AUDIO_CHANNELS} interleaved=true ! audioconvert name=ain ! "
                )
            } else {
                "audioconvert name=ain ! ".to_owned()
            },
        ),
        Source::TestCard { pattern, tone_hz, duration, .. } => {
            let canvas = hf.top_rung().ok_or_else(|| MediaError::Settings {
                what: source.describe(),
                reason: "the house format has no rungs".into(),
            })?;
            // The tone source never ends by itself: the audio gate stops it at the video's end.
            let wave = match tone_hz {
                Some(hz) if hz.is_finite() && *hz > 0.0 => format!("wave=sine freq={hz} volume=0.1"),
                _ => "wave=silence".to_owned(),
            };
            (
                format!(
                    "videotestsrc is-live=false pattern={pattern} num-buffers={frames} ! \
                     video/x-raw,width={w},height={h},framerate={fps}/1,pixel-aspect-ratio=1/1 ! \
                     textoverlay name=title valignment=center halignment=center shaded-background=true \
                     auto-resize=false ! \
                     timeoverlay name=clock valignment=bottom halignment=right shaded-background=true \
                     auto-resize=false ! ",
                    pattern = pattern.nick(),
                    frames = hf.frames_in(*duration),
                    w = canvas.width,
                    h = canvas.height,
                ),
                format!("audiotestsrc is-live=false {wave} ! audioconvert name=ain ! "),
            )
        }
    };
    // One videorate for all rungs: every encoder sees the same frames with the same timestamps. The watch probe sits
    // on vcaps' src pad; audiorate fills gaps (and the start) with silence; the audio gate sits on acaps' src pad.
    let mut d = format!(
        "{video_head} videorate name=vrate ! capsfilter name=vcaps caps=video/x-raw,framerate={fps}/1 ! tee name=vtee \
         {audio_head} audioresample ! audiorate ! capsfilter name=acaps \
         caps=audio/x-raw,format=F32LE,layout=interleaved,rate={AUDIO_RATE},channels={AUDIO_CHANNELS} ! \
         {AAC_ENCODER} bitrate={abr} ! aacparse ! tee name=atee ",
        abr = hf.audio_kbps * 1000,
    );
    let gop = hf.gop_frames();
    for (i, r) in hf.rungs.iter().enumerate() {
        let tapped = vmaf_tap == Some(i);
        // The reference queue is unbounded: it holds the frames the encoder has taken but not yet put out (its
        // look-ahead), and cannot grow beyond that because the output side is bounded.
        let (tap_in, tap_out) = if tapped { ("tee name=vmafin ! ", "tee name=vmafenc ! ") } else { ("", "") };
        // Every caps field x264 writes into the SPS/VUI is pinned here, so the source cannot change the headers.
        d += &format!(
            "vtee. ! queue max-size-buffers={RAW_QUEUE_FRAMES} max-size-bytes=0 max-size-time=0 ! \
             videoscale add-borders=true ! videoconvert ! \
             video/x-raw,format=I420,width={w},height={h},pixel-aspect-ratio=1/1,framerate={fps}/1,\
             interlace-mode=progressive,colorimetry=bt709,chroma-site=mpeg2 ! {tap_in}\
             x264enc name=venc{i} speed-preset={preset} pass=qual quantizer={CRF} bitrate={kbps} \
             vbv-buf-capacity={VBV_BUFFER_MS} key-int-max={gop} bframes={B_FRAMES} b-adapt=false b-pyramid=false \
             dct8x8=true cabac=true byte-stream=false insert-vui=true ! \
             video/x-h264,profile=high,stream-format=avc,alignment=au ! {tap_out}\
             queue max-size-buffers=0 max-size-bytes=0 max-size-time={MUX_QUEUE_NS} ! \
             mp4mux name=mux{i} ! filesink name=sink{i} sync=false \
             atee. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time={MUX_QUEUE_NS} ! mux{i}. ",
            w = r.width,
            h = r.height,
            preset = hf.x264_preset,
            kbps = r.video_kbps,
        );
        if tapped {
            d += &format!(
                "vmafin. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! \
                 appsink name=vmafref sync=false max-buffers={VMAF_SINK_FRAMES} enable-last-sample=false \
                 vmafenc. ! queue ! avdec_h264 name=vmafdec ! videoconvert ! video/x-raw,format=I420 ! \
                 appsink name=vmafout sync=false max-buffers={VMAF_SINK_FRAMES} enable-last-sample=false "
            );
        }
    }
    Ok(d)
}

/// Links decodebin's first raw video and first raw audio stream into the encoder; anything else goes to a fakesink.
/// A file without audio gets a silent source instead; one without video is reported on the bus. With `audio_in`
/// `None` the audio comes from elsewhere and every decoded audio stream is discarded.
fn link_decoder(pipeline: &gst::Pipeline, dec: &gst::Element, video_in: &gst::Pad, audio_in: Option<&gst::Pad>) {
    let weak = pipeline.downgrade();
    let (video, audio) = (video_in.clone(), audio_in.cloned());
    dec.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else { return };
        let kind = pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name().to_string())).unwrap_or_default();
        let target = match kind.as_str() {
            "video/x-raw" if !video.is_linked() => Some(&video),
            "audio/x-raw" => audio.as_ref().filter(|a| !a.is_linked()),
            _ => None,
        };
        let linked = target.is_some_and(|t| pad.link(t).is_ok());
        if !linked {
            discard(&pipeline, pad);
        }
    });
    let weak = pipeline.downgrade();
    let (video_in, audio_in) = (video_in.clone(), audio_in.cloned());
    dec.connect_no_more_pads(move |dec| {
        let Some(pipeline) = weak.upgrade() else { return };
        if !video_in.is_linked() {
            let msg = gst::message::Application::builder(gst::Structure::new_empty(NO_VIDEO_MESSAGE)).src(dec).build();
            let _ = dec.post_message(msg);
            return;
        }
        if let Some(audio_in) = audio_in.as_ref().filter(|a| !a.is_linked()) {
            add_silence(&pipeline, audio_in);
        }
    });
}

/// Sends a stream nobody wants to a fakesink, so the demuxer does not stop on "not linked".
pub(crate) fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) {
    let Ok(sink) = gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build()
    else {
        return;
    };
    if pipeline.add(&sink).is_ok() {
        if let Some(sink_pad) = sink.static_pad("sink") {
            let _ = pad.link(&sink_pad);
        }
        let _ = sink.sync_state_with_parent();
    }
}

/// Feeds silence into the audio chain of a source without audio; the gate ends it at the video's end.
fn add_silence(pipeline: &gst::Pipeline, audio_in: &gst::Pad) {
    let Ok(src) = gst::ElementFactory::make("audiotestsrc")
        .property("is-live", false)
        .property_from_str("wave", "silence")
        .build()
    else {
        return;
    };
    if pipeline.add(&src).is_ok() {
        if let Some(src_pad) = src.static_pad("src") {
            let _ = src_pad.link(audio_in);
        }
        let _ = src.sync_state_with_parent();
    }
}

/// Where the video has got, shared between the video watch and the audio gate.
#[derive(Default)]
struct AvSync {
    state: Mutex<AvState>,
    changed: Condvar,
}

#[derive(Default)]
struct AvState {
    /// End (running time, ns) of the last frame that left videorate.
    video_end_ns: u64,
    video_frames: u64,
    video_done: bool,
    /// Next source sample (at 48 kHz, running time) the encoder needs; starts at the encoder delay.
    audio_next: u64,
    cancelled: bool,
}

impl AvSync {
    fn lock(&self) -> MutexGuard<'_, AvState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn video(&self) -> (u64, u64, bool) {
        let s = self.lock();
        (s.video_end_ns, s.video_frames, s.video_done)
    }

    fn update(&self, f: impl FnOnce(&mut AvState)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    fn cancel(&self) {
        self.update(|s| s.cancelled = true);
    }

    /// Blocks until the video has passed `sample` (or ended, or the encode was cancelled).
    fn wait_for_video(&self, sample: u64) -> MutexGuard<'_, AvState> {
        let guard = self.lock();
        self.changed
            .wait_while(guard, |s| !s.cancelled && !s.video_done && samples_at(s.video_end_ns) < sample)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn samples_at(ns: u64) -> u64 {
    ((u128::from(ns) * u128::from(AUDIO_RATE) + 500_000_000) / 1_000_000_000) as u64
}

fn ns_at(samples: u64) -> u64 {
    (u128::from(samples) * 1_000_000_000 / u128::from(AUDIO_RATE)) as u64
}

fn clock_segment(pad: &gst::Pad) -> Option<gst::FormattedSegment<gst::ClockTime>> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    event.segment().downcast_ref::<gst::ClockTime>().cloned()
}

/// Records how far the video has got after videorate; this is the clock the audio gate follows.
fn watch_video(pad: &gst::Pad, sync: Arc<AvSync>) {
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        match &info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                let end = clock_segment(pad)
                    .zip(buffer.pts())
                    .and_then(|(segment, pts)| segment.to_running_time(pts))
                    .map(|rt| rt.nseconds() + buffer.duration().map(|d| d.nseconds()).unwrap_or(0));
                sync.update(|s| {
                    s.video_frames += 1;
                    if let Some(end) = end {
                        s.video_end_ns = s.video_end_ns.max(end);
                    }
                });
            }
            Some(gst::PadProbeData::Event(event)) if event.type_() == gst::EventType::Eos => {
                sync.update(|s| s.video_done = true);
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

/// Keeps the audio exactly as long as the video, without knowing the video's length in advance: audio is let through
/// only once the video has passed it, cut at the video's end (then upstream is told EOS), and padded with silence up
/// to it when the source audio ends early. It also shifts the audio by the AAC encoder delay (see
/// [`AAC_ENCODER_DELAY_SAMPLES`]). The muxers never starve: the video is always ahead of the audio here, and the
/// encoded video waits in deep queues in front of them.
fn gate_audio(pad: &gst::Pad, sync: Arc<AvSync>) {
    sync.update(|s| s.audio_next = AAC_ENCODER_DELAY_SAMPLES);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        let Some(segment) = clock_segment(pad) else { return gst::PadProbeReturn::Ok };
        match info.data.take() {
            Some(gst::PadProbeData::Buffer(buffer)) => match gate_buffer(&sync, &segment, buffer) {
                Gated::Pass(buffer) => {
                    info.data = Some(gst::PadProbeData::Buffer(buffer));
                    gst::PadProbeReturn::Ok
                }
                Gated::Drop => gst::PadProbeReturn::Drop,
                Gated::Stop(flow) => {
                    info.flow_res = Err(flow);
                    gst::PadProbeReturn::Handled
                }
            },
            Some(gst::PadProbeData::Event(event)) => {
                if event.type_() == gst::EventType::Eos {
                    pad_with_silence(&sync, &segment, pad);
                }
                info.data = Some(gst::PadProbeData::Event(event));
                gst::PadProbeReturn::Ok
            }
            other => {
                info.data = other;
                gst::PadProbeReturn::Ok
            }
        }
    });
}

enum Gated {
    Pass(gst::Buffer),
    Drop,
    Stop(gst::FlowError),
}

fn gate_buffer(sync: &AvSync, segment: &gst::FormattedSegment<gst::ClockTime>, buffer: gst::Buffer) -> Gated {
    // Audio outside the segment (before its start) has no place on the timeline.
    let Some(start) = buffer.pts().and_then(|pts| segment.to_running_time(pts)) else { return Gated::Drop };
    let first = samples_at(start.nseconds());
    let count = (buffer.size() / AUDIO_BYTES_PER_FRAME) as u64;
    let end = first + count;
    let mut state = sync.wait_for_video(end);
    if state.cancelled {
        return Gated::Stop(gst::FlowError::Flushing);
    }
    let limit = if state.video_done { samples_at(state.video_end_ns) } else { u64::MAX };
    if first >= limit {
        // Past the video's end: tell upstream to stop (a tone or silence source would otherwise run forever).
        return Gated::Stop(gst::FlowError::Eos);
    }
    let keep_from = first.max(AAC_ENCODER_DELAY_SAMPLES);
    let keep_to = end.min(limit);
    if keep_to <= keep_from {
        return Gated::Drop;
    }
    state.audio_next = state.audio_next.max(keep_to);
    drop(state);
    let bytes = |samples: u64| samples as usize * AUDIO_BYTES_PER_FRAME;
    let copy = gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::META | gst::BufferCopyFlags::MEMORY;
    let Ok(mut out) = buffer.copy_region(copy, bytes(keep_from - first)..bytes(keep_to - first)) else {
        return Gated::Stop(gst::FlowError::Error);
    };
    stamp(out.make_mut(), segment, keep_from, keep_to);
    Gated::Pass(out)
}

/// Timestamps audio covering source samples `from..to` on the encoder's timeline (shifted by the encoder delay).
fn stamp(buffer: &mut gst::BufferRef, segment: &gst::FormattedSegment<gst::ClockTime>, from: u64, to: u64) {
    let shifted = from - AAC_ENCODER_DELAY_SAMPLES;
    let rt = gst::ClockTime::from_nseconds(ns_at(shifted));
    buffer.set_pts(segment.position_from_running_time(rt));
    buffer.set_dts(gst::ClockTime::NONE);
    buffer.set_duration(gst::ClockTime::from_nseconds(ns_at(to - AAC_ENCODER_DELAY_SAMPLES) - ns_at(shifted)));
    buffer.set_offset(gst::format::Buffers::OFFSET_NONE);
    buffer.set_offset_end(gst::format::Buffers::OFFSET_NONE);
}

/// At the end of the source audio: push silence as the video advances until the audio reaches the video's end.
fn pad_with_silence(sync: &AvSync, segment: &gst::FormattedSegment<gst::ClockTime>, pad: &gst::Pad) {
    let Some(peer) = pad.peer() else { return };
    // Chunks of a tenth of a second keep the muxers fed while the video is still being encoded.
    const CHUNK: u64 = AUDIO_RATE as u64 / 10;
    loop {
        let next = sync.lock().audio_next;
        let mut state = sync.wait_for_video(next + 1);
        if state.cancelled {
            return;
        }
        let video_end = samples_at(state.video_end_ns);
        let from = state.audio_next;
        if from >= video_end {
            if state.video_done {
                return;
            }
            continue;
        }
        let to = video_end.min(from + CHUNK);
        state.audio_next = to;
        drop(state);
        let mut silence = gst::Buffer::from_mut_slice(vec![0u8; (to - from) as usize * AUDIO_BYTES_PER_FRAME]);
        stamp(silence.make_mut(), segment, from, to);
        // Bypasses this pad's own probe on purpose: this audio is already gated.
        if peer.chain(silence).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RungConfig;
    use serde_json::Value;
    use std::process::Command;

    /// A two-rung ladder that encodes fast on two cores.
    fn small() -> HouseFormat {
        let c = HouseFormatConfig {
            ladder: vec![
                RungConfig { name: "360p".into(), width: 640, height: 360, video_kbps: 700 },
                RungConfig { name: "180p".into(), width: 320, height: 180, video_kbps: 250 },
            ],
            ..Default::default()
        };
        HouseFormat::from_config(&c)
    }

    fn card(title: &str, pattern: TestPattern, tone_hz: Option<f64>, secs: f64) -> Source {
        Source::TestCard { title: title.into(), pattern, tone_hz, duration: Duration::from_secs_f64(secs) }
    }

    fn ffprobe(path: &Path, args: &[&str]) -> Value {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-print_format", "json"])
            .args(args)
            .arg(path)
            .output()
            .expect("ffprobe runs");
        assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("ffprobe json")
    }

    fn stream(path: &Path, kind: &str) -> Value {
        let v = ffprobe(path, &["-show_streams", "-select_streams", kind]);
        v["streams"][0].clone()
    }

    fn num(v: &Value) -> f64 {
        v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64()).unwrap_or(f64::NAN)
    }

    /// (pts, dts, keyframe) of every video packet, in decode order.
    fn video_packets(path: &Path) -> Vec<(f64, f64, bool)> {
        let v = ffprobe(
            path,
            &["-select_streams", "v", "-show_packets", "-show_entries", "packet=pts_time,dts_time,flags"],
        );
        v["packets"]
            .as_array()
            .expect("packets")
            .iter()
            .map(|p| (num(&p["pts_time"]), num(&p["dts_time"]), p["flags"].as_str().unwrap_or("").contains('K')))
            .collect()
    }

    fn keyframe_times(path: &Path) -> Vec<f64> {
        let mut keys: Vec<f64> = video_packets(path).into_iter().filter(|p| p.2).map(|p| p.0).collect();
        keys.sort_by(f64::total_cmp);
        keys
    }

    /// The avcC box (SPS/PPS) of the first video track, read straight from the MP4 boxes.
    fn avcc(path: &Path) -> Vec<u8> {
        fn boxes(data: &[u8]) -> Vec<(&[u8], &[u8])> {
            let mut out = vec![];
            let mut at = 0;
            while at + 8 <= data.len() {
                let size = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
                if size < 8 || at + size > data.len() {
                    break;
                }
                out.push((&data[at + 4..at + 8], &data[at + 8..at + size]));
                at += size;
            }
            out
        }
        let data = std::fs::read(path).expect("read mp4");
        let child = |parent: &[u8], name: &[u8]| -> Vec<u8> {
            boxes(parent).into_iter().find(|b| b.0 == name).map(|b| b.1.to_vec()).unwrap_or_default()
        };
        let moov = child(&data, b"moov");
        for (kind, trak) in boxes(&moov) {
            if kind != b"trak" {
                continue;
            }
            let stbl = child(&child(&child(&child(trak, b"mdia"), b"minf"), b"stbl"), b"stbl");
            let stbl = if stbl.is_empty() { child(&child(&child(trak, b"mdia"), b"minf"), b"stbl") } else { stbl };
            let stsd = child(&stbl, b"stsd");
            // stsd: version/flags + entry count, then sample entries; avc1 has 78 bytes of fields before its boxes.
            if stsd.len() > 8 {
                for (entry, body) in boxes(&stsd[8..]) {
                    if entry == b"avc1" && body.len() > 78 {
                        return child(&body[78..], b"avcC");
                    }
                }
            }
        }
        panic!("{}: no avcC", path.display());
    }

    /// Writes test media with a gst-launch description ending in `filesink location={out}`.
    fn make_media(description: &str, out: &Path) {
        init("test media").expect("gst init");
        let pipeline = gst::parse::launch(&description.replace("{out}", &out.display().to_string()))
            .expect("test pipeline")
            .downcast::<gst::Pipeline>()
            .expect("pipeline");
        run_until_eos(&pipeline, "test media", &mut || Ok(()), &|| {}).expect("test media written");
    }

    /// Checks one rendition against the house format and returns its keyframe times.
    fn check_rendition(hf: &HouseFormat, rung: &Rung, path: &Path, expect_secs: f64) -> Vec<f64> {
        let v = stream(path, "v");
        assert_eq!(v["codec_name"], "h264", "{v}");
        assert_eq!(v["profile"], "High", "{v}");
        assert_eq!(v["pix_fmt"], "yuv420p", "{v}");
        assert_eq!(v["r_frame_rate"], format!("{}/1", hf.fps), "{v}");
        assert_eq!(v["avg_frame_rate"], format!("{}/1", hf.fps), "{v}");
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(rung.width.into()), Some(rung.height.into())));
        assert_eq!(v["sample_aspect_ratio"], "1:1", "{v}");
        assert_eq!(v["color_space"], "bt709", "{v}");
        let a = stream(path, "a");
        assert_eq!(a["codec_name"], "aac", "{a}");
        assert_eq!(a["profile"], "LC", "{a}");
        assert_eq!(a["sample_rate"], "48000", "{a}");
        assert_eq!(a["channels"], 2, "{a}");
        let (vdur, adur) = (num(&v["duration"]), num(&a["duration"]));
        let frame = 1.0 / f64::from(hf.fps);
        assert!((vdur - expect_secs).abs() < 1e-6, "{}: video {vdur}s, expected {expect_secs}s", path.display());
        assert!((adur - vdur).abs() <= frame, "{}: audio {adur}s vs video {vdur}s", path.display());

        let packets = video_packets(path);
        assert_eq!(packets.len() as f64, (expect_secs * f64::from(hf.fps)).round(), "{}", path.display());
        // Fixed B-frame delay: decoding starts exactly one frame before the first picture.
        assert!((packets[0].1 + frame).abs() < 1e-3, "first dts {} in {}", packets[0].1, path.display());
        // Closed GOPs: nothing decoded after a keyframe is shown before it, so every keyframe starts a clean cut.
        for (i, key) in packets.iter().enumerate().filter(|(_, p)| p.2) {
            let early = packets[i + 1..].iter().find(|p| p.0 < key.0 - 1e-6);
            assert!(early.is_none(), "{}: open GOP at {}: {early:?}", path.display(), key.0);
        }
        let keys = keyframe_times(path);
        let gop = f64::from(hf.gop_seconds);
        let expected: Vec<f64> = (0..).map(|k| k as f64 * gop).take_while(|t| *t < vdur - 1e-6).collect();
        assert_eq!(keys.len(), expected.len(), "{}: keyframes at {keys:?}", path.display());
        for (k, e) in keys.iter().zip(&expected) {
            assert!((k - e).abs() < 1e-3, "{}: keyframes at {keys:?}, expected {expected:?}", path.display());
        }
        keys
    }

    #[test]
    fn house_format_follows_the_config() {
        let hf = HouseFormat::from_config(&HouseFormatConfig::default());
        assert_eq!(hf.gop_frames(), 60);
        assert_eq!(hf.frame_duration(), Duration::from_nanos(33_333_333));
        assert_eq!(hf.frame_pts_ns(3), 100_000_000);
        assert_eq!(HouseFormat::aac_frame_ns(), 21_333_333);
        assert_eq!(hf.rungs.len(), 4);
        assert_eq!(hf.top_rung().map(|r| r.name.as_str()), Some("1080p"));
        assert_eq!(hf.frames_in(Duration::from_secs(4)), 120);
        assert_eq!(hf.frames_in(Duration::ZERO), 1);
    }

    /// Decoded audio of a rendition as interleaved f32 stereo at 48 kHz (ffmpeg as the independent decoder).
    fn decoded_audio(path: &Path) -> Vec<[f32; 2]> {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:a", "-f", "f32le", "-ac", "2", "-ar", "48000", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
            .chunks_exact(8)
            .map(|c| {
                let l = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let r = f32::from_le_bytes([c[4], c[5], c[6], c[7]]);
                [l, r]
            })
            .collect()
    }

    /// One decoded frame of a rendition as 8-bit luma rows.
    fn luma_frame(path: &Path, at_secs: f64, width: usize) -> Vec<Vec<u8>> {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-ss", &at_secs.to_string(), "-i"])
            .arg(path)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout.chunks_exact(width).map(|row| row.to_vec()).collect()
    }

    fn encode_quietly(hf: &HouseFormat, source: &Source, dir: &Path) -> Encoded {
        encode(hf, source, dir, &|_| {}).unwrap_or_else(|e| panic!("encode failed: {e}"))
    }

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
    fn test_card_tone_is_a_moderate_sine_and_silence_is_silent() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let tone = encode_quietly(&hf, &card("Tone", TestPattern::Pinwheel, Some(1000.0), 2.0), dir.path());
        let audio = decoded_audio(&tone.renditions[1].path);
        // Skip the encoder's priming frame; look at one whole second.
        let second = &audio[4800..52_800];
        for ch in 0..2 {
            let peak = second.iter().map(|s| s[ch].abs()).fold(0.0f32, f32::max);
            assert!((0.08..0.13).contains(&peak), "channel {ch} peaks at {peak}, expected about 0.1 (-20 dBFS)");
            let crossings = second.windows(2).filter(|w| (w[0][ch] < 0.0) != (w[1][ch] < 0.0)).count();
            assert!((1990..=2010).contains(&crossings), "channel {ch}: {crossings} zero crossings in 1 s, not 1 kHz");
        }
        let quiet_dir = tempfile::tempdir().expect("tempdir");
        let quiet = encode_quietly(&hf, &card("Quiet", TestPattern::Bars75, None, 2.0), quiet_dir.path());
        let audio = decoded_audio(&quiet.renditions[1].path);
        let peak = audio.iter().flatten().map(|s| s.abs()).fold(0.0f32, f32::max);
        assert!(peak < 1e-4, "silence peaks at {peak}");
    }

    #[test]
    fn scan_agrees_with_ffprobe() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let encoded = encode_quietly(&hf, &card("Scan me", TestPattern::Spokes, Some(330.0), 4.5), dir.path());
        let frame_ns = hf.frame_pts_ns(1);
        for r in &encoded.renditions {
            let info = crate::media::scan::scan(&r.path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(info.video_frames, 135);
            assert_eq!(info.duration(), encoded.duration);
            assert_eq!(info.first_dts_ns, -frame_ns, "B-frame delay of exactly one frame");
            let probed: Vec<i64> = keyframe_times(&r.path).iter().map(|t| (t * 1e9).round() as i64).collect();
            assert_eq!(info.keyframes_ns.len(), probed.len());
            for (a, b) in info.keyframes_ns.iter().zip(&probed) {
                assert!((a - b).abs() < 1_000_000, "scan keyframes {:?} vs ffprobe {probed:?}", info.keyframes_ns);
            }
            assert_eq!(info.keyframes_ns, [0, 2_000_000_000, 4_000_000_000]);
            // Every GOP boundary is a clean cut point, and the last one is the end.
            for k in &info.keyframes_ns[1..] {
                assert!(info.cut_points_ns.contains(k), "{k} missing from {:?}", info.cut_points_ns);
            }
            assert_eq!(info.cut_points_ns.last(), Some(&info.video_end_ns));
            let audio_packets = ffprobe(&r.path, &["-select_streams", "a", "-count_packets", "-show_streams"]);
            assert_eq!(info.audio_frames.to_string(), audio_packets["streams"][0]["nb_read_packets"].as_str().unwrap());
            assert_eq!(info.audio_start_ns, 0);
            assert!((info.audio_end_ns - info.video_end_ns).abs() <= HouseFormat::aac_frame_ns());
            assert_eq!((info.width, info.height, info.fps), (r_size(&hf, &r.rung).0, r_size(&hf, &r.rung).1, (30, 1)));
            assert_eq!(info.video_codec_data, avcc(&r.path), "scan returns the avcC as stored");
        }
    }

    fn r_size(hf: &HouseFormat, rung: &str) -> (u32, u32) {
        hf.rungs.iter().find(|r| r.name == rung).map(|r| (r.width, r.height)).expect("rung")
    }

    /// 25 fps 640x360 H.264 with mono 44.1 kHz Vorbis ticks (one per second) in Matroska.
    fn odd_mkv(dir: &Path, video_secs: u32, audio_secs: u32) -> PathBuf {
        let path = dir.join(format!("odd-{video_secs}-{audio_secs}.mkv"));
        make_media(
            &format!(
                "videotestsrc pattern=ball num-buffers={frames} ! video/x-raw,width=640,height=360,framerate=25/1 ! \
                 x264enc speed-preset=ultrafast ! h264parse ! matroskamux name=m ! filesink location={{out}} \
                 audiotestsrc wave=ticks freq=2000 num-buffers={buffers} samplesperbuffer=441 ! \
                 audio/x-raw,rate=44100,channels=1 ! audioconvert ! vorbisenc ! m.",
                frames = video_secs * 25,
                buffers = audio_secs * 100,
            ),
            &path,
        );
        path
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
    fn odd_file_is_normalized_and_stays_in_sync() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let source = odd_mkv(dir.path(), 4, 4);
        let out = dir.path().join("out");
        let encoded = encode_quietly(&hf, &Source::File(source.clone()), &out);
        assert_eq!(encoded.video_frames, 120);
        let mut keys = vec![];
        for (rung, r) in hf.rungs.iter().zip(&encoded.renditions) {
            keys.push(check_rendition(&hf, rung, &r.path, 4.0));
        }
        assert_eq!(keys[0], keys[1]);
        // The decoded AAC must put each tick where the decoded source has it (within 2 ms); without compensating the
        // encoder's priming delay every tick would come 21 ms late.
        let onset = |audio: &[[f32; 2]], near: usize| {
            let from = near - 4800;
            audio[from..].iter().position(|s| s[0].abs() > 0.2).map(|i| from + i).expect("a tick")
        };
        let (theirs, ours) = (decoded_audio(&source), decoded_audio(&encoded.renditions[0].path));
        for second in 1..4 {
            let (expected, heard) = (onset(&theirs, second * 48_000), onset(&ours, second * 48_000));
            let error_ms = (heard as f64 - expected as f64) / 48.0;
            assert!(error_ms.abs() < 2.0, "tick {second} heard {error_ms:+.2} ms off");
            assert!((ours[heard][0] - ours[heard][1]).abs() < 1e-3, "mono is spread to both channels");
        }
    }

    #[test]
    fn same_settings_give_identical_sps_pps_whatever_the_source() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let from_card = encode_quietly(&hf, &card("A", TestPattern::HdBars, Some(440.0), 2.0), &dir.path().join("a"));
        let source = odd_mkv(dir.path(), 2, 2);
        let from_file = encode_quietly(&hf, &Source::File(source), &dir.path().join("b"));
        for (a, b) in from_card.renditions.iter().zip(&from_file.renditions) {
            let (a_avcc, b_avcc) = (avcc(&a.path), avcc(&b.path));
            assert!(a_avcc.len() > 10 && a_avcc[1] == 100, "avcC of a High profile stream: {a_avcc:02x?}");
            assert_eq!(a_avcc, b_avcc, "rung {}: SPS/PPS differ between a test card and a file", a.rung);
        }
        assert_ne!(avcc(&from_card.renditions[0].path), avcc(&from_card.renditions[1].path));
    }

    #[test]
    fn vertical_video_without_audio_is_pillarboxed_and_gets_silence() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("vertical.mp4");
        make_media(
            "videotestsrc pattern=white num-buffers=60 ! video/x-raw,width=1080,height=1920,framerate=30/1 ! \
             x264enc speed-preset=ultrafast ! mp4mux ! filesink location={out}",
            &source,
        );
        let encoded = encode_quietly(&hf, &Source::File(source), &dir.path().join("out"));
        for (rung, r) in hf.rungs.iter().zip(&encoded.renditions) {
            check_rendition(&hf, rung, &r.path, 2.0);
            let rows = luma_frame(&r.path, 1.0, rung.width as usize);
            let row = &rows[rung.height as usize / 2];
            // A 9:16 picture in a 16:9 frame fills the middle 9/16 × 9/16 ≈ 32 % of the width.
            let lit = row.iter().filter(|&&y| y > 128).count() as f64 / row.len() as f64;
            assert!((0.30..0.34).contains(&lit), "{}: {:.3} of the width is picture", r.rung, lit);
            assert!(row[2] < 24 && row[row.len() - 3] < 24, "{}: borders are not black", r.rung);
            assert!(row[row.len() / 2] > 200, "{}: centre is not the picture", r.rung);
            let peak = decoded_audio(&r.path).iter().flatten().map(|s| s.abs()).fold(0.0f32, f32::max);
            assert!(peak < 1e-4, "{}: added audio is not silent ({peak})", r.rung);
        }
    }

    #[test]
    fn short_audio_is_padded_and_long_audio_is_cut_to_the_video() {
        let mut hf = small();
        hf.rungs.truncate(1);
        let dir = tempfile::tempdir().expect("tempdir");
        for (video, audio) in [(3, 1), (2, 4)] {
            let source = odd_mkv(dir.path(), video, audio);
            let out = dir.path().join(format!("out-{video}-{audio}"));
            let encoded = encode_quietly(&hf, &Source::File(source), &out);
            check_rendition(&hf, &hf.rungs[0], &encoded.renditions[0].path, f64::from(video));
        }
    }

    #[test]
    fn interlaced_source_is_deinterlaced() {
        let mut hf = small();
        hf.rungs.truncate(1);
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("interlaced.mp4");
        make_media(
            "videotestsrc pattern=ball num-buffers=100 ! video/x-raw,width=720,height=576,framerate=50/1 ! \
             interlace field-pattern=1:1 ! x264enc speed-preset=ultrafast interlaced=true ! mp4mux ! \
             filesink location={out}",
            &source,
        );
        let probed = stream(&source, "v");
        assert_ne!(probed["field_order"], "progressive", "the test source must be interlaced: {probed}");
        let encoded = encode_quietly(&hf, &Source::File(source), &dir.path().join("out"));
        let path = &encoded.renditions[0].path;
        check_rendition(&hf, &hf.rungs[0], path, 2.0);
        assert_eq!(stream(path, "v")["field_order"], "progressive");
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
        assert!(matches!(err, MediaError::Element { .. }), "{text}");
        assert_eq!(std::fs::read_dir(&out).expect("out dir").count(), 0, "no partial renditions are left");

        let missing = dir.path().join("missing.mp4");
        let err = encode(&hf, &Source::File(missing.clone()), &out, &|_| {}).expect_err("missing file");
        assert!(matches!(err, MediaError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.mp4"), "{err}");

        let audio_only = dir.path().join("audio.ogg");
        make_media("audiotestsrc num-buffers=50 ! vorbisenc ! oggmux ! filesink location={out}", &audio_only);
        let err = encode(&hf, &Source::File(audio_only), &out, &|_| {}).expect_err("no video");
        assert!(matches!(err, MediaError::NoVideo { .. }), "{err}");

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
