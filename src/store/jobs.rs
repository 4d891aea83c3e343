//! The `jobs` table: ingest work for the factory, from plans, the CLI, the API, the inbox and the demo generator.

use super::codec::{self, now_ms};
use super::{AssetId, Backend, JobId, PlanId, Pool, Result, Store, StoreError};

/// The PostgreSQL notification channel a new job is announced on.
pub const JOBS_CHANNEL: &str = "vvtv_jobs";
use chrono::{DateTime, Utc};
use vvtv_api::{Job, JobInput, JobOrigin, JobStatus};

#[derive(Debug, Clone)]
pub struct NewJob {
    pub plan_id: Option<PlanId>,
    pub input: JobInput,
    pub origin: JobOrigin,
    pub title: Option<String>,
    pub priority: i64,
    pub webhook_url: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: JobId,
    plan_id: Option<PlanId>,
    input: String,
    origin: JobOrigin,
    title: Option<String>,
    priority: i64,
    webhook_url: Option<String>,
    status: JobStatus,
    progress: f64,
    speed: Option<f64>,
    attempts: i64,
    next_attempt_ms: Option<i64>,
    reason: Option<String>,
    asset_id: Option<AssetId>,
    created_ms: i64,
    updated_ms: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Job> {
        let input = JobInput::parse(&r.input).map_err(|e| StoreError::Corrupt(format!("job {}: input {e}", r.id)))?;
        Ok(Job {
            id: r.id,
            plan_id: r.plan_id,
            input,
            origin: r.origin,
            title: r.title,
            priority: r.priority,
            webhook_url: r.webhook_url,
            status: r.status,
            progress: r.progress,
            speed: r.speed,
            attempts: r.attempts.clamp(0, u32::MAX as i64) as u32,
            next_attempt: codec::opt_time(r.next_attempt_ms),
            reason: r.reason,
            asset_id: r.asset_id,
            created: codec::time(r.created_ms),
            updated: codec::time(r.updated_ms),
        })
    }
}

fn job(row: Option<JobRow>) -> Result<Option<Job>> {
    row.map(Job::try_from).transpose()
}

fn jobs(rows: Vec<JobRow>) -> Result<Vec<Job>> {
    rows.into_iter().map(Job::try_from).collect()
}

