//! GStreamer pipelines: the house format and its encoder, the playout pre-scan, the silent AAC frame, and the
//! factory's probe, measurements (EBU R128 loudness, the VMAF gate) and posters. Everything that builds a media pipeline outside the
//! broadcaster's remux lives here.

pub mod house_format;
pub mod loudness;
pub mod poster;
pub mod probe;
pub mod scan;
pub mod silence;
pub mod vmaf;

pub use house_format::MediaError;
