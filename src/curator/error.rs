//! What can go wrong when the curator is asked for something (a discovery, an approval) or runs a source.

use crate::factory::FactoryError;
use crate::store::{PlanId, PlanStatus, StoreError};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CuratorError {
    #[error("no browser source is configured ([[curator.sources]] with kind = \"browser\")")]
    NoBrowserSource,
    #[error("plan {id} is {status}, only a pending plan can be approved")]
    NotPending { id: PlanId, status: PlanStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Factory(#[from] FactoryError),
    #[error(transparent)]
    Browser(#[from] super::browser::BrowserError),
    #[error("{url}: {reason}")]
    Feed { url: String, reason: String },
    #[error("{}: {source}", dir.display())]
    Folder { dir: PathBuf, source: std::io::Error },
    #[error("the curator is not running")]
    Stopped,
    #[error("the curator stopped during the discovery")]
    Interrupted,
}
