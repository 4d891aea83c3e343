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
//!
//! # Layout
//! - `decode.rs`: the GStreamer pipeline that decodes the first audio stream of a source to the PCM layout below.
//! - `meter.rs`: the EBU R128 meter (ebur128) behind every reading this module reports.
//! - `gain.rs`: the search for the gain that lands the limited output on the target, and the passes over the PCM.
//! - `estimate.rs`: quick loudness readings of trial gains from the K-weighted input, which steer that search.
//! - `limiter.rs`: the true-peak limiter (oversampled peak detector, envelope, sliding min, Kaiser-windowed sinc).
//! - `pcm.rs`: reading PCM files a block at a time, and writing files that appear only when complete.
//! - `test_signal.rs`: deterministic programme material for the tests and `benches/loudness.rs`.

mod decode;
mod estimate;
mod gain;
mod limiter;
mod meter;
mod pcm;
pub mod test_signal;
#[cfg(test)]
mod test_support;

use decode::{decode_audio, STALL_TIMEOUT};
use meter::Meter;
use pcm::{PcmReader, Staged};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sample rate of the PCM files (interleaved F32LE stereo, sample 0 = running time 0 of the source).
pub const PCM_RATE: u32 = 48_000;
/// Channels of the PCM files.
pub const PCM_CHANNELS: u32 = 2;

/// Bytes in one PCM frame (one F32 sample per channel).
const FRAME_BYTES: usize = PCM_CHANNELS as usize * std::mem::size_of::<f32>();
/// Frames read, processed and written at a time (~1.4 s): large enough that per-block work is negligible.
const BLOCK_FRAMES: usize = 1 << 16;

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
    #[error("{}: {failure}", path.display())]
    Decode { path: PathBuf, failure: crate::media::pipeline::ElementFailure },
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
}

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
        let after = gain::render(input, &staged, linear_db, None, BLOCK_FRAMES)?.after;
        staged.commit()?;
        tracing::debug!(input = %input.display(), gain_db = linear_db, ?before, ?after, "normalized by linear gain");
        return Ok(Normalized { before: Some(before), after, gain_db: linear_db, limited: false });
    }
    let gain::Limited { gain_db, after, rounds } =
        gain::search(input, &staged, linear_db, target_lufs, ceiling_dbtp, max_gain_db)?;
    staged.commit()?;
    tracing::debug!(input = %input.display(), gain_db, rounds, ?before, ?after, "normalized with limiter");
    Ok(Normalized { before: Some(before), after, gain_db, limited: true })
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

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use std::f64::consts::TAU;
    use vvtv_testkit::check::{Context, Result};

    #[test]
    fn a_quiet_mono_44k_source_is_upmixed_resampled_and_brought_to_target() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mp4 = dir.path().join("quiet.mp4");
        launch(&format!(
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
        launch(&format!(
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
    fn the_house_chain_meets_the_contract_on_an_independent_meter() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // A source that needs the limiter, as the ingest would get it: AAC in MP4.
        let raw = dir.path().join("source.pcm");
        write_pcm(&raw, &programme(20.0, 0.02, Peaks::Drums))?;
        let source = dir.path().join("source.mp4");
        aac_in_mp4(&raw, &source)?;

        let pcm = dir.path().join("extracted.pcm");
        extract_pcm(&source, &pcm, &|_| {})?.context("no audio")?;
        let normalized = dir.path().join("normalized.pcm");
        let result = normalize_pcm(&pcm, &normalized, TARGET, -2.0, MAX_GAIN)?;
        assert!(result.limited, "{result:?}");
        assert_meets_contract("before encoding", result.after, -2.0);
        let rendition = dir.path().join("rendition.mp4");
        aac_in_mp4(&normalized, &rendition)?;

        let (ffmpeg_i, ffmpeg_tp) = ffmpeg_meter(&rendition, false)?;
        let ours = measure_file(&rendition)?.context("silent rendition")?;
        eprintln!("house chain: {result:?}; rendition: ours {ours:?}, ffmpeg I {ffmpeg_i} LUFS, TP {ffmpeg_tp} dBTP");
        assert!((ffmpeg_i - TARGET).abs() <= 1.0, "ffmpeg reads {ffmpeg_i} LUFS");
        assert!(ffmpeg_tp <= -1.0, "ffmpeg reads {ffmpeg_tp} dBTP");
        assert!((ours.integrated_lufs - ffmpeg_i).abs() <= 0.2, "{ours:?} vs ffmpeg {ffmpeg_i}");
        Ok(())
    }
}
