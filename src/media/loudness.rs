//! EBU R128 loudness for ingest: decodes a source's audio to the house PCM, measures it (ITU-R BS.1770 / EBU R128)
//! and brings it to the house target — integrated loudness within ±0.5 LU of the target, true peak under the
//! ceiling — before the encoder reads the processed PCM as its audio.
//!
//! The work is split into three steps so each one can be checked on its own:
//! 1. [`extract_pcm`] decodes the first audio stream of any file GStreamer reads into a raw file of interleaved
//!    F32LE stereo at 48 kHz whose sample 0 is running time 0 of the source (gaps and a late start are filled with
//!    silence), which is exactly what the house encoder needs to stay in sync with the video.
//! 2. [`measure_pcm`] / [`measure_file`] measure integrated loudness, loudness range and true peak.
//! 3. [`normalize_pcm`] applies one linear gain when the true peak allows it; otherwise the same gain plus an offline
//!    look-ahead true-peak limiter, iterating the gain until the limited output lands on the target.
//!
//! Everything streams in bounded memory: sources can be hours long. The PCM files are ~1.4 GB per hour.

use gst::prelude::*;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Sample rate of the PCM files (interleaved F32LE stereo, sample 0 = running time 0 of the source).
pub const PCM_RATE: u32 = 48_000;
/// Channels of the PCM files.
pub const PCM_CHANNELS: u32 = 2;

/// Bytes in one PCM frame (one F32 sample per channel).
const FRAME_BYTES: usize = PCM_CHANNELS as usize * std::mem::size_of::<f32>();
/// Frames read, processed and written at a time (~1.4 s): large enough that per-block work is negligible.
const BLOCK_FRAMES: usize = 1 << 16;

/// How often a decode reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// A decode that produces no audio for this long is abandoned. Audio decodes run at hundreds of times real time, so
/// a minute of nothing means a deadlock or a broken file, not a slow machine.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the decode loop waits for a sample or a bus message before it looks at the clock again.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(50);
/// Name of the bus message posted when decodebin has exposed every stream of the source.
const ALL_STREAMS_FOUND: &str = "vvtv-loudness-all-streams-found";

/// The limited output must land this close to the target (the house contract allows ±0.5 LU).
const LOUDNESS_TOLERANCE_LU: f64 = 0.2;
/// Rendering rounds of the limiter; the last one is kept even if it missed (and says so in the log).
const MAX_ROUNDS: usize = 4;
/// How far the gain search may extrapolate beyond the gains measured: a nearly flat loudness-versus-gain curve
/// (everything already limited) must not send the next round to an absurd gain.
const MAX_GAIN_STEP_DB: f64 = 12.0;
/// The limiter aims this far under the ceiling, so the slight modulation of its gain changes cannot push a peak over.
const LIMITER_HEADROOM_DB: f64 = 0.05;

/// Loudness of a programme, as stored with every asset.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Loudness {
    /// Gated integrated loudness (BS.1770-4), LUFS.
    pub integrated_lufs: f64,
    /// Loudness range (EBU Tech 3342), LU.
    pub lra_lu: f64,
    /// Maximum true peak over both channels (4× oversampled), dBTP.
    pub true_peak_dbtp: f64,
}

/// What [`normalize_pcm`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Normalized {
    /// Loudness of the input; `None` when it is silent.
    pub before: Option<Loudness>,
    /// Loudness of the output; `None` when it is silent. Short of the target when the gain hit its cap.
    pub after: Option<Loudness>,
    /// Linear gain applied to the whole programme, dB (the limiter's gain reduction comes on top of it).
    pub gain_db: f64,
    /// Whether the true-peak limiter was needed.
    pub limited: bool,
}

/// A loudness failure: names the file and says why, so an operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum LoudnessError {
    /// GStreamer itself could not start.
    #[error("{}: cannot initialise GStreamer: {reason}", path.display())]
    Init { path: PathBuf, reason: String },
    /// Reading or writing a file failed (`action` says which).
    #[error("{}: {action}: {source}", path.display())]
    Io { path: PathBuf, action: &'static str, source: io::Error },
    /// A directory, FIFO or device where a file was expected.
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
    /// The decoding pipeline could not be put together (usually a missing GStreamer plugin).
    #[error("{}: cannot build the decoding pipeline: {reason}", path.display())]
    Pipeline { path: PathBuf, reason: String },
    /// GStreamer reported an error while decoding, from the element named.
    #[error("{}: {element}: {reason}{}", path.display(), detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Decode { path: PathBuf, element: String, reason: String, detail: Option<String> },
    /// The file has audio, but no installed decoder handles it.
    #[error("{}: the audio stream ({caps}) cannot be decoded: no decoder is installed for it", path.display())]
    Undecodable { path: PathBuf, caps: String },
    /// No audio came out of the decoder for too long: a deadlock or a broken file.
    #[error("{}: decoding stalled: no audio for {}s after {frames} frames", path.display(), stalled.as_secs())]
    Stalled { path: PathBuf, stalled: Duration, frames: u64 },
    /// The file is not in the PCM layout of this module.
    #[error("{}: not a raw F32LE stereo PCM file: {reason}", path.display())]
    NotPcm { path: PathBuf, reason: String },
    /// The loudness meter refused its input.
    #[error("{}: loudness meter failed: {reason}", path.display())]
    Meter { path: PathBuf, reason: String },
    /// A normalisation setting is out of range.
    #[error("{}: {reason}", path.display())]
    Settings { path: PathBuf, reason: String },
}

impl LoudnessError {
    fn io(path: &Path, action: &'static str, source: io::Error) -> LoudnessError {
        LoudnessError::Io { path: path.to_owned(), action, source }
    }

    fn pipeline(path: &Path, reason: impl ToString) -> LoudnessError {
        LoudnessError::Pipeline { path: path.to_owned(), reason: reason.to_string() }
    }

