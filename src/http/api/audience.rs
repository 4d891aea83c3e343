//! `GET /audience`: per airing and per asset, who watched, how many at once, for how long, and who left.

use super::{ApiError, ApiResult, AppState};
use crate::store::audience::by_asset;
use crate::store::ChannelId;
use axum::extract::{Query, State};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use vvtv_api::audience::{parse_span, AudienceReport};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AudienceQuery {
    /// One channel (default: all).
    channel: Option<String>,
    /// How far back, like `90m`, `24h`, `7d` (default 24h).
    since: Option<String>,
}

/// The audience of every airing that began in the span, newest first, and of every asset aired in it.
#[utoipa::path(get, path = "/api/v1/audience", tag = "station", params(AudienceQuery), security(("bearer" = [])),
    responses((status = 200, body = AudienceReport), (status = 400, body = vvtv_api::station::ErrorBody),
        (status = 404, body = vvtv_api::station::ErrorBody)))]
pub async fn report(State(s): State<AppState>, Query(q): Query<AudienceQuery>) -> ApiResult<AudienceReport> {
    let channel = match q.channel.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) if s.handles.broadcaster(c).is_none() => {
            return Err(ApiError::not_found(format!("unknown channel {c:?}")));
        }
        c => c.map(ChannelId::from),
    };
    let span =
        parse_span(q.since.as_deref().unwrap_or("24h")).map_err(|e| ApiError::bad_request(format!("since: {e}")))?;
    // What the room holds is written first, so the report includes the latest beacons.
    s.handles.audience.write_now().await;
    let now = Utc::now();
    let since = now - chrono::Duration::from_std(span).unwrap_or_default();
    let airings = s.store.audience_by_airing(channel.as_ref(), since).await?;
    let assets = by_asset(&airings, now);
    Ok(Json(AudienceReport { since, airings, assets }))
}
