//! The factory's quality gate: VMAF (model `vmaf_v0.6.1`) of the top rendition against its source.
//!
//! The score is only meaningful if frame *n* of the reference is the picture the encoder was given as frame *n*.
//! The reference is therefore prepared exactly as the house-format encoder prepares its input (decode, deinterlace,
//! rotate, convert to the house frame rate, scale and box into the rendition's frame, convert to BT.709 I420), and
//! both files are decoded in lockstep and paired by frame index:
//!
//! ```text
//! source    ─ decodebin ─ deinterlace ─ videoflip ─ videorate ─ videoscale+box ─ I420 ─ appsink ─┐
//!                                                                                                 ├─ libvmaf
//! rendition ─ qtdemux ─ h264parse ─ avdec_h264 ───────────────────────────────── I420 ─ appsink ─┘
//! ```
//!
//! Pairing stops at the shorter file (a frame or two of difference at the end is normal; more is logged).
//!
//! Subsampling scores frames 0, N, 2N, … and gives each the score it has at full rate. The expensive spatial
//! features (VIF, ADM) run only on those frames; the temporal one (motion, the reference's change from the frame
//! before and to the frame after) needs the reference's luma of the two neighbours, so only windows of three frames
//! are handed to libvmaf (see [`Scorer::new`]). Feeding only every Nth frame would measure motion across N-frame gaps
//! and bias the score upwards; feeding every frame would compute motion N times per scored frame instead of 3.
//!
//! The house-format encoder uses the same scorer during its own run ([`score_stream`]): its top rung's input frames
//! are the reference and its output is decoded again, so the source is decoded once for encoding and gating.
//!
//! libvmaf is reached through the raw `libvmaf-sys` bindings; the unsafe calls are confined to three small owners
//! ([`Model`], [`Context`], [`Picture`]) that release what libvmaf allocated.

use super::house_format::{discard, PREPARE_SOURCE};
use gst::prelude::*;
use gst_video::prelude::*;
use libvmaf_sys as ffi;
use std::ffi::CStr;
use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The VMAF model every score is computed with (libvmaf's built-in copy).
pub const MODEL_VERSION: &str = "vmaf_v0.6.1";
const MODEL_VERSION_C: &CStr = c"vmaf_v0.6.1";
/// Name under which libvmaf stores the model's per-frame scores.
const MODEL_NAME_C: &CStr = c"vmaf";

/// How long one pull waits before the buses are checked again.
const PULL_SLICE: Duration = Duration::from_millis(100);
/// A side that delivers no frame for this long (and neither ends nor fails) is declared stuck.
const STALL_LIMIT: Duration = Duration::from_secs(60);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Decoded frames queued in each appsink: enough to keep both decoders busy while libvmaf works.
const SINK_BUFFERS: u32 = 4;
/// Frames one file may have beyond the other without a warning.
const TAIL_TOLERANCE: u64 = 2;
/// Name of the bus message posted when a demuxer has exposed all its streams and none was the wanted video.
const NO_VIDEO_MESSAGE: &str = "vvtv-vmaf-no-video";
/// Every element the two pipelines use, with the Debian package that ships it, so a missing one is named.
const REQUIRED_ELEMENTS: [(&str, &str); 10] = [
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videorate", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("deinterlace", "gstreamer1.0-plugins-good"),
    ("videoflip", "gstreamer1.0-plugins-good"),
    ("qtdemux", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("avdec_h264", "gstreamer1.0-libav"),
];

/// VMAF of a rendition, pooled over the scored frames.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct VmafScore {
    /// Arithmetic mean of the per-frame scores.
    pub mean: f64,
    /// The worst scored frame.
    pub min: f64,
    /// 5th percentile of the per-frame scores (linear interpolation between ranks): the level the worst 5 % of the
    /// frames fall below, less sensitive to a single bad frame than `min`.
    pub p5: f64,
    /// Frames scored (with subsampling, every Nth of the paired frames, starting with the first).
    pub frames: u32,
}

/// What the reference must look like: the rendition's frame size and the house frame rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Which of the two files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Rendition,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Rendition => "rendition",
        })
    }
}

/// Why a rendition could not be scored; each names the file concerned and the reason.
#[derive(Debug, thiserror::Error)]
pub enum VmafError {
    /// The request itself cannot be honoured (an impossible frame, GStreamer unusable).
    #[error("vmaf: cannot score {}: {reason}", rendition.display())]
    Setup { rendition: PathBuf, reason: String },
    #[error(
        "vmaf: cannot score {}: GStreamer element {element} is missing (install {package})",
        rendition.display()
    )]
    MissingElement { rendition: PathBuf, element: String, package: String },
    #[error("vmaf: cannot read the {side} {}: {error}", path.display())]
    Io {
        side: Side,
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("vmaf: cannot start decoding the {side} {}: {reason}", path.display())]
    Pipeline { side: Side, path: PathBuf, reason: String },
    /// GStreamer reported an error while decoding: the element that failed and its message.
    #[error(
        "vmaf: cannot decode the {side} {}: {element}: {reason}{}",
        path.display(),
        detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    Decode { side: Side, path: PathBuf, element: String, reason: String, detail: Option<String> },
    #[error("vmaf: the {side} {} has no {wanted} video stream", path.display())]
    NoVideo { side: Side, path: PathBuf, wanted: &'static str },
    #[error(
        "vmaf: decoding the {side} {} stalled: no frame for {}s after frame {frames}",
        path.display(),
        waited.as_secs()
    )]
    Timeout { side: Side, path: PathBuf, waited: Duration, frames: u64 },
    #[error(
        "vmaf: the rendition {} is {width}x{height}, not the expected {expected_width}x{expected_height}",
        path.display()
    )]
    FrameSize { path: PathBuf, width: u32, height: u32, expected_width: u32, expected_height: u32 },
    #[error(
        "vmaf: nothing to compare: the source {} gave {source_frames} frames, the rendition {} {rendition_frames}",
        source_path.display(),
        rendition.display()
    )]
    NoFrames { source_path: PathBuf, rendition: PathBuf, source_frames: u64, rendition_frames: u64 },
    /// A frame could not be read or copied (unexpected layout), or libvmaf refused a call.
    #[error("vmaf: scoring the rendition {}: {call}: {reason}", path.display())]
    Vmaf { path: PathBuf, call: &'static str, reason: String },
}

/// [`PULL_SLICE`] as GStreamer takes it.
fn pull_slice() -> gst::ClockTime {
    gst::ClockTime::from_nseconds(PULL_SLICE.as_nanos() as u64)
}

/// Scores `rendition` against `source`: VMAF of every `subsample`-th frame (1 = all; 0 is taken as 1).
///
/// Blocking: run it on a blocking thread. `progress` gets the fraction done (0..=1) about every 500 ms, and 1.0 at
/// the end of a successful run. Both files are decoded in full; libvmaf uses one worker per available core.
pub fn score(
    source: &Path,
    rendition: &Path,
    frame: &Frame,
    subsample: u32,
    progress: &dyn Fn(f64),
) -> Result<VmafScore, VmafError> {
    score_frames(source, rendition, frame, subsample, progress).map(|(score, _)| score)
}

