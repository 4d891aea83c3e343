//! `GET /channels` and `GET /channels/{channel}/now`: what the player page reads, without a token — the channels,
//! their stream URLs, and what airs now and next with posters and times.

use super::{ApiError, AppState};
use crate::http::access::Access;
use crate::store::{Airing, ChannelId, ScheduleStatus};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use std::time::Duration;
use vvtv_api::broadcast::BroadcastState;
use vvtv_api::viewer::{BeaconSettings, ChannelDirectory, ChannelEntry, NowPlaying, Programme};

/// A player behind the live edge may still show what ended this long ago.
const RECENT: chrono::TimeDelta = chrono::TimeDelta::minutes(3);
const RECENT_ITEMS: usize = 10;
const NEXT_ITEMS: i64 = 5;
/// Every viewer's page asks: a CDN may answer for us for a moment (the guide polls every 5 s).
const NOW_CACHE: &str = "public, max-age=2";
const CHANNELS_CACHE: &str = "public, max-age=30";

/// Signed URLs expire on a multiple of this, so every viewer of a channel within it gets the same URL (one object
/// for a CDN to cache, not one per viewer).
const EXPIRY_STEP: u64 = 600;

/// The stream a viewer opens for a channel. The one place that makes it: signed or CDN URLs change it here only.
pub fn playlist_url(access: &Access, channel: &ChannelId) -> String {
    let now = Utc::now().timestamp().max(0) as u64;
    let ttl = access.default_ttl().as_secs();
    let rounded_up = EXPIRY_STEP - (now + ttl) % EXPIRY_STEP;
    access.playlist_path(channel.as_str(), now, Duration::from_secs(ttl + rounded_up)).0
}

fn poster_urls(asset: Option<crate::store::AssetId>) -> (String, String) {
    // Any name that is not an asset id gets the slate's poster.
    let name = asset.map_or_else(|| "slate".to_string(), |a| a.to_string());
    (format!("/posters/{name}.jpg"), format!("/posters/{name}_thumb.jpg"))
}

fn programme(a: &Airing, end: Option<DateTime<Utc>>) -> Programme {
    let (poster, thumb) = poster_urls(a.asset_id);
    Programme { title: a.title.clone(), asset_id: a.asset_id, kind: a.kind, start: a.start, end, poster, thumb }
}

fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or_default()
}

/// Every channel, its page and its stream, and where beacons go.
#[utoipa::path(get, path = "/api/v1/channels", tag = "viewer",
    responses((status = 200, body = ChannelDirectory)))]
pub async fn channels(State(s): State<AppState>) -> impl IntoResponse {
    let channels = s
        .config
        .channels
        .iter()
        .map(|c| {
            let id = ChannelId(c.id.clone());
            ChannelEntry {
                watch: format!("/watch/{id}"),
                playlist: playlist_url(&s.access, &id),
                id,
                name: c.name.clone(),
            }
        })
        .collect();
    let a = &s.config.audience;
    let beacons = BeaconSettings {
        url: "/api/v1/playback".into(),
        heartbeat_seconds: a.heartbeat_seconds,
        session_timeout_seconds: a.session_timeout_seconds,
    };
    let access = &s.config.access;
    let age_gate = access.age_gate.then(|| access.age_gate_text.clone());
    ([(header::CACHE_CONTROL, CHANNELS_CACHE)], Json(ChannelDirectory { channels, beacons, age_gate }))
}

/// What aired in the last minutes, what is on air and what follows (estimated times), with posters.
#[utoipa::path(get, path = "/api/v1/channels/{channel}/now", tag = "viewer",
    params(("channel" = String, Path, description = "channel id")),
    responses((status = 200, body = NowPlaying), (status = 404, body = vvtv_api::station::ErrorBody)))]
pub async fn now(State(s): State<AppState>, Path(channel): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let Some(config) = s.config.channels.iter().find(|c| c.id == channel) else {
        let known: Vec<&str> = s.config.channels.iter().map(|c| c.id.as_str()).collect();
        return Err(ApiError::not_found(format!("unknown channel {channel:?} (channels: {})", known.join(", "))));
    };
    let id = ChannelId(channel);
    let status = match s.handles.broadcaster(id.as_str()) {
        Some(h) => h.status().await,
        None => None,
    };
    let server_time = Utc::now();
    let mut airings = s.store.airings(&id, server_time - RECENT, server_time + RECENT).await?;
    // The open airing is what airs now; an older airing left open by a crash ended where the next one began.
    let open = airings.iter().rposition(|a| a.end.is_none());
    let on_air_airing = open.map(|i| airings.remove(i));
    let mut recent: Vec<Programme> = Vec::new();
    for (i, a) in airings.iter().enumerate() {
        let end = a.end.or_else(|| airings.get(i + 1).map(|n| n.start)).or(on_air_airing.as_ref().map(|o| o.start));
        if end.is_some_and(|e| e <= server_time) {
            recent.push(programme(a, end));
        }
    }
    let skip = recent.len().saturating_sub(RECENT_ITEMS);
    recent.drain(..skip);

    let on_air = match &on_air_airing {
        None => None,
        Some(a) => {
            // Its length: the playout's own figure for the item on air, else the asset's.
            let length = match status.as_ref().and_then(|st| st.on_air.as_ref()).filter(|o| o.title == a.title) {
                Some(o) => Some(o.duration),
                None => match a.asset_id {
                    Some(asset) => s.store.asset(asset).await.ok().map(|x| x.duration),
                    None => None,
                },
            };
            let end = length.map(|d| later(a.start, d.saturating_sub(a.offset)));
            Some(programme(a, end))
        }
    };
    let mut at = on_air.as_ref().and_then(|p| p.end).unwrap_or(server_time);
    let mut next = Vec::new();
    for item in s.store.upcoming(&id, NEXT_ITEMS + 1).await? {
        if item.status != ScheduleStatus::Scheduled {
            continue;
        }
        let (poster, thumb) = poster_urls(Some(item.asset_id));
        let end = later(at, item.duration.saturating_sub(item.resume));
        next.push(Programme {
            title: item.title,
            asset_id: Some(item.asset_id),
            kind: crate::store::AiringKind::Scheduled,
            start: at,
            end: Some(end),
            poster,
            thumb,
        });
        at = end;
    }
    next.truncate(NEXT_ITEMS as usize);
    let now = NowPlaying {
        channel: id.clone(),
        name: config.name.clone(),
        state: status.map_or(BroadcastState::Stopped, |st| st.state),
        playlist: playlist_url(&s.access, &id),
        server_time,
        recent,
        on_air,
        next,
    };
    Ok(([(header::CACHE_CONTROL, NOW_CACHE)], Json(now)))
}
