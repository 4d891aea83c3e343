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
        .route("/ingest", axum::routing::post(ingest))
        .route("/discover", axum::routing::post(discover))
        .route("/plans", get(plans))
        .route("/plans/{id}/approve", axum::routing::post(approve_plan))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestBody {
    url: Option<String>,
    path: Option<String>,
    title: Option<String>,
    #[serde(default)]
    priority: i64,
    webhook: Option<String>,
}

/// Queues an ingest job for a URL (http/https) or a file on the daemon's machine; answers 201 with the job.
async fn ingest(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<IngestBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    const SHAPE: &str =
        r#"{"url": URL} or {"path": FILE}, with optional "title", "priority" (higher first) and "webhook""#;
    let body = json_body(body, SHAPE)?;
    let input = match (body.url.as_deref().map(str::trim), body.path.as_deref().map(str::trim)) {
        (Some(url), None) => {
            let parsed = url::Url::parse(url).map_err(|e| ApiError::bad_request(format!("url {url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ApiError::bad_request(format!("url {url:?}: only http and https URLs can be ingested")));
            }
            url.to_owned()
        }
        (None, Some(path)) => {
            let p = std::path::Path::new(path);
            if !p.is_absolute() {
                return Err(ApiError::bad_request(format!(
                    "path {path:?} must be absolute (it is read by the daemon)"
                )));
            }
            match std::fs::metadata(p) {
                Ok(m) if m.is_file() => path.to_owned(),
                Ok(_) => return Err(ApiError::bad_request(format!("{path}: not a regular file"))),
                Err(e) => return Err(ApiError::bad_request(format!("{path}: {e}"))),
            }
        }
        _ => return Err(ApiError::bad_request(format!("body must be {SHAPE}: give exactly one of url and path"))),
    };
    if let Some(hook) = body.webhook.as_deref() {
        let ok = url::Url::parse(hook).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(ApiError::bad_request(format!("webhook {hook:?} is not an http(s) URL")));
        }
    }
    // vvtvctl names itself in its User-Agent; its jobs are recorded as the CLI's.
    let from_cli =
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).is_some_and(|ua| ua.starts_with("vvtvctl/"));
    let origin = if from_cli { crate::store::JobOrigin::Cli } else { crate::store::JobOrigin::Api };
    let new = crate::store::NewJob {
        plan_id: None,
        input: input.clone(),
        origin,
        title: body.title.filter(|t| !t.trim().is_empty()),
        priority: body.priority,
        webhook_url: body.webhook,
    };
    let id = s.handles.factory.ingest(&s.store, new).await?;
    s.store
        .event("http", None, "ingest", &format!("job {id}: ingest of {input} queued"), json!({ "job_id": id }))
        .await;
    let job = crate::factory::job_summary(&s.store, id).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

#[derive(Deserialize)]
struct JobsQuery {
    status: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

async fn jobs(State(s): State<AppState>, Query(q): Query<JobsQuery>) -> ApiResult {
    let status = match q.status.as_deref().filter(|st| !st.is_empty()) {
        None => None,
        Some(st) => Some(crate::store::JobStatus::parse(st).ok_or_else(|| {
            let known = crate::store::JobStatus::ALL.map(|s| s.as_str()).join(", ");
            ApiError::bad_request(format!("status {st:?} is not one of {known}"))
        })?),
    };
    let page = q.page.unwrap_or(0).max(0);
    let per_page = q.per_page.unwrap_or(50).clamp(1, 500);
    let jobs = s.store.jobs(status, page, per_page).await?;
    Ok(Json(json!({ "page": page, "per_page": per_page, "jobs": jobs })))
}

async fn job(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult {
    Ok(Json(crate::factory::job_summary(&s.store, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoverBody {
    query: Option<String>,
    max_plans: Option<u32>,
}

/// Runs the browser sources now; answers when the discovery is over, with what was planned and rejected.
async fn discover(State(s): State<AppState>, body: Result<Json<DiscoverBody>, JsonRejection>) -> ApiResult {
    let body = json_body(body, r#"{"query": TEXT, "max_plans": N}"#)?;
    let max_plans = body.max_plans.unwrap_or(10);
    if !(1..=500).contains(&max_plans) {
        return Err(ApiError::bad_request(format!("max_plans {max_plans} is outside 1..=500")));
    }
    let query = body.query.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    let report = s
        .handles
        .curator
        .discover(query, max_plans)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(Json(json!(report)))
}

#[derive(Deserialize)]
struct PlansQuery {
    status: Option<String>,
    limit: Option<i64>,
}

async fn plans(State(s): State<AppState>, Query(q): Query<PlansQuery>) -> ApiResult {
    let status = match q.status.as_deref().filter(|st| !st.is_empty()) {
        None => None,
        Some(st) => Some(serde_json::from_value::<crate::store::PlanStatus>(json!(st)).map_err(|_| {
            ApiError::bad_request(format!(
                "status {st:?} is not one of pending, approved, rejected, queued, done, failed"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(json!({ "plans": s.store.plans(status, limit).await? })))
}

/// Sends a waiting plan to the factory.
async fn approve_plan(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult {
    let plan = s.store.plan(id).await?;
    if !matches!(plan.status, crate::store::PlanStatus::Pending | crate::store::PlanStatus::Approved) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("plan {id} is {}, only a pending plan can be approved", json!(plan.status).as_str().unwrap_or("?")),
        ));
    }
    let job = crate::curator::queue_plan(&s.store, &s.handles.factory, id).await?;
    s.store
        .event(
            "http",
            None,
            "plan_approved",
            &format!("plan {id} ({}) approved: job {job}", plan.title),
            json!({ "plan_id": id, "job_id": job }),
        )
        .await;
    Ok(Json(json!({ "plan_id": id, "job_id": job })))
}
