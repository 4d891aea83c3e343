//! Synopses for the guide: the guide asks for the assets it shows without one, the curator asks its LLM (behind the
//! scorer's breaker) in a task of its own and keeps each answer in the store, so an asset is asked once.

use super::score::{ProgrammeFacts, Scorer};
use crate::store::{AssetId, Store};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// Most synopses asked for in one request (the guide asks again for the rest).
pub const MAX_PER_REQUEST: usize = 20;

/// One asset the guide shows without a synopsis.
#[derive(Debug, Clone, PartialEq)]
pub struct SynopsisRequest {
    pub asset: AssetId,
    pub facts: ProgrammeFacts,
}

/// Assets being asked about right now: a guide fetched twice while the LLM thinks asks once.
#[derive(Debug, Clone, Default)]
pub(super) struct InFlight(Arc<Mutex<HashSet<AssetId>>>);

impl InFlight {
    fn claim(&self, asset: AssetId) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(asset)
    }
    fn release(&self, asset: AssetId) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&asset);
    }
}

/// Asks for the synopses not yet written nor being asked, one after another, in a task of their own (the curator's
/// loop does not wait for the LLM). Stops at the first failure: the breaker decides when to try again.
pub(super) fn write(store: Store, scorer: Scorer, in_flight: InFlight, requests: Vec<SynopsisRequest>) {
    let claimed: Vec<SynopsisRequest> =
        requests.into_iter().take(MAX_PER_REQUEST).filter(|r| in_flight.claim(r.asset)).collect();
    if claimed.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut failed = false;
        for r in &claimed {
            if !failed && matches!(store.synopsis(r.asset).await, Ok(None)) {
                match scorer.synopsis(&r.facts).await {
                    Ok(s) => {
                        if let Err(e) = store.set_synopsis(r.asset, &s.text, &s.model).await {
                            tracing::warn!(asset = %r.asset, "cannot keep the synopsis: {e}");
                        }
                    }
                    Err(why) => {
                        tracing::debug!(asset = %r.asset, "no synopsis: {why}");
                        failed = true;
                    }
                }
            }
            in_flight.release(r.asset);
        }
    });
}
