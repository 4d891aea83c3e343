//! The ingest pre-scan of a house-format MP4: what the broadcaster needs to know about an asset before it goes on
//! air, read once by demuxing (no decoding) exactly the way the playout will read it.
//!
//! The playout rebases every encoded buffer onto one continuous timeline, so it needs the video's end, the first DTS
//! (negative: the B-frame delay), the keyframes (where an emergency may cut), the mini-GOP boundaries (where it may
//! cut sooner) and where the audio ends. The avcC (SPS/PPS) is returned so ingest can check it is byte-identical to
//! the house reference: the playout never re-sends codec headers, so a different one would break every decoder.

use super::error::MediaError;
use super::pipeline::{init, post_no_video, run_until_eos, Inputs, PipelineError};
use gst::prelude::*;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A scan gets this long plus a tenth of the media's duration (demuxing runs far faster than real time).
const SCAN_TIMEOUT_BASE: Duration = Duration::from_secs(60);

/// Everything the playout needs to know about one rendition. Times are running times in nanoseconds (0 = the
/// first picture), signed because the first DTS precedes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanInfo {
    /// End of the last video frame (max PTS + duration).
    pub video_end_ns: i64,
    /// DTS of the first video frame: minus the B-frame delay (one frame in the house format).
    pub first_dts_ns: i64,
    /// PTS of every keyframe, ascending.
    pub keyframes_ns: Vec<i64>,
    /// Ends of the decode-order prefixes whose pictures are exactly `[0, end)`: points where the video can be cut
    /// without re-encoding and without a frame missing (every mini-GOP boundary).
    pub cut_points_ns: Vec<i64>,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// PTS of the first audio frame (0 when there is no audio).
    pub audio_start_ns: i64,
    /// End of the last audio frame.
    pub audio_end_ns: i64,
    pub width: u32,
    pub height: u32,
    /// Frame rate as a fraction.
    pub fps: (i32, i32),
    /// The avcC record (SPS/PPS) exactly as stored in the MP4.
    pub video_codec_data: Vec<u8>,
}

impl ScanInfo {
    /// Duration of the video.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.video_end_ns.max(0) as u64)
    }

    /// RFC 6381 name of the video codec (`avc1.PPCCLL`) from the avcC record: profile, constraint flags and level
    /// as the SPS really carries them, which is what a player filtering variants by CODECS must be told.
    pub fn video_codec_string(&self) -> Option<String> {
        let c = &self.video_codec_data;
        (c.len() >= 4 && c[0] == 1).then(|| format!("avc1.{:02x}{:02x}{:02x}", c[1], c[2], c[3]))
    }
}

#[derive(Default)]
struct Accumulator {
    info: ScanInfo,
    /// Highest frame index (by PTS) seen so far in decode order.
    max_frame: Option<i64>,
    first_audio: Option<i64>,
    last_sample: Option<Instant>,
    video_claimed: bool,
    audio_claimed: bool,
}

