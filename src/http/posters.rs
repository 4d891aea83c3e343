//! `GET /posters/{asset_id}.jpg` and `/posters/{asset_id}_thumb.jpg`: an asset's poster and thumbnail. A missing
//! poster (unknown asset, evicted, not made) answers the slate's poster instead, never an error status, so a player
//! page or EPG always has a picture.

use super::AppState;
use crate::media::poster;
use crate::store::{AssetId, AssetKind, AssetStatus};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;

pub fn router() -> Router<AppState> {
    Router::new().route("/posters/{file}", get(serve))
}

async fn serve(State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let (id, thumb) = match file.strip_suffix("_thumb.jpg") {
        Some(id) => (id, true),
        None => (file.strip_suffix(".jpg").unwrap_or(""), false),
    };
    let pick = |dir: &std::path::Path| {
        let (p, t) = poster::poster_paths(dir);
        if thumb {
            t
        } else {
            p
        }
    };
    if let Ok(id) = id.parse::<AssetId>() {
        if let Ok(asset) = s.store.asset(id).await {
            let path = pick(&asset.dir);
            let _ = s.store.fetch_media(&path).await;
            if let Ok(bytes) = tokio::fs::read(path).await {
                return jpeg(bytes, "public, max-age=86400");
            }
        }
    }
    // The stand-in: the newest slate's poster, else a generated card.
    if let Ok(slates) = s.store.assets(Some(AssetKind::Slate), Some(AssetStatus::Ready), 1).await {
        if let Some(slate) = slates.first() {
            let path = pick(&slate.dir);
            let _ = s.store.fetch_media(&path).await;
            if let Ok(bytes) = tokio::fs::read(path).await {
                return jpeg(bytes, "public, max-age=60");
            }
        }
    }
    static FALLBACK: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = match FALLBACK.get() {
        Some(b) => b.clone(),
        None => {
            let made =
                tokio::task::spawn_blocking(poster::fallback_jpeg).await.ok().and_then(Result::ok).unwrap_or_default();
            FALLBACK.get_or_init(|| made).clone()
        }
    };
    jpeg(bytes, "public, max-age=60")
}

fn jpeg(bytes: Vec<u8>, cache: &'static str) -> Response {
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}
