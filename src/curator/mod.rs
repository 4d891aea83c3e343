//! The curator turns sources (web pages, feeds, folders) into scored plans and hands the good ones to the factory.
//! This module is its handle: the status the control API shows, including the LLM circuit breaker.

use crate::factory::FactoryHandle;
use crate::station::{Context, Shutdown};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Serialize)]
pub struct CuratorStatus {
    /// `disabled`, `idle` or `discovering`.
    pub state: String,
    pub sources: usize,
    /// LLM circuit breaker: `closed`, `open`, `half-open`, or `off` when no LLM is configured.
    pub breaker: String,
}

enum Msg {
    Status(oneshot::Sender<CuratorStatus>),
}

#[derive(Clone, Debug)]
pub struct CuratorHandle {
    tx: mpsc::Sender<Msg>,
}

impl CuratorHandle {
    pub fn spawn(ctx: &Context, factory: FactoryHandle) -> CuratorHandle {
        let (tx, rx) = mpsc::channel(64);
        let (shutdown, guard) = ctx.shutdown();
        let cfg = &ctx.config.curator;
        let status = CuratorStatus {
            state: if cfg.enabled { "idle" } else { "disabled" }.into(),
            sources: cfg.sources.len(),
            breaker: if cfg.llm.url.is_empty() { "off" } else { "closed" }.into(),
        };
        let curator = Curator { rx, _factory: factory, status };
        tokio::spawn(async move {
            curator.run(shutdown).await;
            drop(guard);
        });
        CuratorHandle { tx }
    }

    pub async fn status(&self) -> Option<CuratorStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Status(tx)).await.ok()?;
        rx.await.ok()
    }
}

struct Curator {
    rx: mpsc::Receiver<Msg>,
    _factory: FactoryHandle,
    status: CuratorStatus,
}

impl Curator {
    async fn run(mut self, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                msg = self.rx.recv() => match msg {
                    None => return,
                    Some(Msg::Status(reply)) => { let _ = reply.send(self.status.clone()); }
                },
            }
        }
    }
}
