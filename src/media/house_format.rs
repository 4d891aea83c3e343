//! The house format: the one contract between the factory and the broadcaster — what every asset on air looks like.
//!
//! Every asset on air must have exactly the same codec parameters so the broadcaster can splice encoded buffers
//! without re-encoding (see DESIGN.md, "Playout without re-encoding"). That is why everything that decides those
//! parameters lives here and nowhere else:
//! - video: H.264 High, 8-bit 4:2:0, BT.709, fixed fps, closed GOP of exactly `gop_seconds`, no scene-cut keyframes,
//!   a fixed B-frame delay, square pixels letter/pillar-boxed into each rung's frame;
//! - audio: AAC-LC 48 kHz stereo, cut or padded to the video's duration;
//! - container: one MP4 per rung.
//!
//! The encoder that turns a source into this format is `media/transcode/`.

use crate::config::HouseFormatConfig;
use std::time::Duration;

/// Audio sample rate of the house format.
pub const AUDIO_RATE: u32 = 48_000;
/// Audio channels of the house format.
pub const AUDIO_CHANNELS: u32 = 2;
/// Samples in one AAC-LC frame.
pub const AAC_FRAME_SAMPLES: u32 = 1024;
/// Consecutive B-frames between references. Fixed (no adaptive B-frames, no pyramid) so every asset has the same
/// reorder delay: the first DTS is always exactly one frame before the first PTS, which the playout relies on to keep
/// DTS continuous across item boundaries.
pub const B_FRAMES: u32 = 2;
/// x264 constant-rate factor of the capped-CRF rate control (x264enc `pass=qual`: CRF, with the VBV max rate set to
/// the rung's `bitrate` and the buffer to `vbv-buf-capacity` ms of it). Quality-targeted, so easy content (a slate)
/// takes few bits, while the cap bounds the peak the ladder advertises. Plain ABR (`pass=cbr`) would spend the full
/// bitrate on a still picture; two-pass would double the ingest time.
pub const CRF: u32 = 21;
/// VBV buffer in milliseconds at the rung's bitrate: two seconds is the usual bound for streaming ladders.
pub const VBV_BUFFER_MS: u32 = 2000;
/// The x264 presets `x264_preset` may name.
const X264_PRESETS: [&str; 9] =
    ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"];

/// The house format: what every asset on air looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct HouseFormat {
    pub fps: u32,
    pub gop_seconds: u32,
    pub segment_seconds: u32,
    pub audio_kbps: u32,
    /// Loudness target; applied by the loudness stage, carried here because it is part of the contract.
    pub target_lufs: f64,
    pub true_peak_dbtp: f64,
    pub x264_preset: String,
    pub rungs: Vec<Rung>,
}

/// One rung of the ABR ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    /// Used as the rendition's file name: `{name}.mp4`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
}

impl HouseFormat {
    /// The house format described by an (already validated) config section.
    pub fn from_config(c: &HouseFormatConfig) -> HouseFormat {
        HouseFormat {
            fps: c.fps,
            gop_seconds: c.gop_seconds,
            segment_seconds: c.segment_seconds,
            audio_kbps: c.audio_kbps,
            target_lufs: c.target_lufs,
            true_peak_dbtp: c.true_peak_dbtp,
            x264_preset: c.x264_preset.clone(),
            rungs: c
                .ladder
                .iter()
                .map(|r| Rung { name: r.name.clone(), width: r.width, height: r.height, video_kbps: r.video_kbps })
                .collect(),
        }
    }

    /// Frames in one GOP: the fixed keyframe interval.
    pub fn gop_frames(&self) -> u32 {
        self.fps * self.gop_seconds
    }

    /// Duration of one video frame, truncated to whole nanoseconds (use [`HouseFormat::frame_pts_ns`] for positions,
    /// which does not accumulate the truncation).
    pub fn frame_duration(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.fps.max(1)))
    }

    /// PTS of frame `n` counted from 0, exactly as GStreamer computes it (truncated, never accumulated).
    pub fn frame_pts_ns(&self, n: u64) -> i64 {
        (u128::from(n) * 1_000_000_000 / u128::from(self.fps.max(1))) as i64
    }

    /// Duration of one AAC frame (1024 samples at 48 kHz), in nanoseconds.
    pub fn aac_frame_ns() -> i64 {
        i64::from(AAC_FRAME_SAMPLES) * 1_000_000_000 / i64::from(AUDIO_RATE)
    }

    /// The rung with the largest frame; test cards are drawn at this size and scaled down for the others.
    pub fn top_rung(&self) -> Option<&Rung> {
        self.top_rung_index().map(|i| &self.rungs[i])
    }

    /// Where [`HouseFormat::top_rung`] stands in the ladder (and its rendition in
    /// the encoder's `Encoded::renditions`).
    pub fn top_rung_index(&self) -> Option<usize> {
        (0..self.rungs.len()).max_by_key(|&i| u64::from(self.rungs[i].width) * u64::from(self.rungs[i].height))
    }

    /// Whole frames closest to `duration` (at least one).
    pub fn frames_in(&self, duration: Duration) -> u64 {
        let frames = (duration.as_nanos() * u128::from(self.fps) + 500_000_000) / 1_000_000_000;
        (frames as u64).max(1)
    }

    /// Refuses settings the encoder cannot honour (the reason why); the config validation normally catches them
    /// first.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.rungs.is_empty() {
            return Err("the house format has no rungs".into());
        }
        if self.fps == 0 || self.gop_seconds == 0 {
            return Err(format!("fps {} and gop_seconds {} must be positive", self.fps, self.gop_seconds));
        }
        if !X264_PRESETS.contains(&self.x264_preset.as_str()) {
            return Err(format!("{:?} is not an x264 preset", self.x264_preset));
        }
        for r in &self.rungs {
            if !crate::config::is_slug(&r.name)
                || r.width % 2 != 0
                || r.height % 2 != 0
                || r.width == 0
                || r.height == 0
            {
                return Err(format!("rung {:?} {}x{} is not a valid rung", r.name, r.width, r.height));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn house_format_follows_the_config() {
        let hf = HouseFormat::from_config(&HouseFormatConfig::default());
        assert_eq!(hf.gop_frames(), 60);
        assert_eq!(hf.frame_duration(), Duration::from_nanos(33_333_333));
        assert_eq!(hf.frame_pts_ns(3), 100_000_000);
        assert_eq!(HouseFormat::aac_frame_ns(), 21_333_333);
        assert_eq!(hf.rungs.len(), 4);
        assert_eq!(hf.top_rung().map(|r| r.name.as_str()), Some("1080p"));
        assert_eq!(hf.frames_in(Duration::from_secs(4)), 120);
        assert_eq!(hf.frames_in(Duration::ZERO), 1);
    }

    #[test]
    fn settings_the_encoder_cannot_honour_are_named() {
        let good = HouseFormat::from_config(&HouseFormatConfig::default());
        assert_eq!(good.check(), Ok(()));
        let preset = HouseFormat { x264_preset: "warp9".into(), ..good.clone() };
        assert!(preset.check().is_err_and(|reason| reason.contains("warp9")));
        let mut odd = good.clone();
        odd.rungs[0].width = 1279;
        assert!(odd.check().is_err_and(|reason| reason.contains("1279x")));
        let empty = HouseFormat { rungs: vec![], ..good };
        assert_eq!(empty.check(), Err("the house format has no rungs".to_owned()));
    }
}
