//! The curator as the API shows it: its state, the LLM breaker, discovery requests and their reports.

use crate::wire_time::{option_time_ms, time_ms};
use crate::{JobId, PlanId, PlanStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CuratorState {
    /// `curator.enabled = false`: only `vvtvctl discover` runs sources.
    Disabled,
    Idle,
    /// A source is being run (`source` names it).
    Discovering,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CuratorStatus {
    pub state: CuratorState,
    /// The source being run, while discovering.
    pub source: Option<String>,
    /// Configured sources.
    pub sources: usize,
    /// The LLM circuit breaker's state (same as `breaker_detail.state`).
    pub breaker: BreakerPhase,
    pub breaker_detail: BreakerReport,
    pub last_run: Option<RunSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerPhase {
    /// Every candidate asks the LLM.
    Closed,
    /// The LLM failed repeatedly: the deterministic scorer decides until the cool-down has passed.
    Open,
    /// Cooled down (or trying): the next call is the trial.
    HalfOpen,
    /// No LLM is configured.
    Disabled,
}

impl BreakerPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerPhase::Closed => "closed",
            BreakerPhase::Open => "open",
            BreakerPhase::HalfOpen => "half-open",
            BreakerPhase::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for BreakerPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The LLM circuit breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BreakerReport {
    pub state: BreakerPhase,
    pub consecutive_failures: u32,
    /// When the breaker last opened; null while closed.
    #[serde(rename = "opened_at_ms", with = "option_time_ms")]
    #[schema(value_type = Option<i64>)]
    pub opened_at: Option<DateTime<Utc>>,
    /// The last LLM failure, kept after the breaker closes again.
    pub last_error: Option<String>,
}

/// One source run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub source: String,
    #[serde(rename = "finished_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub finished: DateTime<Utc>,
    pub planned: usize,
    pub rejected: usize,
    pub seconds: f64,
}

/// `POST /api/v1/discover`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// Search query for sources with a search URL.
    pub query: Option<String>,
    /// Plans made at most (1..=500, default 10).
    pub max_plans: Option<u32>,
}

/// What one discovery did: the plans it made and the candidates it turned down, with reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiscoveryReport {
    pub planned: Vec<PlannedItem>,
    pub rejected: Vec<RejectedItem>,
    /// Pages not visited (robots.txt, off-site, budget) and why.
    pub skipped: Vec<RejectedItem>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedItem {
    pub plan_id: PlanId,
    pub title: String,
    pub media_url: String,
    pub score: f64,
    pub scorer: String,
    pub status: PlanStatus,
    pub job_id: Option<JobId>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectedItem {
    pub url: String,
    pub reason: String,
}

/// `POST /api/v1/plans/{id}/approve`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approved {
    pub plan_id: PlanId,
    pub job_id: JobId,
}
