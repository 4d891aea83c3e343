//! The `settings` table: business-logic keys set at run time, overriding the config defaults.

use super::codec::now_ms;
use super::{Result, Store};
use std::collections::BTreeMap;

impl Store {
    pub async fn settings(&self) -> Result<BTreeMap<String, String>> {
        let rows: Vec<(String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT key, value FROM settings").fetch_all(pool).await)?;
        Ok(rows.into_iter().collect())
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO settings (key, value, updated_ms) VALUES ($1, $2, $3)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