/// [`score`], also returning the per-frame scores of the scored frames in order.
fn score_frames(
    source: &Path,
    rendition: &Path,
    frame: &Frame,
    subsample: u32,
    progress: &dyn Fn(f64),
) -> Result<(VmafScore, Vec<f64>), VmafError> {
    let setup = |reason: String| VmafError::Setup { rendition: rendition.to_owned(), reason };
    let even_and_positive = |n: u32| n > 0 && n.is_multiple_of(2);
    if !even_and_positive(frame.width) || !even_and_positive(frame.height) || frame.fps == 0 {
        return Err(setup(format!(
            "frame {}x{} at {} fps: width and height must be even and positive, fps positive",
            frame.width, frame.height, frame.fps
        )));
    }
    gst::init().map_err(|e| setup(format!("cannot initialise GStreamer: {e}")))?;
    if let Some((element, package)) = REQUIRED_ELEMENTS.iter().find(|(e, _)| gst::ElementFactory::find(e).is_none()) {
        return Err(VmafError::MissingElement {
            rendition: rendition.to_owned(),
            element: (*element).to_owned(),
            package: (*package).to_owned(),
        });
    }
    for (side, path) in [(Side::Source, source), (Side::Rendition, rendition)] {
        std::fs::File::open(path).map_err(|error| VmafError::Io { side, path: path.to_owned(), error })?;
    }
    let subsample = subsample.max(1);
    let started = Instant::now();
    let vmaf_error = |e: VmafFailure| e.about(rendition);

    let mut scorer = Scorer::new(frame.width, frame.height, subsample, worker_threads()).map_err(vmaf_error)?;
    let mut reference = Reader::reference(source, frame)?;
    let mut distorted = Reader::rendition(rendition)?;

    let mut last_progress = Instant::now();
    let mut expected_frames = None;
    let shorter = loop {
        let Some(reference_sample) = reference.next()? else { break Side::Source };
        let Some(distorted_sample) = distorted.next()? else { break Side::Rendition };
        push_pair(&mut scorer, &reference_sample, &distorted_sample, frame, rendition)?;
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            if expected_frames.is_none() {
                expected_frames = distorted.duration().map(|d| d.as_secs_f64() * f64::from(frame.fps));
            }
            if let Some(expected) = expected_frames.filter(|&e| e >= 1.0) {
                // Decoding is the whole job (libvmaf keeps up with the frames it is handed), so frames paired over
                // frames expected is a fair measure; 1.0 is kept for the end.
                progress((distorted.frames as f64 / expected).clamp(0.0, 0.99));
            }
        }
    };
    report_tail(shorter, &mut reference, &mut distorted)?;
    if scorer.pushed == 0 {
        return Err(VmafError::NoFrames {
            source_path: source.to_owned(),
            rendition: rendition.to_owned(),
            source_frames: reference.frames,
            rendition_frames: distorted.frames,
        });
    }
    let paired = scorer.offered;
    // The decoders are no longer needed; stop them before libvmaf's last frames are computed.
    drop((reference, distorted));
    let (score, per_frame) = scorer.finish().map_err(vmaf_error)?;
    tracing::info!(
        rendition = %rendition.display(),
        mean = score.mean,
        min = score.min,
        p5 = score.p5,
        scored = score.frames,
        paired,
        subsample,
        seconds = started.elapsed().as_secs_f64(),
        "vmaf scored"
    );
    progress(1.0);
    Ok((score, per_frame))
}

/// Scores a rendition while it is being encoded: `reference` yields the frames the encoder is given and `distorted`
/// the encoder's output decoded again, both in display order (the house-format encoder's VMAF tap). Pairing stops at
/// the first end of either side; `stop` (set when the encode fails) ends the wait early. Whatever the outcome, both
/// sinks are drained to their end before returning: an appsink holds back EOS until it is empty, so the encode
/// could not finish otherwise.
pub(crate) fn score_stream(
    reference: &gst_app::AppSink,
    distorted: &gst_app::AppSink,
    frame: &Frame,
    subsample: u32,
    stop: &AtomicBool,
    rendition: &Path,
) -> Result<VmafScore, VmafError> {
    let result = score_stream_frames(reference, distorted, frame, subsample, stop, rendition);
    for sink in [reference, distorted] {
        sink.set_drop(true);
    }
    while !(stop.load(Ordering::Relaxed) || reference.is_eos() && distorted.is_eos()) {
        for sink in [reference, distorted] {
            let _ = sink.try_pull_sample(if sink.is_eos() { gst::ClockTime::ZERO } else { pull_slice() });
        }
    }
    result
}

fn score_stream_frames(
    reference: &gst_app::AppSink,
    distorted: &gst_app::AppSink,
    frame: &Frame,
    subsample: u32,
    stop: &AtomicBool,
    rendition: &Path,
) -> Result<VmafScore, VmafError> {
    let pull = |sink: &gst_app::AppSink| loop {
        if let Some(sample) = sink.try_pull_sample(pull_slice()) {
            return Some(sample);
        }
        if sink.is_eos() || stop.load(Ordering::Relaxed) {
            return None;
        }
    };
    let subsample = subsample.max(1);
    let mut scorer =
        Scorer::new(frame.width, frame.height, subsample, worker_threads()).map_err(|e| e.about(rendition))?;
    let (mut references, mut outputs) = (0u64, 0u64);
    loop {
        let Some(reference_sample) = pull(reference) else { break };
        references += 1;
        let Some(distorted_sample) = pull(distorted) else { break };
        outputs += 1;
        push_pair(&mut scorer, &reference_sample, &distorted_sample, frame, rendition)?;
    }
    if stop.load(Ordering::Relaxed) {
        return Err(VmafError::Setup { rendition: rendition.to_owned(), reason: "the encode stopped".into() });
    }
    if references.abs_diff(outputs) > TAIL_TOLERANCE {
        tracing::warn!(rendition = %rendition.display(), references, outputs, "encoder input and output differ in length");
    }
    if scorer.pushed == 0 {
        return Err(VmafError::NoFrames {
            source_path: rendition.to_owned(),
            rendition: rendition.to_owned(),
            source_frames: references,
            rendition_frames: outputs,
        });
    }
    let (score, _) = scorer.finish().map_err(|e| e.about(rendition))?;
    tracing::info!(rendition = %rendition.display(), mean = score.mean, min = score.min, p5 = score.p5,
        scored = score.frames, subsample, "vmaf scored during the encode");
    Ok(score)
}

/// Hands one pair of frames to libvmaf: all planes of both for a scored frame, the reference's luma otherwise.
fn push_pair(
    scorer: &mut Scorer,
    reference: &gst::Sample,
    distorted: &gst::Sample,
    frame: &Frame,
    rendition: &Path,
) -> Result<(), VmafError> {
    let vmaf_error = |e: VmafFailure| e.about(rendition);
    let need = scorer.next_need();
    if need == Need::Nothing {
        scorer.skip();
        return Ok(());
    }
    let reference_frame = map(reference, "the source").map_err(vmaf_error)?;
    let reference_planes = planes(&reference_frame, "the source").map_err(vmaf_error)?;
    if need == Need::ReferenceLuma {
        return scorer.push(&reference_planes[..1], &[]).map_err(vmaf_error);
    }
    let distorted_frame = map(distorted, "the rendition").map_err(vmaf_error)?;
    let (width, height) = (distorted_frame.width(), distorted_frame.height());
    if (width, height) != (frame.width, frame.height) {
        return Err(VmafError::FrameSize {
            path: rendition.to_owned(),
            width,
            height,
            expected_width: frame.width,
            expected_height: frame.height,
        });
    }
    let distorted_planes = planes(&distorted_frame, "the rendition").map_err(vmaf_error)?;
    scorer.push(&reference_planes, &distorted_planes).map_err(vmaf_error)
}

