//! One live Chromium and its DevTools connection: started, watched for death, and given one tab per page or probe.
//!
//! No Chromium outlives its session: dropping a [`Session`] stops the DevTools handler, then its `ChromiumProcess`
//! kills the process group (see `chromium.rs`). Every tab's work runs under a time limit and against the session's
//! death notice, so a hung or crashed browser is reported as such (and replaced by the [`Browser`](super::Browser))
//! instead of waited for.

use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::browser::Browser as CdpBrowser;
use chromiumoxide::cdp::browser_protocol::browser::{SetDownloadBehaviorBehavior, SetDownloadBehaviorParams};
use chromiumoxide::cdp::browser_protocol::target::CloseTargetParams;
use chromiumoxide::error::CdpError;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::Page;
use futures_util::StreamExt;
use tokio::sync::watch;
use url::Url;

use super::chromium::ChromiumProcess;
use super::page::{browser_failure, load_and_read, Visit, VisitError};
use super::play_probe::{play_in, METADATA_TIMEOUT, PLAY_START_TIMEOUT, PLAY_WINDOW};
use super::{secs, BrowserError, BrowserOptions, PlayProbe};
use crate::curator::politeness::Politeness;

/// How long Chromium may take to open its DevTools endpoint.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound for short housekeeping commands (connect, close a tab).
const CDP_TIMEOUT: Duration = Duration::from_secs(10);

/// Shuts a session down off the async threads: killing and reaping Chromium blocks for a few milliseconds.
pub(super) async fn retire(session: Session) {
    if let Err(e) = tokio::task::spawn_blocking(move || drop(session)).await {
        tracing::warn!("stopping Chromium failed: {e}");
    }
}

/// A live Chromium process and the DevTools connection to it.
pub(super) struct Session {
    cdp: CdpBrowser,
    handler: tokio::task::JoinHandle<()>,
    /// Set (with a reason) when the DevTools connection ends or Chromium's stderr closes.
    death: watch::Receiver<Option<String>>,
    pub(super) process: ChromiumProcess,
}

