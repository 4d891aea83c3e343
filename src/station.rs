//! Builds the store, spawns the actors, wires their handles, serves HTTP and runs the shutdown.
//!
//! Shutdown follows mini-redis: one `broadcast` tells every task to stop; every task holds a clone of an `mpsc`
//! sender that it drops when done, so the station knows all work is recorded once `recv()` returns `None`.

use crate::broadcaster::BroadcasterHandle;
use crate::business_logic::BusinessLogic;
use crate::config::Config;
use crate::curator::CuratorHandle;
use crate::factory::FactoryHandle;
use crate::http;
use crate::planner::PlannerHandle;
use crate::store::{ChannelId, Store};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};

/// Listens for the station's shutdown signal (mini-redis' `Shutdown`).
#[derive(Debug)]
pub struct Shutdown {
    is_shutdown: bool,
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    pub fn new(notify: broadcast::Receiver<()>) -> Shutdown {
        Shutdown { is_shutdown: false, notify }
    }

    pub fn is_shutdown(&self) -> bool {
        self.is_shutdown
    }

    /// Waits until shutdown is signalled (returns at once if it already was).
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }
}

/// What every actor gets at spawn: the store, the live rules and the shutdown plumbing.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Store,
    pub rules: watch::Receiver<BusinessLogic>,
    notify_shutdown: broadcast::Sender<()>,
    shutdown_complete: mpsc::Sender<()>,
}

impl Context {
    /// A shutdown listener plus a guard whose drop tells the station this task has finished.
    pub fn shutdown(&self) -> (Shutdown, mpsc::Sender<()>) {
        (Shutdown::new(self.notify_shutdown.subscribe()), self.shutdown_complete.clone())
    }
}

/// Every actor's handle: the whole public surface the HTTP layer and other actors use.
#[derive(Clone)]
pub struct Handles {
    pub planner: PlannerHandle,
    pub factory: FactoryHandle,
    pub curator: CuratorHandle,
    pub broadcasters: Vec<(ChannelId, BroadcasterHandle)>,
    pub rules: watch::Sender<BusinessLogic>,
}

impl Handles {
    pub fn broadcaster(&self, channel: &str) -> Option<&BroadcasterHandle> {
        self.broadcasters.iter().find(|(id, _)| id.0 == channel).map(|(_, h)| h)
    }
}

/// A started station.
pub struct Running {
    pub local_addr: SocketAddr,
    pub channels: Vec<ChannelId>,
    pub store: Store,
    notify_shutdown: broadcast::Sender<()>,
    shutdown_complete_rx: mpsc::Receiver<()>,
    shutdown_complete_tx: mpsc::Sender<()>,
}

/// Opens the store, starts every actor and the HTTP server. Returns once the server is listening.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let data_dir = &config.storage.data_dir;
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    let token = load_or_create_token(&config.storage.token_path())?;
    let store = Store::open(&config.storage.db_path()).await?;
    for c in &config.channels {
        store.upsert_channel(&ChannelId(c.id.clone()), &c.name).await?;
    }

    let (rules, problems) = BusinessLogic::from_config(&config).with_overrides(&store.settings().await?);
    for p in problems {
        store
            .event(
                "station",
                None,
                "setting_ignored",
                &format!("stored business-logic value ignored: {p}"),
                serde_json::json!({}),
            )
            .await;
    }
    let (rules_tx, rules_rx) = watch::channel(rules);
    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete_tx, shutdown_complete_rx) = mpsc::channel(1);
    let ctx = Context {
        config: config.clone(),
        store: store.clone(),
        rules: rules_rx,
        notify_shutdown: notify_shutdown.clone(),
        shutdown_complete: shutdown_complete_tx.clone(),
    };

    let listen = config.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let local_addr = listener.local_addr()?;

    let planner = PlannerHandle::spawn(&ctx);
    let factory = FactoryHandle::spawn(&ctx);
    let curator = CuratorHandle::spawn(&ctx, factory.clone());
    let mut broadcasters = Vec::new();
    for channel in &config.channels {
        let id = ChannelId(channel.id.clone());
        broadcasters.push((id.clone(), BroadcasterHandle::spawn(&ctx, channel.clone(), planner.clone())));
    }
    let handles = Handles { planner, factory, curator, broadcasters, rules: rules_tx };

    let app = http::router(http::AppState {
        config: config.clone(),
        store: store.clone(),
        handles,
        token: Arc::new(token),
        started: Instant::now(),
    });
    let (mut shutdown, guard) = ctx.shutdown();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.recv().await });
        if let Err(e) = serve.await {
            tracing::error!("http server stopped: {e}");
        }
        drop(guard);
    });
    store
        .event(
            "station",
            None,
            "started",
            &format!("VVTV {} listening on {local_addr}", env!("CARGO_PKG_VERSION")),
            serde_json::json!({}),
        )
        .await;
    let channels = config.channels.iter().map(|c| ChannelId(c.id.clone())).collect();
    Ok(Running { local_addr, channels, store, notify_shutdown, shutdown_complete_rx, shutdown_complete_tx })
}

impl Running {
    /// Tells every actor to stop and waits (at most `limit`) until each has recorded its in-flight work.
    pub async fn shutdown(self, limit: Duration) -> bool {
        let Running { store, notify_shutdown, mut shutdown_complete_rx, shutdown_complete_tx, .. } = self;
        store.event("station", None, "stopping", "shutdown requested", serde_json::json!({})).await;
        drop(notify_shutdown);
        drop(shutdown_complete_tx);
        let clean = tokio::time::timeout(limit, shutdown_complete_rx.recv()).await.is_ok();
        if !clean {
            tracing::warn!("some tasks did not stop within {limit:?}");
        }
        store.close().await;
        clean
    }
}

/// Reads the control API token, creating it (mode 0600) on first start.
fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read token file {}", path.display())),
    }
    let token: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create token file {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())
        .with_context(|| format!("cannot write token file {}", path.display()))?;
    Ok(token)
}
