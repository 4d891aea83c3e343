//! What can go wrong when the factory is asked for something (queueing a job, making a clip, changing an asset).
//! How a job itself ended is not an error: see [`super::job::Outcome`].

use crate::media::MediaError;
use crate::store::{AssetId, AssetStatus, StoreError};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Refused(#[from] IngestRefused),
    #[error(transparent)]
    Objects(#[from] crate::objects::ObjectsError),
    #[error("asset {id} is {status}, not ready")]
    NotReady { id: AssetId, status: AssetStatus },
    #[error("{what}: {reason}")]
    Failed { what: String, reason: String },
    #[error("the factory is not running")]
    Stopped,
}

/// Why an ingest request was refused before anything was read.
#[derive(Debug, thiserror::Error)]
pub enum IngestRefused {
    #[error("{}: only files under the ingest roots ({}) can be ingested by path; add its folder to factory.ingest_roots", path.display(), roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", "))]
    OutsideRoots { path: PathBuf, roots: Vec<PathBuf> },
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
}
