//! The control API under `/api/v1`: status, queue, events and business-logic. Bearer-token protected; the token
//! lives in `data_dir/control.token`. Errors are JSON `{"error": "..."}` with a message an operator can act on.

use super::AppState;
use crate::business_logic::BusinessLogic;
use crate::store::ChannelId;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// A JSON body, or a 400 that shows the expected `shape` and what was wrong with the one sent.
fn json_body<T>(body: Result<Json<T>, JsonRejection>, shape: &str) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| ApiError::bad_request(format!("body must be {shape}: {e}")))
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/status", get(status))
        .route("/queue", get(queue))
        .route("/events", get(events))
        .route("/business-logic", get(business_logic).put(set_business_logic))
        .route("/assets", get(assets))
        .route("/assets/{id}/emergency", axum::routing::put(set_emergency))
        .route("/channels/{channel}/streaming", get(streaming_status))
        .route("/channels/{channel}/emergency", axum::routing::post(emergency))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// Refuses requests without the bearer token (loopback may be exempt when the config says so).
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let loopback_ok = state.config.server.allow_loopback_without_token
        && req.extensions().get::<ConnectInfo<SocketAddr>>().is_some_and(|ci| ci.0.ip().is_loopback());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = presented.is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes()));
    if valid || loopback_ok {
        return next.run(req).await;
    }
    let why = if presented.is_some() { "invalid token" } else { "missing bearer token" };
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!("{why}: send 'Authorization: Bearer <token>' with the token from data_dir/control.token"),
    )
    .into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn status(State(s): State<AppState>) -> ApiResult {
    let mut channels = Vec::new();
    for (id, handle) in &s.handles.broadcasters {
        let name = s.config.channels.iter().find(|c| c.id == id.0).map(|c| c.name.clone()).unwrap_or_default();
        let queued_ms = s.store.queued_ms(id).await?;
        let b = handle.status().await;
        channels.push(json!({
            "id": id,
            "name": name,
            "state": b.as_ref().map(|b| b.state.clone()).unwrap_or_else(|| "stopped".into()),
            "on_air": b.as_ref().and_then(|b| b.on_air.clone()),
            "queue_minutes": (queued_ms as f64 / 60_000.0 * 10.0).round() / 10.0,
            "playlist": format!("/hls/{id}/live.m3u8"),
        }));
    }
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": s.started.elapsed().as_secs(),
        "channels": channels,
        "factory": s.handles.factory.status().await,
        "curator": s.handles.curator.status().await,
        "planner": s.handles.planner.status().await,
    })))
}

#[derive(Deserialize)]
struct QueueQuery {
    channel: Option<String>,
    limit: Option<i64>,
}

async fn queue(State(s): State<AppState>, Query(q): Query<QueueQuery>) -> ApiResult {
    let ids: Vec<ChannelId> = match q.channel {
        Some(c) if s.handles.broadcaster(&c).is_none() => {
            return Err(ApiError::not_found(format!("unknown channel {c:?}")));
        }
        Some(c) => vec![ChannelId(c)],
        None => s.handles.broadcasters.iter().map(|(id, _)| id.clone()).collect(),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let mut channels = Vec::new();
    for id in ids {
        let items = s.store.upcoming(&id, limit).await?;
        let queued_ms = s.store.queued_ms(&id).await?;
        channels.push(json!({ "id": id, "queue_minutes": queued_ms as f64 / 60_000.0, "items": items }));
    }
    Ok(Json(json!({ "channels": channels })))
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<i64>,
}

async fn events(State(s): State<AppState>, Query(q): Query<EventsQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit {limit} is outside 1..=10000")));
    }
    Ok(Json(json!({ "events": s.store.recent_events(limit).await? })))
}

async fn business_logic(State(s): State<AppState>) -> ApiResult {
    let current = s.handles.rules.borrow().clone();
    Ok(Json(Value::Object(current.to_map())))
}

/// Body: a JSON object of key → value (`{"planner.buffer_minutes": 45}`); all keys are validated before any is stored.
async fn set_business_logic(State(s): State<AppState>, body: Result<Json<Value>, JsonRejection>) -> ApiResult {
    let body = json_body(body, "a JSON object of key → value")?;
    let Value::Object(changes) = body else {
        return Err(ApiError::bad_request("body must be a JSON object of key → value"));
    };
    if changes.is_empty() {
        return Err(ApiError::bad_request("no key given"));
    }
    let mut next: BusinessLogic = s.handles.rules.borrow().clone();
    let mut texts = Vec::new();
    for (key, value) in &changes {
        let text = match value {
            Value::String(t) => t.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => return Err(ApiError::bad_request(format!("{key}: value must be a string, number or boolean"))),
        };
        next.set(key, &text).map_err(|e| ApiError::bad_request(e.to_string()))?;
        texts.push((key.clone(), text));
    }
    for (key, text) in &texts {
        s.store.set_setting(key, text).await?;
    }
    let summary = texts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    s.store
        .event("http", None, "business_logic_set", &format!("business logic changed: {summary}"), json!(changes))
        .await;
    s.handles.rules.send_replace(next.clone());
    Ok(Json(Value::Object(next.to_map())))
}

fn broadcaster<'a>(s: &'a AppState, channel: &str) -> Result<&'a crate::broadcaster::BroadcasterHandle, ApiError> {
    s.handles.broadcaster(channel).ok_or_else(|| ApiError::not_found(format!("unknown channel {channel:?}")))
}

async fn streaming_status(State(s): State<AppState>, Path(channel): Path<String>) -> ApiResult {
    let status = broadcaster(&s, &channel)?
        .status()
        .await
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("broadcaster of {channel} stopped")))?;
    Ok(Json(json!(status)))
}

#[derive(Deserialize)]
struct EmergencyBody {
    inject: u32,
    reason: String,
}

async fn emergency(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    body: Result<Json<EmergencyBody>, JsonRejection>,
) -> ApiResult {
    let body = json_body(body, r#"{"inject": N, "reason": TEXT}"#)?;
    if !(1..=100).contains(&body.inject) {
        return Err(ApiError::bad_request(format!("inject {} is outside 1..=100", body.inject)));
    }
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::bad_request("reason must be 1 to 200 characters"));
    }
    let message = broadcaster(&s, &channel)?.emergency(body.inject, reason.to_string()).await.map_err(|e| match e {
        crate::broadcaster::BroadcasterError::NotOnAir(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    })?;
    Ok(Json(json!({ "message": message })))
}

#[derive(Deserialize)]
struct AssetsQuery {
    limit: Option<i64>,
}

async fn assets(State(s): State<AppState>, Query(q): Query<AssetsQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(json!({ "assets": s.store.assets(None, None, limit).await? })))
}

#[derive(Deserialize)]
struct EmergencyFlag {
    emergency: bool,
}

/// Puts an asset in (or takes it out of) the emergency pool that `streaming emergency` airs from.
async fn set_emergency(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<EmergencyFlag>, JsonRejection>,
) -> ApiResult {
    let body = json_body(body, r#"{"emergency": true|false}"#)?;
    let asset = s.store.asset(crate::store::AssetId(id)).await?;
    if asset.status != "ready" {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("asset {id} is {}, not ready", asset.status)));
    }
    s.store.set_asset_emergency(asset.id, body.emergency).await?;
    let verb = if body.emergency { "added to" } else { "removed from" };
    s.store
        .event(
            "http",
            None,
            "emergency_pool",
            &format!("asset {id} ({}) {verb} the emergency pool", asset.title),
            json!({ "asset_id": id }),
        )
        .await;
    Ok(Json(json!(s.store.asset(asset.id).await?)))
}
