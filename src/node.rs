//! This process as one node of the station: its heartbeat (every second, on the database clock) and the reaper that
//! gives the ingest jobs of a node gone silent back to the queue.
//!
//! On one box there is one node and nothing to reap; the same rows cost one small write a second. With several
//! nodes on one PostgreSQL database, every node with the factory role reaps (the requeue is one statement, so two
//! reapers never requeue a job twice), and a requeued job is claimed by whichever worker is free next.

use crate::actor::{self, Context};
use crate::config::{Config, Role};
use crate::shutdown::Shutdown;
use crate::store::{Actor, EventKind, Store};
use std::sync::Arc;
use std::time::Duration;

const HEARTBEAT: Duration = Duration::from_secs(1);
/// Reaping runs every this many heartbeats.
const REAP_EVERY: u32 = 5;

pub fn spawn(ctx: &Context) {
    let (store, config) = (ctx.store.clone(), ctx.config.clone());
    actor::spawn("node", ctx, |shutdown| run(store, config, shutdown));
}

async fn run(store: Store, config: Arc<Config>, mut shutdown: Shutdown) {
    let roles = config.node.role_names();
    let dead_after = Duration::from_secs(u64::from(config.node.dead_after_seconds));
    let reaps = config.node.runs(Role::Factory);
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut beats: u32 = 0;
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.node_heartbeat(store.node(), &roles).await {
            tracing::warn!("node {}: cannot send its heartbeat: {e}", store.node());
        }
        beats = beats.wrapping_add(1);
        if reaps && beats % REAP_EVERY == 1 {
            reap(&store, dead_after).await;
        }
    }
}

async fn reap(store: &Store, dead_after: Duration) {
    match store.requeue_jobs_of_dead_nodes(dead_after).await {
        Ok(ids) if !ids.is_empty() => {
            let message =
                format!("requeued {} job(s) of node(s) silent for over {} s: {ids:?}", ids.len(), dead_after.as_secs());
            store
                .event(Actor::Factory, None, EventKind::JobsRequeued, &message, serde_json::json!({ "job_ids": ids }))
                .await;
            // Wakes the workers of every node (PostgreSQL NOTIFY).
            let _ = store.notify_jobs().await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot requeue the jobs of dead nodes: {e}"),
    }
}
