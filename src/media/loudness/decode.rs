//! Decoding the first audio stream of a source to the PCM layout of this module, with GStreamer.
//!
//! `filesrc ! decodebin`, then `audioconvert ! audioresample ! audiorate ! appsink` off the first decoded audio pad
//! and a drain into a fakesink off every other pad. The audio is pulled on the calling thread, so the consumer sets
//! the pace (back-pressure) and a decode that stalls is noticed and abandoned.

use super::{LoudnessError, FRAME_BYTES, PCM_CHANNELS, PCM_RATE};
use crate::media::pipeline::{bus_error, Inputs};
use gst::prelude::*;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a decode reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// A decode that produces no audio for this long is abandoned. Audio decodes run at hundreds of times real time, so
/// a minute of nothing means a deadlock or a broken file, not a slow machine.
pub(super) const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the decode loop waits for a sample or a bus message before it looks at the clock again.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(50);
/// Name of the bus message posted when decodebin has exposed every stream of the source.
const ALL_STREAMS_FOUND: &str = "vvtv-loudness-all-streams-found";

impl LoudnessError {
    fn pipeline(path: &Path, reason: impl ToString) -> LoudnessError {
        LoudnessError::Pipeline { path: path.to_owned(), reason: reason.to_string() }
    }
}

/// What the decodebin callbacks found, shared with the thread that drives the pipeline.
#[derive(Default)]
struct Streams {
    /// The sink of the audio branch, once the first decoded audio stream has been linked to it.
    audio: Option<gst_app::AppSink>,
    /// Caps of the first audio stream decodebin could not decode (it is exposed still encoded).
    undecodable: Option<String>,
    /// Why a branch could not be built (the callbacks cannot return errors).
    failure: Option<String>,
}

/// A decoding pipeline, set to `Null` when dropped so no streaming thread outlives the call, whatever the outcome.
struct Decoding {
    /// The elements that read the source: their failures are the source's fault.
    inputs: Inputs,
    pipeline: gst::Pipeline,
    streams: Arc<Mutex<Streams>>,
}

impl Drop for Decoding {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Decodes the first audio stream of `source` to 48 kHz F32LE stereo, handing the interleaved bytes to `consume` on
/// the calling thread. `None` when there is no audio stream. Gives up when no audio arrives for `stall_timeout`.
pub(super) fn decode_audio(
    source: &Path,
    progress: &dyn Fn(f64),
    stall_timeout: Duration,
    consume: &mut dyn FnMut(&[u8]) -> Result<(), LoudnessError>,
) -> Result<Option<u64>, LoudnessError> {
    gst::init().map_err(|e| LoudnessError::Init { path: source.to_owned(), reason: e.to_string() })?;
    // filesrc would block forever opening a FIFO with no writer, before any timeout could run: refuse anything but
    // a regular file up front.
    let metadata = std::fs::metadata(source).map_err(|e| LoudnessError::io(source, "cannot open", e))?;
    if !metadata.is_file() {
        return Err(LoudnessError::NotAFile { path: source.to_owned() });
    }
    let decoding = build_decoder(source)?;
    let frames = drive(&decoding, source, progress, stall_timeout, consume)?;
    progress(1.0);
    Ok(frames)
}

/// `filesrc ! decodebin`; the branches are hung off decodebin's pads as they appear.
fn build_decoder(source: &Path) -> Result<Decoding, LoudnessError> {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", source)
        .build()
        .map_err(|e| LoudnessError::pipeline(source, format!("filesrc: {e}")))?;
    let decodebin = gst::ElementFactory::make("decodebin")
        .build()
        .map_err(|e| LoudnessError::pipeline(source, format!("decodebin: {e}")))?;
    pipeline.add_many([&src, &decodebin]).map_err(|e| LoudnessError::pipeline(source, e))?;
    src.link(&decodebin).map_err(|e| LoudnessError::pipeline(source, e))?;
    decode_first_audio_only(&decodebin).map_err(|e| LoudnessError::pipeline(source, e))?;

    let streams = Arc::new(Mutex::new(Streams::default()));
    let weak = pipeline.downgrade();
    let found = streams.clone();
    decodebin.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else { return };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let kind = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        let mut streams = found.lock().unwrap_or_else(PoisonError::into_inner);
        let built = if kind == "audio/x-raw" && streams.audio.is_none() {
            attach_audio(&pipeline, pad).map(|sink| streams.audio = Some(sink))
        } else {
            if kind.starts_with("audio/") && kind != "audio/x-raw" && streams.undecodable.is_none() {
                streams.undecodable = Some(caps.to_string());
            }
            attach_drain(&pipeline, pad)
        };
        if let Err(e) = built {
            streams.failure.get_or_insert_with(|| format!("cannot link stream {kind}: {e}"));
        }
    });
    decodebin.connect_no_more_pads(|decodebin| {
        let msg =
            gst::message::Application::builder(gst::Structure::new_empty(ALL_STREAMS_FOUND)).src(decodebin).build();
        let _ = decodebin.post_message(msg);
    });
    Ok(Decoding { inputs: Inputs::new([src, decodebin]), pipeline, streams })
}

