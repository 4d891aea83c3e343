//! The media room's error: what failed (`encode /x/y.mov`, `scan …`, `poster of …`, a rendition being demuxed for
//! playout), with the file or element and the reason, composed from the errors of the room's parts.
//!
//! [`ProbeError`](super::probe::ProbeError) stays the probe's own: its split between "the station will not take this"
//! and "try again" is the contract the factory and the curator act on. The VMAF API keeps
//! [`super::vmaf::VmafError`] (it names which of the two files failed); here it appears as the encoder's
//! in-run gate, [`MediaError::Quality`].

use super::demux::DemuxError;
use super::pipeline::{Fault, PipelineError};
use super::vmaf::VmafError;
use std::path::{Path, PathBuf};

/// A media failure, naming what was being done, the element or file, and the reason.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// GStreamer could not run the pipeline: not installed, not buildable, an element failed, no video, too slow.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// An item's renditions could not be demuxed for playout.
    #[error(transparent)]
    Demux(#[from] DemuxError),
    #[error("{what}: {path}: {source}")]
    Io { what: String, path: PathBuf, source: std::io::Error },
    #[error("{what}: house format: {reason}")]
    Settings { what: String, reason: String },
    /// The VMAF measured during the encode (`transcode::encode_scored`) could not be computed.
    #[error("{what}: {source}")]
    Quality { what: String, source: Box<VmafError> },
}

impl MediaError {
    pub(crate) fn io(what: &str, path: &Path, source: std::io::Error) -> MediaError {
        MediaError::Io { what: what.to_owned(), path: path.to_owned(), source }
    }

    /// Whose fault the failure is, when an element of a pipeline failed.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            MediaError::Pipeline(e) => e.fault(),
            MediaError::Demux(e) => e.fault(),
            _ => None,
        }
    }
}
