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
//! are handed to libvmaf (see `Scorer::new` in `scorer.rs`). Feeding only every Nth frame would measure motion across N-frame gaps
//! and bias the score upwards; feeding every frame would compute motion N times per scored frame instead of 3.
//!
//! The house-format encoder uses the same scorer during its own run (`score_stream`): its top rung's input frames
//! are the reference and its output is decoded again, so the source is decoded once for encoding and gating.
//!
//! - `reader.rs`: decoding a file into frames; `scorer.rs`: which frames libvmaf gets and the pooling of their
//!   scores; `ffi.rs`: the owners of libvmaf's objects and every unsafe call.

mod ffi;
mod reader;
mod scorer;

use crate::media::pipeline::{self, ElementFailure, PipelineError};
use ffi::VmafFailure;
use gst_video::prelude::*;
use reader::Reader;
use scorer::{Need, Scorer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The VMAF model every score is computed with (libvmaf's built-in copy).
pub const MODEL_VERSION: &str = "vmaf_v0.6.1";

/// How long one pull waits before the buses are checked again.
const PULL_SLICE: Duration = Duration::from_millis(100);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Frames one file may have beyond the other without a warning.
const TAIL_TOLERANCE: u64 = 2;

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
    /// The request itself cannot be honoured (an impossible frame, the encode it scores stopped).
    #[error("vmaf: cannot score {}: {reason}", rendition.display())]
    Setup { rendition: PathBuf, reason: String },
    /// GStreamer is unusable or an element the readers need is missing; names the rendition.
    #[error(transparent)]
    Gstreamer(#[from] PipelineError),
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
    #[error("vmaf: cannot decode the {side} {}: {failure}", path.display())]
    Decode { side: Side, path: PathBuf, failure: ElementFailure },
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
    pipeline::require_elements(&format!("vmaf: cannot score {}", rendition.display()), &reader::REQUIRED_ELEMENTS)?;
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
    let ends = [SinkEnd::new(reference), SinkEnd::new(distorted)];
    let result = score_stream_frames(&ends[0], &ends[1], frame, subsample, stop, rendition);
    for sink in [reference, distorted] {
        sink.set_drop(true);
    }
    while !(stop.load(Ordering::Relaxed) || ends.iter().all(SinkEnd::ended)) {
        for end in &ends {
            let _ = end.sink.try_pull_sample(if end.ended() { gst::ClockTime::ZERO } else { pull_slice() });
        }
    }
    result
}

/// Tells when an appsink has delivered its last sample. `AppSink::is_eos` is also true before the sink reached
/// PAUSED, and the scoring thread starts before the encode does, so EOS counts only once the sink has been seen
/// running (once seen, it stays trusted while the pipeline is torn down after the end).
struct SinkEnd<'a> {
    sink: &'a gst_app::AppSink,
    running: std::cell::Cell<bool>,
}

impl<'a> SinkEnd<'a> {
    fn new(sink: &'a gst_app::AppSink) -> SinkEnd<'a> {
        SinkEnd { sink, running: std::cell::Cell::new(false) }
    }

    fn ended(&self) -> bool {
        if !self.running.get() && self.sink.current_state() >= gst::State::Paused {
            self.running.set(true);
        }
        self.running.get() && self.sink.is_eos()
    }
}

fn score_stream_frames(
    reference: &SinkEnd,
    distorted: &SinkEnd,
    frame: &Frame,
    subsample: u32,
    stop: &AtomicBool,
    rendition: &Path,
) -> Result<VmafScore, VmafError> {
    let pull = |end: &SinkEnd| loop {
        if let Some(sample) = end.sink.try_pull_sample(pull_slice()) {
            end.running.set(true);
            return Some(sample);
        }
        if end.ended() || stop.load(Ordering::Relaxed) {
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
    let reference_frame = reader::map(reference, "the source").map_err(vmaf_error)?;
    let reference_planes = reader::planes(&reference_frame, "the source").map_err(vmaf_error)?;
    if need == Need::ReferenceLuma {
        return scorer.push(&reference_planes[..1], &[]).map_err(vmaf_error);
    }
    let distorted_frame = reader::map(distorted, "the rendition").map_err(vmaf_error)?;
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
    let distorted_planes = reader::planes(&distorted_frame, "the rendition").map_err(vmaf_error)?;
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

#[cfg(test)]
mod tests {
    use super::ffi::Plane;
    use super::*;
    use crate::media::pipeline::Fault;
    use crate::media::test_support::make_media;
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

    /// A source: `frames` frames of [`MOVING`] at `w`x`h`, BT.709, H.264 (`x264` settings) in MP4.
    fn source(dir: &Path, name: &str, (w, h): (u32, u32), fps: u32, frames: u32, x264: &str) -> PathBuf {
        let path = dir.join(name);
        make_media(
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
        make_media(
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
    fn unreadable_or_unfit_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), "src.mp4", (640, 360), 30, 30, X264_LOSSLESS);
        let good = rendition(&src, "good.mp4", SMALL, HOUSE_SCALE, X264_GOOD);

        let garbage = dir.path().join("garbage.mp4");
        std::fs::write(&garbage, b"not a movie, just a few bytes of text pretending to be one").expect("write");
        let err = score(&src, &garbage, &SMALL, 1, &|_| {}).expect_err("garbage rendition");
        assert!(matches!(err, VmafError::Decode { side: Side::Rendition, .. }), "{err:?}");
        assert!(
            matches!(err, VmafError::Decode { failure: ElementFailure { fault: Fault::Input, .. }, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&format!("rendition {}", garbage.display())), "{err}");

        let err = score(&garbage, &good, &SMALL, 1, &|_| {}).expect_err("garbage source");
        assert!(matches!(err, VmafError::Decode { side: Side::Source, .. }), "{err:?}");
        assert!(
            matches!(err, VmafError::Decode { failure: ElementFailure { fault: Fault::Input, .. }, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&format!("source {}", garbage.display())), "{err}");

        let missing = dir.path().join("missing.mp4");
        let err = score(&src, &missing, &SMALL, 1, &|_| {}).expect_err("missing rendition");
        assert!(matches!(err, VmafError::Io { side: Side::Rendition, .. }), "{err:?}");
        assert!(err.to_string().contains("missing.mp4"), "{err}");

        // An MP4 with video that is not H.264 is not a rendition.
        let mpeg4 = dir.path().join("mpeg4.mp4");
        make_media(
            "videotestsrc num-buffers=10 ! video/x-raw,width=640,height=360,framerate=30/1 ! avenc_mpeg4 ! \
             mp4mux ! filesink location={out}",
            &mpeg4,
        );
        let err = score(&src, &mpeg4, &SMALL, 1, &|_| {}).expect_err("not H.264");
        assert!(matches!(err, VmafError::NoVideo { side: Side::Rendition, .. }), "{err:?}");
        assert!(err.to_string().contains("mpeg4.mp4") && err.to_string().contains("H.264"), "{err}");

        let audio_only = dir.path().join("audio.ogg");
        make_media("audiotestsrc num-buffers=20 ! vorbisenc ! oggmux ! filesink location={out}", &audio_only);
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
}
