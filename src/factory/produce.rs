//! Turning a source into a recorded house-format asset: encode every rung, scan the top rung for playout facts,
//! record the asset and its renditions. The demo clips and the broadcaster's slates are made this way.

use crate::media::house_format::HouseFormat;
use crate::media::transcode::{self, Source};
use crate::store::{Asset, AssetKind, NewAsset, NewRendition, Store};
use std::path::PathBuf;

/// Encodes `source` into `dir` in the house format and records it as an asset of `kind`.
pub async fn make_asset(
    store: &Store,
    hf: &HouseFormat,
    source: Source,
    dir: PathBuf,
    title: &str,
    kind: AssetKind,
    facts: serde_json::Value,
) -> anyhow::Result<Asset> {
    let (hf2, dir2) = (hf.clone(), dir.clone());
    let (encoded, scan) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let encoded = transcode::encode(&hf2, &source, &dir2, &|_| {})?;
        let first = encoded
            .renditions
            .first()
            .map(|r| r.path.clone())
            .ok_or_else(|| anyhow::anyhow!("no rendition written"))?;
        let scan = crate::media::scan::scan(&first)?;
        if let Err(e) = crate::media::poster::make_posters(&first, scan.duration(), &dir2) {
            tracing::warn!("no poster for {}: {e}", dir2.display());
        }
        Ok((encoded, scan))
    })
    .await??;
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
            duration_ms: scan.video_end_ns / 1_000_000,
            first_dts_ns: Some(scan.first_dts_ns),
            keyframes_ms: scan.keyframes_ns.iter().map(|k| k / 1_000_000).collect(),
            source_facts: facts,
            renditions,
            ..Default::default()
        })
        .await?;
    Ok(store.asset(id).await?)
}
