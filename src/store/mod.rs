//! The database: the single source of truth and the only place with SQL.
//!
//! Every actor gets a clone of [`Store`] (a pool). What must survive a crash is written here before it is acted on;
//! a restart reads the store and carries on. One file per table family.
//!
//! Two backends behind one API, chosen by `storage.database_url`: SQLite (one box, the default: a file in
//! `data_dir`) and PostgreSQL (many nodes sharing one database). The statements are the same text for both (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`, `CAST(SUM(..) AS BIGINT)`, `TRUE`/`FALSE`): [`on_pool!`] runs one
//! statement on whichever pool the store has, so each is written once and type-checked against both drivers. The few
//! that must differ (row locks, the database clock, catalog queries) sit side by side, chosen by
//! [`Store::backend`]. Each backend has its own migrations (`migrations/sqlite`, `migrations/postgres`), version for
//! version the same schema.

/// Runs `$body` with `$pool` bound to the store's SQLite or PostgreSQL pool: the same statement text, compiled for
/// each driver (sqlx's `Any` driver would lose the derived types).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}

mod assets;
pub mod audience;
#[cfg(test)]
mod backend_tests;
mod cluster;
mod codec;
mod error;
mod events;
mod guide;
mod jobs;
mod plans;
mod schedule;
mod settings;
#[cfg(test)]
pub(crate) mod test_support;

pub use assets::{Airable, NewAsset, NewRendition};
pub use audience::{SessionRecord, SessionTotals, SessionWrite, WatchSpan};
pub use cluster::{LeaseRow, SegmentRow};
pub use error::StoreError;
pub use guide::{GuideAiring, GuideAsset};
pub use jobs::{NewJob, JOBS_CHANNEL};
pub use plans::NewPlan;
pub use schedule::{HistoryItem, NewAiring, NewScheduleItem};
pub use vvtv_api::{
    Actor, Airing, AiringId, AiringKind, Asset, AssetId, AssetKind, AssetStatus, ChannelId, Event, EventId, EventKind,
    Job, JobId, JobInput, JobOrigin, JobStatus, Plan, PlanId, PlanStatus, QueueItem, Rendition, ScheduleId,
    ScheduleStatus, SessionEnd, SessionId, SourceKind,
};

use crate::objects::Objects;
use codec::now_ms;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The node name of a store not told otherwise (tests, tools).
pub const LOCAL_NODE: &str = "local";

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The SQLite schema, from `migrations/sqlite` (append-only), built into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// The PostgreSQL schema, from `migrations/postgres`: the same versions as [`MIGRATOR`].
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// The node this process is (`[node] id`): whose jobs are whose.
    node: Arc<str>,
    /// Where media paths are relative to (`data_dir`) when nodes share the database: each node keeps its copies
    /// of the shared objects under its own data folder, so the rows name paths relative to it.
    files_root: Option<Arc<PathBuf>>,
    /// The media objects (see [`crate::objects`]): kept with the rows that name them, so whoever reads a rendition
    /// row can fetch its file.
    objects: Option<Objects>,
}

