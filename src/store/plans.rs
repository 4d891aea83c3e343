//! The `plans` table: candidates found by the curator, with their probe facts, score and reasons.

use super::codec::{self, json_list, json_text, now_ms};
use super::{PlanId, Result, Store, StoreError};
use std::time::Duration;
use vvtv_api::{Plan, PlanStatus, SourceKind};

#[derive(Debug, Clone)]
pub struct NewPlan {
    pub source: String,
    pub source_kind: SourceKind,
    pub page_url: Option<String>,
    pub media_url: String,
    pub canonical_key: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub license: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration: Option<Duration>,
    pub playable: Option<bool>,
    pub score: Option<f64>,
    pub scorer: Option<String>,
    pub reasons: String,
    pub status: PlanStatus,
}

impl NewPlan {
    /// A pending plan of `media_url` from `source`, with nothing known about it yet.
    pub fn new(source: &str, source_kind: SourceKind, media_url: &str, canonical_key: String) -> NewPlan {
        NewPlan {
            source: source.to_owned(),
            source_kind,
            page_url: None,
            media_url: media_url.to_owned(),
            canonical_key,
            title: String::new(),
            description: String::new(),
            tags: Vec::new(),
            license: None,
            width: None,
            height: None,
            duration: None,
            playable: None,
            score: None,
            scorer: None,
            reasons: String::new(),
            status: PlanStatus::Pending,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: PlanId,
    source: String,
    source_kind: SourceKind,
    page_url: Option<String>,
    media_url: String,
    canonical_key: String,
    title: String,
    description: String,
    tags: String,
    license: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    duration_ms: Option<i64>,
    playable: Option<bool>,
    score: Option<f64>,
    scorer: Option<String>,
    reasons: String,
    status: PlanStatus,
    created_ms: i64,
    updated_ms: i64,
}

impl From<PlanRow> for Plan {
    fn from(r: PlanRow) -> Plan {
        let pixels = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        Plan {
            id: r.id,
            source: r.source,
            source_kind: r.source_kind,
            page_url: r.page_url,
            media_url: r.media_url,
            canonical_key: r.canonical_key,
            title: r.title,
            description: r.description,
            tags: json_list(&r.tags),
            license: r.license,
            width: pixels(r.width),
            height: pixels(r.height),
            duration: codec::opt_duration(r.duration_ms),
            playable: r.playable,
            score: r.score,
            scorer: r.scorer,
            reasons: r.reasons,
            status: r.status,
            created: codec::time(r.created_ms),
            updated: codec::time(r.updated_ms),
        }
    }
}

impl Store {
    /// Inserts a plan unless its canonical key is known; returns the new id, or None for a duplicate.
    pub async fn insert_plan(&self, p: &NewPlan) -> Result<Option<PlanId>> {
        let now = now_ms();
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "INSERT INTO plans (source, source_kind, page_url, media_url, canonical_key, title, description, tags,
                 license, width, height, duration_ms, playable, score, scorer, reasons, status, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
             ON CONFLICT(canonical_key) DO NOTHING RETURNING id",
        )
        .bind(&p.source)
        .bind(p.source_kind)
        .bind(&p.page_url)
        .bind(&p.media_url)
        .bind(&p.canonical_key)
        .bind(&p.title)
        .bind(&p.description)
        .bind(json_text(&p.tags))
        .bind(&p.license)
        .bind(p.width.map(i64::from))
        .bind(p.height.map(i64::from))
        .bind(codec::opt_ms(p.duration))
        .bind(p.playable)
        .bind(p.score)
        .bind(&p.scorer)
        .bind(&p.reasons)
        .bind(p.status)
        .bind(now)
        .bind(now)
        .fetch_optional(pool)
        .await)?)
    }

    pub async fn plans(&self, status: Option<PlanStatus>, limit: i64) -> Result<Vec<Plan>> {
        let rows: Vec<PlanRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM plans WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"
        )
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(Plan::from).collect())
    }

    pub async fn plan(&self, id: PlanId) -> Result<Plan> {
        on_pool!(self, |pool| sqlx::query_as::<_, PlanRow>("SELECT * FROM plans WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .map(Plan::from)
        .ok_or_else(|| StoreError::NotFound(format!("plan {id}")))
    }

    pub async fn set_plan_status(&self, id: PlanId, status: PlanStatus) -> Result<()> {
        on_pool!(self, |pool| sqlx::query("UPDATE plans SET status = $1, updated_ms = $2 WHERE id = $3")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The plan for a canonical key (planned or rejected before), if any.
    pub async fn plan_by_key(&self, key: &str) -> Result<Option<Plan>> {
        Ok(on_pool!(self, |pool| sqlx::query_as::<_, PlanRow>("SELECT * FROM plans WHERE canonical_key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await)?
        .map(Plan::from))
    }
}
