//! The playout engine of one channel: splices house-format assets into one continuous MPEG-TS timeline with a remux
//! only — no decoder, no encoder on air.
//!
//! One persistent output pipeline per channel (per rung: `appsrc ! h264parse ! splitmuxsink(mpegtsmux)` for video
//! and `appsrc ! aacparse` into the same splitmuxsink for audio). Each item is demuxed by its own short-lived
//! pipeline whose appsinks hand over *encoded* buffers; their PTS/DTS are rebased onto the output timeline. The next
//! item is prerolled while the current one plays. Pacing: every item pipeline runs against one fixed base time, so
//! switching delays never accumulate; with `sync = false` the same code runs hours of content in seconds (tests).
//!
//! The mechanics follow the findings in DESIGN.md ("Playout without re-encoding"): early buffers are gated until the
//! item is activated, the AAC priming frame is dropped, audio is kept within half an AAC frame of video by dropping a
//! trailing frame or inserting a silent one, and pushed buffers never carry DISCONT.

use crate::media::scan::running_times;
use gst::prelude::*;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 1024 samples at 48 kHz: one AAC frame.
pub const AAC_FRAME_NS: i64 = 1024 * 1_000_000_000 / 48_000;
const HALF_AAC: i64 = AAC_FRAME_NS / 2;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{what}: {reason}")]
    Pipeline { what: String, reason: String },
    #[error("{file}: cannot demux: {reason}")]
    Demux { file: String, reason: String },
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

/// A persistent output pipeline: per rung one video and one audio appsrc feeding a splitmuxsink.
pub struct Output {
    pub pipeline: gst::Pipeline,
    video: Vec<gst_app::AppSrc>,
    audio: Vec<gst_app::AppSrc>,
}

impl Output {
    /// Builds and starts the output pipeline; segments are named `{rung}/seg{index:08}.ts` from `first_index`.
    pub fn start(s: &EngineSettings, first_index: u64) -> Result<Output, EngineError> {
        let pipeline = gst::Pipeline::with_name("output");
        let mut video = Vec::new();
        let mut audio = Vec::new();
        for (r, rung) in s.rungs.iter().enumerate() {
            let dir = s.out_dir.join(rung);
            std::fs::create_dir_all(&dir).map_err(|e| pipe_err(dir.display().to_string(), e))?;
            let make = |factory: &str, name: String| {
                gst::ElementFactory::make(factory).name(name).build().map_err(|e| pipe_err(factory, e))
            };
            let caps_v = gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build();
            let caps_a =
                gst::Caps::builder("audio/mpeg").field("mpegversion", 4i32).field("stream-format", "adts").build();
            let src_v = appsrc(&format!("v{r}"), &caps_v);
            let src_a = appsrc(&format!("a{r}"), &caps_a);
            let parse_v = make("h264parse", format!("vparse{r}"))?;
            parse_v.set_property("config-interval", -1i32);
            let parse_a = make("aacparse", format!("aparse{r}"))?;
            let mux = make("mpegtsmux", format!("mux{r}"))?;
            let split = make("splitmuxsink", format!("split{r}"))?;
            split.set_property("muxer", &mux);
            split.set_property("max-size-time", s.segment.as_nanos() as u64);
            split.set_property("send-keyframe-requests", false);
            split.set_property("location", dir.join("seg%08d.ts").to_string_lossy().to_string());
            split.set_property("start-index", i32::try_from(first_index).unwrap_or(i32::MAX));
            pipeline
                .add_many([src_v.upcast_ref(), &parse_v, src_a.upcast_ref(), &parse_a, &split])
                .map_err(|e| pipe_err("output", e))?;
            // No queues here: each appsrc already runs its own streaming thread and splitmuxsink queues its inputs;
            // every extra hand-off costs a context switch per buffer, which is most of what playout costs.
            src_v.link(&parse_v).map_err(|e| pipe_err("output video", e))?;
            src_a.link(&parse_a).map_err(|e| pipe_err("output audio", e))?;
            parse_v.link_pads(None, &split, Some("video")).map_err(|e| pipe_err("splitmuxsink video", e))?;
            parse_a.link_pads(None, &split, Some("audio_%u")).map_err(|e| pipe_err("splitmuxsink audio", e))?;
            video.push(src_v);
            audio.push(src_a);
        }
        pipeline.set_state(gst::State::Playing).map_err(|e| pipe_err("output", e))?;
        Ok(Output { pipeline, video, audio })
    }

