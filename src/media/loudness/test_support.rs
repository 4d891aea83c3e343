//! What the loudness tests share.
//!
//! The settings they normalise to, a gst-launch runner, an independent meter (ffmpeg) and PCM helpers.

pub(super) use super::test_signal::{programme, write_pcm, Noise, Peaks};
use super::Loudness;
use anyhow::{anyhow, Context, Result};
use gst::prelude::*;
use std::path::Path;

pub(super) const TARGET: f64 = -14.0;
pub(super) const CEILING: f64 = -1.0;
pub(super) const MAX_GAIN: f64 = 30.0;

/// Runs a `gst-launch` style pipeline to EOS.
pub(super) fn run_gst(description: &str) -> Result<()> {
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

/// Wraps a PCM file into an AAC-in-MP4 file the way the house encoder will read it.
pub(super) fn encode_aac(pcm: &Path, mp4: &Path) -> Result<()> {
    run_gst(&format!(
        "filesrc location={} ! rawaudioparse format=pcm pcm-format=f32le sample-rate=48000 num-channels=2 ! \
         audioconvert ! avenc_aac bitrate=128000 ! mp4mux ! filesink location={}",
        pcm.display(),
        mp4.display()
    ))
}

pub(super) fn assert_meets_contract(what: &str, after: Option<Loudness>, ceiling: f64) {
    let after = after.unwrap_or_else(|| panic!("{what}: output measured as silent"));
    assert!((after.integrated_lufs - TARGET).abs() <= 0.5, "{what}: {after:?}");
    assert!(after.true_peak_dbtp <= ceiling, "{what}: {after:?}");
}
