//! The gain search: the gain that, followed by the true-peak limiter, lands a programme on the loudness target.
//!
//! It is made of passes over the PCM: surveys that estimate the loudness of several gains at once without writing
//! anything, and renders that write one gain and measure it exactly.

use super::estimate::{KWeighting, LoudnessEstimate};
use super::limiter::{Envelope, PeakDetector, HOLD_FRAMES, LIMITER_MARGIN};
use super::meter::Meter;
use super::pcm::{PcmReader, Staged};
use super::{Loudness, LoudnessError, BLOCK_FRAMES, FRAME_BYTES, PCM_CHANNELS};
use std::io::Write;
use std::path::Path;

/// The limited output must land this close to the target (the house contract allows ±0.5 LU).
const LOUDNESS_TOLERANCE_LU: f64 = 0.2;
/// Rendering rounds of the limiter; the last one is kept even if it missed (and says so in the log).
const MAX_ROUNDS: usize = 4;
/// How far the gain search may extrapolate beyond the gains measured: a nearly flat loudness-versus-gain curve
/// (everything already limited) must not send the next round to an absurd gain.
const MAX_GAIN_STEP_DB: f64 = 12.0;
/// The limiter aims this far under the ceiling, so the slight modulation of its gain changes cannot push a peak over.
const LIMITER_HEADROOM_DB: f64 = 0.05;

/// What the gain search settled on.
pub(super) struct Limited {
    /// Linear gain applied before the limiter, dB.
    pub(super) gain_db: f64,
    /// Loudness of the output the last round wrote; `None` when it is silent.
    pub(super) after: Option<Loudness>,
    /// Rendering rounds it took.
    pub(super) rounds: usize,
}

/// Writes `input` into `staged`'s part file at the gain that, through the limiter, lands it within ±0.2 LU of
/// `target_lufs` (at most four rendering rounds) with its true peak under `ceiling_dbtp`. `linear_db` is the gain
/// the target asks for without limiting; no gain goes below it or above `max_gain_db`.
pub(super) fn search(
    input: &Path,
    staged: &Staged,
    linear_db: f64,
    target_lufs: f64,
    ceiling_dbtp: f64,
    max_gain_db: f64,
) -> Result<Limited, LoudnessError> {
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
        let rendered = render(input, staged, gain_db, Some(limit_dbtp), BLOCK_FRAMES)?;
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
    Ok(Limited { gain_db, after, rounds: round })
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

fn db_to_amplitude(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// What a rendering pass wrote and measured.
pub(super) struct Rendered {
    /// Loudness of the written output, measured.
    pub(super) after: Option<Loudness>,
    /// Loudness of the written output as the survey's estimate would have it (limited renders only): the difference
    /// to `after` calibrates the survey's other estimates.
    estimate: Option<f64>,
}

/// Writes `input` × `gain_db` (then through the limiter at `limit_dbtp`, if any) into `staged`'s part file, `block`
/// frames at a time, and measures what it wrote.
pub(super) fn render(
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

#[cfg(test)]
mod tests {
    use super::super::normalize_pcm;
    use super::super::test_support::*;
    use super::*;
    use vvtv_testkit::check::{Context, Result};

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
}