/// Scans a house-format MP4 (H.264 + AAC) by demuxing it; blocking.
pub fn scan(path: &Path) -> Result<ScanInfo, MediaError> {
    let what = format!("scan {}", path.display());
    init(&what)?;
    std::fs::metadata(path).map_err(|source| MediaError::io(&what, path, source))?;
    let pipeline_error = |reason: String| PipelineError::Build { what: what.clone(), reason };
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path)
        .build()
        .map_err(|e| pipeline_error(format!("filesrc: {e}")))?;
    let demux = gst::ElementFactory::make("qtdemux").build().map_err(|e| pipeline_error(format!("qtdemux: {e}")))?;
    pipeline.add_many([&src, &demux]).map_err(|e| pipeline_error(e.to_string()))?;
    src.link(&demux).map_err(|e| pipeline_error(e.to_string()))?;

    let acc = Arc::new(Mutex::new(Accumulator { last_sample: Some(Instant::now()), ..Default::default() }));
    let weak = pipeline.downgrade();
    let acc_pads = acc.clone();
    demux.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else { return };
        let kind = pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name().to_string())).unwrap_or_default();
        let video = match kind.as_str() {
            "video/x-h264" => Some(true),
            "audio/mpeg" => Some(false),
            _ => None,
        };
        // Only the first H.264 and the first AAC track are the asset; anything else is drained so the demuxer keeps
        // going. (A failure here leaves the pad unlinked, and qtdemux then reports "not linked" on the bus.)
        let claimed = video.filter(|&v| {
            let mut state = acc_pads.lock().unwrap_or_else(PoisonError::into_inner);
            let taken = if v { &mut state.video_claimed } else { &mut state.audio_claimed };
            !std::mem::replace(taken, true)
        });
        let _ = attach(&pipeline, pad, claimed.map(|v| (v, acc_pads.clone())));
    });
    demux.connect_no_more_pads(|demux| {
        if !demux.src_pads().iter().any(|p| p.name().starts_with("video")) {
            post_no_video(demux);
        }
    });

    let started = Instant::now();
    let mut tick = || {
        let mut state = acc.lock().unwrap_or_else(PoisonError::into_inner);
        let duration = demux.query_duration::<gst::ClockTime>().map(|d| Duration::from_nanos(d.nseconds()));
        let budget = SCAN_TIMEOUT_BASE + duration.unwrap_or_default() / 10;
        let stalled = state.last_sample.get_or_insert_with(Instant::now).elapsed() > SCAN_TIMEOUT_BASE;
        if started.elapsed() > budget || stalled {
            return Err(PipelineError::Timeout {
                what: what.clone(),
                elapsed: started.elapsed(),
                reason: format!("{} video frames read", state.info.video_frames),
            });
        }
        Ok(())
    };
    // The scanned file's reader and demuxer read the input; the queues and sinks are ours.
    let inputs = Inputs::new([src.clone(), demux.clone()]);
    run_until_eos(&pipeline, &what, &inputs, &mut tick, &|| {})?;
    let state = acc.lock().unwrap_or_else(PoisonError::into_inner);
    if state.info.video_frames == 0 {
        return Err(PipelineError::NoVideo { what }.into());
    }
    let mut info = state.info.clone();
    info.keyframes_ns.sort_unstable();
    Ok(info)
}

