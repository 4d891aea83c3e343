//! Plans: candidates the curator found, with their facts, score and the reasons for it.

use crate::wire_time::{option_duration_ms, time_ms};
use crate::{PlanId, PlanStatus, SourceKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    pub id: PlanId,
    /// The `[[curator.sources]]` entry it came from, or `manual`.
    pub source: String,
    pub source_kind: SourceKind,
    pub page_url: Option<String>,
    pub media_url: String,
    /// The canonical page/media URL: nothing is planned twice.
    pub canonical_key: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub license: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    #[serde(rename = "duration_ms", with = "option_duration_ms")]
    #[schema(value_type = Option<i64>)]
    pub duration: Option<Duration>,
    /// Play-before-download: did playback advance.
    pub playable: Option<bool>,
    pub score: Option<f64>,
    /// `llm:<model>` or `deterministic`.
    pub scorer: Option<String>,
    /// Why this score, or why rejected.
    pub reasons: String,
    pub status: PlanStatus,
    #[serde(rename = "created_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub created: DateTime<Utc>,
    #[serde(rename = "updated_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub updated: DateTime<Utc>,
}
