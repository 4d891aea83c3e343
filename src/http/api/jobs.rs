//! `POST /ingest`, `GET /jobs` and `GET /jobs/{id}`: queueing media for the factory and following it.

use super::{json_body, parse_param, ApiError, ApiResult, AppState};
use crate::store::{Actor, EventKind, JobId, JobInput, JobOrigin, JobStatus, NewJob};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use vvtv_api::factory::{IngestRequest, JobReport};
use vvtv_api::station::JobList;

const SHAPE: &str = r#"{"url": URL} or {"path": FILE}, with optional "title", "priority" (higher first) and "webhook""#;

/// The one place a request's input is decided: a URL or a file, each checked for its form (the factory then checks
/// what it may read).
fn input_of(body: &IngestRequest) -> Result<JobInput, ApiError> {
    match (body.url.as_deref().map(str::trim), body.path.as_deref().map(str::trim)) {
        (Some(url), None) => {
            let parsed = url::Url::parse(url).map_err(|e| ApiError::bad_request(format!("url {url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ApiError::bad_request(format!("url {url:?}: only http and https URLs can be ingested")));
            }
            Ok(JobInput::Url(url.to_owned()))
        }
        (None, Some(path)) => {
            let p = std::path::Path::new(path);
            if !p.is_absolute() {
                return Err(ApiError::bad_request(format!(
                    "path {path:?} must be absolute (it is read by the daemon)"
                )));
            }
            Ok(JobInput::File(p.to_owned()))
        }
        _ => Err(ApiError::bad_request(format!("body must be {SHAPE}: give exactly one of url and path"))),
    }
}

/// Queues an ingest job for a URL (http/https) or a file under the ingest roots; answers 201 with the job.
#[utoipa::path(post, path = "/api/v1/ingest", tag = "factory", security(("bearer" = [])), request_body = IngestRequest,
    responses((status = 201, body = JobReport), (status = 400, body = vvtv_api::station::ErrorBody)))]
pub async fn ingest(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<IngestRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobReport>), ApiError> {
    let body = json_body(body, SHAPE)?;
    let input = input_of(&body)?;
    if let Some(hook) = body.webhook.as_deref() {
        let ok = url::Url::parse(hook).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(ApiError::bad_request(format!("webhook {hook:?} is not an http(s) URL")));
        }
    }
    // vvtvctl names itself in its User-Agent; its jobs are recorded as the CLI's.
    let from_cli =
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).is_some_and(|ua| ua.starts_with("vvtvctl/"));
    let origin = if from_cli { JobOrigin::Cli } else { JobOrigin::Api };
    let new = NewJob {
        plan_id: None,
        input: input.clone(),
        origin,
        title: body.title.filter(|t| !t.trim().is_empty()),
        priority: body.priority,
        webhook_url: body.webhook,
    };
    let job = s.handles.factory.ingest(new).await?;
    let message = format!("job {}: ingest of {input} queued", job.id);
    s.store.event(Actor::Http, None, EventKind::Ingest, &message, serde_json::json!({ "job_id": job.id })).await;
    Ok((StatusCode::CREATED, Json(JobReport { job, asset: None })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct JobsQuery {
    /// One status only.
    status: Option<String>,
    /// From 0.
    page: Option<i64>,
    /// 1..=500, default 50.
    per_page: Option<i64>,
}

/// Ingest jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "factory", params(JobsQuery), security(("bearer" = [])),
    responses((status = 200, body = JobList), (status = 400, body = vvtv_api::station::ErrorBody)))]
pub async fn jobs(State(s): State<AppState>, Query(q): Query<JobsQuery>) -> ApiResult<JobList> {
    let status: Option<JobStatus> = parse_param(q.status.as_deref())?;
    let page = q.page.unwrap_or(0).max(0);
    let per_page = q.per_page.unwrap_or(50).clamp(1, 500);
    let jobs = s.store.jobs(status, page, per_page).await?;
    Ok(Json(JobList { page, per_page, jobs }))
}

/// One job and, once ready, what it made.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "factory", security(("bearer" = [])),
    params(("id" = i64, Path, description = "job id")),
    responses((status = 200, body = JobReport), (status = 404, body = vvtv_api::station::ErrorBody)))]
pub async fn job(State(s): State<AppState>, Path(id): Path<JobId>) -> ApiResult<JobReport> {
    Ok(Json(crate::factory::job_report(&s.store, id).await?))
}
