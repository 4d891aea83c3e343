//! The HTTP server: health, the HLS origin, posters, the guide (`/epg.xml`, `/channels.m3u`), the player and
//! operator pages, the control API used by vvtvctl and `/metrics`. Every router gets the same [`AppState`]; one layer
//! counts every request.

pub mod access;
pub mod api;
pub mod auth;
mod error;
pub mod guide;
pub mod metrics;
pub mod origin;
pub mod page;
mod posters;

use crate::audience::AudienceHandle;
use crate::broadcaster::BroadcasterHandle;
use crate::business_logic::BusinessLogic;
use crate::config::Config;
use crate::curator::CuratorHandle;
use crate::factory::FactoryHandle;
use crate::metrics::Metrics;
use crate::planner::PlannerHandle;
use crate::store::{ChannelId, Store};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Every actor's handle: the whole surface the HTTP layer drives the station through.
#[derive(Clone)]
pub struct Handles {
    pub planner: PlannerHandle,
    pub factory: FactoryHandle,
    pub curator: CuratorHandle,
    pub broadcasters: Vec<(ChannelId, BroadcasterHandle)>,
    pub audience: AudienceHandle,
    /// The live business rules: the API changes them, every actor reads them.
    pub rules: watch::Sender<BusinessLogic>,
}

impl Handles {
    pub fn broadcaster(&self, channel: &str) -> Option<&BroadcasterHandle> {
        self.broadcasters.iter().find(|(id, _)| id.as_str() == channel).map(|(_, h)| h)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// For reads; every write goes through the actor that owns the table.
    pub store: Store,
    pub handles: Handles,
    /// Bearer token of the control API.
    pub token: Arc<String>,
    /// Signed viewer URLs and country rules.
    pub access: access::Access,
    pub started: Instant,
    /// Every family the station exports (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}

impl axum::extract::FromRef<AppState> for AudienceHandle {
    fn from_ref(state: &AppState) -> AudienceHandle {
        state.handles.audience.clone()
    }
}

pub fn router(state: AppState) -> Router {
    let channels: Vec<_> = state.handles.broadcasters.iter().map(|(id, b)| (id.0.clone(), b.published())).collect();
    let access = state.access.clone();
    let shared = state.store.shared_objects().map(|objects| {
        let c = &state.config;
        let segment = u64::from(c.house_format.segment_seconds);
        // Twice what a takeover may take (lease expiry, a second to notice, a start) and three segments more.
        let takeover = 2 * u64::from(c.node.lease_seconds) + 2 * segment + 4;
        origin::Shared {
            objects: objects.clone(),
            stale_after: std::time::Duration::from_secs(takeover.max(15) + 3 * segment),
        }
    });
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/api/v1", api::router(state.clone()))
        .route("/metrics", get(metrics::scrape));
    // The viewer-facing routes run on nodes with the http role (every node by default).
    if state.config.node.runs(crate::config::Role::Http) {
        app = app
            .merge(origin::router(
                state.config.storage.hls_dir(),
                u64::from(state.config.server.segment_cache_mb) << 20,
                channels,
                shared,
            ))
            .merge(posters::router())
            .merge(page::router())
            .merge(guide::router());
    }
    let app = app
        // Last, so that it wraps every route above.
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state);
    // In front of routing: a signed path is checked and routed (and counted) as the path it stands for.
    access::layer(app, access)
}
