//! The factory as the API shows it: its state, the jobs it is working on, a job's report, and the ingest request.

use crate::wire_time::duration_ms;
use crate::{Asset, AssetId, Job, JobId, JobInput, JobStatus, Rendition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FactoryState {
    Idle,
    Working,
    /// Not taking jobs (low disk, full quota); `detail` says why.
    Paused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FactoryStatus {
    pub state: FactoryState,
    pub detail: Option<String>,
    /// Jobs per status.
    pub jobs: BTreeMap<JobStatus, i64>,
    /// Jobs being worked on now.
    pub running: Vec<RunningJob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunningJob {
    pub id: JobId,
    pub input: JobInput,
    pub status: JobStatus,
    /// 0..1 of the current stage.
    pub progress: f64,
    /// × real time.
    pub speed: Option<f64>,
}

/// `POST /api/v1/ingest`: exactly one of `url` and `path`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// An http(s) URL the factory downloads.
    pub url: Option<String>,
    /// An absolute path on the daemon's machine, under one of `factory.ingest_roots`.
    pub path: Option<String>,
    pub title: Option<String>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i64,
    /// Gets a POST with the job's report when the job ends.
    pub webhook: Option<String>,
}

/// A job and, once it is ready, what it made (the answer of `GET /api/v1/jobs/{id}` and the webhook's body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobReport {
    #[serde(flatten)]
    pub job: Job,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<AssetReport>,
}

/// What an ingest made: its measurements, renditions and poster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssetReport {
    pub id: AssetId,
    pub title: String,
    #[serde(rename = "duration_ms", with = "duration_ms")]
    #[schema(value_type = i64)]
    pub duration: Duration,
    pub loudness_in_lufs: Option<f64>,
    pub loudness_out_lufs: Option<f64>,
    pub lra_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    pub vmaf: VmafReport,
    pub renditions: Vec<Rendition>,
    /// URL path of the poster.
    pub poster: String,
    pub thumbnail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VmafReport {
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub p5: Option<f64>,
}

impl AssetReport {
    pub fn new(a: &Asset, renditions: Vec<Rendition>) -> AssetReport {
        AssetReport {
            id: a.id,
            title: a.title.clone(),
            duration: a.duration,
            loudness_in_lufs: a.loudness_in_lufs,
            loudness_out_lufs: a.loudness_out_lufs,
            lra_lu: a.lra_lu,
            true_peak_dbtp: a.true_peak_dbtp,
            vmaf: VmafReport { mean: a.vmaf_mean, min: a.vmaf_min, p5: a.vmaf_p5 },
            renditions,
            poster: format!("/posters/{}.jpg", a.id),
            thumbnail: format!("/posters/{}_thumb.jpg", a.id),
        }
    }
}

/// `PUT /api/v1/assets/{id}/emergency`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmergencyFlag {
    pub emergency: bool,
}
