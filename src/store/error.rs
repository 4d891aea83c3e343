//! What can go wrong in the store: opening or migrating the database, a statement, a missing or unreadable row.

use std::path::PathBuf;

/// A store failure, naming the database file or the record.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("storage.database_url {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("database {path}: migration failed: {source}")]
    Migrate { path: PathBuf, source: sqlx::migrate::MigrateError },
    /// A database this version cannot read as it is (opened read-only, so it is not migrated).
    #[error("database {path}: {reason}")]
    Schema { path: PathBuf, reason: String },
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0} not found")]
    NotFound(String),
    /// A row whose stored text this version cannot read.
    #[error("database: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when a foreign key refused the write (a row pointing at a channel, asset or plan that does not exist).
    pub fn is_foreign_key_violation(&self) -> bool {
        match self {
            StoreError::Sql(sqlx::Error::Database(e)) => e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation,
            _ => false,
        }
    }
}
