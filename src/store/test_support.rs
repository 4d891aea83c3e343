//! Stores for tests on either backend: a SQLite file in a temp folder, or a fresh database of the test kit's
//! PostgreSQL cluster (one per test process, started on first use).

use super::{Backend, Store};

/// A store and what keeps it alive.
pub struct TestStore {
    pub store: Store,
    /// The SQLite file's folder (also a scratch folder for PostgreSQL tests).
    pub dir: tempfile::TempDir,
}

pub async fn test_store(backend: Backend) -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = match backend {
        Backend::Sqlite => Store::open(&dir.path().join("vvtv.db")).await.expect("open SQLite"),
        Backend::Postgres => {
            let url = tokio::task::spawn_blocking(|| vvtv_testkit::postgres::Postgres::shared().fresh_database())
                .await
                .expect("start PostgreSQL");
            Store::connect(&url).await.expect("connect to PostgreSQL")
        }
    };
    TestStore { store, dir }
}

/// Runs each named `async fn name(backend: Backend)` as two tests, `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::store::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::store::Backend::Postgres).await
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;
