//! Builds the store, spawns the actors, wires their handles, serves HTTP and runs the shutdown. Used by `main` only.

use crate::actor::{self, Context};
use crate::audience::AudienceHandle;
use crate::broadcaster::BroadcasterHandle;
use crate::business_logic::BusinessLogic;
use crate::config::Config;
use crate::curator::CuratorHandle;
use crate::factory::FactoryHandle;
use crate::http::{self, Handles};
use crate::metrics::Metrics;
use crate::planner::PlannerHandle;
use crate::shutdown::ShutdownSwitch;
use crate::store::{Actor, ChannelId, EventKind, Store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why the station could not start.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("cannot create data_dir {}: {source}", path.display())]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Token(#[from] http::auth::TokenError),
    #[error(transparent)]
    Secret(#[from] http::access::SecretError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Objects(#[from] crate::objects::ObjectsError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A started station.
pub struct Running {
    pub local_addr: SocketAddr,
    pub channels: Vec<ChannelId>,
    store: Store,
    switch: ShutdownSwitch,
}

/// Opens the store, starts every actor and the HTTP server. Returns once the server is listening.
pub async fn start(config: Config) -> Result<Running, StationError> {
    let config = Arc::new(config);
    let data_dir = &config.storage.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| StationError::DataDir { path: data_dir.clone(), source })?;
    let token = http::auth::load_or_create_token(&config.storage.token_path())?;
    let access = http::access::Access::load(&config.access, &config.storage.access_secret_path())?;
    let addr = config.listen_addr()?;
    let objects = crate::objects::Objects::open(&config.storage)?;
    let node = config.node.resolved_id(addr.port());
    let store = Store::connect(&config.storage.database()).await?.for_node(&node).with_objects(objects);
    for c in &config.channels {
        store.upsert_channel(&ChannelId(c.id.clone()), &c.name).await?;
    }

    for (old, new) in BusinessLogic::deprecated_in_config(&config) {
        let message = format!(
            "config key planner.{} is deprecated and will go in the next release: use {new}",
            old.trim_start_matches("planner.")
        );
        let data = serde_json::json!({ "old": old, "new": new });
        store.event(Actor::Station, None, EventKind::DeprecatedKey, &message, data).await;
    }
    let (rules, problems) = BusinessLogic::from_config(&config).with_overrides(&store.settings().await?);
    for p in problems {
        let message = format!("stored business-logic value ignored: {p}");
        store.event(Actor::Station, None, EventKind::SettingIgnored, &message, serde_json::json!({})).await;
    }
    let (rules_tx, rules_rx) = watch::channel(rules);
    let switch = ShutdownSwitch::new();
    let metrics = Arc::new(Metrics::new(&config));
    let ctx = Context::new(config.clone(), store.clone(), rules_rx, metrics.clone(), switch.subscriber());

    let listen_failed = |source| StationError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen_failed)?;
    let local_addr = listener.local_addr().map_err(listen_failed)?;

    crate::node::spawn(&ctx);
    let factory = FactoryHandle::spawn(&ctx);
    let curator = CuratorHandle::spawn(&ctx, factory.clone());
    let planner = PlannerHandle::spawn(&ctx, factory.clone(), curator.clone());
    let broadcasters = config
        .channels
        .iter()
        .map(|channel| {
            let handle = BroadcasterHandle::spawn(&ctx, channel.clone(), planner.clone(), factory.clone());
            (ChannelId(channel.id.clone()), handle)
        })
        .collect();
    let audience = AudienceHandle::spawn(&ctx);
    let handles = Handles { planner, factory, curator, broadcasters, audience, rules: rules_tx };

    let app = http::router(http::AppState {
        config: config.clone(),
        store: store.clone(),
        handles,
        token: Arc::new(token),
        access,
        started: Instant::now(),
        metrics,
    });
    actor::spawn("http", &ctx, |mut shutdown| async move {
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.recv().await });
        if let Err(e) = serve.await {
            tracing::error!("http server stopped: {e}");
        }
    });
    let message = format!(
        "VVTV {} listening on {local_addr} as node {node} (database {}, media in {})",
        env!("CARGO_PKG_VERSION"),
        store.backend_name(),
        store.objects().map_or("data_dir", |o| o.url())
    );
    store.event(Actor::Station, None, EventKind::Started, &message, serde_json::json!({})).await;
    let channels = config.channels.iter().map(|c| ChannelId(c.id.clone())).collect();
    drop(ctx);
    Ok(Running { local_addr, channels, store, switch })
}

impl Running {
    /// Tells every actor to stop and waits (at most `limit`) until each has recorded its in-flight work.
    pub async fn shutdown(self, limit: Duration) -> bool {
        let Running { store, switch, .. } = self;
        store.event(Actor::Station, None, EventKind::Stopping, "shutdown requested", serde_json::json!({})).await;
        let clean = switch.trigger_and_wait(limit).await;
        if !clean {
            tracing::warn!("some tasks did not stop within {limit:?}");
        }
        store.close().await;
        clean
    }
}
