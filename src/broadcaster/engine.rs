//! The playout engine of one channel: splices house-format assets into one continuous MPEG-TS timeline with a remux
//! only — no decoder, no encoder on air.
//!
//! Each item is demuxed by its own short-lived pipeline ([`ItemDemux`]: `filesrc ! qtdemux` and two appsinks per
//! rung) whose samples are rebased here onto the output timeline and handed, in the demuxer's own thread, to the
//! rung's [`Segmenter`], which writes the HLS segments. The channel's output (one segmenter per rung) lives as long
//! as the channel. The next item is prerolled while the current one plays. Pacing: every item pipeline runs against one
//! fixed base time, so switching delays never accumulate; with `sync = false` the same code runs hours of content in
//! seconds (tests).
//!
//! The mechanics follow the findings in DESIGN.md ("Playout without re-encoding"): early buffers are gated until the
//! item is activated, the AAC priming frame is dropped, and audio is kept within half an AAC frame of video by
//! dropping a trailing frame or inserting a silent one.

use super::ts::{Adts, Audio, Avc, Closed, Segmenter, SegmenterSettings, Video};
use crate::media::demux::DemuxError;
use crate::media::demux::{DemuxSettings, ItemDemux, OnSample, Refusal, Stream};
use crate::media::scan::running_times;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// 1024 samples at 48 kHz: one AAC frame.
pub const AAC_FRAME_NS: i64 = 1024 * 1_000_000_000 / 48_000;
const HALF_AAC: i64 = AAC_FRAME_NS / 2;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{what}: {reason}")]
    Pipeline { what: String, reason: String },
    /// An item's pipeline failed (see [`ItemDemux`]).
    #[error(transparent)]
    Demux(#[from] DemuxError),
}

fn pipe_err(what: impl Into<String>, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Pipeline { what: what.into(), reason: reason.to_string() }
}

/// What the engine needs to know about the channel's output.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// `data_dir/hls/{channel}`: one folder per rung holds the segments.
    pub out_dir: PathBuf,
    pub rungs: Vec<String>,
    pub segment: Duration,
    /// The house format's GOP: segments hold whole GOPs up to `segment`.
    pub gop: Duration,
    pub frame_ns: i64,
    /// Pace against the system clock (true on air; false runs as fast as the CPU allows).
    pub sync: bool,
    /// Timeline origin: leaves room for the first item's negative DTS (B-frame delay). Tests move it next to the
    /// 33-bit MPEG-TS wrap.
    pub origin_ns: i64,
}

/// One thing to air: the same asset in every rung, with its pre-scan.
#[derive(Debug, Clone)]
pub struct Item {
    pub title: String,
    /// One file per rung, in ladder order.
    pub files: Vec<PathBuf>,
    pub duration_ns: i64,
    /// Keyframe PTS (from the asset's start): cut points for an emergency, resume points after a crash.
    pub keyframes_ns: Vec<i64>,
    /// Start this far into the asset (a keyframe), to resume after a crash.
    pub start_ns: i64,
    /// End here in the asset (a keyframe) instead of at its end: the planner cut it for a hard slot start.
    pub end_ns: Option<i64>,
}

/// Where an item lies on the output timeline (ns from the origin).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub video_start: i64,
    pub video_end: i64,
}

/// Counters the status view and the tests read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub items: u64,
    pub video_end_ns: i64,
    pub audio_end_ns: i64,
    /// Largest |audio end − video end| seen at an item boundary.
    pub max_av_offset_ns: i64,
    /// DTS that did not increase, or audio that overlapped or left a hole: 0 on a healthy channel.
    pub gaps: u64,
    pub audio_dropped: u64,
    pub audio_padded: u64,
    pub early_buffers: u64,
}

/// Per-rung running state of the output timeline.
struct Track {
    last_dts: i64,
    video_end: i64,
    audio_end: i64,
    video_done: bool,
    audio_done: bool,
}

/// Output-timeline state shared by the item pipelines' streaming threads.
struct Timeline {
    /// Offset of the current item's running time 0 on the output timeline.
    video_off: i64,
    audio_off: i64,
    /// Where the current item's video ends (its duration, or a cut point).
    item_end: i64,
    cut_at: Option<i64>,
    tracks: Vec<Track>,
    stats: Stats,
}

/// The channel's output: one segmenter per rung, written to by the item pipelines' streaming threads.
pub struct Output {
    rungs: Vec<Arc<Mutex<Segmenter>>>,
    closed: Receiver<Closed>,
}

