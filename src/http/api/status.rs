//! `GET /status`, `/queue` and `/events`: what the station is doing, what it will air and what it decided.

use super::{ApiError, ApiResult, AppState};
use crate::store::ChannelId;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use vvtv_api::broadcast::BroadcastState;
use vvtv_api::station::{ChannelQueue, ChannelStatus, EventList, NodeStatus, PeerNode, QueueReport, StatusReport};

/// Version, uptime, every channel with what is on air, factory, curator and planner state.
#[utoipa::path(get, path = "/api/v1/status", tag = "station", security(("bearer" = [])),
    responses((status = 200, body = StatusReport), (status = 401, body = vvtv_api::station::ErrorBody)))]
pub async fn status(State(s): State<AppState>) -> ApiResult<StatusReport> {
    let mut channels = Vec::new();
    for (id, handle) in &s.handles.broadcasters {
        let name = s.config.channels.iter().find(|c| c.id == id.as_str()).map(|c| c.name.clone()).unwrap_or_default();
        let queued = s.store.queued(id).await?;
        let b = handle.status().await;
        let lease = s.store.lease(id).await.ok().flatten().filter(|l| l.remaining_ms > 0);
        channels.push(ChannelStatus {
            id: id.clone(),
            name,
            state: b.as_ref().map(|b| b.state).unwrap_or(BroadcastState::Stopped),
            on_air: b.and_then(|b| b.on_air),
            queue_minutes: (queued.as_secs_f64() / 60.0 * 10.0).round() / 10.0,
            playlist: format!("/hls/{id}/live.m3u8"),
            viewers: s.handles.audience.viewers(id),
            holder: lease.as_ref().map(|l| l.holder.clone()),
            epoch: lease.map(|l| l.epoch),
        });
    }
    let peers = s.store.live_nodes(std::time::Duration::from_secs(60)).await?;
    let roles_of = |json: &str| serde_json::from_str::<Vec<String>>(json).unwrap_or_default();
    let node = NodeStatus {
        id: s.store.node().to_owned(),
        roles: s.config.node.role_names(),
        database: s.store.backend_name().to_owned(),
        objects: s.store.objects().map_or_else(|| "data_dir".to_owned(), |o| o.url().to_owned()),
        nodes: peers.into_iter().map(|(id, roles)| PeerNode { id, roles: roles_of(&roles) }).collect(),
    };
    Ok(Json(StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: s.started.elapsed().as_secs(),
        channels,
        factory: s.handles.factory.status().await,
        curator: Some(s.handles.curator.status()),
        planner: s.handles.planner.status().await,
        node: Some(node),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct QueueQuery {
    /// One channel (default: all).
    channel: Option<String>,
    /// Items per channel (1..=1000, default 50).
    limit: Option<i64>,
}

/// The schedule ahead, per channel, with why each item was chosen.
#[utoipa::path(get, path = "/api/v1/queue", tag = "station", params(QueueQuery), security(("bearer" = [])),
    responses((status = 200, body = QueueReport), (status = 404, body = vvtv_api::station::ErrorBody)))]
pub async fn queue(State(s): State<AppState>, Query(q): Query<QueueQuery>) -> ApiResult<QueueReport> {
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
        let queued = s.store.queued(&id).await?;
        let timezone = s.config.channels.iter().find(|c| c.id == id.as_str()).map(|c| c.timezone.clone());
        channels.push(ChannelQueue { id, queue_minutes: queued.as_secs_f64() / 60.0, timezone, items });
    }
    Ok(Json(QueueReport { channels }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Newest first, this many (1..=10000, default 50).
    limit: Option<i64>,
}

/// Recent decisions the station made, with reasons.
#[utoipa::path(get, path = "/api/v1/events", tag = "station", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, body = EventList), (status = 400, body = vvtv_api::station::ErrorBody)))]
pub async fn events(State(s): State<AppState>, Query(q): Query<EventsQuery>) -> ApiResult<EventList> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit {limit} is outside 1..=10000")));
    }
    Ok(Json(EventList { events: s.store.recent_events(limit).await? }))
}
