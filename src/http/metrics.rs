//! `GET /metrics` (the Prometheus scrape, no token: it is read by Prometheus, not by operators) and the layer that
//! counts every request of the router by route class and status.
//!
//! A scrape first sets the families that are states — each channel's live-edge freshness and schedule ahead, jobs
//! by status, the LLM breaker — from the actors' handles and the store, then encodes the registry in the format the
//! scraper asks for (`Accept`): OpenMetrics for Prometheus, else the classic text format 0.0.4.

use super::AppState;
use crate::metrics::{Exposition, Metrics, RouteClass};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A broadcaster that does not answer within this is reported as having no fresh segment.
const STATUS_LIMIT: Duration = Duration::from_secs(1);

pub async fn scrape(State(s): State<AppState>, headers: HeaderMap) -> Response {
    refresh(&s).await;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::negotiate(accept);
    let body = s.metrics.encode(format);
    ([(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()))], body).into_response()
}

/// Sets the state families from the handles and the store. A value that cannot be read is left as it was (and
/// logged), so one failing source never fails the scrape.
async fn refresh(s: &AppState) {
    let m = &s.metrics;
    for (channel, handle) in &s.handles.broadcasters {
        let status = tokio::time::timeout(STATUS_LIMIT, handle.status()).await.ok().flatten();
        m.set_last_segment_age(channel, status.and_then(|st| st.since_last_segment));
        match s.store.queued(channel).await {
            Ok(ahead) => m.set_schedule_ahead(channel, ahead),
            Err(e) => tracing::warn!(%channel, "metrics: cannot read the schedule ahead: {e}"),
        }
    }
    match s.store.job_counts().await {
        Ok(counts) => m.set_jobs(&counts),
        Err(e) => tracing::warn!("metrics: cannot count the jobs: {e}"),
    }
    m.set_breaker(s.handles.curator.status().breaker);
}

/// The router's outermost layer: counts the request and its latency to the response head.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = RouteClass::of(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_http(route, response.status().as_u16(), started.elapsed());
    response
}