impl Session {
    pub(super) async fn start(opts: &BrowserOptions) -> Result<Session, BrowserError> {
        let (death_tx, death) = watch::channel(None);
        let death_tx = Arc::new(death_tx);
        let (process, ws_url) = ChromiumProcess::spawn(opts, death_tx.clone())?;
        let ws_url = match tokio::time::timeout(LAUNCH_TIMEOUT, ws_url).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                return Err(BrowserError::ExitedAtStart {
                    binary: opts.chromium.clone(),
                    stderr: process.stderr_tail(),
                })
            }
            Err(_) => {
                return Err(BrowserError::NoDevTools {
                    binary: opts.chromium.clone(),
                    timeout: LAUNCH_TIMEOUT,
                    stderr: process.stderr_tail(),
                })
            }
        };
        let connect_error =
            |reason: String| BrowserError::Connect { binary: opts.chromium.clone(), url: ws_url.clone(), reason };
        let config = HandlerConfig {
            // Our own per-page timeout should fire first and name the page; this one is a backstop.
            request_timeout: opts.page_timeout + Duration::from_secs(5),
            ..HandlerConfig::default()
        };
        let (cdp, mut handler) =
            match tokio::time::timeout(CDP_TIMEOUT, CdpBrowser::connect_with_config(&ws_url, config)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Err(connect_error(e.to_string())),
                Err(_) => return Err(connect_error(format!("no answer within {} s", CDP_TIMEOUT.as_secs()))),
            };
        // The handler drives the DevTools connection: it must be polled all the time. Its errors are logged, never
        // unwrapped; a broken connection ends it and marks the session dead.
        let handler = tokio::spawn(async move {
            let mut errors_in_a_row = 0u32;
            let reason = loop {
                match handler.next().await {
                    None => break "the DevTools connection closed".to_string(),
                    Some(Ok(())) => errors_in_a_row = 0,
                    Some(Err(CdpError::Ws(e))) => break format!("the DevTools connection broke: {e}"),
                    Some(Err(e)) => {
                        tracing::warn!("Chromium DevTools error: {e}");
                        errors_in_a_row += 1;
                        if errors_in_a_row >= 100 {
                            break format!("the DevTools connection keeps failing: {e}");
                        }
                    }
                }
            };
            tracing::debug!("Chromium DevTools handler ended: {reason}");
            death_tx.send_replace(Some(reason));
        });
        let session = Session { cdp, handler, death, process };
        match tokio::time::timeout(CDP_TIMEOUT, session.cdp.version()).await {
            Ok(Ok(version)) => {
                tracing::debug!(product = %version.product, profile = %session.process.profile_dir().display(), "Chromium ready")
            }
            Ok(Err(e)) => return Err(connect_error(e.to_string())),
            Err(_) => return Err(connect_error(format!("no answer within {} s", CDP_TIMEOUT.as_secs()))),
        }
        // A link that turns out to be a download must not write files anywhere.
        let deny_downloads = SetDownloadBehaviorParams {
            behavior: SetDownloadBehaviorBehavior::Deny,
            browser_context_id: None,
            download_path: None,
            events_enabled: None,
        };
        match tokio::time::timeout(CDP_TIMEOUT, session.cdp.execute(deny_downloads)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(connect_error(e.to_string())),
            Err(_) => return Err(connect_error(format!("no answer within {} s", CDP_TIMEOUT.as_secs()))),
        }
        Ok(session)
    }

    /// `Some(reason)` when this session can no longer be used.
    pub(super) fn death_reason(&mut self) -> Option<String> {
        if let Some(reason) = self.death_notice() {
            return Some(reason);
        }
        if self.handler.is_finished() {
            return Some("the DevTools handler stopped".to_string());
        }
        if self.process.has_exited() {
            return Some("Chromium exited".to_string());
        }
        None
    }

    /// The reason the session died, if it has been reported.
    fn death_notice(&self) -> Option<String> {
        self.death.borrow().clone()
    }

    /// Resolves when the session dies, with the reason.
    async fn died(&self) -> String {
        let mut death = self.death.clone();
        let reason = match death.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the DevTools connection closed".to_string(),
        };
        reason
    }

    /// Loads one page in a new tab and reads it; the tab is closed afterwards.
    pub(super) async fn visit(
        &self,
        url: &Url,
        robots: &Politeness,
        page_timeout: Duration,
        min_gap: Duration,
    ) -> Result<Visit, VisitError> {
        let work = async {
            let page = self.cdp.new_page("about:blank").await.map_err(browser_failure)?;
            let result = load_and_read(&page, url, robots, min_gap).await;
            self.close_tab(&page).await;
            result
        };
        let stopped = |reason: String| format!("Chromium stopped while loading the page ({reason})");
        let result = tokio::select! {
            result = tokio::time::timeout(page_timeout, work) => match result {
                Ok(result) => result,
                Err(_) => Err(VisitError::Browser(format!("the page did not load within {}", secs(page_timeout)))),
            },
            reason = self.died() => Err(VisitError::Browser(stopped(reason))),
        };
        // A DevTools call that failed because Chromium just died says so only vaguely ("oneshot canceled").
        match (result, self.death_notice()) {
            (Err(VisitError::Browser(_)), Some(reason)) => Err(VisitError::Browser(stopped(reason))),
            (result, _) => result,
        }
    }

    /// Plays `url` in a blank tab. `Err` means the browser itself failed (and should be replaced).
    pub(super) async fn probe(
        &self,
        url: &Url,
        robots: &Politeness,
        setup_timeout: Duration,
        min_gap: Duration,
    ) -> Result<PlayProbe, String> {
        let work = async {
            let page = self.cdp.new_page("about:blank").await.map_err(|e| e.to_string())?;
            let result = play_in(&page, url, robots, min_gap).await;
            self.close_tab(&page).await;
            result
        };
        let budget = setup_timeout + METADATA_TIMEOUT + PLAY_START_TIMEOUT + PLAY_WINDOW;
        let result = tokio::select! {
            result = tokio::time::timeout(budget, work) => match result {
                Ok(result) => result,
                Err(_) => Err(format!("no answer from the browser within {}", secs(budget))),
            },
            reason = self.died() => Err(format!("Chromium stopped ({reason})")),
        };
        match (result, self.death_notice()) {
            (Err(_), Some(reason)) => Err(format!("Chromium stopped ({reason})")),
            (result, _) => result,
        }
    }

    async fn close_tab(&self, page: &Page) {
        let close = self.cdp.execute(CloseTargetParams::new(page.target_id().clone()));
        match tokio::time::timeout(CDP_TIMEOUT, close).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("closing a Chromium tab failed: {e}"),
            Err(_) => tracing::debug!("closing a Chromium tab timed out"),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.handler.abort();
        // `self.process` is dropped right after this and kills Chromium.
    }
}
