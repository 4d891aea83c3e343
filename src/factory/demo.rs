//! Demo clips: with an empty library on first start, a few short, distinguishable clips (pattern, burnt-in title
//! and clock, tone) are made in the house format, so a fresh station shows a real channel at once.

use super::error::FactoryError;
use super::produce::make_asset;
use crate::config::Config;
use crate::media::house_format::HouseFormat;
use crate::media::transcode::{Source, TestPattern};
use crate::store::{Actor, AssetKind, AssetStatus, EventKind, Store};
use std::time::Duration;

/// (title, videotestsrc pattern, tone in Hz)
const CLIPS: [(&str, TestPattern, f64); 3] = [
    ("Demo 1 — Colour bars", TestPattern::Bars75, 440.0),
    ("Demo 2 — Bouncing ball", TestPattern::Ball, 660.0),
    ("Demo 3 — Pinwheel", TestPattern::Pinwheel, 880.0),
];
pub const CLIP_SECONDS: u64 = 20;

/// Makes the demo clips unless the library already has something to air.
pub async fn ensure_demo_clips(store: &Store, config: &Config) -> Result<usize, FactoryError> {
    if !config.channels.iter().any(|c| c.demo_clips) {
        return Ok(0);
    }
    if !store.assets(Some(AssetKind::Programme), Some(AssetStatus::Ready), 1).await?.is_empty()
        || !store.assets(Some(AssetKind::Demo), Some(AssetStatus::Ready), 1).await?.is_empty()
    {
        return Ok(0);
    }
    let hf = HouseFormat::from_config(&config.house_format);
    let mut made = 0;
    for (i, (title, pattern, tone)) in CLIPS.iter().enumerate() {
        let source = Source::TestCard {
            title: (*title).into(),
            pattern: *pattern,
            tone_hz: Some(*tone),
            duration: Duration::from_secs(CLIP_SECONDS),
            pcm: None,
            poster: None,
        };
        let dir = config.storage.assets_dir().join(format!("demo-{}", i + 1));
        let asset =
            make_asset(store, &hf, source, dir, title, AssetKind::Demo, serde_json::json!({ "generated": "demo" }))
                .await?;
        store
            .event(
                Actor::Factory,
                None,
                EventKind::DemoClip,
                &format!("made demo clip {} ({})", asset.title, asset.id),
                serde_json::json!({ "asset_id": asset.id }),
            )
            .await;
        made += 1;
    }
    Ok(made)
}