impl Store {
    /// Queues a job and wakes the workers of every node.
    pub async fn insert_job(&self, j: &NewJob) -> Result<JobId> {
        let now = now_ms();
        let id = on_pool!(self, |pool| sqlx::query_scalar(
            "INSERT INTO jobs (plan_id, input, origin, title, priority, webhook_url, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(j.plan_id)
        .bind(j.input.to_string())
        .bind(j.origin)
        .bind(&j.title)
        .bind(j.priority)
        .bind(&j.webhook_url)
        .bind(now)
        .bind(now)
        .fetch_one(pool)
        .await)?;
        self.notify_jobs().await?;
        Ok(id)
    }

    pub async fn job(&self, id: JobId) -> Result<Job> {
        job(on_pool!(self, |pool| sqlx::query_as("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)?)?
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
    }

    /// Jobs, optionally of one status, newest first, `per_page` at a time.
    pub async fn jobs(&self, status: Option<JobStatus>, page: i64, per_page: i64) -> Result<Vec<Job>> {
        jobs(on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM jobs WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2 OFFSET $3"
        )
        .bind(status)
        .bind(per_page)
        .bind(page.max(0) * per_page)
        .fetch_all(pool)
        .await)?)
    }

    /// Count of jobs per status, for the status view.
    pub async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            .fetch_all(pool)
            .await)?)
    }

    /// Takes the next runnable job (highest priority, then oldest; retries only once their back-off is over) for
    /// this store's node and moves it to `first` in the same statement, so two workers can never claim the same
    /// job: on SQLite the single writer serializes claims, on PostgreSQL `FOR UPDATE SKIP LOCKED` makes each worker
    /// skip rows another is claiming (without it both would read the same row and one update would win twice).
    pub async fn claim_job(&self, first: JobStatus) -> Result<Option<Job>> {
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE jobs SET status = $1, node = $3, heartbeat_ms = $2, progress = 0, speed = NULL, updated_ms = $2
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND (next_attempt_ms IS NULL OR next_attempt_ms <= $2)
                         ORDER BY priority DESC, id LIMIT 1 {lock})
             RETURNING *"
        );
        job(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(first)
            .bind(now_ms())
            .bind(self.node())
            .fetch_optional(pool)
            .await)?)
    }

    /// Wakes idle workers on every node (PostgreSQL `NOTIFY` on [`JOBS_CHANNEL`]; on SQLite the one process wakes
    /// its own factory).
    pub async fn notify_jobs(&self) -> Result<()> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, '')").bind(JOBS_CHANNEL).execute(pool).await?;
        }
        Ok(())
    }

    /// Moves a job to another working stage. Like every write of a job's worker, a no-op once another node has
    /// claimed the job (this node was taken for dead).
    pub async fn set_job_stage(&self, id: JobId, status: JobStatus) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE jobs SET status = $1, progress = 0, speed = NULL, updated_ms = $2, heartbeat_ms = $2
             WHERE id = $3 AND (node IS NULL OR node = $4)"
        )
        .bind(status)
        .bind(now_ms())
        .bind(id)
        .bind(self.node())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn set_job_progress(&self, id: JobId, progress: f64, speed: Option<f64>) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE jobs SET progress = $1, speed = $2, updated_ms = $3, heartbeat_ms = $3
             WHERE id = $4 AND (node IS NULL OR node = $5)"
        )
        .bind(progress.clamp(0.0, 1.0))
        .bind(speed)
        .bind(now_ms())
        .bind(id)
        .bind(self.node())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends a job: `ready` (with its asset), `rejected` or `failed` (with the reason). A job another node has
    /// claimed since (this node was taken for dead and its job requeued) is left to that node: false.
    pub async fn finish_job(
        &self,
        id: JobId,
        status: JobStatus,
        reason: Option<&str>,
        asset: Option<AssetId>,
    ) -> Result<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE jobs SET status = $1, reason = $2, asset_id = $3,
                 progress = CASE WHEN $1 = 'ready' THEN 1 ELSE progress END, next_attempt_ms = NULL, updated_ms = $4
             WHERE id = $5 AND (node IS NULL OR node = $6)",
        )
        .bind(status)
        .bind(reason)
        .bind(asset)
        .bind(now_ms())
        .bind(id)
        .bind(self.node())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Puts a failed attempt back in the queue, to run again at `next_attempt`.
    pub async fn retry_job(&self, id: JobId, reason: &str, next_attempt: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
            "UPDATE jobs SET status = 'queued', node = NULL, reason = $1, attempts = attempts + 1, next_attempt_ms = $2,
                 progress = 0, speed = NULL, updated_ms = $3 WHERE id = $4 AND (node IS NULL OR node = $5)",
        )
        .bind(reason)
        .bind(codec::time_ms(next_attempt))
        .bind(now_ms())
        .bind(id)
        .bind(self.node())
        .execute(pool)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// At start: every job this node's workers owned when the process stopped goes back to the queue (it restarts
    /// from its first stage; a partial download is resumed). Other nodes' jobs are theirs. Returns the ids.
    pub async fn requeue_in_flight_jobs(&self) -> Result<Vec<JobId>> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "UPDATE jobs SET status = 'queued', node = NULL, progress = 0, speed = NULL, updated_ms = $1
             WHERE status IN ('downloading', 'probing', 'normalizing', 'gating') AND (node IS NULL OR node = $2)
             RETURNING id",
        )
        .bind(now_ms())
        .bind(self.node())
        .fetch_all(pool)
        .await)?)
    }

    /// Ids of jobs not yet finished (queued or in a working stage).
    pub async fn unfinished_job_ids(&self) -> Result<Vec<JobId>> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT id FROM jobs WHERE status IN ('queued', 'downloading', 'probing', 'normalizing', 'gating')",
        )
        .fetch_all(pool)
        .await)?)
    }

    /// The newest job whose input is `input` (of any status). Used by the inbox so a file is taken once.
    pub async fn job_for_input(&self, input: &JobInput) -> Result<Option<Job>> {
        job(on_pool!(self, |pool| sqlx::query_as("SELECT * FROM jobs WHERE input = $1 ORDER BY id DESC LIMIT 1")
            .bind(input.to_string())
            .fetch_optional(pool)
            .await)?)
    }

    /// Wake-ups for idle workers when any node queues a job: PostgreSQL `LISTEN` on the jobs channel (reconnected when
    /// the connection drops). Never fires on SQLite, where the only node queues through its own factory.
    pub fn job_wakeups(&self) -> tokio::sync::mpsc::Receiver<()> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let Some(pool) = self.postgres().cloned() else { return rx };
        tokio::spawn(async move {
            loop {
                let listener = async {
                    let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    l.listen(JOBS_CHANNEL).await?;
                    Ok::<_, sqlx::Error>(l)
                };
                match listener.await {
                    Ok(mut l) => loop {
                        match l.recv().await {
                            Ok(_) => {
                                if tx.is_closed() {
                                    return;
                                }
                                let _ = tx.try_send(());
                            }
                            Err(e) => {
                                tracing::warn!("job notifications interrupted: {e}");
                                break;
                            }
                        }
                    },
                    Err(e) => tracing::warn!("cannot listen for job notifications: {e}"),
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        });
        rx
    }
}
