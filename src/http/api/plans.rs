//! `POST /discover`, `GET /plans` and `POST /plans/{id}/approve`: the curator's candidates.

use super::{json_body, parse_param, ApiError, ApiResult, AppState};
use crate::store::{PlanId, PlanStatus};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use vvtv_api::curator::{Approved, DiscoverRequest, DiscoveryReport};
use vvtv_api::station::PlanList;

/// Runs the browser sources now; answers when the discovery is over, with what was planned and rejected.
#[utoipa::path(post, path = "/api/v1/discover", tag = "curator", security(("bearer" = [])), request_body = DiscoverRequest,
    responses((status = 200, body = DiscoveryReport), (status = 409, body = vvtv_api::station::ErrorBody)))]
pub async fn discover(
    State(s): State<AppState>,
    body: Result<Json<DiscoverRequest>, JsonRejection>,
) -> ApiResult<DiscoveryReport> {
    let body = json_body(body, r#"{"query": TEXT, "max_plans": N}"#)?;
    let max_plans = body.max_plans.unwrap_or(10);
    if !(1..=500).contains(&max_plans) {
        return Err(ApiError::bad_request(format!("max_plans {max_plans} is outside 1..=500")));
    }
    let query = body.query.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    Ok(Json(s.handles.curator.discover(query, max_plans).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PlansQuery {
    /// One status only.
    status: Option<String>,
    /// Newest first, this many (1..=10000, default 100).
    limit: Option<i64>,
}

/// Candidates found by the curator, with scores and reasons.
#[utoipa::path(get, path = "/api/v1/plans", tag = "curator", params(PlansQuery), security(("bearer" = [])),
    responses((status = 200, body = PlanList), (status = 400, body = vvtv_api::station::ErrorBody)))]
pub async fn plans(State(s): State<AppState>, Query(q): Query<PlansQuery>) -> ApiResult<PlanList> {
    let status: Option<PlanStatus> = parse_param(q.status.as_deref())?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(PlanList { plans: s.store.plans(status, limit).await? }))
}

/// Sends a waiting plan to the factory.
#[utoipa::path(post, path = "/api/v1/plans/{id}/approve", tag = "curator", security(("bearer" = [])),
    params(("id" = i64, Path, description = "plan id")),
    responses((status = 200, body = Approved), (status = 404, body = vvtv_api::station::ErrorBody),
        (status = 409, body = vvtv_api::station::ErrorBody)))]
pub async fn approve(State(s): State<AppState>, Path(id): Path<PlanId>) -> ApiResult<Approved> {
    Ok(Json(s.handles.curator.approve(id).await?))
}
