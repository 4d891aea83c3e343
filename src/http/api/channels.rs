//! `GET /channels/{channel}/streaming` and `POST /channels/{channel}/emergency`: a channel's playout.

use super::{json_body, ApiError, ApiResult, AppState};
use crate::broadcaster::BroadcasterHandle;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use vvtv_api::broadcast::{EmergencyRequest, Message, SignRequest, SignedUrl, StreamingStatus};

fn broadcaster<'a>(s: &'a AppState, channel: &str) -> Result<&'a BroadcasterHandle, ApiError> {
    s.handles.broadcaster(channel).ok_or_else(|| ApiError::not_found(format!("unknown channel {channel:?}")))
}

/// On-air item and position, next items, live-edge freshness, segments, gaps, restarts.
#[utoipa::path(get, path = "/api/v1/channels/{channel}/streaming", tag = "channels", security(("bearer" = [])),
    params(("channel" = String, Path, description = "channel id")),
    responses((status = 200, body = StreamingStatus), (status = 404, body = vvtv_api::station::ErrorBody)))]
pub async fn streaming_status(State(s): State<AppState>, Path(channel): Path<String>) -> ApiResult<StreamingStatus> {
    let status = broadcaster(&s, &channel)?
        .status()
        .await
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("broadcaster of {channel} stopped")))?;
    Ok(Json(status))
}

/// Airs N items from the emergency pool (or a slate showing the reason) from the next keyframe on.
#[utoipa::path(post, path = "/api/v1/channels/{channel}/emergency", tag = "channels", security(("bearer" = [])),
    params(("channel" = String, Path, description = "channel id")), request_body = EmergencyRequest,
    responses((status = 200, body = Message), (status = 400, body = vvtv_api::station::ErrorBody),
        (status = 409, body = vvtv_api::station::ErrorBody)))]
pub async fn emergency(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    body: Result<Json<EmergencyRequest>, JsonRejection>,
) -> ApiResult<Message> {
    let body = json_body(body, r#"{"inject": N, "reason": TEXT}"#)?;
    if !(1..=100).contains(&body.inject) {
        return Err(ApiError::bad_request(format!("inject {} is outside 1..=100", body.inject)));
    }
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::bad_request("reason must be 1 to 200 characters"));
    }
    let message = broadcaster(&s, &channel)?.emergency(body.inject, reason.to_string()).await?;
    Ok(Json(Message { message }))
}

/// A viewer URL for the channel's playlist, signed for `ttl_seconds` when `access.signed_urls` is on.
#[utoipa::path(post, path = "/api/v1/channels/{channel}/sign-url", tag = "channels", security(("bearer" = [])),
    params(("channel" = String, Path, description = "channel id")), request_body = SignRequest,
    responses((status = 200, body = SignedUrl), (status = 400, body = vvtv_api::station::ErrorBody),
        (status = 404, body = vvtv_api::station::ErrorBody)))]
pub async fn sign_url(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    body: Result<Json<SignRequest>, JsonRejection>,
) -> ApiResult<SignedUrl> {
    let body = json_body(body, r#"{"ttl_seconds": N}"#)?;
    broadcaster(&s, &channel)?;
    let ttl = match body.ttl_seconds {
        None => s.access.default_ttl(),
        Some(t) if (60..=366 * 24 * 3600).contains(&t) => std::time::Duration::from_secs(t),
        Some(t) => return Err(ApiError::bad_request(format!("ttl_seconds {t} is outside 60..=31622400"))),
    };
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let (path, expires) = s.access.playlist_path(&channel, now, ttl);
    Ok(Json(SignedUrl { path, expires }))
}