/// After the shorter file ended: looks a little further into the other one and warns if it is clearly longer, since
/// only the paired frames were scored.
fn report_tail(shorter: Side, reference: &mut Reader, distorted: &mut Reader) -> Result<(), VmafError> {
    let (longer, already_pulled) = match shorter {
        Side::Source => (distorted, 0),
        // The reference frame pulled before the rendition ended has no partner.
        Side::Rendition => (reference, 1),
    };
    let mut extra = already_pulled;
    while extra <= TAIL_TOLERANCE && longer.next()?.is_some() {
        extra += 1;
    }
    if extra > TAIL_TOLERANCE {
        tracing::warn!(
            path = %longer.path.display(),
            "the {} has at least {extra} frames more than the {shorter}; only the first {} frames were compared",
            longer.side,
            longer.frames - extra,
        );
    }
    Ok(())
}

/// libvmaf's worker threads: one per core.
fn worker_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}

// ----------------------------------------------------------------------------------------------------------------
// Decoding: one pipeline per file, each ending in an appsink that is pulled from the scoring thread.

/// One file being decoded into I420 frames.
struct Reader {
    side: Side,
    path: PathBuf,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    bus: gst::Bus,
    /// Frames pulled so far.
    frames: u64,
}

impl Reader {
    /// The source, prepared exactly as the house-format encoder prepares its input (media/house_format.rs): same
    /// elements, same order, same output caps, so it yields the same frames the encoder was given.
    fn reference(path: &Path, frame: &Frame) -> Result<Reader, VmafError> {
        let Frame { width, height, fps } = *frame;
        let description = format!(
            "filesrc name=src ! decodebin name=demux {PREPARE_SOURCE} ! \
             videorate ! video/x-raw,framerate={fps}/1 ! \
             videoscale add-borders=true ! videoconvert ! \
             video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1,\
             interlace-mode=progressive,colorimetry=bt709,chroma-site=mpeg2 ! \
             appsink name=sink sync=false max-buffers={SINK_BUFFERS} drop=false enable-last-sample=false"
        );
        Reader::start(Side::Source, path, &description, "video/x-raw")
    }

    /// The rendition as it is: an MP4 with H.264, decoded to I420 without any scaling.
    fn rendition(path: &Path) -> Result<Reader, VmafError> {
        let description = format!(
            "filesrc name=src ! qtdemux name=demux \
             h264parse name=vin ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! \
             appsink name=sink sync=false max-buffers={SINK_BUFFERS} drop=false enable-last-sample=false"
        );
        Reader::start(Side::Rendition, path, &description, "video/x-h264")
    }

    /// Builds the pipeline (the path is set as a property, so it needs no quoting), links the demuxer's first stream
    /// of type `wanted_caps` to the element named `vin`, and starts it.
    fn start(side: Side, path: &Path, description: &str, wanted_caps: &'static str) -> Result<Reader, VmafError> {
        let failed = |reason: String| VmafError::Pipeline { side, path: path.to_owned(), reason };
        let pipeline = gst::parse::launch(description)
            .map_err(|e| failed(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed("not a pipeline".into()))?;
        let by_name = |name: &str| pipeline.by_name(name).ok_or_else(|| failed(format!("no element {name}")));
        by_name("src")?.set_property("location", path);
        let input = by_name("vin")?.static_pad("sink").ok_or_else(|| failed("vin has no sink pad".into()))?;
        link_first_stream(&pipeline, &by_name("demux")?, &input, wanted_caps);
        let sink =
            by_name("sink")?.downcast::<gst_app::AppSink>().map_err(|_| failed("the sink is not an appsink".into()))?;
        let bus = pipeline.bus().ok_or_else(|| failed("the pipeline has no bus".into()))?;
        let reader = Reader { side, path: path.to_owned(), pipeline, sink, bus, frames: 0 };
        if reader.pipeline.set_state(gst::State::Playing).is_err() {
            // The reason is on the bus (a file that cannot be opened fails right here).
            if let Some(msg) = reader.bus.timed_pop_filtered(gst::ClockTime::SECOND, &[gst::MessageType::Error]) {
                reader.check_message(&msg)?;
            }
            return Err(failed("the pipeline refused to start".into()));
        }
        Ok(reader)
    }

    /// The next frame, or `None` at the end of the file. Fails on a decoding error, or if nothing arrives for
    /// [`STALL_LIMIT`].
    fn next(&mut self) -> Result<Option<gst::Sample>, VmafError> {
        let started = Instant::now();
        loop {
            if let Some(sample) = self.sink.try_pull_sample(pull_slice()) {
                self.frames += 1;
                return Ok(Some(sample));
            }
            // Errors first: a demuxer that fails still sends EOS downstream after posting its error.
            self.check_bus()?;
            if self.sink.is_eos() {
                return Ok(None);
            }
            if started.elapsed() > STALL_LIMIT {
                return Err(VmafError::Timeout {
                    side: self.side,
                    path: self.path.clone(),
                    waited: started.elapsed(),
                    frames: self.frames,
                });
            }
        }
    }

    /// Turns an error or "no video" message waiting on the bus into an error; drops every other message.
    fn check_bus(&self) -> Result<(), VmafError> {
        while let Some(msg) = self.bus.pop() {
            self.check_message(&msg)?;
        }
        Ok(())
    }

    fn check_message(&self, msg: &gst::Message) -> Result<(), VmafError> {
        match msg.view() {
            gst::MessageView::Error(err) => {
                // The debug string reads "file.c(123): function (): /Gst/Path:\nactual detail"; only the detail
                // helps an operator.
                let detail = err.debug().and_then(|d| d.split_once('\n').map(|(_, tail)| tail.trim().to_owned()));
                Err(VmafError::Decode {
                    side: self.side,
                    path: self.path.clone(),
                    element: err.src().map(|s| s.name().to_string()).unwrap_or_else(|| "pipeline".into()),
                    reason: err.error().to_string(),
                    detail: detail.filter(|d| !d.is_empty()),
                })
            }
            gst::MessageView::Application(app) if app.structure().is_some_and(|s| s.name() == NO_VIDEO_MESSAGE) => {
                let wanted = match self.side {
                    Side::Source => "decodable",
                    Side::Rendition => "H.264",
                };
                Err(VmafError::NoVideo { side: self.side, path: self.path.clone(), wanted })
            }
            gst::MessageView::Warning(warning) => {
                tracing::debug!(side = %self.side, path = %self.path.display(), "{}", warning.error());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The file's duration, once the demuxer knows it.
    fn duration(&self) -> Option<Duration> {
        self.pipeline
            .query_duration::<gst::ClockTime>()
            .filter(|d| d.nseconds() > 0)
            .map(|d| Duration::from_nanos(d.nseconds()))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Stopping also unblocks a streaming thread waiting for room in the appsink.
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Links the demuxer's first stream whose caps are `wanted_caps` to `input`; every other stream goes to a fakesink,
/// so the demuxer does not stop on "not linked". If no such stream exists, a [`NO_VIDEO_MESSAGE`] is posted.
fn link_first_stream(pipeline: &gst::Pipeline, demux: &gst::Element, input: &gst::Pad, wanted_caps: &'static str) {
    let weak = pipeline.downgrade();
    let video = input.clone();
    demux.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else { return };
        let kind = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
            .unwrap_or_default();
        let linked = kind == wanted_caps && !video.is_linked() && pad.link(&video).is_ok();
        if !linked {
            discard(&pipeline, pad);
        }
    });
    let video = input.clone();
    demux.connect_no_more_pads(move |demux| {
        if !video.is_linked() {
            let msg =
                gst::message::Application::builder(gst::Structure::new_empty(NO_VIDEO_MESSAGE)).src(demux).build();
            let _ = demux.post_message(msg);
        }
    });
}

// ----------------------------------------------------------------------------------------------------------------
// Frames: GStreamer's I420 planes, with their strides, copied into libvmaf's pictures.

/// One plane of an 8-bit picture: `height` rows of `width` bytes, each starting `stride` bytes after the previous.
#[derive(Debug, Clone, Copy)]
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    width: usize,
    height: usize,
}

/// Maps a sample's buffer as a video frame (honouring the strides and offsets of its video meta).
fn map<'a>(sample: &'a gst::Sample, what: &str) -> Result<gst_video::VideoFrameRef<&'a gst::BufferRef>, VmafFailure> {
    let failure = |reason: String| VmafFailure { call: "reading a frame", reason: format!("{what}: {reason}") };
    let caps = sample.caps().ok_or_else(|| failure("a frame without caps".into()))?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| failure(e.to_string()))?;
    let buffer = sample.buffer().ok_or_else(|| failure("a sample without a buffer".into()))?;
    gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(|e| failure(e.to_string()))
}