impl Store {
    /// Opens the database `url` names: `sqlite://PATH` (created if needed) or `postgres://…` (must exist), and
    /// applies this version's migrations. Errors name the database (without its password).
    pub async fn connect(url: &str) -> Result<Store> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Store::open(Path::new(path)).await;
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Url {
                url: redact(url),
                reason: "must start with sqlite:// or postgres://".into(),
            });
        }
        let shown = redact(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Url { url: shown.clone(), reason: e.to_string() })?;
        let open_err = |source| StoreError::Open { path: PathBuf::from(&shown), source };
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(open_err)?;
        PG_MIGRATOR.run(&pool).await.map_err(|source| StoreError::Migrate { path: PathBuf::from(&shown), source })?;
        Ok(Store { pool: Pool::Postgres(pool), node: Arc::from(LOCAL_NODE), files_root: None, objects: None })
    }

    /// The same store, acting for node `id` (claims, heartbeats and requeues are per node).
    pub fn for_node(mut self, id: &str) -> Store {
        self.node = Arc::from(id);
        self
    }

    /// The same store, storing media paths under `root` relative to it (and reading them back under `root`): what
    /// nodes sharing the database and the object store do, each with its own data folder.
    pub fn with_files_root(mut self, root: PathBuf) -> Store {
        self.files_root = Some(Arc::new(root));
        self
    }

    /// The same store with the station's objects; when they are shared, media paths are stored relative to the
    /// node's data folder (see [`Store::with_files_root`]).
    pub fn with_objects(self, objects: Objects) -> Store {
        let mut store = if objects.is_shared() { self.with_files_root(objects.root().to_owned()) } else { self };
        store.objects = Some(objects);
        store
    }

    pub fn objects(&self) -> Option<&Objects> {
        self.objects.as_ref()
    }

    /// The object store, when nodes share it (S3): the station is several nodes, channels are leased.
    pub fn shared_objects(&self) -> Option<&Objects> {
        self.objects.as_ref().filter(|o| o.is_shared())
    }

    /// True when nodes share the station (see [`Store::shared_objects`]).
    pub fn is_shared(&self) -> bool {
        self.shared_objects().is_some()
    }

    /// Makes sure a media file named by a row is on this node (fetched from the shared object store if needed).
    /// Ok(false): it is nowhere (missing locally, or no such object). Err: the object store did not answer, which
    /// says nothing about the file.
    pub async fn fetch_media(&self, path: &Path) -> std::result::Result<bool, crate::objects::ObjectsError> {
        if let Some(objects) = &self.objects {
            match objects.fetch(path).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(tokio::fs::try_exists(path).await.unwrap_or(false))
    }

    /// A path as stored: relative to the files root when it lies under it.
    fn stored_path(&self, path: &Path) -> String {
        let relative = self.files_root.as_deref().and_then(|root| path.strip_prefix(root).ok());
        relative.unwrap_or(path).to_string_lossy().into_owned()
    }

    /// A stored path as a path on this node (absolute stored paths stay as they are).
    fn local_path(&self, stored: &Path) -> PathBuf {
        match &self.files_root {
            Some(root) => root.join(stored),
            None => stored.to_owned(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The PostgreSQL pool, for what only PostgreSQL has (`LISTEN`); None on SQLite.
    pub fn postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Opens (creating if needed) a SQLite database, sets WAL, foreign keys and a busy timeout, and applies
    /// migrations.
    pub async fn open(path: &Path) -> Result<Store> {
        let open_err = |source| StoreError::Open { path: path.to_owned(), source };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a committed transaction survives a process crash (kill -9); only an OS crash
            // may lose the last ones.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(open_err)?;
        MIGRATOR.run(&pool).await.map_err(|source| StoreError::Migrate { path: path.to_owned(), source })?;
        Ok(Store { pool: Pool::Sqlite(pool), node: Arc::from(LOCAL_NODE), files_root: None, objects: None })
    }

    /// Opens an existing database read-only (the simulation reads a station's library this way): nothing is created,
    /// migrated or written. A file that is not a VVTV database, or lacks a migration of this version, is refused.
    pub async fn open_read_only(path: &Path) -> Result<Store> {
        let open_err = |source| StoreError::Open { path: path.to_owned(), source };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(false)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(open_err)?;
        let schema = |reason: String| StoreError::Schema { path: path.to_owned(), reason };
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(&pool)
            .await
            .map_err(|e| schema(format!("not a VVTV database ({e})")))?;
        if let Some(m) = MIGRATOR.iter().find(|m| !applied.contains(&m.version)) {
            return Err(schema(format!(
                "lacks migration {} ({}): start this version's daemon on it once to migrate it",
                m.version, m.description
            )));
        }
        Ok(Store { pool: Pool::Sqlite(pool), node: Arc::from(LOCAL_NODE), files_root: None, objects: None })
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }

    /// Makes sure every configured channel has its row (names follow the config).
    pub async fn upsert_channel(&self, id: &ChannelId, name: &str) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO channels (id, name, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name",
        )
        .bind(id)
        .bind(name)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Names of the applied migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<String>> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT description FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await)?)
    }

    pub async fn table_names(&self) -> Result<Vec<String>> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' \
                 AND name NOT LIKE 'sqlite%' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT CAST(tablename AS TEXT) FROM pg_tables WHERE schemaname = current_schema() \
                 AND tablename NOT LIKE '\\_%' ESCAPE '\\' ORDER BY tablename"
            }
        };
        Ok(on_pool!(self, |pool| sqlx::query_scalar(sql).fetch_all(pool).await)?)
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(store: &Store) -> &SqlitePool {
        match &store.pool {
            Pool::Sqlite(pool) => pool,
            Pool::Postgres(_) => panic!("a SQLite store was expected"),
        }
    }

    #[tokio::test]
    async fn migrations_apply_to_a_fresh_file_and_again_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vvtv.db");
        let store = Store::open(&path).await.unwrap();
        let tables = store.table_names().await.unwrap();
        for t in ["airings", "assets", "channels", "events", "jobs", "plans", "renditions", "schedule", "settings"] {
            assert!(tables.iter().any(|x| x == t), "table {t} missing from {tables:?}");
        }
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(sqlite(&store)).await.unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(sqlite(&store)).await.unwrap();
        assert_eq!(fk, 1);
        store.close().await;
        let again = Store::open(&path).await.unwrap();
        let applied = again.applied_migrations().await.unwrap();
        let shipped: Vec<String> = MIGRATOR.iter().map(|m| m.description.to_string()).collect();
        assert!(!shipped.is_empty());
        assert_eq!(applied, shipped, "every migration in migrations/ is applied once, in order");
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT MAX(id) FROM schedule WHERE asset_id = 1 AND channel_id = 'main'",
        )
        .fetch_all(sqlite(&again))
        .await
        .unwrap();
        assert!(plan.iter().any(|r| r.3.contains("schedule_asset")), "planner lookup must use the index: {plan:?}");
    }

    #[tokio::test]
    async fn foreign_keys_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("vvtv.db")).await.unwrap();
        let err = store.schedule_append(&ChannelId("nope".into()), AssetId(42), "test").await.unwrap_err();
        assert!(err.is_foreign_key_violation(), "a schedule row for an unknown channel and asset: {err:?}");
        let ch = ChannelId("main".into());
        store.upsert_channel(&ch, "Main").await.unwrap();
        let err = store.schedule_append(&ch, AssetId(42), "test").await.unwrap_err();
        assert!(err.is_foreign_key_violation(), "a schedule row for an unknown asset: {err:?}");
        let asset = store
            .insert_asset(&NewAsset { title: "a".into(), dir: dir.path().into(), ..Default::default() })
            .await
            .unwrap();
        store.schedule_append(&ch, asset, "test").await.expect("a row pointing at existing rows is accepted");
    }

    #[tokio::test]
    async fn a_read_only_open_reads_writes_nothing_and_refuses_an_unmigrated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vvtv.db");
        let store = Store::open(&path).await.unwrap();
        store.set_setting("diversity.window_minutes", "90").await.unwrap();
        store.close().await;
        let ro = Store::open_read_only(&path).await.unwrap();
        assert_eq!(ro.settings().await.unwrap().get("diversity.window_minutes").map(String::as_str), Some("90"));
        let err = ro.set_setting("diversity.window_minutes", "10").await.unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
        ro.close().await;
        // A database missing this version's last migration is refused, named, not migrated.
        let store = Store::open(&path).await.unwrap();
        let last = MIGRATOR.iter().last().unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
            .bind(last.version)
            .execute(sqlite(&store))
            .await
            .unwrap();
        store.close().await;
        let err = Store::open_read_only(&path).await.err().unwrap().to_string();
        assert!(err.contains("vvtv.db") && err.contains(&format!("lacks migration {}", last.version)), "{err}");
        let missing = dir.path().join("missing.db");
        assert!(Store::open_read_only(&missing).await.is_err());
        assert!(!missing.exists(), "a read-only open created {}", missing.display());
    }

    #[tokio::test]
    async fn open_names_the_file_on_failure() {
        let err = Store::open(Path::new("/proc/definitely/not/here.db")).await.unwrap_err();
        assert!(err.to_string().contains("/proc/definitely/not/here.db"), "{err}");
    }
}
