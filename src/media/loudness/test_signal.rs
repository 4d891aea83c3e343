//! Deterministic programme material for the loudness tests and `benches/loudness.rs`.
//!
//! A noise bed with the peaks that make the limiter work, written as a PCM file of this module. Public only so the
//! benchmark can use it.

use super::PCM_RATE;
use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, TAU};
use std::io;
use std::path::Path;

/// Writes interleaved stereo `samples` as a PCM file of this module.
pub fn write_pcm(path: &Path, samples: &[f32]) -> io::Result<()> {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes)
}

/// Deterministic white noise in [−1, 1).
pub(super) struct Noise(pub(super) u32);

impl Noise {
    pub(super) fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (f64::from(self.0) / f64::from(u32::MAX) * 2.0 - 1.0) as f32
    }
}

/// Peaks added to the programme's noise bed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Peaks {
    /// The noise bed alone.
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
pub fn programme(seconds: f64, bed: f32, peaks: Peaks) -> Vec<f32> {
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
