//! What every actor gets when it starts ([`Context`]) and the one way to start one ([`spawn`]).
//!
//! An actor is a tokio task behind a cloneable handle of channel ends (Alice Ryhl, "Actors with Tokio"). It never
//! shares mutable state; what must survive a crash goes into the store first.

use crate::business_logic::BusinessLogic;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::shutdown::{Shutdown, ShutdownSubscriber};
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// The store, the config, the live business rules, the metrics and the shutdown plumbing.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Store,
    pub rules: watch::Receiver<BusinessLogic>,
    /// Where actors count what happens (segments, job ends, rejections, …).
    pub metrics: Arc<Metrics>,
    shutdown: ShutdownSubscriber,
}

impl Context {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        rules: watch::Receiver<BusinessLogic>,
        metrics: Arc<Metrics>,
        shutdown: ShutdownSubscriber,
    ) -> Context {
        Context { config, store, rules, metrics, shutdown }
    }

    /// A shutdown listener whose drop tells the station the task has finished (for tasks that are not actors).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.subscribe()
    }
}

/// Starts `run` as the task `name`. It gets its [`Shutdown`]; the station waits for it to return before exiting.
pub fn spawn<F, Fut>(name: &'static str, ctx: &Context, run: F)
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let task = run(ctx.shutdown());
    tokio::spawn(async move {
        task.await;
        tracing::debug!(actor = name, "stopped");
    });
}