impl Output {
    /// Opens the output; segments are named `{rung}/seg{index:08}.ts` from `first_index`.
    pub fn start(s: &EngineSettings, first_index: u64) -> Result<Output, EngineError> {
        let (tx, closed) = std::sync::mpsc::channel();
        let mut rungs = Vec::new();
        for (r, rung) in s.rungs.iter().enumerate() {
            let dir = s.out_dir.join(rung);
            std::fs::create_dir_all(&dir).map_err(|e| pipe_err(dir.display().to_string(), e))?;
            let settings = SegmenterSettings {
                rung: r,
                dir,
                first_index,
                target_ns: s.segment.as_nanos() as i64,
                gop_ns: s.gop.as_nanos() as i64,
            };
            rungs.push(Arc::new(Mutex::new(Segmenter::new(settings, tx.clone()))));
        }
        Ok(Output { rungs, closed })
    }

    pub fn rungs(&self) -> usize {
        self.rungs.len()
    }

    /// Segments closed on some rung since the last call.
    pub fn closed(&self) -> impl Iterator<Item = Closed> + '_ {
        self.closed.try_iter()
    }

    /// The first write error of any rung (the output must then be rebuilt).
    pub fn failure(&self) -> Option<EngineError> {
        self.rungs.iter().find_map(|r| relock(r).failure().map(|f| pipe_err("segment writer", f)))
    }

    /// Writes what is queued and closes the open segments (only on shutdown: on air the stream never ends).
    pub fn finish(&self) {
        for r in &self.rungs {
            relock(r).finish();
        }
    }
}

/// Locks a mutex even if a streaming thread panicked while holding it: the data is still the best we have.
pub(crate) fn relock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Samples that arrive before the item is activated: appsink hands out buffers whose DTS lies before the segment
/// start (the IDR and the next frame when B-frames are used) even in PAUSED.
struct Gate {
    active: bool,
    held: Vec<gst::Sample>,
}

/// How a route's samples are framed for MPEG-TS, read from the first sample's caps.
enum Codec {
    Avc(Arc<Avc>),
    Aac(Adts),
}

struct Route {
    rung: usize,
    video: bool,
    out: Arc<Mutex<Segmenter>>,
    gate: Mutex<Gate>,
    codec: OnceLock<Result<Codec, String>>,
}

impl Route {
    fn codec(&self, sample: &gst::Sample) -> &Result<Codec, String> {
        self.codec.get_or_init(|| {
            let caps = sample.caps().ok_or("sample without caps")?;
            if self.video {
                Avc::from_caps(caps).map(|avc| Codec::Avc(Arc::new(avc)))
            } else {
                Adts::from_caps(caps).map(Codec::Aac)
            }
        })
    }
}

/// One item's demux pipeline, prerolled and waiting to be activated.
pub struct ItemPipeline {
    demux: ItemDemux,
    routes: Vec<Arc<Route>>,
    pub item: Item,
}

/// The timeline shared by every item of one output.
#[derive(Clone)]
pub struct Splicer {
    tl: Arc<Mutex<Timeline>>,
    /// One silent raw AAC frame and its framing: fills audio up to the video end of an item.
    silence: (Adts, gst::Buffer),
    origin: i64,
    frame_ns: i64,
}

fn segment_start_ns(sample: &gst::Sample) -> i64 {
    sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>().and_then(|s| s.start()))
        .map(|t| t.nseconds() as i64)
        .unwrap_or(0)
}

fn clock_time(ns: i64) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(ns.max(0) as u64)
}