/// The three planes of a mapped I420 frame.
fn planes<'a>(frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>, what: &str) -> Result<[Plane<'a>; 3], VmafFailure> {
    let failure = |reason: String| VmafFailure { call: "reading a frame", reason: format!("{what}: {reason}") };
    if frame.format() != gst_video::VideoFormat::I420 {
        return Err(failure(format!("frame format {:?}, expected I420", frame.format())));
    }
    let plane = |i: u32| -> Result<Plane<'a>, VmafFailure> {
        let stride = frame.plane_stride().get(i as usize).copied().unwrap_or(0);
        Ok(Plane {
            data: frame.plane_data(i).map_err(|e| failure(e.to_string()))?,
            stride: usize::try_from(stride).map_err(|_| failure(format!("plane {i} has stride {stride}")))?,
            // In I420 component i is plane i.
            width: frame.comp_width(i) as usize,
            height: frame.comp_height(i) as usize,
        })
    };
    Ok([plane(0)?, plane(1)?, plane(2)?])
}

/// Copies `height` rows of `width` bytes from `src` into `dst` (rows `dst_stride` apart).
fn copy_plane(dst: &mut [u8], dst_stride: usize, width: usize, height: usize, src: &Plane) -> Result<(), String> {
    if height == 0 || width == 0 {
        return Ok(());
    }
    if src.width < width || src.height < height {
        return Err(format!("a {}x{} plane where {width}x{height} is needed", src.width, src.height));
    }
    if src.stride < width || src.data.len() < (height - 1) * src.stride + width {
        return Err(format!("plane data of {} bytes is too short for stride {}", src.data.len(), src.stride));
    }
    if dst_stride < width || dst.len() < height * dst_stride {
        return Err(format!("destination of {} bytes is too short for stride {dst_stride}", dst.len()));
    }
    for (dst_row, src_row) in dst.chunks_mut(dst_stride).zip(src.data.chunks(src.stride)).take(height) {
        dst_row[..width].copy_from_slice(&src_row[..width]);
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------------------------
// libvmaf: a context scoring pairs of pictures with one model.

/// A libvmaf call that failed, and why.
#[derive(Debug)]
struct VmafFailure {
    call: &'static str,
    reason: String,
}

impl VmafFailure {
    fn about(self, rendition: &Path) -> VmafError {
        VmafError::Vmaf { path: rendition.to_owned(), call: self.call, reason: self.reason }
    }
}

/// libvmaf returns 0 or a negative errno.
fn check(rc: std::ffi::c_int, call: &'static str) -> Result<(), VmafFailure> {
    match rc {
        0 => Ok(()),
        rc if rc < 0 => Err(VmafFailure { call, reason: std::io::Error::from_raw_os_error(-rc).to_string() }),
        rc => Err(VmafFailure { call, reason: format!("error code {rc}") }),
    }
}

/// A loaded VMAF model, destroyed on drop.
struct Model(NonNull<ffi::VmafModel>);

impl Model {
    /// The built-in [`MODEL_VERSION`] (compiled into libvmaf; its absence means libvmaf was built without xxd).
    fn load() -> Result<Model, VmafFailure> {
        let mut cfg = ffi::VmafModelConfig {
            name: MODEL_NAME_C.as_ptr(),
            flags: ffi::VmafModelFlags::VMAF_MODEL_FLAGS_DEFAULT as u64,
        };
        let mut model = ptr::null_mut();
        // SAFETY: `model` is a valid out-pointer; `cfg` and the version string are valid for the call (libvmaf copies
        // the name into the model), and the strings are NUL-terminated 'static literals.
        let rc = unsafe { ffi::vmaf_model_load(&mut model, &mut cfg, MODEL_VERSION_C.as_ptr()) };
        // The usual cause is a libvmaf built without its models (they are compiled in with xxd).
        check(rc, "vmaf_model_load").map_err(|e| VmafFailure {
            reason: format!("built-in model {MODEL_VERSION} not available: {}", e.reason),
            ..e
        })?;
        NonNull::new(model)
            .map(Model)
            .ok_or(VmafFailure { call: "vmaf_model_load", reason: "no model returned".into() })
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful vmaf_model_load and is destroyed exactly once, here.
        unsafe { ffi::vmaf_model_destroy(self.0.as_ptr()) };
    }
}

/// A libvmaf context (feature extractors, worker threads, collected scores), closed on drop.
struct Context(NonNull<ffi::VmafContext>);

impl Context {
    fn new(threads: u32, subsample: u32) -> Result<Context, VmafFailure> {
        let cfg = ffi::VmafConfiguration {
            log_level: ffi::VmafLogLevel::VMAF_LOG_LEVEL_ERROR,
            n_threads: threads,
            n_subsample: subsample,
            // No CPU feature is masked out: use every SIMD path libvmaf finds.
            cpumask: 0,
        };
        let mut context = ptr::null_mut();
        // SAFETY: `context` is a valid out-pointer and the configuration is passed by value. On failure libvmaf has
        // already freed what it allocated, so the pointer is only kept on success.
        check(unsafe { ffi::vmaf_init(&mut context, cfg) }, "vmaf_init")?;
        NonNull::new(context)
            .map(Context)
            .ok_or(VmafFailure { call: "vmaf_init", reason: "no context returned".into() })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful vmaf_init and is closed exactly once, here; vmaf_close waits for
        // its worker threads, which may still hold pictures handed to it.
        unsafe { ffi::vmaf_close(self.0.as_ptr()) };
    }
}

/// An 8-bit YUV 4:2:0 picture allocated by libvmaf (zero-filled), unref'd on drop unless handed to libvmaf.
struct Picture {
    raw: ffi::VmafPicture,
}

impl Picture {
    fn new(width: u32, height: u32) -> Result<Picture, VmafFailure> {
        let mut raw = MaybeUninit::<ffi::VmafPicture>::zeroed();
        // SAFETY: `raw` points to writable memory for one VmafPicture, which vmaf_picture_alloc fills in.
        let rc = unsafe {
            ffi::vmaf_picture_alloc(raw.as_mut_ptr(), ffi::VmafPixelFormat::VMAF_PIX_FMT_YUV420P, 8, width, height)
        };
        check(rc, "vmaf_picture_alloc")?;
        // SAFETY: vmaf_picture_alloc succeeded, so every field is initialised (and all-zero was valid to begin with).
        Ok(Picture { raw: unsafe { raw.assume_init() } })
    }

    /// Copies `src` into plane `index` (0 = Y, 1 = U, 2 = V).
    fn fill(&mut self, index: usize, src: &Plane) -> Result<(), VmafFailure> {
        let failure = |reason: String| VmafFailure { call: "copying a frame", reason };
        let width = self.raw.w[index] as usize;
        let height = self.raw.h[index] as usize;
        let stride = usize::try_from(self.raw.stride[index]).map_err(|_| failure("negative picture stride".into()))?;
        let data = self.raw.data[index].cast::<u8>();
        if data.is_null() {
            return Err(failure(format!("picture plane {index} is not allocated")));
        }
        // SAFETY: vmaf_picture_alloc allocated `stride × height` bytes for this plane (one aligned block holding the
        // three planes), and this picture is not shared with libvmaf until it is handed over, so nothing else reads or
        // writes it while the slice lives.
        let dst = unsafe { std::slice::from_raw_parts_mut(data, stride * height) };
        copy_plane(dst, stride, width, height, src).map_err(|e| failure(format!("plane {index}: {e}")))
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        if !self.raw.ref_.is_null() {
            // SAFETY: the picture came from vmaf_picture_alloc and was not handed to libvmaf (that path never drops
            // it), so this is the one reference left to release.
            unsafe { ffi::vmaf_picture_unref(&mut self.raw) };
        }
    }
}

/// Scores pairs of pictures of one size with [`MODEL_VERSION`].
struct Scorer {
    // Declaration order is drop order: the context (and its worker threads) goes before the model it scores with.
    context: Context,
    model: Model,
    width: u32,
    height: u32,
    /// Every how many frames one is scored (1 = all).
    every: u32,
    /// libvmaf's `n_subsample`: `every`, or 3 when only windows of three frames are handed over.
    subsample: u32,
    /// Pairs offered so far (handed over or skipped); the next pair is frame `offered` of the file.
    offered: u64,
    /// Pairs handed to libvmaf so far; the next one gets this index.
    pushed: u32,
}

/// What libvmaf needs of the next pair of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Both pictures, whole: the frame is scored.
    Both,
    /// The reference's luma only: the motion feature of a scored neighbour reads it.
    ReferenceLuma,
    /// Nothing: the frame is neither scored nor next to a scored one.
    Nothing,
}

impl Scorer {
    /// Scores every `every`-th frame (frames 0, every, 2·every, …).
    ///
    /// The motion feature of a scored frame *k* is the smaller of the reference's change from *k*−1 to *k* and from *k*
    /// to *k*+1, and libvmaf takes "previous" to mean the picture handed over before. So with `every` ≥ 3 only the
    /// windows *k*−1, *k*, *k*+1 are handed over (the reference's luma for the outer two), as consecutive indices,
    /// with libvmaf subsampling by 3 so that exactly the middle of each window is scored: each scored frame gets the
    /// score it has at full rate, for 3 motion computations per scored frame instead of `every`.
    fn new(width: u32, height: u32, every: u32, threads: u32) -> Result<Scorer, VmafFailure> {
        let every = every.max(1);
        let subsample = if every >= 3 { 3 } else { every };
        let model = Model::load()?;
        let context = Context::new(threads, subsample)?;
        // SAFETY: both pointers are live (owned by `context` and `model`).
        let rc = unsafe { ffi::vmaf_use_features_from_model(context.0.as_ptr(), model.0.as_ptr()) };
        check(rc, "vmaf_use_features_from_model")?;
        Ok(Scorer { context, model, width, height, every, subsample, offered: 0, pushed: 0 })
    }

    /// What the next pair (frame `offered` of the file) must provide.
    fn next_need(&self) -> Need {
        let position = self.offered % u64::from(self.every);
        if position == 0 {
            Need::Both
        } else if self.every < 3 || position == 1 || position == u64::from(self.every) - 1 {
            Need::ReferenceLuma
        } else {
            Need::Nothing
        }
    }

    /// Whether the next pair handed over is scored (libvmaf's rule: index divisible by its subsample).
    fn next_is_scored(&self) -> bool {
        self.pushed.is_multiple_of(self.subsample)
    }

    /// Passes over a frame libvmaf does not need.
    fn skip(&mut self) {
        self.offered += 1;
    }

    /// Hands the next pair to libvmaf. The planes given are copied in order (Y, U, V); planes not given stay black,
    /// which is only allowed for frames that are not scored (motion reads nothing but the reference's luma).
    fn push(&mut self, reference: &[Plane], distorted: &[Plane]) -> Result<(), VmafFailure> {
        if self.next_is_scored() && (reference.len() < 3 || distorted.len() < 3) {
            return Err(VmafFailure { call: "vmaf_read_pictures", reason: "a scored frame needs all planes".into() });
        }
        let mut reference_picture = Picture::new(self.width, self.height)?;
        for (i, plane) in reference.iter().take(3).enumerate() {
            reference_picture.fill(i, plane)?;
        }
        let mut distorted_picture = Picture::new(self.width, self.height)?;
        for (i, plane) in distorted.iter().take(3).enumerate() {
            distorted_picture.fill(i, plane)?;
        }
        let mut reference_picture = ManuallyDrop::new(reference_picture);
        let mut distorted_picture = ManuallyDrop::new(distorted_picture);
        // SAFETY: the context is live and both pictures are valid, exclusively ours. On success libvmaf takes over
        // both references (it unrefs them when its extractors are done), so they must not be dropped here.
        let rc = unsafe {
            ffi::vmaf_read_pictures(
                self.context.0.as_ptr(),
                &mut reference_picture.raw,
                &mut distorted_picture.raw,
                self.pushed,
            )
        };
        if let Err(e) = check(rc, "vmaf_read_pictures") {
            // On failure libvmaf has not released our references (it only takes extra ones of its own): drop them.
            drop(ManuallyDrop::into_inner(reference_picture));
            drop(ManuallyDrop::into_inner(distorted_picture));
            return Err(e);
        }
        self.pushed += 1;
        self.offered += 1;
        Ok(())
    }

    /// Flushes the extractors and pools the scored frames: (mean, min, p5, count) and the per-frame scores.
    fn finish(self) -> Result<(VmafScore, Vec<f64>), VmafFailure> {
        let (context, model) = (self.context.0.as_ptr(), self.model.0.as_ptr());
        // SAFETY: a live context; a pair of NULL pictures is libvmaf's flush request.
        check(unsafe { ffi::vmaf_read_pictures(context, ptr::null_mut(), ptr::null_mut(), 0) }, "vmaf_read_pictures")?;
        let last =
            self.pushed.checked_sub(1).ok_or(VmafFailure { call: "vmaf_score_pooled", reason: "no frames".into() })?;
        let mut per_frame = Vec::with_capacity((last / self.subsample + 1) as usize);
        for index in (0..=last).step_by(self.subsample as usize) {
            let mut value = 0.0;
            // SAFETY: live context and model, a valid out-pointer; `index` was handed to libvmaf and is scored.
            check(unsafe { ffi::vmaf_score_at_index(context, model, &mut value, index) }, "vmaf_score_at_index")?;
            per_frame.push(value);
        }
        let pooled = |method: ffi::VmafPoolingMethod| -> Result<f64, VmafFailure> {
            let mut value = 0.0;
            // SAFETY: live context and model, a valid out-pointer; with n_subsample libvmaf pools exactly the indices
            // scored above.
            check(unsafe { ffi::vmaf_score_pooled(context, model, method, &mut value, 0, last) }, "vmaf_score_pooled")?;
            Ok(value)
        };
        let score = VmafScore {
            mean: pooled(ffi::VmafPoolingMethod::VMAF_POOL_METHOD_MEAN)?,
            min: pooled(ffi::VmafPoolingMethod::VMAF_POOL_METHOD_MIN)?,
            p5: percentile(&per_frame, 5.0),
            frames: u32::try_from(per_frame.len()).unwrap_or(u32::MAX),
        };
        Ok((score, per_frame))
    }
}

/// The `p`-th percentile (0..=100) of `values`, interpolating linearly between the closest ranks; NaN if empty.
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::process::Command;

    /// The frame of the small test renditions.
    const SMALL: Frame = Frame { width: 640, height: 360, fps: 30 };
    /// SMPTE colour bars scrolling sideways by 3 pixels a frame: the whole picture moves, so a frame paired with the
    /// wrong one scores visibly lower, and the sharp edges cost an encoder real bits.
    const MOVING: &str = "smpte horizontal-speed=3";
    /// The house format's x264 settings (capped CRF, fixed GOP, two B-frames) at a bitrate fit for 640x360.
    const X264_GOOD: &str = "speed-preset=veryfast pass=qual quantizer=21 bitrate=1500 vbv-buf-capacity=2000 \
                             key-int-max=60 bframes=2 b-adapt=false";
    /// The same encoder starved to 50 kbit/s.
    const X264_STARVED: &str = "speed-preset=veryfast pass=cbr bitrate=50 key-int-max=60 bframes=2 b-adapt=false";
    /// Lossless H.264 for the test sources, so the reference is exactly the generated pictures.
    const X264_LOSSLESS: &str = "speed-preset=ultrafast pass=quant quantizer=0";
    /// The house format's scaling: keep the aspect ratio, box into the frame.
    const HOUSE_SCALE: &str = "videoscale add-borders=true";

    /// Runs a gst-launch description to EOS; `{out}` is replaced by `out`.
    fn make(description: &str, out: &Path) {
        gst::init().expect("gst init");
        let description = description.replace("{out}", &out.display().to_string());
        let pipeline = gst::parse::launch(&description)
            .unwrap_or_else(|e| panic!("{description}: {e}"))
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        pipeline.set_state(gst::State::Playing).expect("test pipeline starts");
        let bus = pipeline.bus().expect("bus");
        let msg = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(600), &[gst::MessageType::Eos, gst::MessageType::Error]);
        pipeline.set_state(gst::State::Null).expect("test pipeline stops");
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => {}
            Some(gst::MessageView::Error(e)) => panic!("{description}: {} ({:?})", e.error(), e.debug()),
            _ => panic!("{description}: timed out"),
        }
    }

    /// A source: `frames` frames of [`MOVING`] at `w`x`h`, BT.709, H.264 (`x264` settings) in MP4.
    fn source(dir: &Path, name: &str, (w, h): (u32, u32), fps: u32, frames: u32, x264: &str) -> PathBuf {
        let path = dir.join(name);
        make(
            &format!(
                "videotestsrc pattern={MOVING} num-buffers={frames} ! \
                 video/x-raw,format=I420,width={w},height={h},framerate={fps}/1,colorimetry=bt709 ! \
                 x264enc {x264} ! mp4mux ! filesink location={{out}}"
            ),
            &path,
        );
        path
    }

    /// Encodes `source` into `frame` the way the house-format encoder does: the same preparation chain, with `scale`
    /// as the scaling step and `x264` as the encoder settings.
    fn rendition(source: &Path, name: &str, frame: Frame, scale: &str, x264: &str) -> PathBuf {
        let path = source.with_file_name(name);
        let Frame { width, height, fps } = frame;
        make(
            &format!(
                "filesrc location={src} ! decodebin ! videoconvert ! deinterlace ! videoflip video-direction=auto ! \
                 videorate ! video/x-raw,framerate={fps}/1 ! {scale} ! videoconvert ! \
                 video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1,\
                 interlace-mode=progressive,colorimetry=bt709,chroma-site=mpeg2 ! \
                 x264enc {x264} ! video/x-h264,profile=high ! mp4mux ! filesink location={{out}}",
                src = source.display(),
            ),
            &path,
        );
        path
    }

    fn scored(source: &Path, rendition: &Path, frame: Frame, subsample: u32) -> (VmafScore, Vec<f64>) {
        score_frames(source, rendition, &frame, subsample, &|_| {})
            .unwrap_or_else(|e| panic!("scoring {}: {e}", rendition.display()))
    }

    #[test]
    fn a_good_rendition_scores_high_and_a_starved_or_blurred_one_low() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), "src.mp4", (640, 360), 30, 90, X264_LOSSLESS);
        let good = rendition(&src, "good.mp4", SMALL, HOUSE_SCALE, X264_GOOD);
        let starved = rendition(&src, "starved.mp4", SMALL, HOUSE_SCALE, X264_STARVED);
        let blurred = rendition(
            &src,
            "blurred.mp4",
            SMALL,
            "videoscale ! video/x-raw,width=160,height=90 ! videoscale add-borders=true",
            X264_GOOD,
        );

        let seen = RefCell::new(vec![]);
        let good_score = score(&src, &good, &SMALL, 1, &|f| seen.borrow_mut().push(f)).expect("score");
        assert_eq!(good_score.frames, 90, "{good_score:?}");
        assert!(good_score.mean > 90.0, "a good encode scores {good_score:?}");
        assert!(good_score.min <= good_score.p5 && good_score.p5 <= good_score.mean, "{good_score:?}");
        let seen = seen.into_inner();
        assert_eq!(seen.last(), Some(&1.0), "progress ends at 1: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen.iter().all(|f| (0.0..=1.0).contains(f)), "{seen:?}");

        for bad in [&starved, &blurred] {
            let (bad_score, _) = scored(&src, bad, SMALL, 1);
            assert!(bad_score.mean < 60.0, "{}: {bad_score:?} (good: {good_score:?})", bad.display());
            assert!(bad_score.mean < good_score.mean - 30.0, "{}: {bad_score:?}", bad.display());
        }
    }

    #[test]
    fn the_reference_gets_the_house_frame_rate_like_the_encoder_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 3 s at 25 fps: the rendition at 30 fps repeats every fifth frame, as the encoder's videorate does.
        let src = source(dir.path(), "src25.mp4", (640, 360), 25, 75, X264_LOSSLESS);
        let at_30 = rendition(&src, "at30.mp4", SMALL, HOUSE_SCALE, X264_GOOD);
        let (aligned, per_frame) = scored(&src, &at_30, SMALL, 1);
        assert_eq!(aligned.frames, 90, "{aligned:?}");
        assert!(aligned.mean > 90.0 && aligned.min > 80.0, "{aligned:?}: {per_frame:?}");

        // Without the rate conversion (a reference left at 25 fps) the pairs drift apart and the score collapses:
        // the check above would notice a reference that is not prepared like the encoder's input.
        let (drifting, _) = scored(&src, &at_30, Frame { fps: 25, ..SMALL }, 1);
        assert!(drifting.mean < aligned.mean - 15.0, "aligned {aligned:?}, drifting {drifting:?}");
    }

    #[test]
    fn a_letterboxed_rendition_is_compared_with_a_letterboxed_reference() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), "src43.mp4", (480, 360), 30, 60, X264_LOSSLESS);
        let boxed = rendition(&src, "boxed.mp4", SMALL, HOUSE_SCALE, X264_GOOD);
        let (score_boxed, _) = scored(&src, &boxed, SMALL, 1);
        assert_eq!(score_boxed.frames, 60);
        assert!(score_boxed.mean > 90.0, "{score_boxed:?}");

        // A stretched rendition no longer matches the boxed reference.
        let stretched = rendition(&src, "stretched.mp4", SMALL, "videoscale add-borders=false", X264_GOOD);
        let (score_stretched, _) = scored(&src, &stretched, SMALL, 1);
        assert!(score_stretched.mean < score_boxed.mean - 20.0, "boxed {score_boxed:?}, stretched {score_stretched:?}");
    }

    #[test]
    fn pairing_stops_at_the_shorter_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // videotestsrc draws the same frames every time: the short source is the first 60 frames of the long one.
        let long = source(dir.path(), "long.mp4", (640, 360), 30, 90, X264_LOSSLESS);
        let short = source(dir.path(), "short.mp4", (640, 360), 30, 60, X264_LOSSLESS);
        let from_short = rendition(&short, "from-short.mp4", SMALL, HOUSE_SCALE, X264_GOOD);
        let from_long = rendition(&long, "from-long.mp4", SMALL, HOUSE_SCALE, X264_GOOD);
        for (src, enc) in [(&long, &from_short), (&short, &from_long)] {
            let (result, per_frame) = scored(src, enc, SMALL, 1);
            assert_eq!((result.frames, per_frame.len()), (60, 60), "{} against {}", enc.display(), src.display());
            assert!(result.mean > 90.0, "{} against {}: {result:?}", enc.display(), src.display());
        }
    }

    #[test]
    fn subsampling_scores_exactly_every_nth_frame() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), "src.mp4", (640, 360), 30, 90, X264_LOSSLESS);
        let enc = rendition(&src, "enc.mp4", SMALL, HOUSE_SCALE, X264_STARVED);
        let (all, every) = scored(&src, &enc, SMALL, 1);
        assert_eq!((all.frames, every.len()), (90, 90));
        // Frames 0, 7, …, 84 and 0, 2, …, 88 are checked below too: windows of three (7) and every frame handed over
        // (2) must give the same per-frame scores.
        for n in [7usize, 2] {
            let (_, some) = scored(&src, &enc, SMALL, n as u32);
            assert_eq!(some.len(), 90usize.div_ceil(n), "subsample {n}");
            for (k, value) in some.iter().enumerate() {
                assert!(
                    (value - every[n * k]).abs() < 1e-6,
                    "subsample {n}, frame {}: {value} vs {}",
                    n * k,
                    every[n * k]
                );
            }
        }
        let (sub, some) = scored(&src, &enc, SMALL, 4);
        // Frames 0, 4, …, 88.
        assert_eq!((sub.frames, some.len()), (23, 23));
        // Motion is still computed between neighbouring frames, so each scored frame gets exactly its full-rate score.
        for (k, value) in some.iter().enumerate() {
            assert!((value - every[4 * k]).abs() < 1e-6, "frame {}: {value} vs {}", 4 * k, every[4 * k]);
        }
        let mean = some.iter().sum::<f64>() / some.len() as f64;
        let min = some.iter().copied().fold(f64::INFINITY, f64::min);
        assert!((sub.mean - mean).abs() < 1e-9 && (sub.min - min).abs() < 1e-9, "{sub:?} vs {mean} {min}");
        assert!(sub.min <= sub.p5 && sub.p5 <= sub.mean, "{sub:?}");
        assert_eq!(score(&src, &enc, &SMALL, 0, &|_| {}).expect("subsample 0 means every frame"), all);
    }

    #[test]
    fn percentile_interpolates_between_ranks() {
        let values: Vec<f64> = (0..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 5.0), 5.0);
        assert_eq!(percentile(&[10.0, 20.0], 5.0), 10.5);
        assert_eq!(percentile(&[42.0], 5.0), 42.0);
        assert!(percentile(&[], 5.0).is_nan());
    }

    #[test]
    fn unreadable_or_unfit_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), "src.mp4", (640, 360), 30, 30, X264_LOSSLESS);
        let good = rendition(&src, "good.mp4", SMALL, HOUSE_SCALE, X264_GOOD);

        let garbage = dir.path().join("garbage.mp4");
        std::fs::write(&garbage, b"not a movie, just a few bytes of text pretending to be one").expect("write");
        let err = score(&src, &garbage, &SMALL, 1, &|_| {}).expect_err("garbage rendition");
        assert!(matches!(err, VmafError::Decode { side: Side::Rendition, .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("rendition {}", garbage.display())), "{err}");

        let err = score(&garbage, &good, &SMALL, 1, &|_| {}).expect_err("garbage source");
        assert!(matches!(err, VmafError::Decode { side: Side::Source, .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("source {}", garbage.display())), "{err}");

        let missing = dir.path().join("missing.mp4");
        let err = score(&src, &missing, &SMALL, 1, &|_| {}).expect_err("missing rendition");
        assert!(matches!(err, VmafError::Io { side: Side::Rendition, .. }), "{err:?}");
        assert!(err.to_string().contains("missing.mp4"), "{err}");

        // An MP4 with video that is not H.264 is not a rendition.
        let mpeg4 = dir.path().join("mpeg4.mp4");
        make(
            "videotestsrc num-buffers=10 ! video/x-raw,width=640,height=360,framerate=30/1 ! avenc_mpeg4 ! \
             mp4mux ! filesink location={out}",
            &mpeg4,
        );
        let err = score(&src, &mpeg4, &SMALL, 1, &|_| {}).expect_err("not H.264");
        assert!(matches!(err, VmafError::NoVideo { side: Side::Rendition, .. }), "{err:?}");
        assert!(err.to_string().contains("mpeg4.mp4") && err.to_string().contains("H.264"), "{err}");

        let audio_only = dir.path().join("audio.ogg");
        make("audiotestsrc num-buffers=20 ! vorbisenc ! oggmux ! filesink location={out}", &audio_only);
        let err = score(&audio_only, &good, &SMALL, 1, &|_| {}).expect_err("source without video");
        assert!(matches!(err, VmafError::NoVideo { side: Side::Source, .. }), "{err:?}");
        assert!(err.to_string().contains("audio.ogg"), "{err}");

        let big = Frame { width: 1280, height: 720, fps: 30 };
        let err = score(&src, &good, &big, 1, &|_| {}).expect_err("wrong frame size");
        assert!(matches!(err, VmafError::FrameSize { width: 640, height: 360, .. }), "{err:?}");
        assert!(err.to_string().contains("good.mp4"), "{err}");

        let odd = Frame { width: 641, height: 360, fps: 30 };
        let err = score(&src, &good, &odd, 1, &|_| {}).expect_err("odd frame");
        assert!(matches!(err, VmafError::Setup { .. }) && err.to_string().contains("good.mp4"), "{err}");
    }

    fn ffmpeg_has_libvmaf() -> bool {
        Command::new("ffmpeg").args(["-hide_banner", "-filters"]).output().is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).lines().any(|l| l.split_whitespace().nth(1) == Some("libvmaf"))
        })
    }

    /// Decodes a file's video with ffmpeg into raw 8-bit 4:2:0 frames.
    fn ffmpeg_frames(path: &Path, frame: Frame) -> Vec<Vec<u8>> {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success(), "ffmpeg {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        let size = (frame.width * frame.height * 3 / 2) as usize;
        assert_eq!(out.stdout.len() % size, 0, "{}: not whole frames", path.display());
        out.stdout.chunks(size).map(<[u8]>::to_vec).collect()
    }

    fn raw_planes(data: &[u8], frame: Frame) -> [Plane<'_>; 3] {
        let (w, h) = (frame.width as usize, frame.height as usize);
        let (y, chroma) = data.split_at(w * h);
        let (u, v) = chroma.split_at(w * h / 4);
        [
            Plane { data: y, stride: w, width: w, height: h },
            Plane { data: u, stride: w / 2, width: w / 2, height: h / 2 },
            Plane { data: v, stride: w / 2, width: w / 2, height: h / 2 },
        ]
    }

    /// The same files scored by an independent implementation: ffmpeg's libvmaf filter when the installed ffmpeg
    /// has one; otherwise (Debian 12's ffmpeg has none) frames decoded by ffmpeg, paired by index and scored by
    /// libvmaf directly, which checks the GStreamer decoding, preparation and pairing.
    #[test]
    fn agrees_with_an_independent_decoder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), "src.mp4", (640, 360), 30, 60, X264_LOSSLESS);
        let enc = rendition(&src, "enc.mp4", SMALL, HOUSE_SCALE, X264_STARVED);
        let (ours, per_frame) = scored(&src, &enc, SMALL, 1);

        if ffmpeg_has_libvmaf() {
            let log = dir.path().join("vmaf.json");
            let filter = format!("[0:v][1:v]libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={}", log.display());
            let out = Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&enc)
                .arg("-i")
                .arg(&src)
                .args(["-lavfi", &filter, "-f", "null", "-"])
                .output()
                .expect("ffmpeg runs");
            assert!(out.status.success(), "ffmpeg libvmaf: {}", String::from_utf8_lossy(&out.stderr));
            let json = std::fs::read_to_string(&log).expect("vmaf log");
            let mean: f64 = json
                .split("\"vmaf\"")
                .last()
                .and_then(|tail| tail.split("\"mean\":").nth(1))
                .and_then(|v| v.split([',', '}']).next())
                .and_then(|v| v.trim().parse().ok())
                .expect("pooled vmaf mean in the log");
            assert!((ours.mean - mean).abs() < 0.5, "ours {ours:?}, ffmpeg's libvmaf {mean}");
            return;
        }

        eprintln!("ffmpeg has no libvmaf filter here: checking against frames decoded by ffmpeg instead");
        let (references, distorted) = (ffmpeg_frames(&src, SMALL), ffmpeg_frames(&enc, SMALL));
        assert_eq!((references.len(), distorted.len()), (60, 60));
        let mut scorer = Scorer::new(SMALL.width, SMALL.height, 1, 2).expect("scorer");
        for (r, d) in references.iter().zip(&distorted) {
            scorer.push(&raw_planes(r, SMALL), &raw_planes(d, SMALL)).expect("push");
        }
        let (theirs, their_frames) = scorer.finish().expect("finish");
        assert_eq!(theirs.frames, ours.frames);
        for (i, (a, b)) in per_frame.iter().zip(&their_frames).enumerate() {
            assert!((a - b).abs() < 1e-6, "frame {i}: {a} here, {b} from ffmpeg's frames");
        }
        assert!((theirs.mean - ours.mean).abs() < 1e-6, "{ours:?} vs {theirs:?}");
    }

    /// Wall time of [`score`] on a 60 s 1080p30 source and its 1080p rendition (house settings at 4500 kbit/s), at
    /// subsample 1, 5 and 10. Not part of the suite (it takes minutes): `cargo test vmaf::tests::benchmark --
    /// --ignored --nocapture`.
    #[test]
    #[ignore]
    fn benchmark_60s_1080p() {
        let dir = tempfile::tempdir().expect("tempdir");
        let full_hd = Frame { width: 1920, height: 1080, fps: 30 };
        let started = Instant::now();
        // A detailed but not extravagant source (about 2 Mbit/s), decoded at a realistic cost.
        let src = source(dir.path(), "src.mp4", (1920, 1080), 30, 1800, "speed-preset=veryfast pass=qual quantizer=18");
        let enc = rendition(
            &src,
            "1080p.mp4",
            full_hd,
            HOUSE_SCALE,
            "speed-preset=veryfast pass=qual quantizer=21 bitrate=4500 vbv-buf-capacity=2000 key-int-max=60 bframes=2 \
             b-adapt=false",
        );
        eprintln!("media generated in {:.1} s", started.elapsed().as_secs_f64());
        for subsample in [1, 5, 10] {
            let started = Instant::now();
            let result = score(&src, &enc, &full_hd, subsample, &|_| {}).expect("score");
            eprintln!("subsample {subsample:>2}: {:6.1} s  {result:?}", started.elapsed().as_secs_f64());
        }
    }
}
