//! Generated clips: the channels' slates and emergency cards, made in the house format on request and cached by
//! title and format, so a restart (or a second channel) finds the clip instead of encoding it again.

use super::error::FactoryError;
use super::produce::make_asset;
use crate::config::Config;
use crate::media::house_format::HouseFormat;
use crate::media::transcode::{Source, TestPattern};
use crate::store::{Asset, AssetKind, AssetStatus, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A test card to make: a pattern with a burnt-in title, silent, `duration` long.
#[derive(Debug, Clone)]
pub struct ClipRequest {
    pub title: String,
    pub pattern: TestPattern,
    pub duration: Duration,
    /// Folder name under `data_dir/cache`.
    pub dir_name: String,
    /// A JPEG or PNG shown beside the title ("up next" cards: the next item's poster). One that is missing or not
    /// an image leaves the card without it (and says so in the log): a card never fails for its poster.
    pub poster: Option<PathBuf>,
}

/// The poster if it is a readable JPEG or PNG, else None (logged).
fn usable_poster(path: &Path) -> Option<PathBuf> {
    let mut magic = [0u8; 8];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
    match read {
        Ok(()) if magic.starts_with(&[0xFF, 0xD8, 0xFF]) || magic.starts_with(b"\x89PNG\r\n\x1a\n") => {
            Some(path.to_owned())
        }
        Ok(()) => {
            tracing::warn!("card poster {} is neither JPEG nor PNG; the card has none", path.display());
            None
        }
        Err(e) => {
            tracing::warn!("card poster {}: {e}; the card has none", path.display());
            None
        }
    }
}

/// Fingerprint of the house format: a cached clip made under another format must be made again.
pub fn format_key(hf: &HouseFormat) -> String {
    let rungs: Vec<String> =
        hf.rungs.iter().map(|r| format!("{}:{}x{}@{}", r.name, r.width, r.height, r.video_kbps)).collect();
    format!(
        "fps={} gop={} audio={} preset={} {}",
        hf.fps,
        hf.gop_seconds,
        hf.audio_kbps,
        hf.x264_preset,
        rungs.join(",")
    )
}

/// The cached clip of this title, length and format whose files are all there, else a newly made one (a channel's
/// short first slate and its full one share a title).
pub async fn clip(
    store: &Store,
    config: &Config,
    hf: &HouseFormat,
    request: ClipRequest,
) -> Result<Asset, FactoryError> {
    let poster = request.poster.as_deref().and_then(usable_poster);
    // A card with its poster and one without are different clips.
    let key = match &poster {
        Some(p) => format!("{} poster={}", format_key(hf), p.display()),
        None => format_key(hf),
    };
    for a in store.assets(Some(AssetKind::Slate), Some(AssetStatus::Ready), 1000).await? {
        let same_length = a.duration.abs_diff(request.duration) < Duration::from_millis(500);
        if a.title == request.title
            && same_length
            && a.source_facts["format"] == key.as_str()
            && complete(store, hf, &a).await
        {
            return Ok(a);
        }
    }
    let source = Source::TestCard {
        title: request.title.clone(),
        pattern: request.pattern,
        tone_hz: None,
        duration: request.duration,
        pcm: None,
        poster,
    };
    let dir = config.storage.cache_dir().join(&request.dir_name);
    make_asset(store, hf, source, dir, &request.title, AssetKind::Slate, serde_json::json!({ "format": key })).await
}

/// Every rung of the house format has a rendition on disk (fetched from the shared object store if need be).
async fn complete(store: &Store, hf: &HouseFormat, asset: &Asset) -> bool {
    let Ok(renditions) = store.renditions(asset.id).await else { return false };
    for rung in &hf.rungs {
        let Some(r) = renditions.iter().find(|r| r.rung == rung.name) else { return false };
        if !store.fetch_media(&r.path).await.unwrap_or(false) {
            return false;
        }
    }
    true
}
