//! Turning a source into a recorded house-format asset: encode every rung, scan the top rung for playout facts,
//! record the asset and its renditions. The demo clips and the broadcaster's slates are made this way.

use super::error::FactoryError;
use crate::media::house_format::HouseFormat;
use crate::media::transcode::{self, Source};
use crate::store::{Asset, AssetKind, NewAsset, NewRendition, Store};
use std::path::PathBuf;
use std::time::Duration;

/// Encodes `source` into `dir` in the house format and records it as an asset of `kind`.
pub async fn make_asset(
    store: &Store,
    hf: &HouseFormat,
    source: Source,
    dir: PathBuf,
    title: &str,
    kind: AssetKind,
    facts: serde_json::Value,
) -> Result<Asset, FactoryError> {
    let (hf2, dir2) = (hf.clone(), dir.clone());
    let what = format!("make {}", dir.display());
    let task = tokio::task::spawn_blocking(move || -> Result<_, FactoryError> {
        let encoded = transcode::encode(&hf2, &source, &dir2, &|_| {})?;
        let first = encoded.renditions.first().map(|r| r.path.clone()).ok_or_else(|| FactoryError::Failed {
            what: format!("make {}", dir2.display()),
            reason: "no rendition written".into(),
        })?;
        let scan = crate::media::scan::scan(&first)?;
        if let Err(e) = crate::media::poster::make_posters(&first, scan.duration(), &dir2) {
            tracing::warn!("no poster for {}: {e}", dir2.display());
        }
        Ok((encoded, scan))
    });
    let (encoded, scan) = task.await.map_err(|e| FactoryError::Failed { what, reason: e.to_string() })??;
    let renditions = encoded
        .renditions
        .iter()
        .zip(&hf.rungs)
        .map(|(r, rung)| NewRendition {
            rung: r.rung.clone(),
            path: r.path.clone(),
            width: rung.width,
            height: rung.height,
            video_kbps: rung.video_kbps,
            size_bytes: r.size_bytes,
        })
        .collect();
    let id = store
        .insert_asset(&NewAsset {
            title: title.into(),
            source: "generated".into(),
            kind: Some(kind),
            dir,
            duration: Duration::from_nanos(scan.video_end_ns.max(0) as u64),
            b_frame_delay: Some(Duration::from_nanos(scan.first_dts_ns.saturating_neg().max(0) as u64)),
            keyframes: scan.keyframes_ns.iter().map(|&k| Duration::from_nanos(k.max(0) as u64)).collect(),
            source_facts: facts,
            source_name: if kind == AssetKind::Demo { "demo".into() } else { "generated".into() },
            renditions,
            ..Default::default()
        })
        .await?;
    Ok(store.asset(id).await?)
}
