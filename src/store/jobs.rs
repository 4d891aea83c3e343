//! The `jobs` table: ingest work for the factory, from plans, the CLI, the API, the inbox and the demo generator.

use super::{now_ms, Result, Store, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Downloading,
    Probing,
    Normalizing,
    Gating,
    Ready,
    Rejected,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Queued,
        JobStatus::Downloading,
        JobStatus::Probing,
        JobStatus::Normalizing,
        JobStatus::Gating,
        JobStatus::Ready,
        JobStatus::Rejected,
        JobStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Downloading => "downloading",
            JobStatus::Probing => "probing",
            JobStatus::Normalizing => "normalizing",
            JobStatus::Gating => "gating",
            JobStatus::Ready => "ready",
            JobStatus::Rejected => "rejected",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True while a worker owns the job (a crash leaves it here; the factory restarts it).
    pub fn is_in_flight(self) -> bool {
        matches!(self, JobStatus::Downloading | JobStatus::Probing | JobStatus::Normalizing | JobStatus::Gating)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobOrigin {
    Plan,
    Cli,
    Api,
    Inbox,
    Demo,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub plan_id: Option<i64>,
    pub input: String,
    pub origin: JobOrigin,
    pub title: Option<String>,
    pub priority: i64,
    pub webhook_url: Option<String>,
    pub status: JobStatus,
    pub progress: f64,
    pub speed: Option<f64>,
    pub attempts: i64,
    pub next_attempt_ms: Option<i64>,
    pub reason: Option<String>,
    pub asset_id: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub plan_id: Option<i64>,
    pub input: String,
    pub origin: JobOrigin,
    pub title: Option<String>,
    pub priority: i64,
    pub webhook_url: Option<String>,
}

impl Store {
    pub async fn insert_job(&self, j: &NewJob) -> Result<i64> {
        let now = now_ms();
        Ok(sqlx::query_scalar(
            "INSERT INTO jobs (plan_id, input, origin, title, priority, webhook_url, created_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(j.plan_id)
        .bind(&j.input)
        .bind(j.origin)
        .bind(&j.title)
        .bind(j.priority)
        .bind(&j.webhook_url)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn job(&self, id: i64) -> Result<Job> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
    }

    /// Jobs, optionally of one status, newest first, `per_page` at a time.
    pub async fn jobs(&self, status: Option<JobStatus>, page: i64, per_page: i64) -> Result<Vec<Job>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2 OFFSET ?3")
            .bind(status)
            .bind(per_page)
            .bind(page.max(0) * per_page)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Count of jobs per status, for the status view.
    pub async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>> {
        Ok(sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all(&self.pool).await?)
    }

    /// Takes the next runnable job (highest priority, then oldest; retries only once their back-off is over) and
    /// moves it to `first` in the same statement, so two workers can never claim the same job.
    pub async fn claim_job(&self, first: JobStatus) -> Result<Option<Job>> {
        let now = now_ms();
        Ok(sqlx::query_as(
            "UPDATE jobs SET status = ?1, progress = 0, speed = NULL, updated_ms = ?2
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND (next_attempt_ms IS NULL OR next_attempt_ms <= ?2)
                         ORDER BY priority DESC, id LIMIT 1)
             RETURNING *",
        )
        .bind(first)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Moves a job to another working stage.
    pub async fn set_job_stage(&self, id: i64, status: JobStatus) -> Result<()> {
        sqlx::query("UPDATE jobs SET status = ?, progress = 0, speed = NULL, updated_ms = ? WHERE id = ?")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_job_progress(&self, id: i64, progress: f64, speed: Option<f64>) -> Result<()> {
        sqlx::query("UPDATE jobs SET progress = ?, speed = ?, updated_ms = ? WHERE id = ?")
            .bind(progress.clamp(0.0, 1.0))
            .bind(speed)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a job: `ready` (with its asset), `rejected` or `failed` (with the reason).
    pub async fn finish_job(
        &self,
        id: i64,
        status: JobStatus,
        reason: Option<&str>,
        asset: Option<super::AssetId>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = ?, reason = ?, asset_id = ?, progress = CASE WHEN ? = 'ready' THEN 1 ELSE progress END,
                 next_attempt_ms = NULL, updated_ms = ? WHERE id = ?",
        )
        .bind(status)
        .bind(reason)
        .bind(asset)
        .bind(status)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a failed attempt back in the queue, to run again at `next_attempt_ms`.
    pub async fn retry_job(&self, id: i64, reason: &str, next_attempt_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'queued', reason = ?, attempts = attempts + 1, next_attempt_ms = ?, progress = 0,
                 speed = NULL, updated_ms = ? WHERE id = ?",
        )
        .bind(reason)
        .bind(next_attempt_ms)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// At start: every job a worker owned when the process stopped goes back to the queue (it restarts from its
    /// first stage; a partial download is resumed). Returns the ids.
    pub async fn requeue_in_flight_jobs(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "UPDATE jobs SET status = 'queued', progress = 0, speed = NULL, updated_ms = ?
             WHERE status IN ('downloading', 'probing', 'normalizing', 'gating') RETURNING id",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ids of jobs not yet finished (queued or in a working stage).
    pub async fn unfinished_job_ids(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE status IN ('queued', 'downloading', 'probing', 'normalizing', 'gating')",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Is `input` already the input of a job (of any status)? Used by the inbox so a file is taken once.
    pub async fn job_for_input(&self, input: &str) -> Result<Option<Job>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE input = ? ORDER BY id DESC LIMIT 1")
            .bind(input)
            .fetch_optional(&self.pool)
            .await?)
    }
}
