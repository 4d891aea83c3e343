//! GStreamer pipelines: every media pipeline of the station lives here — the house format and its encoder, the
//! factory's probe, measurements (EBU R128 loudness, the VMAF gate) and posters, the playout's pre-scan, its item
//! demuxer and silent AAC frame.
//!
//! - `pipeline.rs`: the plumbing they all share (init, running to EOS, the one bus-error conversion);
//! - `error.rs`: the room's error;
//! - `house_format.rs`: the contract; `transcode/`: the encoder; `prepare.rs`: the source preparation the encoder
//!   and the VMAF reference share;
//! - `probe.rs`, `loudness.rs`, `vmaf/`, `poster.rs`: the factory's stages;
//! - `scan.rs`, `demux.rs`, `silence.rs`: what the playout reads.

pub mod demux;
pub mod error;
pub mod house_format;
pub mod loudness;
pub mod pipeline;
pub mod poster;
mod prepare;
pub mod probe;
pub mod scan;
pub mod silence;
pub mod transcode;
pub mod vmaf;

#[cfg(test)]
pub(crate) mod test_support;

pub use error::MediaError;
