//! Assets: media normalized to the house format, with their renditions and measurements.

use crate::wire_time::{duration_ms, option_time_ms, time_ms};
use crate::{AssetId, AssetKind, AssetStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Asset {
    pub id: AssetId,
    /// Of the source bytes: the same content twice is one asset.
    pub sha256: Option<String>,
    pub title: String,
    /// The URL or path it came from.
    pub source: String,
    pub kind: AssetKind,
    /// Member of the emergency pool.
    pub emergency: bool,
    pub status: AssetStatus,
    pub bad_reason: Option<String>,
    /// The folder holding its renditions and poster.
    #[schema(value_type = String)]
    pub dir: PathBuf,
    #[serde(rename = "duration_ms", with = "duration_ms")]
    #[schema(value_type = i64)]
    pub duration: Duration,
    /// Presentation times of the keyframes (cut and resume points); not sent over the API.
    #[serde(skip)]
    pub keyframes: Vec<Duration>,
    pub loudness_in_lufs: Option<f64>,
    pub loudness_out_lufs: Option<f64>,
    pub lra_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    pub vmaf_mean: Option<f64>,
    pub vmaf_min: Option<f64>,
    pub vmaf_p5: Option<f64>,
    /// What the source held (codec, size, fps, audio) and how it was processed.
    #[schema(value_type = Object)]
    pub source_facts: serde_json::Value,
    pub tags: Vec<String>,
    /// What its plan said it is about (the EPG's description when no synopsis was written).
    #[serde(default)]
    pub description: String,
    /// The curator source it came from (`manual`, `inbox` or `demo` otherwise).
    #[serde(default)]
    pub source_name: String,
    /// ISO 639-1, when known.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub rating: Option<String>,
    /// Items of one series are kept apart by `diversity.separation_minutes`.
    #[serde(default)]
    pub series: Option<String>,
    /// The curator's score of its plan (0..=1).
    #[serde(default)]
    pub curator_score: Option<f64>,
    #[serde(rename = "last_aired_ms", with = "option_time_ms")]
    #[schema(value_type = Option<i64>)]
    pub last_aired: Option<DateTime<Utc>>,
    pub air_count: i64,
    #[serde(rename = "created_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub created: DateTime<Utc>,
}

/// One rung's file of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rendition {
    pub asset_id: AssetId,
    /// The ladder rung's name, e.g. `1080p`.
    pub rung: String,
    #[schema(value_type = String)]
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub size_bytes: u64,
}
