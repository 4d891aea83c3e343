//! Graceful shutdown, the mini-redis way: one `broadcast` tells every task to stop, and every task holds a clone of
//! one `mpsc` sender that drops with the task, so the station knows all work is recorded once `recv()` returns `None`.
//!
//! Both halves live in [`Shutdown`]: the listener a task selects on, and the completion guard as a field that drops
//! by itself when the task ends (however it ends), so no spawn site has to remember to drop it.

use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// A task's view of the station's shutdown: wait for the signal, and (by being dropped) say the task is done.
#[derive(Debug)]
pub struct Shutdown {
    is_shutdown: bool,
    notify: broadcast::Receiver<()>,
    /// Dropped with the task: the station's `recv()` returns `None` once every task has dropped its guard.
    _complete: mpsc::Sender<()>,
}

impl Shutdown {
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

/// The station's side: hands out [`Shutdown`]s, then signals and waits for every one of them to be dropped.
#[derive(Debug)]
pub struct ShutdownSwitch {
    notify: broadcast::Sender<()>,
    complete_tx: mpsc::Sender<()>,
    complete_rx: mpsc::Receiver<()>,
}

impl Default for ShutdownSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownSwitch {
    pub fn new() -> ShutdownSwitch {
        let (notify, _) = broadcast::channel(1);
        let (complete_tx, complete_rx) = mpsc::channel(1);
        ShutdownSwitch { notify, complete_tx, complete_rx }
    }

    /// A listener plus completion guard for one more task.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown { is_shutdown: false, notify: self.notify.subscribe(), _complete: self.complete_tx.clone() }
    }

    /// A cheap handle that can hand out [`Shutdown`]s later (each actor's context keeps one).
    pub fn subscriber(&self) -> ShutdownSubscriber {
        ShutdownSubscriber { notify: self.notify.clone(), complete: self.complete_tx.clone() }
    }

    /// Signals every task and waits until all have finished, at most `limit`. True when all finished in time.
    pub async fn trigger_and_wait(self, limit: Duration) -> bool {
        let ShutdownSwitch { notify, complete_tx, mut complete_rx } = self;
        drop(notify);
        drop(complete_tx);
        tokio::time::timeout(limit, complete_rx.recv()).await.is_ok()
    }
}

/// Hands out [`Shutdown`]s; cloned into every actor's context.
#[derive(Debug, Clone)]
pub struct ShutdownSubscriber {
    notify: broadcast::Sender<()>,
    complete: mpsc::Sender<()>,
}

impl ShutdownSubscriber {
    pub fn subscribe(&self) -> Shutdown {
        Shutdown { is_shutdown: false, notify: self.notify.subscribe(), _complete: self.complete.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_task_and_each_guard_drops_by_itself() {
        let switch = ShutdownSwitch::new();
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..3 {
            let mut shutdown = switch.subscribe();
            let finished = finished.clone();
            tokio::spawn(async move {
                shutdown.recv().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        assert!(switch.trigger_and_wait(Duration::from_secs(5)).await);
        assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 3, "returned before every task was done");
    }

    #[tokio::test]
    async fn a_task_that_does_not_stop_is_reported() {
        let switch = ShutdownSwitch::new();
        let stubborn = switch.subscribe();
        tokio::spawn(async move {
            let _keep = stubborn;
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        assert!(!switch.trigger_and_wait(Duration::from_millis(100)).await);
    }
}
