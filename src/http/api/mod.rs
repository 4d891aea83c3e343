//! The control API under `/api/v1`, used by vvtvctl: one file per resource. Bearer-token protected (see
//! [`super::auth`]); its request and answer types are the `vvtv-api` crate's, and its OpenAPI document is served at
//! `/api/v1/openapi.json`. Errors are JSON `{"error": "..."}` with a message an operator can act on.

mod channels;
mod jobs;
mod library;
pub mod openapi;
mod plans;
mod rules;
mod status;

use super::AppState;
use crate::broadcaster::BroadcasterError;
use crate::curator::CuratorError;
use crate::factory::FactoryError;
use crate::store::StoreError;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use vvtv_api::station::ErrorBody;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/status", get(status::status))
        .route("/queue", get(status::queue))
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
        .route_layer(middleware::from_fn_with_state(state, super::auth::require_token))
        .route("/openapi.json", get(openapi::document))
}

/// An error answer: a status and one line for the operator.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            other => ApiError::internal(other),
        }
    }
}

impl From<FactoryError> for ApiError {
    fn from(e: FactoryError) -> Self {
        match e {
            FactoryError::Store(e) => e.into(),
            FactoryError::Refused(e) => ApiError::bad_request(e.to_string()),
            e @ FactoryError::NotReady { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            e @ FactoryError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<CuratorError> for ApiError {
    fn from(e: CuratorError) -> Self {
        match e {
            CuratorError::Store(e) => e.into(),
            CuratorError::Factory(e) => e.into(),
            e @ (CuratorError::NoBrowserSource | CuratorError::NotPending { .. }) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

impl From<BroadcasterError> for ApiError {
    fn from(e: BroadcasterError) -> Self {
        match e {
            BroadcasterError::Store(e) => e.into(),
            e @ BroadcasterError::NotOnAir(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            e @ BroadcasterError::Stopped(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => ApiError::internal(other),
        }
    }
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