    pub fn rungs(&self) -> usize {
        self.video.len()
    }

    /// Ends the stream cleanly (only on shutdown: on air no EOS ever reaches the sink).
    pub fn finish(&self, wait: Duration) {
        for s in self.video.iter().chain(&self.audio) {
            let _ = s.end_of_stream();
        }
        if let Some(bus) = self.pipeline.bus() {
            let _ = bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(wait.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn appsrc(name: &str, caps: &gst::Caps) -> gst_app::AppSrc {
    // Non-live, blocking, bounded by time: back-pressure reaches the item pipelines instead of buffering hours.
    gst_app::AppSrc::builder()
        .name(name)
        .caps(caps)
        .format(gst::Format::Time)
        .is_live(false)
        .block(true)
        .max_bytes(0)
        .max_buffers(0)
        .max_time(gst::ClockTime::SECOND)
        .build()
}

/// Samples that arrive before the item is activated: appsink hands out buffers whose DTS lies before the segment
/// start (the IDR and the next frame when B-frames are used) even in PAUSED.
struct Gate {
    active: bool,
    held: Vec<gst::Sample>,
}

struct Route {
    rung: usize,
    video: bool,
    src: gst_app::AppSrc,
    gate: Mutex<Gate>,
    /// Rebased buffers waiting to be handed to the output as one list (see [`BATCH_NS`]).
    batch: Mutex<Vec<gst::Buffer>>,
}

/// Buffers reach the output in lists spanning about this much media time: one wake-up of the output's threads per
/// list instead of per buffer. Pacing is unaffected (the item pipeline still waits for each buffer's time); the
/// output only sees data up to this much later, which nobody can tell in a 4 s segment.
const BATCH_NS: i64 = 200_000_000;

impl Route {
    fn lock_batch(&self) -> std::sync::MutexGuard<'_, Vec<gst::Buffer>> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a buffer; hands the batch over once it spans [`BATCH_NS`].
    fn send(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let full = {
            let mut batch = self.lock_batch();
            batch.push(buffer);
            let span = match (batch.first().and_then(|b| b.dts_or_pts()), batch.last().and_then(|b| b.dts_or_pts())) {
                (Some(a), Some(b)) => b.nseconds().saturating_sub(a.nseconds()) as i64,
                _ => 0,
            };
            if span >= BATCH_NS {
                std::mem::take(&mut *batch)
            } else {
                return Ok(gst::FlowSuccess::Ok);
            }
        };
        self.push_list(full)
    }

    /// Hands over whatever is waiting (at the end of an item, before silence is appended).
    fn flush(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let pending = std::mem::take(&mut *self.lock_batch());
        if pending.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        self.push_list(pending)
    }

    fn push_list(&self, buffers: Vec<gst::Buffer>) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut list = gst::BufferList::new_sized(buffers.len());
        {
            let l = list.get_mut().ok_or(gst::FlowError::Error)?;
            for b in buffers {
                l.add(b);
            }
        }
        self.src.push_buffer_list(list)
    }
}

/// One item's demux pipeline, prerolled and waiting to be activated.
pub struct ItemPipeline {
    pipeline: gst::Pipeline,
    routes: Vec<Arc<Route>>,
    pub item: Item,
}

impl Drop for ItemPipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The timeline shared by every item of one output pipeline.
#[derive(Clone)]
pub struct Splicer {
    tl: Arc<Mutex<Timeline>>,
    silence: gst::Buffer,
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
    pub fn new(rungs: usize, silence: gst::Buffer, origin: i64, frame_ns: i64) -> Splicer {
        let tracks = (0..rungs)
            .map(|_| Track { last_dts: i64::MIN, video_end: 0, audio_end: 0, video_done: false, audio_done: false })
            .collect();
        let tl = Timeline { video_off: 0, audio_off: 0, item_end: 0, cut_at: None, tracks, stats: Stats::default() };
        Splicer { tl: Arc::new(Mutex::new(tl)), silence, origin, frame_ns }
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// End of the video on the output timeline (ns from the origin).
    pub fn video_end(&self) -> i64 {
        self.lock().tracks.first().map(|t| t.video_end).unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timeline> {
        // A poisoned lock means a streaming thread panicked mid-update; the data is still the best we have.
        self.tl.lock().unwrap_or_else(|p| p.into_inner())
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
        let pipeline = gst::Pipeline::with_name(&format!(
            "item-{}",
            item.title.chars().filter(|c| c.is_alphanumeric()).take(24).collect::<String>()
        ));
        let mut routes = Vec::new();
        for (r, file) in item.files.iter().enumerate() {
            let file_err = |reason: String| EngineError::Demux { file: file.display().to_string(), reason };
            if !file.is_file() {
                return Err(file_err("file is missing".into()));
            }
            let make = |f: &str| gst::ElementFactory::make(f).build().map_err(|e| file_err(format!("{f}: {e}")));
            let src = make("filesrc")?;
            src.set_property("location", file.to_string_lossy().to_string());
            let demux = make("qtdemux")?;
            pipeline.add_many([&src, &demux]).map_err(|e| file_err(e.to_string()))?;
            src.link(&demux).map_err(|e| file_err(e.to_string()))?;
            let mut branches = Vec::new();
            for video in [true, false] {
                let parse = make(if video { "h264parse" } else { "aacparse" })?;
                let caps = if video {
                    gst::Caps::builder("video/x-h264")
                        .field("stream-format", "byte-stream")
                        .field("alignment", "au")
                        .build()
                } else {
                    gst::Caps::builder("audio/mpeg").field("stream-format", "adts").build()
                };
                let filter = gst::ElementFactory::make("capsfilter")
                    .property("caps", &caps)
                    .build()
                    .map_err(|e| file_err(e.to_string()))?;
                // One streaming thread per file (qtdemux's) feeds both sinks, no queues: every hand-off between
                // threads costs a context switch per buffer. Without queues the two sinks cannot both preroll from
                // that one thread, so they do not preroll (async=false); the gate below holds what arrives early.
                let sink = gst_app::AppSink::builder()
                    .sync(sync)
                    .async_(false)
                    .enable_last_sample(false)
                    .max_buffers(0)
                    .build();
                pipeline.add_many([&parse, &filter, sink.upcast_ref()]).map_err(|e| file_err(e.to_string()))?;
                gst::Element::link_many([&parse, &filter, sink.upcast_ref()]).map_err(|e| file_err(e.to_string()))?;
                let out = if video { output.video[r].clone() } else { output.audio[r].clone() };
                let route = Arc::new(Route {
                    rung: r,
                    video,
                    src: out,
                    gate: Mutex::new(Gate { active: false, held: Vec::new() }),
                    batch: Mutex::new(Vec::new()),
                });
                let splicer = self.clone();
                let rt = route.clone();
                sink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            let mut gate = rt.gate.lock().unwrap_or_else(|p| p.into_inner());
                            if !gate.active {
                                gate.held.push(sample);
                                return Ok(gst::FlowSuccess::Ok);
                            }
                            drop(gate);
                            splicer.push(sample, &rt)
                        })
                        .build(),
                );
                routes.push(route);
                branches.push((video, parse));
            }
            // qtdemux pads appear at preroll; link the first video and first audio stream, ignore the rest.
            let branches = Arc::new(Mutex::new(branches));
            demux.connect_pad_added(move |_, pad| {
                let name = pad.name();
                let want_video = name.starts_with("video_");
                if !want_video && !name.starts_with("audio_") {
                    return;
                }
                let mut b = branches.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(pos) = b.iter().position(|(v, _)| *v == want_video) {
                    let (_, parse) = b.remove(pos);
                    if let Some(sinkpad) = parse.static_pad("sink") {
                        let _ = pad.link(&sinkpad);
                    }
                }
            });
        }
        pipeline.use_clock(Some(clock));
        // We manage base_time ourselves: absolute, drift-free pacing of every item against one base.
        pipeline.set_start_time(gst::ClockTime::NONE);
        pipeline.set_state(gst::State::Paused).map_err(|e| pipe_err(&item.title, e))?;
        let prepared = ItemPipeline { pipeline, routes, item };
        if prepared.item.start_ns > 0 {
            prepared.wait_preroll()?;
            prepared
                .pipeline
                .seek_simple(
                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                    clock_time(prepared.item.start_ns),
                )
                .map_err(|e| pipe_err(&prepared.item.title, format!("seek to {} ns: {e}", prepared.item.start_ns)))?;
        }
        Ok(prepared)
    }

    /// Places the item at the end of the timeline (or at a cut inside it) and lets its buffers flow.
    pub fn activate(&self, p: &ItemPipeline, base_time: Option<gst::ClockTime>) -> Result<Placement, EngineError> {
        p.wait_preroll()?;
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
            p.pipeline.set_base_time(base + clock_time(placement.video_start));
        }
        for route in &p.routes {
            let mut held = {
                let mut gate = route.gate.lock().unwrap_or_else(|p| p.into_inner());
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
        p.pipeline.set_state(gst::State::Playing).map_err(|e| pipe_err(&p.item.title, e))?;
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
        let dur = if dur0 > 0 {
            dur0
        } else if route.video {
            self.frame_ns
        } else {
            AAC_FRAME_NS
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
        let mut buffer = buffer;
        {
            let b = buffer.make_mut();
            b.set_pts(clock_time(self.origin + pts));
            b.set_dts(clock_time(self.origin + dts));
            b.set_duration(clock_time(dur));
            // GST_BUFFER_OFFSET_NONE: the demuxer's byte offsets mean nothing on the output timeline.
            b.set_offset(u64::MAX);
            b.set_offset_end(u64::MAX);
            b.unset_flags(gst::BufferFlags::DISCONT);
        }
        // Buffers (lists), never samples: the persistent caps stay; no caps event per item.
        route.send(buffer)
    }

    /// Closes the item on the timeline: pads audio with silent frames up to the video end, records the boundary.
    pub fn finish_item(&self, item: &ItemPipeline, output: &Output) -> Result<(), EngineError> {
        for route in &item.routes {
            route.flush().map_err(|e| pipe_err(&item.item.title, format!("flush: {e:?}")))?;
        }
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
        for (r, pts) in pads {
            let mut b = self.silence.copy();
            {
                let bm = b.make_mut();
                bm.set_pts(clock_time(self.origin + pts));
                bm.set_dts(clock_time(self.origin + pts));
                bm.set_duration(clock_time(AAC_FRAME_NS));
            }
            output.audio[r].push_buffer(b).map_err(|e| pipe_err("output audio", format!("silence: {e:?}")))?;
        }
        Ok(())
    }
}

impl ItemPipeline {
    fn wait_preroll(&self) -> Result<(), EngineError> {
        let (res, _, _) = self.pipeline.state(gst::ClockTime::from_seconds(20));
        if res.is_err() {
            return Err(self.error().unwrap_or_else(|| pipe_err(&self.item.title, "did not preroll within 20 s")));
        }
        Ok(())
    }

    /// The first error the item pipeline posted, naming the element and file.
    pub fn error(&self) -> Option<EngineError> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        if let gst::MessageView::Error(e) = msg.view() {
            let element = e.src().map(|s| s.path_string().to_string()).unwrap_or_default();
            return Some(EngineError::Demux {
                file: self.item.files.first().map(|f| f.display().to_string()).unwrap_or_default(),
                reason: format!("{element}: {}", e.error()),
            });
        }
        None
    }

    /// Waits up to `wait` for the item to end; Ok(true) at EOS.
    pub fn poll_end(&self, wait: Duration) -> Result<bool, EngineError> {
        let Some(bus) = self.pipeline.bus() else { return Ok(true) };
        match bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(wait.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            None => Ok(false),
            Some(msg) => match msg.view() {
                gst::MessageView::Eos(_) => Ok(true),
                gst::MessageView::Error(e) => Err(EngineError::Demux {
                    file: self.item.files.first().map(|f| f.display().to_string()).unwrap_or_default(),
                    reason: format!(
                        "{}: {}",
                        e.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                        e.error()
                    ),
                }),
                _ => Ok(false),
            },
        }
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