    /// Turns a bus error into a typed error naming the element that posted it.
    fn from_bus(path: &Path, err: &gst::message::Error) -> LoudnessError {
        // The debug string reads "file.c(123): function (): /Gst/Path:\nactual detail"; only the detail helps an
        // operator, and without one the debug string is just the source location.
        let detail = err.debug().and_then(|d| d.split_once('\n').map(|(_, tail)| tail.trim().to_owned()));
        LoudnessError::Decode {
            path: path.to_owned(),
            element: err.src().map(|s| s.name().to_string()).unwrap_or_else(|| "pipeline".into()),
            reason: err.error().to_string(),
            detail: detail.filter(|d| !d.is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------------------

/// Decodes the first audio stream of `source` (any file GStreamer decodes) to raw PCM at `out`:
/// `filesrc ! decodebin → audioconvert ! audioresample ! audiorate ! audio/x-raw,format=F32LE,layout=interleaved,
/// rate=48000,channels=2 ! appsink`.
///
/// audiorate fills gaps and the start (from the segment start) with silence, so sample 0 is running time 0 of the
/// source. Mono is up-mixed by audioconvert (the same signal on both channels), more than two channels are
/// down-mixed. Video and any further audio streams are not decoded: they are drained, still encoded, into fakesinks.
/// `out` appears only when complete (it is written beside itself as `*.part`, then renamed).
///
/// Returns the number of frames written, or `Ok(None)` when the file has no audio stream. `progress` gets the
/// fraction done (0..=1) about every 500 ms, ending with 1.0. Blocking: run it on a blocking thread.
pub fn extract_pcm(source: &Path, out: &Path, progress: &dyn Fn(f64)) -> Result<Option<u64>, LoudnessError> {
    let staged = Staged::new(out);
    let mut writer = staged.create()?;
    let mut write = |pcm: &[u8]| writer.write_all(pcm).map_err(|e| LoudnessError::io(out, "cannot write", e));
    let Some(frames) = decode_audio(source, progress, STALL_TIMEOUT, &mut write)? else {
        return Ok(None);
    };
    writer.flush().map_err(|e| LoudnessError::io(out, "cannot write", e))?;
    drop(writer);
    staged.commit()?;
    Ok(Some(frames))
}

/// Decodes the audio of a media file (e.g. an encoded MP4 rendition) exactly as [`extract_pcm`] does and measures
/// it without writing anything. `None` when the file has no audio or it is silent.
pub fn measure_file(media: &Path) -> Result<Option<Loudness>, LoudnessError> {
    let mut meter = Meter::new(media)?;
    let mut samples = Vec::new();
    let mut add = |pcm: &[u8]| {
        samples.clear();
        samples.extend(pcm.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        meter.add(&samples)
    };
    match decode_audio(media, &|_| {}, STALL_TIMEOUT, &mut add)? {
        Some(_) => meter.finish(),
        None => Ok(None),
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
fn decode_audio(
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
    Ok(Decoding { pipeline, streams })
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
        return Err(match bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error]) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(err) => LoudnessError::from_bus(source, err),
                _ => LoudnessError::pipeline(source, "cannot start"),
            },
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
                gst::MessageView::Error(err) => return Err(LoudnessError::from_bus(source, err)),
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

// ---------------------------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------------------------

/// Integrated loudness, loudness range and true peak of a PCM file (ebur128, modes I | LRA | TRUE_PEAK).
/// `None` if the whole file is below the absolute gate (silence).
pub fn measure_pcm(path: &Path) -> Result<Option<Loudness>, LoudnessError> {
    let mut reader = PcmReader::open(path)?;
    let mut meter = Meter::new(path)?;
    let mut samples = Vec::with_capacity(BLOCK_FRAMES * PCM_CHANNELS as usize);
    loop {
        samples.clear();
        if reader.read(BLOCK_FRAMES, &mut samples)? == 0 {
            break;
        }
        meter.add(&samples)?;
    }
    meter.finish()
}

/// An EBU R128 meter for the PCM layout; errors name `path`.
struct Meter {
    path: PathBuf,
    ebu: ebur128::EbuR128,
}

impl Meter {
    fn new(path: &Path) -> Result<Meter, LoudnessError> {
        let mode = ebur128::Mode::I | ebur128::Mode::LRA | ebur128::Mode::TRUE_PEAK;
        let ebu = ebur128::EbuR128::new(PCM_CHANNELS, PCM_RATE, mode)
            .map_err(|e| LoudnessError::Meter { path: path.to_owned(), reason: e.to_string() })?;
        Ok(Meter { path: path.to_owned(), ebu })
    }

    fn failed(&self, e: ebur128::Error) -> LoudnessError {
        LoudnessError::Meter { path: self.path.clone(), reason: e.to_string() }
    }

    /// Adds interleaved stereo samples.
    fn add(&mut self, interleaved: &[f32]) -> Result<(), LoudnessError> {
        self.ebu.add_frames_f32(interleaved).map_err(|e| self.failed(e))
    }

    /// Integrated loudness so far; `None` when nothing passed the absolute gate.
    fn integrated(&self) -> Result<Option<f64>, LoudnessError> {
        let lufs = self.ebu.loudness_global().map_err(|e| self.failed(e))?;
        Ok(lufs.is_finite().then_some(lufs))
    }

    /// The programme's loudness so far; `None` when nothing passed the absolute gate.
    fn finish(&self) -> Result<Option<Loudness>, LoudnessError> {
        let Some(integrated) = self.integrated()? else { return Ok(None) };
        let lra = self.ebu.loudness_range().map_err(|e| self.failed(e))?;
        let mut peak = 0f64;
        for channel in 0..PCM_CHANNELS {
            peak = peak.max(self.ebu.true_peak(channel).map_err(|e| self.failed(e))?);
        }
        Ok(Some(Loudness {
            integrated_lufs: integrated,
            lra_lu: if lra.is_finite() { lra } else { 0.0 },
            // Any signal above the gate has a peak; the floor only keeps the value finite for serialisation.
            true_peak_dbtp: 20.0 * peak.max(1e-10).log10(),
        }))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Normalizing
// ---------------------------------------------------------------------------------------------------------------

/// Brings `input` to `target_lufs`, writing `output` (both PCM files; `output` appears only when complete).
///
/// gain = target − measured, capped at `max_gain_db` so a near-silent source is not blown up (the shortfall shows
/// in `after`). If the measured true peak plus the gain stays within `ceiling_dbtp` the gain is applied as is;
/// otherwise a look-ahead true-peak limiter with that ceiling follows the gain, and the gain is iterated (at most
/// four rendering rounds) until the output's integrated loudness is within ±0.2 LU of the target. Silence is copied
/// as is. Streams in blocks: memory does not grow with the file. Blocking.
pub fn normalize_pcm(
    input: &Path,
    output: &Path,
    target_lufs: f64,
    ceiling_dbtp: f64,
    max_gain_db: f64,
) -> Result<Normalized, LoudnessError> {
    check_settings(input, target_lufs, ceiling_dbtp, max_gain_db)?;
    let staged = Staged::new(output);
    let Some(before) = measure_pcm(input)? else {
        std::fs::copy(input, &staged.part).map_err(|e| LoudnessError::io(output, "cannot copy the input to", e))?;
        staged.commit()?;
        tracing::debug!(input = %input.display(), "silent: copied as is");
        return Ok(Normalized { before: None, after: None, gain_db: 0.0, limited: false });
    };
    let linear_db = (target_lufs - before.integrated_lufs).min(max_gain_db);
    if before.true_peak_dbtp + linear_db <= ceiling_dbtp {
        let after = render(input, &staged, linear_db, None, BLOCK_FRAMES)?.after;
        staged.commit()?;
        tracing::debug!(input = %input.display(), gain_db = linear_db, ?before, ?after, "normalized by linear gain");
        return Ok(Normalized { before: Some(before), after, gain_db: linear_db, limited: false });
    }

    // The limiter takes loudness away where it works, and how much depends on the gain, so the gain that lands on
    // the target has to be searched for. A survey pass estimates the loudness of several gains at once (limiting
    // only ever lowers it, so they all lie above the linear gain); each rendering round then writes the most likely
    // gain and measures it exactly, which also calibrates the estimates should another round be needed.
    let mut limit_dbtp = ceiling_dbtp - LIMITER_HEADROOM_DB;
    let mut estimated = Vec::new();
    for stage in SURVEY_DB {
        let mut trials: Vec<f64> = stage.iter().map(|d| (linear_db + d).min(max_gain_db)).collect();
        trials.dedup();
        estimated.extend(survey(input, limit_dbtp, &trials, BLOCK_FRAMES)?);
        let bracketed = estimated.iter().any(|&(_, lufs)| lufs >= target_lufs);
        if bracketed || trials.last().is_some_and(|&g| g >= max_gain_db) {
            break;
        }
    }
    let mut exact: Vec<(f64, f64)> = Vec::new();
    let mut bias = 0.0;
    let mut round = 1;
    let (gain_db, after) = loop {
        let mut points: Vec<(f64, f64)> = estimated.iter().map(|&(g, l)| (g, l + bias)).chain(exact.clone()).collect();
        let gain_db = gain_for(&mut points, target_lufs).clamp(linear_db, max_gain_db);
        let rendered = render(input, &staged, gain_db, Some(limit_dbtp), BLOCK_FRAMES)?;
        let Some(measured) = rendered.after else { break (gain_db, None) };
        tracing::debug!(input = %input.display(), round, gain_db, limit_dbtp, ?measured, "limiter round");
        let capped = gain_db >= max_gain_db && measured.integrated_lufs < target_lufs;
        let loudness_ok = capped || (measured.integrated_lufs - target_lufs).abs() <= LOUDNESS_TOLERANCE_LU;
        let peak_ok = measured.true_peak_dbtp <= ceiling_dbtp;
        if (loudness_ok && peak_ok) || round == MAX_ROUNDS {
            if !(loudness_ok && peak_ok) {
                tracing::warn!(input = %input.display(), ?measured, target_lufs, ceiling_dbtp, "limiter did not converge");
            }
            break (gain_db, Some(measured));
        }
        if !peak_ok {
            limit_dbtp -= measured.true_peak_dbtp - ceiling_dbtp + LIMITER_HEADROOM_DB;
        }
        if let Some(estimate) = rendered.estimate {
            bias = measured.integrated_lufs - estimate;
        }
        exact.push((gain_db, measured.integrated_lufs));
        round += 1;
    };
    staged.commit()?;
    tracing::debug!(input = %input.display(), gain_db, rounds = round, ?before, ?after, "normalized with limiter");
    Ok(Normalized { before: Some(before), after, gain_db, limited: true })
}

/// Gains the survey tries, above the linear gain, dB. Most programmes land within the first stage; the second one is
/// surveyed only when the first does not reach the target, because high gains make the limiter work everywhere
/// and cost several times more to estimate.
const SURVEY_DB: [[f64; 4]; 2] = [[0.0, 1.5, 3.0, 6.0], [9.0, 12.0, 17.0, 24.0]];

/// The gain expected to bring the limited output to `target`, from `(gain dB, loudness LUFS)` points. Between the two
/// points that bracket the target (or the two nearest it), the output's energy is modelled as a part that grows
/// with the gain plus a part the limiter holds at the ceiling: E = a·G + b with E and G as powers. That is exact
/// without limiting and close with it, where a straight line in dB overshoots.
fn gain_for(points: &mut [(f64, f64)], target: f64) -> f64 {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let linear_step = |(g, l): (f64, f64)| g + (target - l);
    let estimate = match points {
        [] => return 0.0,
        [only] => linear_step(*only),
        _ => {
            let i = points.iter().position(|p| p.1 >= target).unwrap_or(points.len() - 1).clamp(1, points.len() - 1);
            let ((g0, l0), (g1, l1)) = (points[i - 1], points[i]);
            let power = |db: f64| 10f64.powf(db / 10.0);
            let slope = (power(l1) - power(l0)) / (power(g1) - power(g0));
            let wanted = (power(target) - (power(l0) - slope * power(g0))) / slope;
            if slope > 0.0 && wanted > 0.0 && wanted.is_finite() {
                10.0 * wanted.log10()
            } else {
                linear_step(if target > l1 { (g1, l1) } else { (g0, l0) })
            }
        }
    };
    let (lowest, highest) = (points[0].0, points[points.len() - 1].0);
    estimate.clamp(lowest - MAX_GAIN_STEP_DB, highest + MAX_GAIN_STEP_DB)
}

fn check_settings(input: &Path, target: f64, ceiling: f64, max_gain: f64) -> Result<(), LoudnessError> {
    let invalid = |reason: String| LoudnessError::Settings { path: input.to_owned(), reason };
    if !(target.is_finite() && (-70.0..0.0).contains(&target)) {
        return Err(invalid(format!("loudness target {target} LUFS is not between -70 and 0")));
    }
    if !(ceiling.is_finite() && (-20.0..=0.0).contains(&ceiling)) {
        return Err(invalid(format!("true-peak ceiling {ceiling} dBTP is not between -20 and 0")));
    }
    if !(max_gain.is_finite() && max_gain >= 0.0) {
        return Err(invalid(format!("maximum gain {max_gain} dB is not a non-negative number")));
    }
    Ok(())
}

fn db_to_amplitude(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// What a rendering pass wrote and measured.
struct Rendered {
    /// Loudness of the written output, measured.
    after: Option<Loudness>,
    /// Loudness of the written output as the survey's estimate would have it (limited renders only): the difference
    /// to `after` calibrates the survey's other estimates.
    estimate: Option<f64>,
}

/// Writes `input` × `gain_db` (then through the limiter at `limit_dbtp`, if any) into `staged`'s part file, `block`
/// frames at a time, and measures what it wrote.
fn render(
    input: &Path,
    staged: &Staged,
    gain_db: f64,
    limit_dbtp: Option<f64>,
    block: usize,
) -> Result<Rendered, LoudnessError> {
    let output = staged.target.as_path();
    let mut writer = staged.create()?;
    let mut meter = Meter::new(output)?;
    let gain = db_to_amplitude(gain_db);
    let mut limiter = limit_dbtp.map(|limit| Trial::new(gain_db, db_to_amplitude(limit)));
    let mut envelope = vec![1f32; block];
    let mut out = Vec::with_capacity(block * PCM_CHANNELS as usize);
    let mut bytes = Vec::with_capacity(block * FRAME_BYTES);
    let floor = limiter.as_ref().map(|t| t.envelope.threshold);
    stream(input, floor, block, &mut |b: &Block| {
        let (left, right) = b.window.channels();
        out.clear();
        match limiter.as_mut() {
            Some(trial) => {
                trial.add(b, &mut envelope);
                let frames = left.iter().zip(right).zip(&envelope[..b.frames]);
                out.extend(frames.flat_map(|((&l, &r), &e)| {
                    let g = (gain * f64::from(e)) as f32;
                    [l * g, r * g]
                }));
            }
            None => {
                let g = gain as f32;
                out.extend(left[..b.frames].iter().zip(&right[..b.frames]).flat_map(|(&l, &r)| [l * g, r * g]));
            }
        }
        meter.add(&out)?;
        bytes.resize(out.len() * 4, 0);
        for (b, s) in bytes.chunks_exact_mut(4).zip(&out) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        writer.write_all(&bytes).map_err(|e| LoudnessError::io(output, "cannot write", e))
    })?;
    writer.flush().map_err(|e| LoudnessError::io(output, "cannot write", e))?;
    Ok(Rendered { after: meter.finish()?, estimate: limiter.and_then(|t| t.estimate.lufs(gain_db)) })
}

/// Estimates the loudness of `input` limited at `limit_dbtp` after each of `gains` (dB), without writing anything.
/// Returns `(gain dB, estimated LUFS)` for the gains that are not silent.
fn survey(input: &Path, limit_dbtp: f64, gains: &[f64], block: usize) -> Result<Vec<(f64, f64)>, LoudnessError> {
    let ceiling = db_to_amplitude(limit_dbtp);
    let mut trials: Vec<Trial> = gains.iter().map(|&db| Trial::new(db, ceiling)).collect();
    let mut envelope = vec![1f32; block];
    let floor = trials.iter().map(|t| t.envelope.threshold).fold(f32::INFINITY, f32::min);
    stream(input, Some(floor), block, &mut |b: &Block| {
        for trial in &mut trials {
            trial.add(b, &mut envelope);
        }
        Ok(())
    })?;
    Ok(trials.iter().filter_map(|t| t.estimate.lufs(t.gain_db).map(|lufs| (t.gain_db, lufs))).collect())
}

/// One gain through the limiter: its envelope, and its loudness as estimated from the K-weighted input.
struct Trial {
    gain_db: f64,
    envelope: Envelope,
    estimate: LoudnessEstimate,
}

impl Trial {
    fn new(gain_db: f64, ceiling: f64) -> Trial {
        Trial {
            gain_db,
            envelope: Envelope::new(db_to_amplitude(gain_db), ceiling),
            estimate: LoudnessEstimate::default(),
        }
    }

    /// Computes the envelope of `block` into `envelope` and adds the block to the estimate.
    fn add(&mut self, block: &Block, envelope: &mut [f32]) {
        self.envelope.compute(block.peaks, envelope);
        self.estimate.add(&envelope[..block.frames], block.power);
    }
}

/// One block of the input as the limiter sees it.
struct Block<'a> {
    window: &'a Window,
    /// Frames of the block inside the file (the last block is shorter).
    frames: usize,
    /// True peaks of the input for frames [−2H, block + 2H) (limited passes only).
    peaks: &'a [f32],
    /// K-weighted power (both channels) of each of the block's frames (limited passes only).
    power: &'a [f64],
}

/// Reads `input` `block` frames at a time and hands each block to `each`. For limited passes (`floor`: the lowest
/// limiter threshold in use) with the true peaks and the K-weighted power the limiter and the estimates need.
fn stream(
    input: &Path,
    floor: Option<f32>,
    block: usize,
    each: &mut dyn FnMut(&Block) -> Result<(), LoudnessError>,
) -> Result<(), LoudnessError> {
    let mut reader = PcmReader::open(input)?;
    let margin = if floor.is_some() { LIMITER_MARGIN } else { 0 };
    let mut window = Window::new(margin, block, &mut reader)?;
    let mut detector = PeakDetector::new();
    let mut weighting = [KWeighting::new(), KWeighting::new()];
    let mut power = Vec::with_capacity(block);
    let total = reader.frames;
    let mut done = 0u64;
    while done < total {
        let frames = block.min((total - done) as usize);
        let peaks = if let Some(floor) = floor {
            let (left, right) = (&window.left[..], &window.right[..]);
            power.clear();
            power.resize(frames, 0.0);
            for (filter, channel) in weighting.iter_mut().zip([left, right]) {
                filter.add_power(&channel[margin..margin + frames], &mut power);
            }
            detector.detect(left, right, block + 4 * HOLD_FRAMES, floor)
        } else {
            &[]
        };
        each(&Block { window: &window, frames, peaks, power: &power })?;
        window.advance(&mut reader)?;
        done += frames as u64;
    }
    Ok(())
}

/// The stretch of input a block is computed from, per channel: the block's frames with `margin` frames of context
/// on each side, zeros outside the file.
struct Window {
    margin: usize,
    block: usize,
    left: Vec<f32>,
    right: Vec<f32>,
    scratch: Vec<f32>,
}

impl Window {
    /// The window of the first block.
    fn new(margin: usize, block: usize, reader: &mut PcmReader) -> Result<Window, LoudnessError> {
        let mut window = Window {
            margin,
            block,
            left: vec![0.0; margin],
            right: vec![0.0; margin],
            scratch: Vec::with_capacity((block + margin) * PCM_CHANNELS as usize),
        };
        window.append(reader, margin + block)?;
        Ok(window)
    }

    /// The block's own frames (without the context), per channel.
    fn channels(&self) -> (&[f32], &[f32]) {
        let range = self.margin..self.margin + self.block;
        (&self.left[range.clone()], &self.right[range])
    }

    /// Slides on to the next block.
    fn advance(&mut self, reader: &mut PcmReader) -> Result<(), LoudnessError> {
        self.left.drain(..self.block);
        self.right.drain(..self.block);
        self.append(reader, self.block)
    }

    fn append(&mut self, reader: &mut PcmReader, frames: usize) -> Result<(), LoudnessError> {
        self.scratch.clear();
        reader.read(frames, &mut self.scratch)?;
        self.scratch.resize(frames * PCM_CHANNELS as usize, 0.0);
        self.left.extend(self.scratch.iter().step_by(2));
        self.right.extend(self.scratch.iter().skip(1).step_by(2));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Loudness estimates for trial gains
// ---------------------------------------------------------------------------------------------------------------
//
// Searching for the gain that lands on the target takes loudness readings of several gains. Metering each with
// ebur128 would filter every trial's output again; instead the input is K-weighted once and each trial's limiter
// envelope weighs that power: K(e·x) ≈ e·K(x), because the envelope moves slowly next to the K filter's response.
// The readings only steer the search: the written output is always measured with ebur128, and the difference
// calibrates the estimates.

/// Frames in one 100 ms gating segment.
const SEGMENT_FRAMES: usize = PCM_RATE as usize / 10;

/// The K-weighting filter of BS.1770 (high-shelf pre-filter, then the RLB high-pass) for one channel at 48 kHz.
struct KWeighting {
    stages: [Biquad; 2],
}

impl KWeighting {
    fn new() -> KWeighting {
        // Coefficients for 48 kHz as tabulated in ITU-R BS.1770-4.
        KWeighting {
            stages: [
                Biquad::new(
                    [1.535_124_859_586_97, -2.691_696_189_406_38, 1.198_392_810_852_85],
                    [-1.690_659_293_182_41, 0.732_480_774_215_85],
                ),
                Biquad::new([1.0, -2.0, 1.0], [-1.990_047_454_833_98, 0.990_072_250_366_21]),
            ],
        }
    }

    /// Adds the K-weighted power of each sample of `samples` to `power`.
    fn add_power(&mut self, samples: &[f32], power: &mut [f64]) {
        let [shelf, high_pass] = &mut self.stages;
        for (p, &x) in power.iter_mut().zip(samples) {
            let y = high_pass.process(shelf.process(f64::from(x)));
            *p += y * y;
        }
    }
}

/// A second-order IIR section (transposed direct form II).
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    state: [f64; 2],
}

impl Biquad {
    fn new(b: [f64; 3], a: [f64; 2]) -> Biquad {
        Biquad { b, a, state: [0.0; 2] }
    }

    fn process(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.state[0];
        self.state[0] = self.b[1] * x - self.a[0] * y + self.state[1];
        self.state[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// Integrated loudness from K-weighted power, gated as BS.1770 prescribes: 400 ms blocks every 100 ms, an
/// absolute gate at −70 LUFS and a relative gate 10 LU under the loudness of the blocks above it.
#[derive(Default)]
struct LoudnessEstimate {
    /// Energy of each complete 100 ms segment, before the trial's gain.
    segments: Vec<f64>,
    current: f64,
    filled: usize,
}

impl LoudnessEstimate {
    /// Adds frames of K-weighted `power`, each weighted by its limiter gain squared.
    fn add(&mut self, envelope: &[f32], power: &[f64]) {
        let mut frames = envelope.iter().zip(power);
        let mut left = power.len();
        while left > 0 {
            let take = (SEGMENT_FRAMES - self.filled).min(left);
            self.current += frames.by_ref().take(take).map(|(&e, &p)| f64::from(e) * f64::from(e) * p).sum::<f64>();
            self.filled += take;
            left -= take;
            if self.filled == SEGMENT_FRAMES {
                self.segments.push(std::mem::take(&mut self.current));
                self.filled = 0;
            }
        }
    }

    /// The integrated loudness after `gain_db`; `None` if nothing passes the absolute gate.
    fn lufs(&self, gain_db: f64) -> Option<f64> {
        let scale = 10f64.powf(gain_db / 10.0) / (4 * SEGMENT_FRAMES) as f64;
        let loudness = |mean_square: f64| -0.691 + 10.0 * mean_square.log10();
        let blocks: Vec<f64> = self.segments.windows(4).map(|w| w.iter().sum::<f64>() * scale).collect();
        let mean = |values: &mut dyn Iterator<Item = f64>| {
            let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            (count > 0).then(|| sum / count as f64)
        };
        let audible = || blocks.iter().copied().filter(|&z| loudness(z) > -70.0);
        let relative_gate = loudness(mean(&mut audible())?) - 10.0;
        mean(&mut audible().filter(|&z| loudness(z) > relative_gate)).map(loudness)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The true-peak limiter
// ---------------------------------------------------------------------------------------------------------------
//
// An offline look-ahead limiter, both channels linked. For every frame it detects the true peak across both
// channels (4× oversampled) and the gain that would bring it to the ceiling, r[n] = min(1, ceiling / peak[n]). That
// need is held (a minimum over ±H frames, H = half the attack) and then averaged over 2H + 1 frames: every frame of
// the average's window has frame n in its hold window, so the average never exceeds r[n] — peaks are caught
// exactly, with a smooth ramp of one attack time on each side instead of a click. A one-pole release then lets the
// gain rise only slowly (falling is never delayed, so it stays ≤ r[n] too).
//
// The stream is processed in blocks with LIMITER_MARGIN frames of context on each side; the only state carried from
// block to block is the release, so the output is bit-identical to processing the whole file at once. The peak
// detection does not depend on the gain, so one detection serves every gain tried in a pass.

/// Interpolated points between two samples for true-peak detection (4× oversampling, as BS.1770 asks).
const OVERSAMPLE: usize = 4;
/// Taps of each interpolation phase: a Kaiser-windowed sinc flat to ~18 kHz at 48 kHz.
const TAPS: usize = 16;
/// Kaiser window shape of the interpolator (~50 dB stop band).
const KAISER_BETA: f64 = 5.0;
/// How far ahead the limiter starts lowering the gain before a peak, and how long its gain ramps take.
const ATTACK: Duration = Duration::from_millis(5);
/// Half the attack, in frames: the hold and the average each reach this far.
const HOLD_FRAMES: usize = ATTACK.as_millis() as usize * PCM_RATE as usize / 1000 / 2;
/// Frames of context a block needs on each side: the hold and the average look 2H away, the interpolator TAPS/2.
const LIMITER_MARGIN: usize = 2 * HOLD_FRAMES + TAPS;
/// Time constant of the gain's return towards unity after a peak.
const RELEASE: Duration = Duration::from_millis(80);
/// Fixed-point scale of the smoothing sums: integer sums make the result independent of where blocks start.
const FIXED_ONE: f64 = (1u64 << 30) as f64;

/// True peak of every frame of the input, before any gain.
struct PeakDetector {
    phases: [[f32; TAPS]; OVERSAMPLE - 1],
    /// The largest sum of absolute tap weights of a phase: no interpolated point exceeds the loudest sample in
    /// reach by more than this factor.
    spread: f32,
    peak: Vec<f32>,
    acc: Vec<f32>,
}

impl PeakDetector {
    fn new() -> PeakDetector {
        let phases = interpolation_phases();
        let spread = phases.iter().map(|p| p.iter().map(|c| c.abs()).sum::<f32>()).fold(1.0, f32::max);
        PeakDetector { phases, spread, peak: Vec::new(), acc: Vec::new() }
    }

    /// True peaks (the sample and the 3 interpolated points towards the next one, both channels) of `span` frames
    /// from window index TAPS, i.e. frames [−2H, span − 2H) relative to the block. Peaks that cannot exceed `floor`
    /// are not interpolated: they are reported as their sample peak, which is all a limiter whose threshold is at
    /// least `floor` needs to know (no gain reduction).
    fn detect(&mut self, left: &[f32], right: &[f32], span: usize, floor: f32) -> &[f32] {
        // Parts keep the accumulator in the L1 cache and let quiet stretches skip the interpolation. The inner loops
        // run over contiguous samples, which the optimiser can vectorise; the sums are accumulated in a fixed order,
        // so the results do not depend on where parts or blocks start.
        const PART: usize = 256;
        // Margin for the rounding of the sums, so a skipped point could never have reached `floor`.
        const SAFETY: f32 = 1.001;
        self.peak.clear();
        self.peak.resize(span, 0.0);
        self.acc.resize(PART, 0.0);
        // Tap j of a phase weighs the sample j − (TAPS/2 − 1) frames from the current one.
        let first = TAPS - (TAPS / 2 - 1);
        for x in [left, right] {
            for start in (0..span).step_by(PART) {
                let len = PART.min(span - start);
                let peak = &mut self.peak[start..start + len];
                for (p, &s) in peak.iter_mut().zip(&x[TAPS + start..]) {
                    *p = p.max(s.abs());
                }
                let reach = &x[first + start..first + start + len + TAPS - 1];
                if reach.iter().fold(0f32, |m, &s| m.max(s.abs())) * self.spread * SAFETY <= floor {
                    continue;
                }
                for phase in &self.phases {
                    let acc = &mut self.acc[..len];
                    acc.fill(0.0);
                    for (j, &c) in phase.iter().enumerate() {
                        for (a, &s) in acc.iter_mut().zip(&reach[j..j + len]) {
                            *a += c * s;
                        }
                    }
                    for (p, &a) in peak.iter_mut().zip(acc.iter()) {
                        *p = p.max(a.abs());
                    }
                }
            }
        }
        &self.peak
    }
}

/// The limiter's gain for one (gain, ceiling): from the input's true peaks to a smooth envelope.
struct Envelope {
    /// Input peak level above which gain reduction is needed: ceiling / gain.
    threshold: f32,
    /// One-pole coefficient of the release, per frame.
    release: f64,
    /// Envelope of the last frame of the previous block.
    last: f64,
    need: Vec<f32>,
    held: Vec<f32>,
    ahead: Vec<f32>,
    behind: Vec<f32>,
    sums: Vec<u64>,
}

impl Envelope {
    /// The envelope for a signal amplified by `gain` (linear) whose true peak must stay under `ceiling` (linear).
    fn new(gain: f64, ceiling: f64) -> Envelope {
        Envelope {
            threshold: (ceiling / gain) as f32,
            release: 1.0 - (-1.0 / (RELEASE.as_secs_f64() * f64::from(PCM_RATE))).exp(),
            last: 1.0,
            need: Vec::new(),
            held: Vec::new(),
            ahead: Vec::new(),
            behind: Vec::new(),
            sums: Vec::new(),
        }
    }

    /// Gains (0..=1) for `out.len()` frames from the input's true peaks of frames [−2H, out.len() + 2H).
    fn compute(&mut self, peaks: &[f32], out: &mut [f32]) {
        // Every frame's gain depends only on the peaks within 2H of it, so the block can be worked on in parts,
        // most of which have nothing to limit in reach and take the short path.
        const PART: usize = 4096;
        debug_assert_eq!(peaks.len(), out.len() + 4 * HOLD_FRAMES);
        for (n, part) in out.chunks_mut(PART).enumerate() {
            let start = n * PART;
            let reach = &peaks[start..start + part.len() + 4 * HOLD_FRAMES];
            if reach.iter().all(|&p| p <= self.threshold) {
                self.recover(part);
            } else {
                self.limit(reach, part);
            }
        }
    }

    /// Gains for frames with nothing to limit within reach: unity, or recovering towards it. Exactly what
    /// [`Envelope::limit`] computes for them.
    fn recover(&mut self, out: &mut [f32]) {
        let mut gain = self.last;
        if gain == 1.0 {
            out.fill(1.0);
        } else {
            for o in out.iter_mut() {
                gain = self.follow(gain, 1.0);
                *o = gain as f32;
            }
        }
        self.last = gain;
    }

    /// Gains for `out.len()` frames from the peaks of frames [−2H, out.len() + 2H).
    fn limit(&mut self, peaks: &[f32], out: &mut [f32]) {
        let width = 2 * HOLD_FRAMES + 1;
        let threshold = self.threshold;
        self.need.clear();
        self.need.extend(peaks.iter().map(|&p| if p > threshold { threshold / p } else { 1.0 }));
        // Hold: frames [−H, len + H).
        sliding_min(&self.need, width, &mut self.held, &mut self.ahead, &mut self.behind);
        // Average over 2H + 1 held values: frames [0, len). The fixed-point values are rounded down, so the average
        // stays under every need it covers; dividing (rather than multiplying by a reciprocal) gives exactly 1 where
        // nothing is limited.
        self.sums.clear();
        self.sums.push(0);
        let mut sum = 0u64;
        for &g in &self.held {
            sum += (f64::from(g) * FIXED_ONE) as u64;
            self.sums.push(sum);
        }
        let full = width as f64 * FIXED_ONE;
        let mut gain = self.last;
        for (o, window) in out.iter_mut().zip(self.sums.windows(width + 1)) {
            gain = self.follow(gain, (window[width] - window[0]) as f64 / full);
            *o = gain as f32;
        }
        self.last = gain;
    }

    /// The next frame's gain towards `target`: falls at once (the look-ahead already smoothed the fall), rises with
    /// the release.
    fn follow(&self, gain: f64, target: f64) -> f64 {
        if target <= gain {
            return target;
        }
        let risen = gain + self.release * (target - gain);
        // The one-pole never quite arrives; snap once the difference is inaudible.
        if target - risen < 1e-9 {
            target
        } else {
            risen
        }
    }
}

/// Minimum of every run of `width` consecutive values (van Herk / Gil-Werman: three comparisons per value whatever
/// the width). `out` gets `input.len() − width + 1` values.
fn sliding_min(input: &[f32], width: usize, out: &mut Vec<f32>, ahead: &mut Vec<f32>, behind: &mut Vec<f32>) {
    out.clear();
    if input.len() < width {
        return;
    }
    // Within each chunk of `width` values: `behind[i]` is the minimum from the chunk's start to i, `ahead[i]` the
    // minimum from i to the chunk's end.
    behind.clear();
    behind.extend_from_slice(input);
    ahead.clear();
    ahead.extend_from_slice(input);
    for chunk in behind.chunks_mut(width) {
        for i in 1..chunk.len() {
            chunk[i] = chunk[i].min(chunk[i - 1]);
        }
    }
    for chunk in ahead.chunks_mut(width) {
        for i in (1..chunk.len()).rev() {
            chunk[i - 1] = chunk[i - 1].min(chunk[i]);
        }
    }
    // A run starting at i spans the end of i's chunk and the start of the next one.
    out.extend(ahead.iter().zip(&behind[width - 1..]).map(|(&a, &b)| a.min(b)));
}

/// Coefficients of the three interpolated points between a sample and the next (at 1/4, 2/4, 3/4), each normalised
/// to unity gain at DC so a constant signal reads its own level.
fn interpolation_phases() -> [[f32; TAPS]; OVERSAMPLE - 1] {
    let half = (TAPS / 2) as f64;
    std::array::from_fn(|k| {
        let offset = (k + 1) as f64 / OVERSAMPLE as f64;
        let taps: [f64; TAPS] = std::array::from_fn(|j| {
            // Distance, in samples, from the point to the sample tap j weighs.
            let d = offset + (half - 1.0) - j as f64;
            sinc(d) * kaiser(d / half, KAISER_BETA)
        });
        let sum: f64 = taps.iter().sum();
        taps.map(|t| (t / sum) as f32)
    })
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Kaiser window at `t` in [−1, 1].
fn kaiser(t: f64, beta: f64) -> f64 {
    if t.abs() > 1.0 {
        0.0
    } else {
        bessel_i0(beta * (1.0 - t * t).sqrt()) / bessel_i0(beta)
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges quickly for the β used here).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-12 {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
        k += 1.0;
    }
    sum
}

// ---------------------------------------------------------------------------------------------------------------
// PCM files
// ---------------------------------------------------------------------------------------------------------------

/// Reads a PCM file a block at a time.
struct PcmReader {
    path: PathBuf,
    file: File,
    /// Frames in the file.
    frames: u64,
    /// Frames not read yet.
    left: u64,
    bytes: Vec<u8>,
}

impl PcmReader {
    fn open(path: &Path) -> Result<PcmReader, LoudnessError> {
        let file = File::open(path).map_err(|e| LoudnessError::io(path, "cannot open", e))?;
        let metadata = file.metadata().map_err(|e| LoudnessError::io(path, "cannot open", e))?;
        if !metadata.is_file() {
            return Err(LoudnessError::NotAFile { path: path.to_owned() });
        }
        let len = metadata.len();
        if len % FRAME_BYTES as u64 != 0 {
            let reason = format!("{len} bytes is not a whole number of {FRAME_BYTES}-byte stereo frames");
            return Err(LoudnessError::NotPcm { path: path.to_owned(), reason });
        }
        let frames = len / FRAME_BYTES as u64;
        Ok(PcmReader { path: path.to_owned(), file, frames, left: frames, bytes: Vec::new() })
    }

    /// Appends up to `max_frames` interleaved frames to `out`; returns how many (0 at the end).
    fn read(&mut self, max_frames: usize, out: &mut Vec<f32>) -> Result<usize, LoudnessError> {
        let frames = (max_frames as u64).min(self.left) as usize;
        self.bytes.resize(frames * FRAME_BYTES, 0);
        self.file.read_exact(&mut self.bytes).map_err(|e| LoudnessError::io(&self.path, "cannot read", e))?;
        out.extend(self.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        self.left -= frames as u64;
        Ok(frames)
    }
}

/// A file written beside its final path (`name.part`) and renamed into place when complete, so a reader never sees
/// half a file. The part file is removed if it is never committed.
struct Staged {
    target: PathBuf,
    part: PathBuf,
}

impl Staged {
    fn new(target: &Path) -> Staged {
        let mut name = target.file_name().map(OsString::from).unwrap_or_default();
        name.push(".part");
        Staged { target: target.to_owned(), part: target.with_file_name(name) }
    }

    /// Creates (or truncates) the part file.
    fn create(&self) -> Result<BufWriter<File>, LoudnessError> {
        let file = File::create(&self.part).map_err(|e| LoudnessError::io(&self.part, "cannot create", e))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    }

    fn commit(self) -> Result<(), LoudnessError> {
        std::fs::rename(&self.part, &self.target).map_err(|e| LoudnessError::io(&self.target, "cannot rename", e))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After a commit the part file no longer exists and this fails harmlessly.
        let _ = std::fs::remove_file(&self.part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{anyhow, Context, Result};
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, TAU};

    const TARGET: f64 = -14.0;
    const CEILING: f64 = -1.0;
    const MAX_GAIN: f64 = 30.0;

    /// Runs a `gst-launch` style pipeline to EOS.
    fn run_gst(description: &str) -> Result<()> {
        gst::init()?;
        let pipeline = gst::parse::launch(description)?;
        let bus = pipeline.bus().context("no bus")?;
        pipeline.set_state(gst::State::Playing)?;
        let types = [gst::MessageType::Eos, gst::MessageType::Error];
        let outcome = match bus.timed_pop_filtered(gst::ClockTime::from_seconds(120), &types) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(err) => Err(anyhow!("{description}: {}", err.error())),
                _ => Ok(()),
            },
            None => Err(anyhow!("{description}: timed out")),
        };
        pipeline.set_state(gst::State::Null)?;
        outcome
    }

    /// Integrated loudness and true peak read by ffmpeg's ebur128 filter: an independent meter (its true peak
    /// oversamples to 192 kHz with libswresample). `raw` files are read as 48 kHz F32LE stereo.
    fn ffmpeg_meter(path: &Path, raw: bool) -> Result<(f64, f64)> {
        let mut cmd = std::process::Command::new("ffmpeg");
        cmd.args(["-nostats", "-hide_banner"]);
        if raw {
            cmd.args(["-f", "f32le", "-ar", "48000", "-ac", "2"]);
        }
        let out = cmd.arg("-i").arg(path).args(["-af", "ebur128=peak=true", "-f", "null", "-"]).output()?;
        let log = String::from_utf8_lossy(&out.stderr);
        let summary = log.rsplit_once("Summary:").map(|(_, s)| s).with_context(|| format!("ffmpeg: {log}"))?;
        let value = |key: &str| -> Result<f64> {
            let line = summary.lines().find(|l| l.trim_start().starts_with(key)).context(key.to_owned())?;
            Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
        };
        Ok((value("I:")?, value("Peak:")?))
    }

    fn write_pcm(path: &Path, samples: &[f32]) -> Result<()> {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        Ok(std::fs::write(path, bytes)?)
    }

    fn read_pcm(path: &Path) -> Result<Vec<f32>> {
        let bytes = std::fs::read(path)?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// Wraps a PCM file into an AAC-in-MP4 file the way the house encoder will read it.
    fn encode_aac(pcm: &Path, mp4: &Path) -> Result<()> {
        run_gst(&format!(
            "filesrc location={} ! rawaudioparse format=pcm pcm-format=f32le sample-rate=48000 num-channels=2 ! \
             audioconvert ! avenc_aac bitrate=128000 ! mp4mux ! filesink location={}",
            pcm.display(),
            mp4.display()
        ))
    }

    /// Deterministic white noise in [−1, 1).
    struct Noise(u32);

    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (f64::from(self.0) / f64::from(u32::MAX) * 2.0 - 1.0) as f32
        }
    }

    /// Peaks added to the programme's noise bed.
    #[derive(Clone, Copy, PartialEq)]
    enum Peaks {
        None,
        /// Every second a full-scale click and, half a second later, 2 ms of 12 kHz sampled at 45°, whose samples read
        /// 3 dB under their true peak (a sample-peak limiter would miss them). A worst case, not music.
        Synthetic,
        /// A sustained chord and, from 250 ms on, a decaying 60 Hz hit at −1 dBFS every half second: a kick drum
        /// over a quiet mix.
        Drums,
    }

    /// Interleaved stereo programme material: low-passed noise (peaks ~12 dB over its RMS) at amplitude `bed`, with
    /// `peaks` on top.
    fn programme(seconds: f64, bed: f32, peaks: Peaks) -> Vec<f32> {
        let frames = (seconds * f64::from(PCM_RATE)) as usize;
        let mut noise = Noise(0x1234_5678);
        let (mut l, mut r) = (0f32, 0f32);
        let mut out = Vec::with_capacity(frames * 2);
        for n in 0..frames {
            l = 0.7 * l + 0.3 * noise.next();
            r = 0.7 * r + 0.3 * noise.next();
            let (mut left, mut right) = (bed * l, bed * r);
            if peaks == Peaks::Drums {
                let seconds = n as f64 / 48_000.0;
                let chord: f64 = [220.0, 277.2, 329.6].iter().map(|f| 0.05 * (TAU * f * seconds).sin()).sum();
                let t = ((n + 12_000) % 24_000) as f64 / 48_000.0;
                let hit = if n < 12_000 { 0.0 } else { 0.89 * (-t / 0.05).exp() * (TAU * 60.0 * t).sin() };
                left += (chord + hit) as f32;
                right += (chord + hit) as f32;
            }
            if peaks == Peaks::Synthetic {
                let t = n % 48_000;
                if t == 0 {
                    left += 0.9;
                    right -= 0.9;
                }
                if (24_000..24_096).contains(&t) {
                    let s = 0.9 * (FRAC_PI_2 * t as f64 + FRAC_PI_4).sin() as f32;
                    left += s;
                    right += s;
                }
            }
            out.extend([left, right]);
        }
        out
    }

    fn assert_meets_contract(what: &str, after: Option<Loudness>, ceiling: f64) {
        let after = after.unwrap_or_else(|| panic!("{what}: output measured as silent"));
        assert!((after.integrated_lufs - TARGET).abs() <= 0.5, "{what}: {after:?}");
        assert!(after.true_peak_dbtp <= ceiling, "{what}: {after:?}");
    }

    #[test]
    fn a_known_sine_reads_its_level_on_both_meters() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let wav = dir.path().join("sine.wav");
        // A stereo 997 Hz sine with peaks at −20 dBFS is −20.0 LUFS by definition of the BS.1770 constant.
        run_gst(&format!(
            "audiotestsrc wave=sine freq=997 volume=0.1 num-buffers=100 samplesperbuffer=4800 ! \
             audio/x-raw,format=F32LE,rate=48000,channels=2 ! wavenc ! filesink location={}",
            wav.display()
        ))?;
        let pcm = dir.path().join("sine.pcm");
        let reports = std::cell::RefCell::new(Vec::new());
        let frames = extract_pcm(&wav, &pcm, &|p| reports.borrow_mut().push(p))?;
        assert_eq!(frames, Some(480_000));
        assert_eq!(std::fs::metadata(&pcm)?.len(), 480_000 * 8);
        assert_eq!(reports.borrow().last(), Some(&1.0));
        assert!(reports.borrow().iter().all(|p| (0.0..=1.0).contains(p)));

        let measured = measure_pcm(&pcm)?.context("silent")?;
        assert!((measured.integrated_lufs + 20.0).abs() < 0.05, "{measured:?}");
        assert!((measured.true_peak_dbtp + 20.0).abs() < 0.1, "{measured:?}");
        assert!(measured.lra_lu < 0.1, "{measured:?}");
        let (ffmpeg_i, ffmpeg_tp) = ffmpeg_meter(&wav, false)?;
        assert!((measured.integrated_lufs - ffmpeg_i).abs() <= 0.1, "{measured:?} vs ffmpeg {ffmpeg_i}");
        assert!((measured.true_peak_dbtp - ffmpeg_tp).abs() <= 0.2, "{measured:?} vs ffmpeg {ffmpeg_tp}");
        assert_eq!(measure_file(&wav)?, Some(measured));
        Ok(())
    }

    #[test]
    fn a_quiet_mono_44k_source_is_upmixed_resampled_and_brought_to_target() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mp4 = dir.path().join("quiet.mp4");
        run_gst(&format!(
            "audiotestsrc wave=pink-noise volume=0.085 num-buffers=80 samplesperbuffer=4410 ! \
             audio/x-raw,rate=44100,channels=1 ! audioconvert ! avenc_aac ! mp4mux ! filesink location={}",
            mp4.display()
        ))?;
        let pcm = dir.path().join("quiet.pcm");
        let frames = extract_pcm(&mp4, &pcm, &|_| {})?.context("no audio")?;
        assert!((frames as i64 - 8 * 48_000).abs() <= 2048, "{frames} frames for 8 s");
        let samples = read_pcm(&pcm)?;
        assert!(samples.chunks_exact(2).all(|f| f[0] == f[1]), "mono must be copied to both channels");

        // ffmpeg meters the mono file as one channel; played as dual mono it is 3 dB louder.
        let measured = measure_pcm(&pcm)?.context("silent")?;
        let (ffmpeg_i, _) = ffmpeg_meter(&mp4, false)?;
        assert!((measured.integrated_lufs - (ffmpeg_i + 3.01)).abs() <= 0.3, "{measured:?} vs ffmpeg {ffmpeg_i}");
        assert!((-40.0..-30.0).contains(&measured.integrated_lufs), "{measured:?}");

        let out = dir.path().join("quiet.norm.pcm");
        let result = normalize_pcm(&pcm, &out, TARGET, CEILING, MAX_GAIN)?;
        assert_eq!(result.before, Some(measured));
        assert_meets_contract("quiet", result.after, CEILING);
        let (ffmpeg_i, ffmpeg_tp) = ffmpeg_meter(&out, true)?;
        assert!((ffmpeg_i - TARGET).abs() <= 0.5 && ffmpeg_tp <= CEILING + 0.1, "ffmpeg {ffmpeg_i} {ffmpeg_tp}");
        Ok(())
    }

    #[test]
    fn a_loud_clipped_source_comes_down_to_target() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let wav = dir.path().join("loud.wav");
        // Converting to 16 bits clips the overdriven noise hard at full scale.
        run_gst(&format!(
            "audiotestsrc wave=pink-noise num-buffers=100 samplesperbuffer=4800 ! \
             audio/x-raw,format=F32LE,rate=48000,channels=2 ! volume volume=4 ! audioconvert ! \
             audio/x-raw,format=S16LE ! wavenc ! filesink location={}",
            wav.display()
        ))?;
        let pcm = dir.path().join("loud.pcm");
        extract_pcm(&wav, &pcm, &|_| {})?.context("no audio")?;
        let out = dir.path().join("loud.norm.pcm");
        let result = normalize_pcm(&pcm, &out, TARGET, CEILING, MAX_GAIN)?;
        let before = result.before.context("silent")?;
        assert!(before.integrated_lufs > -8.0 && before.true_peak_dbtp > -0.5, "{before:?}");
        assert_meets_contract("loud", result.after, CEILING);
        let (ffmpeg_i, ffmpeg_tp) = ffmpeg_meter(&out, true)?;
        assert!((ffmpeg_i - TARGET).abs() <= 0.5 && ffmpeg_tp <= CEILING + 0.1, "ffmpeg {ffmpeg_i} {ffmpeg_tp}");
        Ok(())
    }

    #[test]
    fn a_peaky_source_is_limited_to_the_ceiling_and_reaches_target() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pcm = dir.path().join("peaky.pcm");
        write_pcm(&pcm, &programme(20.0, 0.1, Peaks::Synthetic))?;
        let out = dir.path().join("peaky.norm.pcm");
        let result = normalize_pcm(&pcm, &out, TARGET, CEILING, MAX_GAIN)?;
        assert!(result.limited, "{result:?}");
        let after = result.after.context("silent")?;
        assert!((after.integrated_lufs - TARGET).abs() <= LOUDNESS_TOLERANCE_LU, "{result:?}");
        assert!(after.true_peak_dbtp <= CEILING, "{result:?}");
        let (ffmpeg_i, ffmpeg_tp) = ffmpeg_meter(&out, true)?;
        assert!((ffmpeg_i - TARGET).abs() <= 0.5 && ffmpeg_tp <= CEILING + 0.1, "ffmpeg {ffmpeg_i} {ffmpeg_tp}");
        // The output is as long as the input, and the bed between the peaks keeps the full gain: 420–480 ms after a
        // click (past the release) and 20 ms before a burst (before the attack).
        let (input, output) = (read_pcm(&pcm)?, read_pcm(&out)?);
        assert_eq!(input.len(), output.len());
        let energy = |s: &[f32]| s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
        let (from, to) = (48_000 + 20_000, 48_000 + 23_000);
        let bed_gain_db = 10.0 * (energy(&output[2 * from..2 * to]) / energy(&input[2 * from..2 * to])).log10();
        assert!((bed_gain_db - result.gain_db).abs() < 0.1, "bed gain {bed_gain_db} dB, {result:?}");
        Ok(())
    }

    #[test]
    fn a_square_wave_and_an_impulse_train_stay_under_the_ceiling() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // A naive square wave overshoots between its samples; a lone impulse is all true peak.
        let square: Vec<f32> = (0..10 * 48_000)
            .flat_map(|n| {
                let s = if (n / 24) % 2 == 0 { 0.9f32 } else { -0.9 };
                [s, s]
            })
            .collect();
        let mut impulses = programme(10.0, 0.05, Peaks::None);
        for frame in (0..impulses.len() / 2).step_by(4_800) {
            impulses[2 * frame] = 1.0;
            impulses[2 * frame + 1] = -1.0;
        }
        for (name, samples) in [("square", square), ("impulses", impulses)] {
            let pcm = dir.path().join(format!("{name}.pcm"));
            write_pcm(&pcm, &samples)?;
            let out = dir.path().join(format!("{name}.norm.pcm"));
            let result = normalize_pcm(&pcm, &out, TARGET, CEILING, MAX_GAIN)?;
            assert_meets_contract(name, result.after, CEILING);
            let (ffmpeg_i, ffmpeg_tp) = ffmpeg_meter(&out, true)?;
            assert!((ffmpeg_i - TARGET).abs() <= 0.5 && ffmpeg_tp <= CEILING + 0.1, "{name}: {ffmpeg_i} {ffmpeg_tp}");
        }
        Ok(())
    }

    #[test]
    fn linear_gain_when_the_peak_allows_it() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pcm = dir.path().join("sine.pcm");
        let sine: Vec<f32> = (0..5 * 48_000)
            .flat_map(|n| {
                let s = 0.05 * (TAU * 997.0 * n as f64 / 48_000.0).sin() as f32;
                [s, s]
            })
            .collect();
        write_pcm(&pcm, &sine)?;
        let out = dir.path().join("sine.norm.pcm");
        let result = normalize_pcm(&pcm, &out, TARGET, CEILING, MAX_GAIN)?;
        assert!(!result.limited, "{result:?}");
        assert!((result.gain_db - 12.0).abs() < 0.1, "{result:?}");
        assert_meets_contract("sine", result.after, CEILING);
        let ratio = 10f64.powf(result.gain_db / 20.0);
        let output = read_pcm(&out)?;
        assert_eq!(output.len(), sine.len());
        for (o, i) in output.iter().zip(&sine).filter(|(_, i)| i.abs() > 1e-3) {
            assert!((f64::from(*o) / f64::from(*i) / ratio - 1.0).abs() < 1e-6, "{o} / {i} is not {ratio}");
        }
        Ok(())
    }

    #[test]
    fn blocks_give_exactly_the_whole_file_result() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pcm = dir.path().join("peaky.pcm");
        write_pcm(&pcm, &programme(6.0, 0.02, Peaks::Synthetic))?;
        let render_with = |block: usize| -> Result<Vec<u8>> {
            let out = dir.path().join(format!("out-{block}.pcm"));
            let staged = Staged::new(&out);
            render(&pcm, &staged, 24.0, Some(-1.0), block)?;
            staged.commit()?;
            Ok(std::fs::read(&out)?)
        };
        let whole = render_with(6 * 48_000 + 1)?;
        assert_eq!(whole.len(), 6 * 48_000 * 8);
        // Blocks smaller than the look-ahead margin, odd sizes and the production size.
        for block in [100, 4_801, BLOCK_FRAMES] {
            assert!(render_with(block)? == whole, "block of {block} frames differs from one pass");
        }
        Ok(())
    }

    #[test]
    fn silence_is_copied_unchanged() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pcm = dir.path().join("silence.pcm");
        let mut samples = vec![0f32; 3 * 48_000 * 2];
        samples[1000] = 1e-6; // far below the absolute gate
        write_pcm(&pcm, &samples)?;
        assert_eq!(measure_pcm(&pcm)?, None);
        let out = dir.path().join("silence.norm.pcm");
        let result = normalize_pcm(&pcm, &out, TARGET, CEILING, MAX_GAIN)?;
        assert_eq!(result, Normalized { before: None, after: None, gain_db: 0.0, limited: false });
        assert_eq!(std::fs::read(&out)?, std::fs::read(&pcm)?);
        Ok(())
    }

    #[test]
    fn a_near_silent_source_is_not_blown_up() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pcm = dir.path().join("whisper.pcm");
        write_pcm(&pcm, &programme(5.0, 0.005, Peaks::None))?;
        let out = dir.path().join("whisper.norm.pcm");
        let result = normalize_pcm(&pcm, &out, TARGET, CEILING, 20.0)?;
        let (before, after) = (result.before.context("silent")?, result.after.context("silent")?);
        assert_eq!(result.gain_db, 20.0);
        assert!((after.integrated_lufs - (before.integrated_lufs + 20.0)).abs() < 0.05, "{result:?}");
        assert!(after.integrated_lufs < TARGET - 5.0, "the shortfall is reported: {result:?}");
        Ok(())
    }

    #[test]
    fn audio_starting_late_is_preceded_by_silence_and_video_is_not_decoded() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mkv = dir.path().join("late.mkv");
        // Video from 0 s, audio from 0.5 s: sample 0 must still be running time 0.
        run_gst(&format!(
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
        run_gst(&format!(
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
        run_gst(&format!(
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
    fn errors_name_the_file_and_the_reason() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let garbage = dir.path().join("garbage.mp4");
        let mut noise = Noise(7);
        std::fs::write(&garbage, (0..100_000).map(|_| noise.next().to_bits() as u8).collect::<Vec<_>>())?;
        let out = dir.path().join("out.pcm");
        let err = extract_pcm(&garbage, &out, &|_| {}).expect_err("garbage decodes");
        assert!(matches!(err, LoudnessError::Decode { .. }), "{err:?}");
        assert!(err.to_string().contains("garbage.mp4"), "{err}");
        assert!(!out.exists());

        let missing = dir.path().join("missing.mov");
        let err = measure_file(&missing).expect_err("missing file measured");
        assert!(matches!(err, LoudnessError::Io { .. }) && err.to_string().contains("missing.mov"), "{err}");
        let err = measure_file(dir.path()).expect_err("directory decoded");
        assert!(matches!(err, LoudnessError::NotAFile { .. }), "{err}");

        let odd = dir.path().join("odd.pcm");
        std::fs::write(&odd, [0u8; 12])?;
        let err = measure_pcm(&odd).expect_err("odd length accepted");
        assert!(matches!(err, LoudnessError::NotPcm { .. }) && err.to_string().contains("odd.pcm"), "{err}");
        let err = normalize_pcm(&odd, &out, f64::NAN, CEILING, MAX_GAIN).expect_err("NaN target accepted");
        assert!(matches!(err, LoudnessError::Settings { .. }) && err.to_string().contains("odd.pcm"), "{err}");
        Ok(())
    }

    #[test]
    fn a_decode_that_delivers_nothing_times_out() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let wav = dir.path().join("tone.wav");
        run_gst(&format!(
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

    #[test]
    fn the_true_peak_detector_finds_peaks_between_samples() {
        let mut detector = PeakDetector::new();
        let margin = LIMITER_MARGIN;
        for (freq, phase) in [(997.0, 0.3), (5_000.0, 1.1), (12_000.0, FRAC_PI_4), (17_000.0, 0.7), (19_000.0, 2.0)] {
            let frames = 4_800;
            let wave: Vec<f32> =
                (0..frames + 2 * margin).map(|n| (TAU * freq * n as f64 / 48_000.0 + phase).sin() as f32).collect();
            let peak = detector.detect(&wave, &wave, frames, 0.0).iter().fold(0f32, |a, &b| a.max(b));
            let sample_peak = wave.iter().fold(0f32, |a, &b| a.max(b.abs()));
            let db = 20.0 * f64::from(peak).log10();
            // Within 0.1 dB up to 17 kHz; near the band edge the window may read a little low.
            let tolerance = if freq < 18_000.0 { 0.1 } else { 0.5 };
            assert!(db.abs() < tolerance, "{freq} Hz reads {db:.3} dBTP (samples {sample_peak})");
        }
    }

    #[test]
    fn the_survey_estimates_agree_with_the_meter() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pcm = dir.path().join("peaky.pcm");
        write_pcm(&pcm, &programme(10.0, 0.1, Peaks::Drums))?;
        let gains = [0.0, 6.0, 12.0];
        let estimates = survey(&pcm, -1.0, &gains, BLOCK_FRAMES)?;
        assert_eq!(estimates.len(), gains.len());
        for (gain, estimate) in estimates {
            let staged = Staged::new(&dir.path().join("out.pcm"));
            let rendered = render(&pcm, &staged, gain, Some(-1.0), BLOCK_FRAMES)?;
            let measured = rendered.after.context("silent")?.integrated_lufs;
            assert_eq!(rendered.estimate, Some(estimate));
            assert!((estimate - measured).abs() < 0.1, "at +{gain} dB: estimated {estimate}, measured {measured}");
        }
        Ok(())
    }

    #[test]
    fn the_house_chain_meets_the_contract_on_an_independent_meter() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // A source that needs the limiter, as the ingest would get it: AAC in MP4.
        let raw = dir.path().join("source.pcm");
        write_pcm(&raw, &programme(20.0, 0.02, Peaks::Drums))?;
        let source = dir.path().join("source.mp4");
        encode_aac(&raw, &source)?;

        let pcm = dir.path().join("extracted.pcm");
        extract_pcm(&source, &pcm, &|_| {})?.context("no audio")?;
        let normalized = dir.path().join("normalized.pcm");
        let result = normalize_pcm(&pcm, &normalized, TARGET, -2.0, MAX_GAIN)?;
        assert!(result.limited, "{result:?}");
        assert_meets_contract("before encoding", result.after, -2.0);
        let rendition = dir.path().join("rendition.mp4");
        encode_aac(&normalized, &rendition)?;

        let (ffmpeg_i, ffmpeg_tp) = ffmpeg_meter(&rendition, false)?;
        let ours = measure_file(&rendition)?.context("silent rendition")?;
        eprintln!("house chain: {result:?}; rendition: ours {ours:?}, ffmpeg I {ffmpeg_i} LUFS, TP {ffmpeg_tp} dBTP");
        assert!((ffmpeg_i - TARGET).abs() <= 1.0, "ffmpeg reads {ffmpeg_i} LUFS");
        assert!(ffmpeg_tp <= -1.0, "ffmpeg reads {ffmpeg_tp} dBTP");
        assert!((ours.integrated_lufs - ffmpeg_i).abs() <= 0.2, "{ours:?} vs ffmpeg {ffmpeg_i}");
        Ok(())
    }

    /// CPU time this process has used (user + system), from /proc: wall time is meaningless on a shared machine.
    fn cpu_time() -> Result<Duration> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        let fields: Vec<&str> = stat.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        Ok(Duration::from_millis(ticks * 10))
    }

    /// Throughput on ten minutes of programme, in CPU time:
    /// `cargo test -- --ignored --nocapture ten_minutes`.
    #[test]
    #[ignore = "benchmark"]
    fn ten_minutes_throughput() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let seconds = 600.0;
        let speed = |cpu: Duration| seconds / cpu.as_secs_f64();
        let long = dir.path().join("long.pcm");
        write_pcm(&long, &programme(seconds, 0.1, Peaks::Synthetic))?;
        let linear = dir.path().join("linear.pcm");
        write_pcm(&linear, &programme(seconds, 0.1, Peaks::None))?;

        let started = cpu_time()?;
        measure_pcm(&long)?;
        let measure = speed(cpu_time()? - started);
        let started = cpu_time()?;
        let plain = normalize_pcm(&linear, &dir.path().join("linear.norm.pcm"), TARGET, CEILING, MAX_GAIN)?;
        let normalize_linear = speed(cpu_time()? - started);
        let started = cpu_time()?;
        let limited = normalize_pcm(&long, &dir.path().join("long.norm.pcm"), TARGET, CEILING, MAX_GAIN)?;
        let normalize_limited = speed(cpu_time()? - started);
        let mp4 = dir.path().join("long.mp4");
        encode_aac(&long, &mp4)?;
        let started = cpu_time()?;
        extract_pcm(&mp4, &dir.path().join("long.extracted.pcm"), &|_| {})?;
        let extract = speed(cpu_time()? - started);
        eprintln!(
            "10 min, x real time per CPU: measure {measure:.0}, normalize linear {normalize_linear:.0} ({plain:?}), \
             normalize limited {normalize_limited:.0} ({limited:?}), extract AAC {extract:.0}"
        );
        assert!(!plain.limited && limited.limited);
        assert!(normalize_limited > 60.0, "an hour must normalize in under a minute of CPU");
        Ok(())
    }
}
