//! GStreamer pipelines: the house format and its encoder, the playout pre-scan, and the silent AAC frame.
//! Everything that builds a media pipeline outside the broadcaster's remux lives here.

pub mod house_format;
pub mod scan;
pub mod silence;

pub use house_format::MediaError;
