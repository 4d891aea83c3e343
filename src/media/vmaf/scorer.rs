//! The scorer: which frames libvmaf is handed and how, and the pooling of their scores.

use super::ffi::{Context, Model, Picture, Plane, Pool, VmafFailure};
use super::VmafScore;

/// Scores pairs of pictures of one size with [`MODEL_VERSION`].
pub(super) struct Scorer {
    // Declaration order is drop order: the context (and its worker threads) goes before the model it scores with.
    context: Context,
    model: Model,
    width: u32,
    height: u32,
    /// Every how many frames one is scored (1 = all).
    every: u32,
    /// libvmaf's `n_subsample`: `every`, or 3 when only windows of three frames are handed over.
    subsample: u32,
    /// Pairs offered so far (handed over or skipped); the next pair is frame `offered` of the file.
    pub(super) offered: u64,
    /// Pairs handed to libvmaf so far; the next one gets this index.
    pub(super) pushed: u32,
}

/// What libvmaf needs of the next pair of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Both pictures, whole: the frame is scored.
    Both,
    /// The reference's luma only: the motion feature of a scored neighbour reads it.
    ReferenceLuma,
    /// Nothing: the frame is neither scored nor next to a scored one.
    Nothing,
}

impl Scorer {
    /// Scores every `every`-th frame (frames 0, every, 2·every, …).
    ///
    /// The motion feature of a scored frame *k* is the smaller of the reference's change from *k*−1 to *k* and from *k*
    /// to *k*+1, and libvmaf takes "previous" to mean the picture handed over before. So with `every` ≥ 3 only the
    /// windows *k*−1, *k*, *k*+1 are handed over (the reference's luma for the outer two), as consecutive indices,
    /// with libvmaf subsampling by 3 so that exactly the middle of each window is scored: each scored frame gets the
    /// score it has at full rate, for 3 motion computations per scored frame instead of `every`.
    pub(super) fn new(width: u32, height: u32, every: u32, threads: u32) -> Result<Scorer, VmafFailure> {
        let every = every.max(1);
        let subsample = if every >= 3 { 3 } else { every };
        let model = Model::load()?;
        let mut context = Context::new(threads, subsample)?;
        context.use_features_of(&model)?;
        Ok(Scorer { context, model, width, height, every, subsample, offered: 0, pushed: 0 })
    }

    /// What the next pair (frame `offered` of the file) must provide.
    pub(super) fn next_need(&self) -> Need {
        let position = self.offered % u64::from(self.every);
        if position == 0 {
            Need::Both
        } else if self.every < 3 || position == 1 || position == u64::from(self.every) - 1 {
            Need::ReferenceLuma
        } else {
            Need::Nothing
        }
    }

    /// Whether the next pair handed over is scored (libvmaf's rule: index divisible by its subsample).
    fn next_is_scored(&self) -> bool {
        self.pushed.is_multiple_of(self.subsample)
    }

    /// Passes over a frame libvmaf does not need.
    pub(super) fn skip(&mut self) {
        self.offered += 1;
    }

    /// Hands the next pair to libvmaf. The planes given are copied in order (Y, U, V); planes not given stay black,
    /// which is only allowed for frames that are not scored (motion reads nothing but the reference's luma).
    pub(super) fn push(&mut self, reference: &[Plane], distorted: &[Plane]) -> Result<(), VmafFailure> {
        if self.next_is_scored() && (reference.len() < 3 || distorted.len() < 3) {
            return Err(VmafFailure { call: "vmaf_read_pictures", reason: "a scored frame needs all planes".into() });
        }
        let mut reference_picture = Picture::new(self.width, self.height)?;
        for (i, plane) in reference.iter().take(3).enumerate() {
            reference_picture.fill(i, plane)?;
        }
        let mut distorted_picture = Picture::new(self.width, self.height)?;
        for (i, plane) in distorted.iter().take(3).enumerate() {
            distorted_picture.fill(i, plane)?;
        }
        self.context.read_pictures(reference_picture, distorted_picture, self.pushed)?;
        self.pushed += 1;
        self.offered += 1;
        Ok(())
    }

    /// Flushes the extractors and pools the scored frames: (mean, min, p5, count) and the per-frame scores.
    pub(super) fn finish(mut self) -> Result<(VmafScore, Vec<f64>), VmafFailure> {
        self.context.flush()?;
        let last =
            self.pushed.checked_sub(1).ok_or(VmafFailure { call: "vmaf_score_pooled", reason: "no frames".into() })?;
        let mut per_frame = Vec::with_capacity((last / self.subsample + 1) as usize);
        // Every `subsample`-th index handed to libvmaf is scored.
        for index in (0..=last).step_by(self.subsample as usize) {
            per_frame.push(self.context.score_at(&self.model, index)?);
        }
        let score = VmafScore {
            mean: self.context.pooled(&self.model, Pool::Mean, 0, last)?,
            min: self.context.pooled(&self.model, Pool::Min, 0, last)?,
            p5: percentile(&per_frame, 5.0),
            frames: u32::try_from(per_frame.len()).unwrap_or(u32::MAX),
        };
        Ok((score, per_frame))
    }
}

/// The `p`-th percentile (0..=100) of `values`, interpolating linearly between the closest ranks; NaN if empty.
pub(super) fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_between_ranks() {
        let values: Vec<f64> = (0..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 5.0), 5.0);
        assert_eq!(percentile(&[10.0, 20.0], 5.0), 10.5);
        assert_eq!(percentile(&[42.0], 5.0), 42.0);
        assert!(percentile(&[], 5.0).is_nan());
    }
}