impl Splicer {
    /// `silence` is one silent AAC frame in ADTS framing.
    pub fn new(rungs: usize, silence: &gst::Buffer, origin: i64, frame_ns: i64) -> Result<Splicer, EngineError> {
        let silence = {
            let map = silence.map_readable().map_err(|e| pipe_err("silent AAC frame", e))?;
            let (adts, header) = Adts::from_adts_frame(&map).map_err(|e| pipe_err("silent AAC frame", e))?;
            let raw = silence
                .copy_region(gst::BufferCopyFlags::MEMORY, header..)
                .map_err(|e| pipe_err("silent AAC frame", e))?;
            (adts, raw)
        };
        let tracks = (0..rungs)
            .map(|_| Track { last_dts: i64::MIN, video_end: 0, audio_end: 0, video_done: false, audio_done: false })
            .collect();
        let tl = Timeline { video_off: 0, audio_off: 0, item_end: 0, cut_at: None, tracks, stats: Stats::default() };
        Ok(Splicer { tl: Arc::new(Mutex::new(tl)), silence, origin, frame_ns })
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// End of the video on the output timeline (ns from the origin).
    pub fn video_end(&self) -> i64 {
        self.lock().tracks.first().map(|t| t.video_end).unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timeline> {
        relock(&self.tl)
    }

    /// Builds and prerolls the demux pipeline of `item` (PAUSED); its buffers wait behind the gate.
    pub fn prepare(
        &self,
        item: Item,
        output: &Output,
        sync: bool,
        clock: &gst::Clock,
    ) -> Result<ItemPipeline, EngineError> {
        if item.files.len() != output.rungs() {
            return Err(pipe_err(&item.title, format!("{} renditions for {} rungs", item.files.len(), output.rungs())));
        }
        let mut routes = Vec::new();
        let settings = DemuxSettings { title: &item.title, files: &item.files, sync, clock, start_ns: item.start_ns };
        let demux = ItemDemux::open(&settings, |Stream { rung, video }| -> OnSample {
            let route = Arc::new(Route {
                rung,
                video,
                out: output.rungs[rung].clone(),
                gate: Mutex::new(Gate { active: false, held: Vec::new() }),
                codec: OnceLock::new(),
            });
            routes.push(route.clone());
            let splicer = self.clone();
            Box::new(move |sample| {
                if let Err(reason) = route.codec(&sample) {
                    return Err(Refusal::Unfit(reason.clone()));
                }
                let mut gate = relock(&route.gate);
                if !gate.active {
                    gate.held.push(sample);
                    return Ok(gst::FlowSuccess::Ok);
                }
                drop(gate);
                splicer.push(sample, &route).map_err(Refusal::Flow)
            })
        })?;
        Ok(ItemPipeline { demux, routes, item })
    }

    /// Places the item at the end of the timeline (or at a cut inside it) and lets its buffers flow.
    pub fn activate(&self, p: &ItemPipeline, base_time: Option<gst::ClockTime>) -> Result<Placement, EngineError> {
        p.demux.wait_preroll()?;
        if let Some(e) = p.error() {
            return Err(e);
        }
        let placement = {
            let mut t = self.lock();
            let start = t.tracks.first().map(|tr| tr.video_end).unwrap_or(0);
            let audio_start = t.tracks.first().map(|tr| tr.audio_end).unwrap_or(0);
            t.video_off = start;
            t.audio_off = audio_start;
            t.item_end = start + (p.item.duration_ns - p.item.start_ns).max(0);
            t.cut_at = None;
            for tr in t.tracks.iter_mut() {
                tr.video_done = false;
                tr.audio_done = false;
            }
            Placement { video_start: start, video_end: t.item_end }
        };
        if let Some(base) = base_time {
            p.demux.set_base_time(base + clock_time(placement.video_start));
        }
        for route in &p.routes {
            let mut held = {
                let mut gate = relock(&route.gate);
                gate.active = true;
                std::mem::take(&mut gate.held)
            };
            if p.item.start_ns > 0 {
                // Resuming: what arrived before the seek (segment from 0) was flushed away by it.
                held.retain(|s| segment_start_ns(s) >= p.item.start_ns - self.frame_ns);
            }
            self.lock().stats.early_buffers += held.len() as u64;
            for sample in held {
                self.push(sample, route).map_err(|e| pipe_err(&p.item.title, format!("push held buffer: {e:?}")))?;
            }
        }
        p.demux.play()?;
        Ok(placement)
    }

    /// Asks the current item to stop at its first keyframe after `after_ns` (timeline). Returns the cut point, or
    /// None when no keyframe is left before the item's end (it then simply ends).
    pub fn cut(&self, item: &Item, placement: Placement, after_ns: i64) -> Option<i64> {
        let mut t = self.lock();
        let rel = after_ns - placement.video_start + item.start_ns;
        let key = item.keyframes_ns.iter().copied().find(|&k| k > rel && k < item.duration_ns)?;
        let at = placement.video_start + key - item.start_ns;
        t.cut_at = Some(at);
        t.item_end = at;
        Some(at)
    }

    /// True once every stream has passed a requested cut point.
    pub fn past_cut(&self) -> bool {
        let t = self.lock();
        t.cut_at.is_some() && t.tracks.iter().all(|tr| tr.video_done && tr.audio_done)
    }

    /// Rebases one encoded buffer onto the output timeline and pushes it.
    fn push(&self, sample: gst::Sample, route: &Route) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (pts_rt, dts_rt, dur0) = running_times(&sample).ok_or(gst::FlowError::Error)?;
        // An AAC frame always holds 1024 samples; the demuxer shortens the last one's duration to the edit list's
        // end, which would hide that its samples run past the video.
        let dur = match (route.video, dur0 > 0) {
            (true, true) => dur0,
            (true, false) => self.frame_ns,
            (false, _) => AAC_FRAME_NS,
        };
        let Some(buffer) = sample.buffer_owned() else { return Ok(gst::FlowSuccess::Ok) };
        let (pts, dts) = {
            let mut t = self.lock();
            let Timeline { video_off, audio_off, item_end, cut_at, ref mut tracks, ref mut stats } = *t;
            let track = &mut tracks[route.rung];
            if route.video {
                let pts = video_off + pts_rt;
                let dts = video_off + dts_rt;
                if cut_at.is_some_and(|c| pts >= c) {
                    track.video_done = true;
                    return Ok(gst::FlowSuccess::Ok);
                }
                if dts <= track.last_dts {
                    stats.gaps += 1;
                    tracing::warn!("rung {}: DTS {} not after {}", route.rung, dts, track.last_dts);
                }
                track.last_dts = dts;
                track.video_end = track.video_end.max(pts + dur);
                (pts, dts)
            } else {
                if pts_rt + dur <= 0 {
                    // AAC priming frame, entirely before the edit list's start.
                    return Ok(gst::FlowSuccess::Ok);
                }
                let pts = audio_off + pts_rt;
                if pts + dur > item_end + HALF_AAC {
                    // Past the item's video end: dropping keeps |A − V| ≤ ½ AAC frame.
                    track.audio_done = true;
                    if route.rung == 0 {
                        stats.audio_dropped += 1;
                    }
                    return Ok(gst::FlowSuccess::Ok);
                }
                if (pts - track.audio_end).abs() > HALF_AAC && track.audio_end > 0 {
                    stats.gaps += 1;
                    tracing::warn!("rung {}: audio at {} but previous ended {}", route.rung, pts, track.audio_end);
                }
                track.audio_end = pts + dur;
                (pts, pts)
            }
        };
        let mut out = relock(&route.out);
        match route.codec(&sample) {
            Ok(Codec::Avc(avc)) => out.push_video(Video {
                pts: self.origin + pts,
                dts: self.origin + dts,
                duration: dur,
                keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                data: buffer,
                avc: avc.clone(),
            }),
            Ok(Codec::Aac(adts)) => out.push_audio(Audio { pts: self.origin + pts, data: buffer, adts: *adts }),
            Err(_) => return Err(gst::FlowError::NotNegotiated),
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Starts the timeline's audio one silent AAC frame before its video: the first segment then opens like every
    /// later one (video DTS, then audio, then the first video PTS). Audio that starts exactly at the first frame's
    /// PTS, after its DTS, makes hls.js see a hole at the start and seek over it (`bufferSeekOverHole`).
    pub fn lead_in(&self, output: &Output) {
        let (adts, silence) = &self.silence;
        for rung in &output.rungs {
            relock(rung).push_audio(Audio { pts: self.origin - AAC_FRAME_NS, data: silence.clone(), adts: *adts });
        }
    }

    /// Closes the item on the timeline: pads audio with silent frames up to the video end, records the boundary.
    pub fn finish_item(&self, output: &Output) {
        let mut pads = Vec::new();
        {
            let mut t = self.lock();
            let end = t.cut_at.unwrap_or_else(|| t.tracks.first().map(|tr| tr.video_end).unwrap_or(0));
            for (r, tr) in t.tracks.iter_mut().enumerate() {
                // A cut drops the rest of the item: the timeline continues from the cut point.
                tr.video_end = end;
                while tr.audio_end < end - HALF_AAC {
                    pads.push((r, tr.audio_end));
                    tr.audio_end += AAC_FRAME_NS;
                }
            }
            let a_end = t.tracks.first().map(|tr| tr.audio_end).unwrap_or(0);
            t.stats.items += 1;
            t.stats.video_end_ns = end;
            t.stats.audio_end_ns = a_end;
            t.stats.max_av_offset_ns = t.stats.max_av_offset_ns.max((a_end - end).abs());
            t.stats.audio_padded += pads.iter().filter(|(r, _)| *r == 0).count() as u64;
            t.cut_at = None;
        }
        let (adts, silence) = &self.silence;
        for (r, pts) in pads {
            relock(&output.rungs[r]).push_audio(Audio { pts: self.origin + pts, data: silence.clone(), adts: *adts });
        }
    }
}

impl ItemPipeline {
    /// The first error the item pipeline posted, naming the element and file.
    pub fn error(&self) -> Option<EngineError> {
        self.demux.error().map(EngineError::from)
    }

    /// Waits up to `wait` for the item to end; Ok(true) at EOS.
    pub fn poll_end(&self, wait: Duration) -> Result<bool, EngineError> {
        Ok(self.demux.poll_end(wait)?)
    }

    pub fn stop(&self) {
        self.demux.stop();
    }
}