/// Keeps decodebin from decoding what would be thrown away: pictures (decoding video costs far more than the audio
/// itself) and every audio stream but the first one a decoder is found for. Those streams are exposed still encoded
/// and drained.
fn decode_first_audio_only(decodebin: &gst::Element) -> Result<(), String> {
    // The signal's return type is registered by the playback plugin, not bound by gstreamer-rs; it exists once a
    // decodebin has been made.
    let result_type = gst::glib::Type::from_name("GstAutoplugSelectResult")
        .ok_or("decodebin does not register GstAutoplugSelectResult")?;
    let result =
        move |nick: &str| gst::glib::EnumClass::with_type(result_type).and_then(|class| class.to_value_by_nick(nick));
    if result("try").is_none() || result("expose").is_none() {
        return Err("GstAutoplugSelectResult lacks try/expose".into());
    }
    // The pad of the stream that gets the audio decoder. decodebin may try several decoders for it in turn, so the
    // choice is made per stream, not per decoder.
    let audio: Mutex<Option<gst::Pad>> = Mutex::new(None);
    decodebin.connect("autoplug-select", false, move |args| {
        let pad = args.get(1).and_then(|v| v.get::<gst::Pad>().ok());
        let klass = args.get(3).and_then(|v| v.get::<gst::ElementFactory>().ok()).map(|f| f.klass().to_owned());
        let klass = klass.unwrap_or_default();
        let expose = klass.contains("Decoder")
            && (klass.contains("Video")
                || klass.contains("Image")
                || (klass.contains("Audio") && {
                    let mut audio = audio.lock().unwrap_or_else(PoisonError::into_inner);
                    match (audio.as_ref(), pad) {
                        (None, Some(pad)) => {
                            *audio = Some(pad);
                            false
                        }
                        (Some(first), Some(pad)) => *first != pad,
                        (_, None) => false,
                    }
                }));
        result(if expose { "expose" } else { "try" })
    });
    Ok(())
}

