//! HQ's unit tests on either backend: SQLite in a temporary directory by default, a scratch
//! PostgreSQL server when `STORENODE_HQ_TEST_DB=postgres` (`.ci/run` runs HQ's tests both
//! ways, so every one of them covers both).

use super::Target;
use super::scratch::ScratchPostgres;

/// A database for one test; removed (or its server stopped) when dropped.
pub struct TestDb {
    pub target: Target,
    _dir: tempfile::TempDir,
    _server: Option<ScratchPostgres>,
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDb {
    /// The backend chosen by `STORENODE_HQ_TEST_DB`.
    pub fn new() -> Self {
        match std::env::var("STORENODE_HQ_TEST_DB").as_deref() {
            Ok("postgres") => Self::postgres(),
            _ => Self::sqlite(),
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        Self {
            target: Target::Sqlite(dir.path().join("hq.db")),
            _dir: dir,
            _server: None,
        }
    }

    pub fn postgres() -> Self {
        let server = ScratchPostgres::start().expect("a scratch PostgreSQL server");
        let url = server.create_database("hq").expect("a database");
        Self {
            target: Target::Postgres(url),
            _dir: tempfile::tempdir().expect("temporary directory"),
            _server: Some(server),
        }
    }
}
