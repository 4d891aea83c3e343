//! Generated clips: the channels' slates and emergency cards, made in the house format on request and cached by
//! title and format, so a restart (or a second channel) finds the clip instead of encoding it again.

use super::error::FactoryError;
use super::produce::make_asset;
use crate::config::Config;
use crate::media::house_format::HouseFormat;
use crate::media::transcode::{Source, TestPattern};
use crate::store::{Asset, AssetKind, AssetStatus, Store};
use std::time::Duration;

/// A test card to make: a pattern with a burnt-in title, silent, `duration` long.
#[derive(Debug, Clone)]
pub struct ClipRequest {
    pub title: String,
    pub pattern: TestPattern,
    pub duration: Duration,
    /// Folder name under `data_dir/cache`.
    pub dir_name: String,
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
    let key = format_key(hf);
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
    };
    let dir = config.storage.cache_dir().join(&request.dir_name);
    make_asset(store, hf, source, dir, &request.title, AssetKind::Slate, serde_json::json!({ "format": key })).await
}

/// Every rung of the house format has a rendition on disk.
async fn complete(store: &Store, hf: &HouseFormat, asset: &Asset) -> bool {
    let Ok(renditions) = store.renditions(asset.id).await else { return false };
    hf.rungs.iter().all(|rung| renditions.iter().any(|r| r.rung == rung.name && r.path.is_file()))
}