/// `queue ! audioconvert ! audioresample ! audiorate ! capsfilter ! appsink` off a decoded audio pad.
fn attach_audio(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<gst_app::AppSink, gst::glib::BoolError> {
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("rate", PCM_RATE as i32)
        .field("channels", PCM_CHANNELS as i32)
        .build();
    let sink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(false)
        .enable_last_sample(false)
        // Back-pressure: the decoder waits for the consumer instead of queueing the whole programme in memory.
        .max_buffers(64)
        .build();
    let elements = [
        gst::ElementFactory::make("queue").build()?,
        gst::ElementFactory::make("audioconvert").build()?,
        gst::ElementFactory::make("audioresample").build()?,
        // From the segment start, not the first buffer: a late first buffer is preceded by silence.
        gst::ElementFactory::make("audiorate").property("skip-to-first", false).build()?,
        sink.clone().upcast(),
    ];
    pipeline.add_many(&elements)?;
    gst::Element::link_many(&elements)?;
    link_branch(pad, &elements)?;
    Ok(sink)
}

/// `queue ! fakesink` off any other pad, so the demuxer keeps going (an unlinked pad stops it with "not-linked").
fn attach_drain(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), gst::glib::BoolError> {
    let elements = [
        gst::ElementFactory::make("queue").build()?,
        gst::ElementFactory::make("fakesink").property("sync", false).build()?,
    ];
    pipeline.add_many(&elements)?;
    gst::Element::link_many(&elements)?;
    link_branch(pad, &elements)
}

/// Starts a freshly added branch and links `pad` to its first element. The queue heading each branch gives it its
/// own streaming thread, so one sink waiting for preroll cannot starve the other.
fn link_branch(pad: &gst::Pad, elements: &[gst::Element]) -> Result<(), gst::glib::BoolError> {
    for element in elements {
        element.sync_state_with_parent()?;
    }
    let sink_pad = elements
        .first()
        .and_then(|e| e.static_pad("sink"))
        .ok_or_else(|| gst::glib::bool_error!("branch without a sink pad"))?;
    pad.link(&sink_pad).map_err(|e| gst::glib::bool_error!("cannot link {}: {e:?}", pad.name()))?;
    Ok(())
}

/// Runs the pipeline to EOS, pulling the audio on this thread. Returns the number of frames consumed.
fn drive(
    decoding: &Decoding,
    source: &Path,
    progress: &dyn Fn(f64),
    stall_timeout: Duration,
    consume: &mut dyn FnMut(&[u8]) -> Result<(), LoudnessError>,
) -> Result<Option<u64>, LoudnessError> {
    let pipeline = &decoding.pipeline;
    let bus = pipeline.bus().ok_or_else(|| LoudnessError::pipeline(source, "pipeline has no bus"))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus; a failed state change without one is reported as such.
        let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error]);
        return Err(match msg.and_then(|msg| bus_error(&msg, &decoding.inputs)) {
            Some(failure) => LoudnessError::Decode { path: source.to_owned(), failure },
            None => LoudnessError::pipeline(source, "cannot start"),
        });
    }

    let mut frames = 0u64;
    let types = [gst::MessageType::Eos, gst::MessageType::Error, gst::MessageType::Application];
    let mut last_audio = Instant::now();
    let mut last_progress = Instant::now();
    let mut pulled = 0u64;
    loop {
        let (sink, failure) = {
            let mut streams = decoding.streams.lock().unwrap_or_else(PoisonError::into_inner);
            (streams.audio.clone(), streams.failure.take())
        };
        if let Some(reason) = failure {
            return Err(LoudnessError::pipeline(source, reason));
        }
        let sample = sink.as_ref().and_then(|s| s.try_pull_sample(POLL));
        let flowing = sample.is_some();
        if let Some(sample) = sample {
            // Time spent consuming counts against the timeout too: nothing else can arrive meanwhile.
            last_audio = Instant::now();
            frames += pull(sample, source, consume)?;
            pulled += 1;
        }
        // While audio flows the bus is only peeked at; otherwise (no audio branch yet, or the appsink is at EOS and
        // returns at once) it is waited on. A zero timeout would not do for the peek: timed_pop_filtered gives up
        // before popping anything.
        let message = if flowing { bus.pop_filtered(&types) } else { bus.timed_pop_filtered(POLL, &types) };
        if let Some(msg) = message {
            if let Some(failure) = bus_error(&msg, &decoding.inputs) {
                return Err(LoudnessError::Decode { path: source.to_owned(), failure });
            }
            match msg.view() {
                gst::MessageView::Eos(_) => {
                    // EOS is posted when every sink has it; the appsink may still hold queued samples.
                    if let Some(sink) = &sink {
                        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::ZERO) {
                            frames += pull(sample, source, consume)?;
                        }
                    }
                    break;
                }
                gst::MessageView::Application(app)
                    if app.structure().is_some_and(|s| s.name() == ALL_STREAMS_FOUND) && sink.is_none() =>
                {
                    // Every stream is exposed and none is decoded audio: no need to read the rest of the file.
                    let streams = decoding.streams.lock().unwrap_or_else(PoisonError::into_inner);
                    if streams.audio.is_none() {
                        return no_audio(source, &streams);
                    }
                }
                _ => {}
            }
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            if let Some(duration) = pipeline.query_duration::<gst::ClockTime>().filter(|d| !d.is_zero()) {
                let done = frames as f64 / f64::from(PCM_RATE) / duration.seconds_f64();
                progress(done.clamp(0.0, 1.0));
            }
        }
        if last_audio.elapsed() > stall_timeout {
            return Err(LoudnessError::Stalled { path: source.to_owned(), stalled: last_audio.elapsed(), frames });
        }
    }
    let streams = decoding.streams.lock().unwrap_or_else(PoisonError::into_inner);
    if streams.audio.is_none() {
        return no_audio(source, &streams);
    }
    tracing::debug!(source = %source.display(), frames, samples = pulled, "audio decoded");
    Ok(Some(frames))
}

