//! `POST /playback`: the player page's beacons (no token: every viewer sends them). Read with a size limit, parsed
//! strictly, then validated and rate-limited by the audience room; anything refused gets a 4xx naming the reason and
//! is not stored.

use super::ApiError;
use crate::audience::AudienceHandle;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use vvtv_api::audience::{PlaybackBeacon, MAX_BEACON_BYTES};

/// Takes one beacon: session start, heartbeat, stall, bitrate switch, error or end.
#[utoipa::path(post, path = "/api/v1/playback", tag = "viewer", request_body = PlaybackBeacon,
    responses((status = 204, description = "counted"),
        (status = 400, body = vvtv_api::station::ErrorBody, description = "a field is missing, unknown or not sane"),
        (status = 409, body = vvtv_api::station::ErrorBody, description = "the session ended or is on another channel"),
        (status = 413, body = vvtv_api::station::ErrorBody, description = "the body is over 2048 bytes"),
        (status = 415, body = vvtv_api::station::ErrorBody, description = "not JSON"),
        (status = 429, body = vvtv_api::station::ErrorBody, description = "the session sends too fast"),
        (status = 503, body = vvtv_api::station::ErrorBody, description = "too many live sessions")))]
pub async fn beacon(
    State(audience): State<AudienceHandle>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    // sendBeacon() posts a string as text/plain; a Blob keeps its own type.
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = kind.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(essence.as_str(), "application/json" | "text/plain") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {kind:?}: send the beacon as application/json (or text/plain) JSON"),
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BEACON_BYTES).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("a beacon is at most {MAX_BEACON_BYTES} bytes"))
    })?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    let beacon: PlaybackBeacon = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { format!("{at}: ") };
        ApiError::bad_request(format!("beacon: {at}{}", e.into_inner()))
    })?;
    audience.beacon(beacon).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
#[path = "playback_tests.rs"]
mod tests;
