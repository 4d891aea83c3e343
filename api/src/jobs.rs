//! Ingest jobs of the factory and what they take in.

use crate::wire_time::{option_time_ms, time_ms};
use crate::{AssetId, JobId, JobOrigin, JobStatus, PlanId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// What a job ingests: a URL the factory downloads, or a file on the daemon's machine. Decided once, when the job is
/// made; on the wire and in the database it is the URL or the absolute path as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobInput {
    /// An `http` or `https` URL.
    Url(String),
    /// An absolute path.
    File(PathBuf),
}

impl JobInput {
    /// Reads the stored/sent text form: an `http(s)://` URL, a `file://` URL or an absolute path.
    pub fn parse(text: &str) -> Result<JobInput, String> {
        let text = text.trim();
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(JobInput::Url(text.to_owned()));
        }
        let path = PathBuf::from(text.strip_prefix("file://").unwrap_or(text));
        if path.is_absolute() {
            Ok(JobInput::File(path))
        } else {
            Err(format!("{text:?} is neither an http(s) URL nor an absolute path"))
        }
    }

    pub fn is_url(&self) -> bool {
        matches!(self, JobInput::Url(_))
    }
}

impl fmt::Display for JobInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobInput::Url(url) => f.write_str(url),
            JobInput::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Serialize for JobInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        JobInput::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for JobInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("An http(s) URL, or an absolute path on the daemon's machine"))
            .into()
    }
}

impl utoipa::ToSchema for JobInput {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: JobId,
    pub plan_id: Option<PlanId>,
    pub input: JobInput,
    pub origin: JobOrigin,
    pub title: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    pub webhook_url: Option<String>,
    pub status: JobStatus,
    /// 0..1 of the current stage.
    pub progress: f64,
    /// × real time while normalizing.
    pub speed: Option<f64>,
    pub attempts: u32,
    /// When a failed job is tried again.
    #[serde(rename = "next_attempt_ms", with = "option_time_ms")]
    #[schema(value_type = Option<i64>)]
    pub next_attempt: Option<DateTime<Utc>>,
    /// The rejection or failure, for humans.
    pub reason: Option<String>,
    pub asset_id: Option<AssetId>,
    #[serde(rename = "created_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub created: DateTime<Utc>,
    #[serde(rename = "updated_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub updated: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_decided_from_their_text_once() {
        assert_eq!(JobInput::parse("https://x.org/a.mp4").unwrap(), JobInput::Url("https://x.org/a.mp4".into()));
        assert_eq!(JobInput::parse("/srv/a.mp4").unwrap(), JobInput::File("/srv/a.mp4".into()));
        assert_eq!(JobInput::parse("file:///srv/a.mp4").unwrap(), JobInput::File("/srv/a.mp4".into()));
        assert!(JobInput::parse("a.mp4").is_err());
        assert_eq!(serde_json::to_string(&JobInput::File("/srv/a.mp4".into())).unwrap(), "\"/srv/a.mp4\"");
    }
}