/// Hands one decoded sample to `consume`; returns its frames.
fn pull(
    sample: gst::Sample,
    source: &Path,
    consume: &mut dyn FnMut(&[u8]) -> Result<(), LoudnessError>,
) -> Result<u64, LoudnessError> {
    let Some(buffer) = sample.buffer() else { return Ok(0) };
    let map = buffer.map_readable().map_err(|e| LoudnessError::pipeline(source, e))?;
    consume(&map)?;
    Ok((map.len() / FRAME_BYTES) as u64)
}

/// The outcome for a source without decoded audio: none at all, or one that no installed decoder handles.
fn no_audio(source: &Path, streams: &Streams) -> Result<Option<u64>, LoudnessError> {
    match &streams.undecodable {
        Some(caps) => Err(LoudnessError::Undecodable { path: source.to_owned(), caps: caps.clone() }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{extract_pcm, measure_file};
    use super::*;
    use vvtv_testkit::check::{Context, Result};

    #[test]
    fn audio_starting_late_is_preceded_by_silence_and_video_is_not_decoded() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mkv = dir.path().join("late.mkv");
        // Video from 0 s, audio from 0.5 s: sample 0 must still be running time 0.
        launch(&format!(
            "matroskamux name=mux ! filesink location={} \
             videotestsrc num-buffers=75 ! video/x-raw,width=160,height=120,framerate=25/1 ! x264enc ! mux. \
             audiotestsrc timestamp-offset=500000000 num-buffers=20 samplesperbuffer=4800 ! \
             audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac ! aacparse ! mux.",
            mkv.display()
        ))?;
        let pcm = dir.path().join("late.pcm");
        let frames = extract_pcm(&mkv, &pcm, &|_| {})?.context("no audio")?;
        let samples = read_pcm(&pcm)?;
        assert_eq!(samples.len() as u64, 2 * frames);
        let first = samples.iter().position(|s| s.abs() > 1e-4).context("all silent")? / 2;
        assert!((first as i64 - 24_000).abs() <= 48, "audio starts at frame {first}, expected 24000");
        Ok(())
    }

    #[test]
    fn only_the_first_audio_stream_is_taken() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mkv = dir.path().join("two.mkv");
        // First track a sine at −20 dBFS (−20 LUFS), second one much louder.
        launch(&format!(
            "matroskamux name=mux ! filesink location={} \
             audiotestsrc freq=997 volume=0.1 num-buffers=50 samplesperbuffer=4800 ! \
             audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac bitrate=192000 ! aacparse ! mux. \
             audiotestsrc freq=500 volume=0.8 num-buffers=50 samplesperbuffer=4800 ! \
             audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac ! aacparse ! mux.",
            mkv.display()
        ))?;
        let measured = measure_file(&mkv)?.context("silent")?;
        assert!((measured.integrated_lufs + 20.0).abs() < 0.3, "{measured:?}");
        Ok(())
    }

    #[test]
    fn a_file_with_only_video_has_no_audio() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mp4 = dir.path().join("video.mp4");
        launch(&format!(
            "videotestsrc num-buffers=60 ! video/x-raw,width=160,height=120,framerate=30/1 ! x264enc ! mp4mux ! \
             filesink location={}",
            mp4.display()
        ))?;
        let pcm = dir.path().join("video.pcm");
        assert_eq!(extract_pcm(&mp4, &pcm, &|_| {})?, None);
        assert!(!pcm.exists());
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1, "no part file left behind");
        assert_eq!(measure_file(&mp4)?, None);
        Ok(())
    }

    #[test]
    fn a_decode_that_delivers_nothing_times_out() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let wav = dir.path().join("tone.wav");
        launch(&format!(
            "audiotestsrc num-buffers=50 samplesperbuffer=4800 ! audio/x-raw,rate=48000,channels=2 ! wavenc ! \
             filesink location={}",
            wav.display()
        ))?;
        // A consumer that blocks holds the appsink full, so no audio flows for longer than the timeout.
        let started = Instant::now();
        let mut consume = |_: &[u8]| {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        };
        let err = decode_audio(&wav, &|_| {}, Duration::from_millis(500), &mut consume).expect_err("no timeout");
        assert!(matches!(err, LoudnessError::Stalled { .. }), "{err:?}");
        assert!(err.to_string().contains("tone.wav"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        Ok(())
    }
}
