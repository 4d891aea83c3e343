//! The true-peak limiter: keeps every true peak of the gained programme under the ceiling.
//!
//! Built from an oversampled peak detector (a Kaiser-windowed sinc interpolator), a sliding minimum and the gain
//! envelope.
//!
//! An offline look-ahead limiter, both channels linked. For every frame it detects the true peak across both
//! channels (4× oversampled) and the gain that would bring it to the ceiling, r[n] = min(1, ceiling / peak[n]). That
//! need is held (a minimum over ±H frames, H = half the attack) and then averaged over 2H + 1 frames: every frame of
//! the average's window has frame n in its hold window, so the average never exceeds r[n] — peaks are caught
//! exactly, with a smooth ramp of one attack time on each side instead of a click. A one-pole release then lets the
//! gain rise only slowly (falling is never delayed, so it stays ≤ r[n] too).
//!
//! The stream is processed in blocks with LIMITER_MARGIN frames of context on each side; the only state carried from
//! block to block is the release, so the output is bit-identical to processing the whole file at once. The peak
//! detection does not depend on the gain, so one detection serves every gain tried in a pass.

use super::PCM_RATE;
use std::time::Duration;

/// Interpolated points between two samples for true-peak detection (4× oversampling, as BS.1770 asks).
const OVERSAMPLE: usize = 4;
/// Taps of each interpolation phase: a Kaiser-windowed sinc flat to ~18 kHz at 48 kHz.
const TAPS: usize = 16;
/// Kaiser window shape of the interpolator (~50 dB stop band).
const KAISER_BETA: f64 = 5.0;
/// How far ahead the limiter starts lowering the gain before a peak, and how long its gain ramps take.
const ATTACK: Duration = Duration::from_millis(5);
/// Half the attack, in frames: the hold and the average each reach this far.
pub(super) const HOLD_FRAMES: usize = ATTACK.as_millis() as usize * PCM_RATE as usize / 1000 / 2;
/// Frames of context a block needs on each side: the hold and the average look 2H away, the interpolator TAPS/2.
pub(super) const LIMITER_MARGIN: usize = 2 * HOLD_FRAMES + TAPS;
/// Time constant of the gain's return towards unity after a peak.
const RELEASE: Duration = Duration::from_millis(80);
/// Fixed-point scale of the smoothing sums: integer sums make the result independent of where blocks start.
const FIXED_ONE: f64 = (1u64 << 30) as f64;

/// True peak of every frame of the input, before any gain.
pub(super) struct PeakDetector {
    phases: [[f32; TAPS]; OVERSAMPLE - 1],
    /// The largest sum of absolute tap weights of a phase: no interpolated point exceeds the loudest sample in
    /// reach by more than this factor.
    spread: f32,
    peak: Vec<f32>,
    acc: Vec<f32>,
}

impl PeakDetector {
    pub(super) fn new() -> PeakDetector {
        let phases = interpolation_phases();
        let spread = phases.iter().map(|p| p.iter().map(|c| c.abs()).sum::<f32>()).fold(1.0, f32::max);
        PeakDetector { phases, spread, peak: Vec::new(), acc: Vec::new() }
    }

    /// True peaks (the sample and the 3 interpolated points towards the next one, both channels) of `span` frames
    /// from window index TAPS, i.e. frames [−2H, span − 2H) relative to the block. Peaks that cannot exceed `floor`
    /// are not interpolated: they are reported as their sample peak, which is all a limiter whose threshold is at
    /// least `floor` needs to know (no gain reduction).
    pub(super) fn detect(&mut self, left: &[f32], right: &[f32], span: usize, floor: f32) -> &[f32] {
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
pub(super) struct Envelope {
    /// Input peak level above which gain reduction is needed: ceiling / gain.
    pub(super) threshold: f32,
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
    pub(super) fn new(gain: f64, ceiling: f64) -> Envelope {
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
    pub(super) fn compute(&mut self, peaks: &[f32], out: &mut [f32]) {
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

#[cfg(test)]
mod tests {
    use super::super::normalize_pcm;
    use super::super::test_support::*;
    use super::*;
    use std::f64::consts::{FRAC_PI_4, TAU};
    use vvtv_testkit::check::Result;

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
}
