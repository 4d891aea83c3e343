//! What the loudness tests share.
//!
//! The settings they normalise to, an independent meter (ffmpeg) and PCM helpers; test media comes from the test
//! kit's generator (`vvtv_testkit::media`), re-exported here so a test module's one glob import brings it along.

pub(super) use super::test_signal::{programme, write_pcm, Noise, Peaks};
use super::Loudness;
use std::path::Path;
use vvtv_testkit::check::{Context, Result};
pub(super) use vvtv_testkit::media::{aac_in_mp4, launch};

pub(super) const TARGET: f64 = -14.0;
pub(super) const CEILING: f64 = -1.0;
pub(super) const MAX_GAIN: f64 = 30.0;

/// Integrated loudness and true peak read by ffmpeg's ebur128 filter: an independent meter (its true peak
/// oversamples to 192 kHz with libswresample). `raw` files are read as 48 kHz F32LE stereo.
pub(super) fn ffmpeg_meter(path: &Path, raw: bool) -> Result<(f64, f64)> {
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

pub(super) fn read_pcm(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

pub(super) fn assert_meets_contract(what: &str, after: Option<Loudness>, ceiling: f64) {
    let after = after.unwrap_or_else(|| panic!("{what}: output measured as silent"));
    assert!((after.integrated_lufs - TARGET).abs() <= 0.5, "{what}: {after:?}");
    assert!(after.true_peak_dbtp <= ceiling, "{what}: {after:?}");
}
