//! The request guard: no request leaves a tab without our consent, so robots.txt and the pacing cover redirects too.

use std::future::Future;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams as FetchEnableParams, EventRequestPaused, FailRequestParams, RequestPattern,
    RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::error::CdpError;
use chromiumoxide::listeners::EventStream;
use chromiumoxide::Page;
use futures_util::StreamExt;

use crate::curator::politeness::Politeness;

/// Answers the requests a tab makes, so that nothing leaves the browser without our consent. Requests of the wanted
/// kind go out once robots.txt allows them, the first one after waiting for its polite turn; every other intercepted
/// kind is refused. A crawled tab wants documents (the page, its redirects, frames, anything a script navigates to)
/// and refuses images, fonts and media; a probe tab wants media. Unanswered requests stay paused: never sent.
pub(super) struct RequestGuard<'a> {
    page: &'a Page,
    robots: &'a Politeness,
    paused: EventStream<EventRequestPaused>,
    wanted: ResourceType,
    /// The minimum gap the first wanted request books its turn with; `None` once it has.
    pace_first: Option<Duration>,
    /// Wanted requests refused by robots.txt, with the reason.
    refused: Vec<(String, String)>,
}

impl<'a> RequestGuard<'a> {
    /// Starts intercepting `wanted` and `refused` requests in `page` (before it loads anything).
    pub(super) async fn install(
        page: &'a Page,
        robots: &'a Politeness,
        wanted: ResourceType,
        refused: &[ResourceType],
        min_gap: Duration,
    ) -> Result<RequestGuard<'a>, CdpError> {
        let paused = page.event_listener::<EventRequestPaused>().await?;
        let patterns = std::iter::once(&wanted).chain(refused).map(|kind| RequestPattern {
            resource_type: Some(kind.clone()),
            request_stage: Some(RequestStage::Request),
            ..RequestPattern::default()
        });
        page.execute(FetchEnableParams::builder().patterns(patterns).build()).await?;
        Ok(RequestGuard { page, robots, paused, wanted, pace_first: Some(min_gap), refused: Vec::new() })
    }

    /// Drives `work` to completion while answering paused requests.
    pub(super) async fn run<F: Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                output = &mut work => return output,
                Some(event) = self.paused.next() => self.answer(&event).await,
            }
        }
    }

    async fn answer(&mut self, event: &EventRequestPaused) {
        let request_id = event.request_id.clone();
        let wanted = event.resource_type == self.wanted;
        let verdict =
            if wanted { self.robots.allowed(&event.request.url).await } else { Err("not needed".to_string()) };
        let answered = match verdict {
            Ok(()) => {
                if let Some(min_gap) = self.pace_first.take() {
                    self.robots.wait_turn_at_least(&event.request.url, min_gap).await;
                }
                self.page.execute(ContinueRequestParams::new(request_id)).await.map(drop)
            }
            Err(reason) => {
                if wanted {
                    tracing::debug!(url = %event.request.url, "refused a request: {reason}");
                    self.refused.push((event.request.url.clone(), reason));
                }
                self.page.execute(FailRequestParams::new(request_id, ErrorReason::BlockedByClient)).await.map(drop)
            }
        };
        if let Err(e) = answered {
            tracing::debug!(url = %event.request.url, "could not answer a paused request: {e}");
        }
    }

    /// Why a wanted request was refused, if one was.
    pub(super) fn refusal(&self) -> Option<String> {
        self.refused.first().map(|(url, reason)| format!("redirected to {url}, which is {reason}"))
    }

    /// A human reason for a failed navigation (`net::ERR_…`).
    pub(super) fn explain_failure(&self, error: &str) -> String {
        self.refusal().unwrap_or_else(|| format!("the browser could not load it ({error})"))
    }
}
