//! The HTTP server: health, the HLS origin and the control API used by vvtvctl (the player page and metrics
//! arrive with their issues). Every router gets the same [`AppState`].

mod api;
pub mod origin;
mod posters;

use crate::config::Config;
use crate::station::Handles;
use crate::store::Store;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub handles: Handles,
    /// Bearer token of the control API.
    pub token: Arc<String>,
    pub started: Instant,
}

pub fn router(state: AppState) -> Router {
    let channels: Vec<String> = state.config.channels.iter().map(|c| c.id.clone()).collect();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/api/v1", api::router(state.clone()))
        .merge(origin::router(state.config.storage.hls_dir(), channels))
        .merge(posters::router())
        .with_state(state)
}
