//! The HTTP server: health, the HLS origin, posters and the control API used by vvtvctl (the player page and metrics
//! arrive with their issues). Every router gets the same [`AppState`].

pub mod api;
pub mod auth;
mod error;
pub mod origin;
mod posters;

use crate::broadcaster::BroadcasterHandle;
use crate::business_logic::BusinessLogic;
use crate::config::Config;
use crate::curator::CuratorHandle;
use crate::factory::FactoryHandle;
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
    pub started: Instant,
}

pub fn router(state: AppState) -> Router {
    let channels: Vec<_> = state.handles.broadcasters.iter().map(|(id, b)| (id.0.clone(), b.published())).collect();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/api/v1", api::router(state.clone()))
        .merge(origin::router(
            state.config.storage.hls_dir(),
            u64::from(state.config.server.segment_cache_mb) << 20,
            channels,
        ))
        .merge(posters::router())
        .with_state(state)
}
