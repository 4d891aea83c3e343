//! The factory turns jobs into assets in the house format (download, probe, normalize, gate, poster) or a rejection
//! with its reason. This module is its handle: the status the control API shows.

mod demo;
pub mod produce;

use crate::station::{Context, Shutdown};
use crate::store::Store;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Serialize)]
pub struct FactoryStatus {
    /// `idle`, `working` or `paused`.
    pub state: String,
    pub detail: Option<String>,
    /// Jobs per status.
    pub jobs: std::collections::BTreeMap<String, i64>,
}

enum Msg {
    Status(oneshot::Sender<FactoryStatus>),
}

#[derive(Clone, Debug)]
pub struct FactoryHandle {
    tx: mpsc::Sender<Msg>,
}

impl FactoryHandle {
    pub fn spawn(ctx: &Context) -> FactoryHandle {
        let (tx, rx) = mpsc::channel(64);
        let (shutdown, guard) = ctx.shutdown();
        let factory = Factory { rx, store: ctx.store.clone(), config: ctx.config.clone(), state: "idle".into() };
        tokio::spawn(async move {
            factory.run(shutdown).await;
            drop(guard);
        });
        FactoryHandle { tx }
    }

    pub async fn status(&self) -> Option<FactoryStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Status(tx)).await.ok()?;
        rx.await.ok()
    }
}

struct Factory {
    rx: mpsc::Receiver<Msg>,
    store: Store,
    config: std::sync::Arc<crate::config::Config>,
    state: String,
}

impl Factory {
    async fn run(mut self, mut shutdown: Shutdown) {
        let (store, config) = (self.store.clone(), self.config.clone());
        let demo = demo::ensure_demo_clips(&store, &config);
        tokio::pin!(demo);
        let mut demo_done = false;
        self.state = "working".into();
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                made = &mut demo, if !demo_done => {
                    demo_done = true;
                    self.state = "idle".into();
                    if let Err(e) = made {
                        self.store.event("factory", None, "demo_failed", &format!("could not make demo clips: {e:#}"), serde_json::json!({})).await;
                    }
                }
                msg = self.rx.recv() => match msg {
                    None => return,
                    Some(Msg::Status(reply)) => { let _ = reply.send(self.status().await); }
                },
            }
        }
    }

    async fn status(&self) -> FactoryStatus {
        let counts = self.store.job_counts().await.unwrap_or_default();
        let jobs = counts.into_iter().map(|(s, n)| (s.as_str().to_string(), n)).collect();
        FactoryStatus { state: self.state.clone(), detail: None, jobs }
    }
}
