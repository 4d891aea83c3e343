//! The playout's item pipeline: one scheduled item's renditions demuxed (`filesrc ! qtdemux` per rung, the first
//! video and the first audio stream each into an appsink) and their encoded samples handed to the broadcaster.
//!
//! The demuxer's own thread feeds both sinks of its rung — no parser, no queue: the broadcaster frames MP4 samples
//! for MPEG-TS itself, and every hand-off between threads costs a context switch per buffer. Without queues the two
//! sinks cannot both preroll from that one thread, so they do not preroll (`async=false`); the broadcaster holds what
//! arrives early. Pacing is the broadcaster's too: it gives every item pipeline the channel's clock and sets the base
//! time itself ([`ItemDemux::set_base_time`]), so switching delays never accumulate.

use super::pipeline::{bus_error, ElementFailure, Fault, Inputs};
use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long an item may take to preroll.
const PREROLL_LIMIT: Duration = Duration::from_secs(20);

/// One demuxed stream: the rung (the index of its file) and whether it is the video or the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    pub rung: usize,
    pub video: bool,
}

/// Why a sample handler does not take a sample.
#[derive(Debug)]
pub enum Refusal {
    /// The stream cannot be aired (its caps cannot be framed): posted on the bus as a format error naming the file,
    /// and the stream stops as not negotiated.
    Unfit(String),
    /// The stream stops with this flow.
    Flow(gst::FlowError),
}

/// What receives one stream's samples, in the demuxer's streaming thread.
pub type OnSample = Box<dyn FnMut(gst::Sample) -> Result<gst::FlowSuccess, Refusal> + Send>;

/// What to demux.
pub struct DemuxSettings<'a> {
    /// How errors name the item.
    pub title: &'a str,
    /// One file per rung, in ladder order.
    pub files: &'a [PathBuf],
    /// Pace the sinks against the clock (true on air; false runs as fast as the CPU allows).
    pub sync: bool,
    pub clock: &'a gst::Clock,
    /// Start this far into the files (ns, a keyframe), to resume after a crash.
    pub start_ns: i64,
}

/// An item's renditions could not be demuxed.
#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
    /// A rendition cannot be opened or its pipeline built.
    #[error("{file}: cannot demux: {reason}")]
    File { file: String, reason: String },
    /// An element of the item pipeline failed.
    #[error("{file}: cannot demux: {failure}")]
    Element { file: String, failure: ElementFailure },
    /// The item pipeline would not start, preroll or seek.
    #[error("{title}: {reason}")]
    Item { title: String, reason: String },
}

impl DemuxError {
    /// Whose fault the failure is, when an element failed.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            DemuxError::Element { failure, .. } => Some(failure.fault),
            _ => None,
        }
    }
}