/// Hangs `queue ! appsink` (or `queue ! fakesink` when `collect` is None) off a demuxer pad. The queue gives each
/// sink its own thread, so one sink waiting for preroll cannot starve the other.
fn attach(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    collect: Option<(bool, Arc<Mutex<Accumulator>>)>,
) -> Result<(), gst::glib::BoolError> {
    let queue = gst::ElementFactory::make("queue").build()?;
    let sink = match &collect {
        Some(_) => gst::ElementFactory::make("appsink")
            .property("sync", false)
            .property("enable-last-sample", false)
            .build()?,
        None => gst::ElementFactory::make("fakesink").property("sync", false).build()?,
    };
    pipeline.add_many([&queue, &sink])?;
    queue.link(&sink)?;
    if let Some((video, acc)) = collect {
        if let Ok(appsink) = sink.clone().downcast::<gst_app::AppSink>() {
            appsink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |appsink| {
                        let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let mut state = acc.lock().unwrap_or_else(PoisonError::into_inner);
                        state.last_sample = Some(Instant::now());
                        if video {
                            add_video(&mut state, &sample);
                        } else {
                            add_audio(&mut state, &sample);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
    }
    queue.sync_state_with_parent()?;
    sink.sync_state_with_parent()?;
    let queue_sink = queue.static_pad("sink").ok_or_else(|| gst::glib::bool_error!("queue without sink pad"))?;
    pad.link(&queue_sink).map_err(|e| gst::glib::bool_error!("cannot link {}: {e:?}", pad.name()))?;
    Ok(())
}

fn signed_ns(t: gst::Signed<gst::ClockTime>) -> i64 {
    match t {
        gst::Signed::Positive(t) => t.nseconds() as i64,
        gst::Signed::Negative(t) => -(t.nseconds() as i64),
    }
}

/// (PTS, DTS, duration) of a sample as signed running times; DTS falls back to PTS. The first DTS is negative with
/// B-frames. The playout rebases with the same function, so the scan and the air agree to the nanosecond.
pub fn running_times(sample: &gst::Sample) -> Option<(i64, i64, i64)> {
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?.clone();
    let buffer = sample.buffer()?;
    let pts = signed_ns(segment.to_running_time_full(buffer.pts()?)?);
    let dts = match buffer.dts() {
        Some(dts) => signed_ns(segment.to_running_time_full(dts)?),
        None => pts,
    };
    Some((pts, dts, buffer.duration().map(|d| d.nseconds() as i64).unwrap_or(0)))
}

fn add_video(state: &mut Accumulator, sample: &gst::Sample) {
    if state.info.video_frames == 0 {
        if let Some(s) = sample.caps().and_then(|c| c.structure(0)) {
            state.info.width = s.get::<i32>("width").map(|w| w.max(0) as u32).unwrap_or(0);
            state.info.height = s.get::<i32>("height").map(|h| h.max(0) as u32).unwrap_or(0);
            state.info.fps = s.get::<gst::Fraction>("framerate").map(|f| (f.numer(), f.denom())).unwrap_or((0, 1));
            if let Ok(codec_data) = s.get::<gst::Buffer>("codec_data") {
                state.info.video_codec_data = codec_data.map_readable().map(|m| m.to_vec()).unwrap_or_default();
            }
        }
        state.info.first_dts_ns = i64::MAX;
    }
    let Some((pts, dts, duration)) = running_times(sample) else { return };
    let keyframe = sample.buffer().is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
    let info = &mut state.info;
    info.video_frames += 1;
    info.video_end_ns = info.video_end_ns.max(pts + duration);
    info.first_dts_ns = info.first_dts_ns.min(dts);
    if keyframe {
        info.keyframes_ns.push(pts);
    }
    // The decode-order prefix holds exactly the pictures [0, max] when their count matches the span. Positions come
    // from the frame rate where known: summing per-frame durations would drift from the rounded timestamps.
    let (num, den) = (i128::from(info.fps.0), i128::from(info.fps.1));
    let frame_at = |ns: i64| -> i64 {
        if num > 0 && den > 0 {
            ((i128::from(ns) * num + den * 500_000_000) / (den * 1_000_000_000)) as i64
        } else if duration > 0 {
            (ns + duration / 2) / duration
        } else {
            0
        }
    };
    let time_of = |frame: i64| -> i64 {
        if num > 0 && den > 0 {
            (i128::from(frame) * den * 1_000_000_000 / num) as i64
        } else {
            frame * duration
        }
    };
    let max_frame = state.max_frame.map_or(frame_at(pts), |m| m.max(frame_at(pts)));
    state.max_frame = Some(max_frame);
    if max_frame + 1 == info.video_frames as i64 {
        info.cut_points_ns.push(time_of(max_frame + 1));
    }
}

fn add_audio(state: &mut Accumulator, sample: &gst::Sample) {
    let Some((pts, _, duration)) = running_times(sample) else { return };
    let first = *state.first_audio.get_or_insert(pts);
    let info = &mut state.info;
    info.audio_frames += 1;
    info.audio_start_ns = first.min(pts);
    state.first_audio = Some(info.audio_start_ns);
    info.audio_end_ns = info.audio_end_ns.max(pts + duration);
}

#[cfg(test)]
mod tests {
    use crate::media::house_format::HouseFormat;
    use crate::media::test_support::{avcc, card, encode_quietly, ffprobe, keyframe_times, small};
    use crate::media::transcode::TestPattern;

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
}
