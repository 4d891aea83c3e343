//! The control API under `/api/v1`, used by vvtvctl: one file per resource. Bearer-token protected (see
//! [`super::auth`]) except what viewers' pages use (`/channels`, `/channels/{channel}/now`, `/playback`) and the
//! OpenAPI document; its request and answer types are the `vvtv-api` crate's, and its OpenAPI document is served at
//! `/api/v1/openapi.json`. Errors are JSON `{"error": "..."}` with a message an operator can act on.

mod audience;
mod channels;
mod jobs;
mod library;
pub mod openapi;
mod plans;
mod playback;
mod rules;
mod schedule;
mod status;
pub mod viewer;

pub use super::error::ApiError;
use super::AppState;
use axum::extract::rejection::JsonRejection;
use axum::middleware;
use axum::routing::{get, post, put};
use axum::{Json, Router};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/status", get(status::status))
        .route("/queue", get(status::queue))
        .route("/schedule/{id}", get(schedule::detail))
        .route("/events", get(status::events))
        .route("/business-logic", get(rules::show).put(rules::set))
        .route("/assets", get(library::assets))
        .route("/assets/{id}/emergency", put(library::set_emergency))
        .route("/ingest", post(jobs::ingest))
        .route("/jobs", get(jobs::jobs))
        .route("/jobs/{id}", get(jobs::job))
        .route("/discover", post(plans::discover))
        .route("/plans", get(plans::plans))
        .route("/plans/{id}/approve", post(plans::approve))
        .route("/channels/{channel}/streaming", get(channels::streaming_status))
        .route("/channels/{channel}/emergency", post(channels::emergency))
        .route("/channels/{channel}/sign-url", post(channels::sign_url))
        .route("/audience", get(audience::report))
        .route_layer(middleware::from_fn_with_state(state, super::auth::require_token))
        .route("/openapi.json", get(openapi::document))
        // What every viewer's page uses: no token.
        .route("/channels", get(viewer::channels))
        .route("/channels/{channel}/now", get(viewer::now))
        .route("/playback", post(playback::beacon))
        // Public like /epg.xml: the guide is for viewers.
        .route("/epg", get(super::guide::epg_json))
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON body, or a 400 that shows the expected `shape` and what was wrong with the one sent.
fn json_body<T>(body: Result<Json<T>, JsonRejection>, shape: &str) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| ApiError::bad_request(format!("body must be {shape}: {e}")))
}

/// A query parameter naming one of an enum's values, or a 400 listing them.
fn parse_param<T: std::str::FromStr<Err = vvtv_api::UnknownName>>(value: Option<&str>) -> Result<Option<T>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e: vvtv_api::UnknownName| {
            ApiError::bad_request(format!("status {:?} is not one of {}", e.value, e.known))
        }),
    }
}