/// One item's demux pipeline, prerolled (PAUSED) until [`ItemDemux::play`]. Dropping it stops it.
pub struct ItemDemux {
    pipeline: gst::Pipeline,
    /// Every rung's filesrc and qtdemux: their errors are the renditions'.
    inputs: Inputs,
    title: String,
    /// How errors name the renditions: the first one.
    file: String,
    /// Demuxers that have added all their pads: a seek before then reaches sinks not linked yet, and fails.
    ready: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for ItemDemux {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl ItemDemux {
    /// Builds the pipeline of `settings.files`, asking `on_stream` for the handler of each stream (rung by rung, the
    /// video first), and prerolls it; resuming (`start_ns` > 0), it then seeks to the keyframe at or before
    /// `start_ns`. Samples may reach the handlers before this returns.
    pub fn open(
        settings: &DemuxSettings,
        mut on_stream: impl FnMut(Stream) -> OnSample,
    ) -> Result<ItemDemux, DemuxError> {
        let title = settings.title;
        let pipeline = gst::Pipeline::with_name(&format!(
            "item-{}",
            title.chars().filter(|c| c.is_alphanumeric()).take(24).collect::<String>()
        ));
        let mut item = ItemDemux {
            pipeline,
            inputs: Inputs::none(),
            title: title.to_owned(),
            file: settings.files.first().map(|f| f.display().to_string()).unwrap_or_default(),
            ready: Arc::default(),
        };
        for (rung, file) in settings.files.iter().enumerate() {
            item.add_rendition(rung, file, settings.sync, &mut on_stream)?;
        }
        let pipeline = &item.pipeline;
        pipeline.use_clock(Some(settings.clock));
        // The broadcaster manages base_time itself: absolute, drift-free pacing of every item against one base.
        pipeline.set_start_time(gst::ClockTime::NONE);
        pipeline.set_state(gst::State::Paused).map_err(|e| item.item_error(e))?;
        if settings.start_ns > 0 {
            item.wait_preroll()?;
            item.wait_for_pads(settings.files.len())?;
            item.pipeline
                .seek_simple(
                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                    gst::ClockTime::from_nseconds(settings.start_ns as u64),
                )
                .map_err(|e| item.item_error(format!("seek to {} ns: {e}", settings.start_ns)))?;
        }
        Ok(item)
    }

    /// `filesrc ! qtdemux` for one rung, its first video and first audio stream each into an appsink.
    fn add_rendition(
        &mut self,
        rung: usize,
        file: &Path,
        sync: bool,
        on_stream: &mut impl FnMut(Stream) -> OnSample,
    ) -> Result<(), DemuxError> {
        let file_err = |reason: String| DemuxError::File { file: file.display().to_string(), reason };
        if !file.is_file() {
            return Err(file_err("file is missing".into()));
        }
        let make = |f: &str| gst::ElementFactory::make(f).build().map_err(|e| file_err(format!("{f}: {e}")));
        let src = make("filesrc")?;
        src.set_property("location", file.to_string_lossy().to_string());
        let demux = make("qtdemux")?;
        self.pipeline.add_many([&src, &demux]).map_err(|e| file_err(e.to_string()))?;
        src.link(&demux).map_err(|e| file_err(e.to_string()))?;
        self.inputs.push(src);
        self.inputs.push(demux.clone());
        let mut branches = Vec::new();
        for video in [true, false] {
            // Fed by the demuxer's own thread, without a queue, and not prerolling: see the module doc.
            let sink =
                gst_app::AppSink::builder().sync(sync).async_(false).enable_last_sample(false).max_buffers(0).build();
            self.pipeline.add(&sink).map_err(|e| file_err(e.to_string()))?;
            let mut on_sample = on_stream(Stream { rung, video });
            let name = file.display().to_string();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        on_sample(sample).map_err(|refusal| match refusal {
                            Refusal::Unfit(reason) => {
                                gst::element_error!(sink, gst::StreamError::Format, ["{name}: {reason}"]);
                                gst::FlowError::NotNegotiated
                            }
                            Refusal::Flow(flow) => flow,
                        })
                    })
                    .build(),
            );
            branches.push((video, sink));
        }
        // qtdemux pads appear at preroll; link the first video and first audio stream, ignore the rest.
        let ready = self.ready.clone();
        demux.connect_no_more_pads(move |_| {
            ready.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let branches = Arc::new(Mutex::new(branches));
        demux.connect_pad_added(move |_, pad| {
            let name = pad.name();
            let want_video = name.starts_with("video_");
            if !want_video && !name.starts_with("audio_") {
                return;
            }
            let mut b = branches.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(pos) = b.iter().position(|(v, _)| *v == want_video) {
                let (_, sink) = b.remove(pos);
                if let Some(sinkpad) = sink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            }
        });
        Ok(())
    }

    fn item_error(&self, reason: impl std::fmt::Display) -> DemuxError {
        DemuxError::Item { title: self.title.clone(), reason: reason.to_string() }
    }

    fn element_error(&self, failure: ElementFailure) -> DemuxError {
        DemuxError::Element { file: self.file.clone(), failure }
    }

    /// Waits for the preroll; fails with the pipeline's error, or when it takes longer than 20 s.
    /// Waits until each of the `demuxers` has added its pads (they were linked as they came), or fails with the
    /// first error posted.
    fn wait_for_pads(&self, demuxers: usize) -> Result<(), DemuxError> {
        let deadline = std::time::Instant::now() + PREROLL_LIMIT;
        while self.ready.load(std::sync::atomic::Ordering::SeqCst) < demuxers {
            if let Some(e) = self.error() {
                return Err(e);
            }
            if std::time::Instant::now() > deadline {
                return Err(self.item_error(format!("streams not found within {} s", PREROLL_LIMIT.as_secs())));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(())
    }

    pub fn wait_preroll(&self) -> Result<(), DemuxError> {
        let (res, _, _) = self.pipeline.state(gst::ClockTime::from_nseconds(PREROLL_LIMIT.as_nanos() as u64));
        if res.is_err() {
            return Err(self
                .error()
                .unwrap_or_else(|| self.item_error(format!("did not preroll within {} s", PREROLL_LIMIT.as_secs()))));
        }
        Ok(())
    }

    /// The first error the item pipeline posted, naming the element and file.
    pub fn error(&self) -> Option<DemuxError> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        bus_error(&msg, &self.inputs).map(|failure| self.element_error(failure))
    }

    /// Sets the running-time origin of the item's sinks on the channel's clock.
    pub fn set_base_time(&self, base_time: gst::ClockTime) {
        self.pipeline.set_base_time(base_time);
    }

    /// Lets the samples flow (paced by the sinks when `sync`).
    pub fn play(&self) -> Result<(), DemuxError> {
        self.pipeline.set_state(gst::State::Playing).map_err(|e| self.item_error(e))?;
        Ok(())
    }

    /// Waits up to `wait` for the item to end; Ok(true) at EOS.
    pub fn poll_end(&self, wait: Duration) -> Result<bool, DemuxError> {
        let Some(bus) = self.pipeline.bus() else { return Ok(true) };
        let types = [gst::MessageType::Eos, gst::MessageType::Error];
        match bus.timed_pop_filtered(gst::ClockTime::from_nseconds(wait.as_nanos() as u64), &types) {
            None => Ok(false),
            Some(msg) => match bus_error(&msg, &self.inputs) {
                Some(failure) => Err(self.element_error(failure)),
                None => Ok(matches!(msg.view(), gst::MessageView::Eos(_))),
            },
        }
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(files: &[PathBuf]) -> Result<ItemDemux, DemuxError> {
        crate::media::pipeline::init("test").expect("gst init");
        let clock = gst::SystemClock::obtain();
        let settings = DemuxSettings { title: "clip A", files, sync: false, clock: &clock, start_ns: 0 };
        ItemDemux::open(&settings, |_| Box::new(|_| Ok(gst::FlowSuccess::Ok)))
    }

    /// Resuming an item seeks every rendition to the keyframe at or before the position: the first video sample
    /// after the seek starts there (it once failed: the seek was sent before the demuxers had linked their streams).
    #[test]
    fn a_resumed_item_starts_at_the_keyframe_before_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hf = crate::media::test_support::small();
        let card = crate::media::test_support::card("resume", crate::media::transcode::TestPattern::Ball, None, 9.0);
        let encoded = crate::media::transcode::encode(&hf, &card, dir.path(), &|_| {}).expect("encode");
        let files: Vec<PathBuf> = encoded.renditions.iter().map(|r| r.path.clone()).collect();
        crate::media::pipeline::init("test").expect("gst init");
        let clock = gst::SystemClock::obtain();
        let first_after_seek = Arc::new(Mutex::new(Vec::new()));
        let settings =
            DemuxSettings { title: "resume", files: &files, sync: false, clock: &clock, start_ns: 4_500_000_000 };
        let demux = ItemDemux::open(&settings, |stream| {
            let seen = first_after_seek.clone();
            Box::new(move |sample: gst::Sample| {
                if stream.video {
                    let pts = sample.buffer().and_then(|b| b.pts()).map(|t| t.nseconds());
                    seen.lock().unwrap().push((stream.rung, pts));
                }
                Ok(gst::FlowSuccess::Ok)
            })
        })
        .expect("a resumed item opens");
        demux.play().expect("play");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let late =
            |seen: &[(usize, Option<u64>)]| seen.iter().filter(|(_, p)| p.is_some_and(|p| p > 4_000_000_000)).count();
        while late(&first_after_seek.lock().unwrap()) < 2 * files.len() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        demux.stop();
        let seen = first_after_seek.lock().unwrap().clone();
        // Samples from the start may arrive before the seek (the engine drops them); after them, the first one
        // past the first second is the keyframe before the position, and nothing in between was read.
        let gop = u64::from(hf.gop_seconds) * 1_000_000_000;
        let keyframe = 4_500_000_000 / gop * gop;
        for rung in 0..files.len() {
            let resumed = seen.iter().filter(|(r, _)| *r == rung).filter_map(|(_, p)| *p).find(|&p| p > 1_000_000_000);
            assert!(
                resumed.is_some_and(|p| p.abs_diff(keyframe) < 100_000_000),
                "rung {rung} resumed at {resumed:?}, not at the keyframe {keyframe} ns: {seen:?}"
            );
        }
    }

    #[test]
    fn a_broken_rendition_is_named_with_the_element_that_failed_and_blamed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.mp4");
        let err = open(std::slice::from_ref(&missing)).err().expect("a missing file cannot be demuxed");
        assert_eq!(err.to_string(), format!("{}: cannot demux: file is missing", missing.display()));

        let garbage = dir.path().join("garbage.mp4");
        std::fs::write(&garbage, b"not a movie, just some text pretending to be one".repeat(20)).expect("write");
        // Driven as the broadcaster drives an item: preroll, look at the bus, play, wait for the end.
        let err = match open(std::slice::from_ref(&garbage)) {
            Ok(item) => item
                .wait_preroll()
                .and_then(|()| item.error().map_or(Ok(()), Err))
                .and_then(|()| item.play())
                .and_then(|()| item.poll_end(Duration::from_secs(10)))
                .expect_err("garbage cannot be demuxed"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(text.starts_with(&format!("{}: cannot demux: qtdemux", garbage.display())), "{text}");
        assert!(matches!(err, DemuxError::Element { .. }), "{err:?}");
        assert_eq!(err.fault(), Some(Fault::Input), "{err:?}");
    }
}
