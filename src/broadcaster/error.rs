//! What can go wrong in a channel's playout that the broadcaster reports (starting it, an emergency).

use crate::factory::FactoryError;
use crate::media::MediaError;
use crate::store::{AssetId, ChannelId, StoreError};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BroadcasterError {
    #[error("channel {0} is not on air yet")]
    NotOnAir(ChannelId),
    #[error("the broadcaster of channel {0} stopped")]
    Stopped(ChannelId),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A slate or emergency card could not be made.
    #[error(transparent)]
    Factory(#[from] FactoryError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Playlist(#[from] super::playlist::PlaylistError),
    #[error("asset {asset} cannot air: {reason}")]
    NotAirable { asset: AssetId, reason: String },
    #[error("rendition {} of asset {asset} is missing", path.display())]
    MissingRendition { asset: AssetId, path: PathBuf },
    /// The shared object store did not answer: the asset is fine, it cannot be fetched right now.
    #[error("rendition {} of asset {asset} cannot be fetched now: {reason}", path.display())]
    Unfetched { asset: AssetId, path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}
