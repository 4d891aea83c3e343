//! Quick loudness readings of trial gains, which steer the gain search.
//!
//! Searching for the gain that lands on the target takes loudness readings of several gains. Metering each with
//! ebur128 would filter every trial's output again; instead the input is K-weighted once and each trial's limiter
//! envelope weighs that power: K(e·x) ≈ e·K(x), because the envelope moves slowly next to the K filter's response.
//! The readings only steer the search: the written output is always measured with ebur128, and the difference
//! calibrates the estimates.

use super::PCM_RATE;

/// Frames in one 100 ms gating segment.
const SEGMENT_FRAMES: usize = PCM_RATE as usize / 10;

/// The K-weighting filter of BS.1770 (high-shelf pre-filter, then the RLB high-pass) for one channel at 48 kHz.
pub(super) struct KWeighting {
    stages: [Biquad; 2],
}

impl KWeighting {
    pub(super) fn new() -> KWeighting {
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
    pub(super) fn add_power(&mut self, samples: &[f32], power: &mut [f64]) {
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
pub(super) struct LoudnessEstimate {
    /// Energy of each complete 100 ms segment, before the trial's gain.
    segments: Vec<f64>,
    current: f64,
    filled: usize,
}

impl LoudnessEstimate {
    /// Adds frames of K-weighted `power`, each weighted by its limiter gain squared.
    pub(super) fn add(&mut self, envelope: &[f32], power: &[f64]) {
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
    pub(super) fn lufs(&self, gain_db: f64) -> Option<f64> {
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
