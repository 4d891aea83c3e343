//! The `plans` table: candidates found by the curator, with their probe facts, score and reasons.

use super::{now_ms, Result, Store};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    Pending,
    Approved,
    Rejected,
    Queued,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Plan {
    pub id: i64,
    pub source: String,
    pub source_kind: String,
    pub page_url: Option<String>,
    pub media_url: String,
    pub canonical_key: String,
    pub title: String,
    pub description: String,
    pub tags: String,
    pub license: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_ms: Option<i64>,
    pub playable: Option<bool>,
    pub score: Option<f64>,
    pub scorer: Option<String>,
    pub reasons: String,
    pub status: PlanStatus,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewPlan {
    pub source: String,
    pub source_kind: String,
    pub page_url: Option<String>,
    pub media_url: String,
    pub canonical_key: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub license: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_ms: Option<i64>,
    pub playable: Option<bool>,
    pub score: Option<f64>,
    pub scorer: Option<String>,
    pub reasons: String,
    pub status: Option<PlanStatus>,
}

impl Store {
    /// Inserts a plan unless its canonical key is known; returns the new id, or None for a duplicate.
    pub async fn insert_plan(&self, p: &NewPlan) -> Result<Option<i64>> {
        let now = now_ms();
        Ok(sqlx::query_scalar(
            "INSERT INTO plans (source, source_kind, page_url, media_url, canonical_key, title, description, tags,
                 license, width, height, duration_ms, playable, score, scorer, reasons, status, created_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(canonical_key) DO NOTHING RETURNING id",
        )
        .bind(&p.source)
        .bind(&p.source_kind)
        .bind(&p.page_url)
        .bind(&p.media_url)
        .bind(&p.canonical_key)
        .bind(&p.title)
        .bind(&p.description)
        .bind(serde_json::to_string(&p.tags).unwrap_or_else(|_| "[]".into()))
        .bind(&p.license)
        .bind(p.width)
        .bind(p.height)
        .bind(p.duration_ms)
        .bind(p.playable)
        .bind(p.score)
        .bind(&p.scorer)
        .bind(&p.reasons)
        .bind(p.status.unwrap_or(PlanStatus::Pending))
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn plans(&self, status: Option<PlanStatus>, limit: i64) -> Result<Vec<Plan>> {
        Ok(sqlx::query_as("SELECT * FROM plans WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2")
            .bind(status)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn plan(&self, id: i64) -> Result<Plan> {
        sqlx::query_as("SELECT * FROM plans WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| super::StoreError::NotFound(format!("plan {id}")))
    }

    pub async fn set_plan_status(&self, id: i64, status: PlanStatus) -> Result<()> {
        sqlx::query("UPDATE plans SET status = ?, updated_ms = ? WHERE id = ?")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The plan for a canonical key (planned or rejected before), if any.
    pub async fn plan_by_key(&self, key: &str) -> Result<Option<Plan>> {
        Ok(sqlx::query_as("SELECT * FROM plans WHERE canonical_key = ?").bind(key).fetch_optional(&self.pool).await?)
    }
}
