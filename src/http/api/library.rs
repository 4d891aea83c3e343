//! `GET /assets` and `PUT /assets/{id}/emergency`: the library, and its emergency pool.

use super::{json_body, ApiResult, AppState};
use crate::store::AssetId;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use vvtv_api::factory::EmergencyFlag;
use vvtv_api::station::AssetList;
use vvtv_api::Asset;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AssetsQuery {
    /// Newest first, this many (1..=10000, default 100).
    limit: Option<i64>,
}

/// Normalized assets, newest first.
#[utoipa::path(get, path = "/api/v1/assets", tag = "library", params(AssetsQuery), security(("bearer" = [])),
    responses((status = 200, body = AssetList)))]
pub async fn assets(State(s): State<AppState>, Query(q): Query<AssetsQuery>) -> ApiResult<AssetList> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(AssetList { assets: s.store.assets(None, None, limit).await? }))
}

/// Puts an asset in (or takes it out of) the emergency pool that `streaming emergency` airs from.
#[utoipa::path(put, path = "/api/v1/assets/{id}/emergency", tag = "library", security(("bearer" = [])),
    params(("id" = i64, Path, description = "asset id")), request_body = EmergencyFlag,
    responses((status = 200, body = Asset), (status = 404, body = vvtv_api::station::ErrorBody),
        (status = 409, body = vvtv_api::station::ErrorBody)))]
pub async fn set_emergency(
    State(s): State<AppState>,
    Path(id): Path<AssetId>,
    body: Result<Json<EmergencyFlag>, JsonRejection>,
) -> ApiResult<Asset> {
    let body = json_body(body, r#"{"emergency": true|false}"#)?;
    Ok(Json(s.handles.factory.set_emergency(id, body.emergency).await?))
}
