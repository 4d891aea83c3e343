//! The EBU R128 meter (ebur128) behind every loudness reading this module reports.
//!
//! Integrated loudness (ITU-R BS.1770), loudness range and true peak of interleaved stereo at the PCM rate.

use super::{Loudness, LoudnessError, PCM_CHANNELS, PCM_RATE};
use std::path::{Path, PathBuf};

/// An EBU R128 meter for the PCM layout; errors name `path`.
pub(super) struct Meter {
    path: PathBuf,
    ebu: ebur128::EbuR128,
}

impl Meter {
    pub(super) fn new(path: &Path) -> Result<Meter, LoudnessError> {
        let mode = ebur128::Mode::I | ebur128::Mode::LRA | ebur128::Mode::TRUE_PEAK;
        let ebu = ebur128::EbuR128::new(PCM_CHANNELS, PCM_RATE, mode)
            .map_err(|e| LoudnessError::Meter { path: path.to_owned(), reason: e.to_string() })?;
        Ok(Meter { path: path.to_owned(), ebu })
    }

    fn failed(&self, e: ebur128::Error) -> LoudnessError {
        LoudnessError::Meter { path: self.path.clone(), reason: e.to_string() }
    }

    /// Adds interleaved stereo samples.
    pub(super) fn add(&mut self, interleaved: &[f32]) -> Result<(), LoudnessError> {
        self.ebu.add_frames_f32(interleaved).map_err(|e| self.failed(e))
    }

    /// Integrated loudness so far; `None` when nothing passed the absolute gate.
    fn integrated(&self) -> Result<Option<f64>, LoudnessError> {
        let lufs = self.ebu.loudness_global().map_err(|e| self.failed(e))?;
        Ok(lufs.is_finite().then_some(lufs))
    }

    /// The programme's loudness so far; `None` when nothing passed the absolute gate.
    pub(super) fn finish(&self) -> Result<Option<Loudness>, LoudnessError> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{extract_pcm, measure_file, measure_pcm};
    use vvtv_testkit::check::{Context, Result};

    #[test]
    fn a_known_sine_reads_its_level_on_both_meters() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let wav = dir.path().join("sine.wav");
        // A stereo 997 Hz sine with peaks at −20 dBFS is −20.0 LUFS by definition of the BS.1770 constant.
        launch(&format!(
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
}
