//! HQ's one storage interface: the same statements on SQLite (the embedded default, for
//! `storenode demo` and single-instance trials) or on PostgreSQL (production, several HQ
//! instances over one database).
//!
//! Statements are written once, in the common subset of the two dialects, with SQLite's
//! numbered parameters (`?1`); they are rewritten to PostgreSQL's (`$1`) when sent there.
//! The schema differs only in column types and lives in one migration list per backend
//! ([`migrate`]). Calls block: HQ's state is worked on under its lock on the blocking
//! pool, never on an async worker (the PostgreSQL client drives its own connection).
//!
//! - `value.rs`: parameters and columns shared by both backends;
//! - `pg.rs`: the PostgreSQL connection (statement cache, reconnect after a restart);
//! - `migrate.rs`: versioned migrations of both backends;
//! - `docs.rs`: documents as saved state plus logged changes;
//! - `locks.rs`: write locks, taken in one global order;
//! - `scratch.rs`: a throwaway PostgreSQL server for the tests and the benchmark.

pub mod docs;
pub mod locks;
mod migrate;
mod pg;
pub mod scratch;
#[cfg(test)]
pub mod testing;
mod value;

use std::cell::{Cell as Flag, RefCell};
use std::path::{Path, PathBuf};

pub use value::{Column, Param, Row, Value};

/// Where HQ keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file (one HQ process).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`host=... dbname=...` or `postgres://...`).
    Postgres(String),
}

impl Target {
    /// The PostgreSQL URL if one is configured, else `hq.db` in `data_dir`.
    pub fn from_config(database_url: Option<&str>, data_dir: &Path) -> Self {
        match database_url {
            Some(url) => Target::Postgres(url.to_owned()),
            None => Target::Sqlite(data_dir.join("hq.db")),
        }
    }
}

impl Target {
    /// Whether several HQ instances may share this database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, Target::Postgres(_))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("HQ database {target}: {reason}")]
    Open { target: String, reason: String },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgresql: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("column: {0}")]
    Column(String),
    #[error("migration {version}: {reason}")]
    Migration { version: usize, reason: String },
    #[error(
        "HQ's database is at schema version {found}, newer than this HQ knows ({known}): a newer HQ migrated it; upgrade this HQ, or restore the dump taken before that upgrade"
    )]
    NewerSchema { found: usize, known: usize },
    #[error("locks {names:?} taken out of order (below one the transaction holds): could deadlock")]
    LockOrder { names: Vec<String> },
}

impl DbError {
    /// Whether a unique or primary key refused the row.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            DbError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }
}

/// Whether the database answers a query, on a short connection of its own (readiness: a
/// long batch holding HQ's lock must not make HQ look down).
pub fn ping(target: &Target) -> Result<(), String> {
    match target {
        Target::Sqlite(path) => {
            use rusqlite::{Connection, OpenFlags};
            let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            conn.busy_timeout(std::time::Duration::from_secs(2))
                .and_then(|()| conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
                .map_err(|e| format!("{} does not answer: {e}", path.display()))
        }
        Target::Postgres(url) => pg::ping(url),
    }
}

enum Backend {
    Sqlite(rusqlite::Connection),
    // Boxed: the client and its statement cache are large, and one Db lives per part.
    Postgres(Box<RefCell<pg::PgConn>>),
}

/// One connection to HQ's database.
pub struct Db {
    backend: Backend,
    in_transaction: Flag<bool>,
    /// Documents written in the open transaction, with their new versions (see
    /// [`docs::bump_version`]); taken by the state when it commits.
    touched: RefCell<std::collections::BTreeMap<String, Touched>>,
    /// Of the orders documents written in the open transaction, where their writes wrote
    /// ([`Written`]): their read models (`hq::state::figures`) redo only that.
    written: RefCell<std::collections::BTreeMap<String, Written>>,
    /// Advisory lock keys the open transaction holds (`locks.rs`): what it may add after.
    locks: RefCell<std::collections::BTreeSet<i64>>,
}

/// Where a transaction's writes of one document wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Only at these map-key paths ([`crate::crdt::doc::touched_paths`]).
    Paths(std::collections::BTreeSet<Vec<String>>),
    /// Anywhere: a document saved whole (a new epoch), or a write whose paths are not known.
    Whole,
}

/// A document written in a transaction: its new version, and the id of the last change
/// logged for it (none when the write was a save).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Touched {
    pub version: i64,
    pub last_change_id: Option<i64>,
}

impl Db {
    /// Opens the database and brings its schema up to date.
    pub fn open(target: &Target) -> Result<Self, DbError> {
        let backend = match target {
            Target::Sqlite(path) => Backend::Sqlite(open_sqlite(path)?),
            Target::Postgres(url) => {
                Backend::Postgres(Box::new(RefCell::new(pg::PgConn::connect(url)?)))
            }
        };
        let db = Db {
            backend,
            in_transaction: Flag::new(false),
            touched: RefCell::default(),
            written: RefCell::default(),
            locks: RefCell::default(),
        };
        migrate::migrate(&db)?;
        Ok(db)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// A SQLite pragma (for example `secure_delete`); nothing on PostgreSQL.
    pub fn sqlite_pragma(&self, name: &str, value: &str) -> Result<(), DbError> {
        if let Backend::Sqlite(conn) = &self.backend {
            conn.pragma_update(None, name, value)?;
        }
        Ok(())
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, DbError> {
        let values: Vec<Value<'_>> = params.iter().map(|p| p.value()).collect();
        match &self.backend {
            Backend::Sqlite(conn) => {
                let changed = conn
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(values.iter()))?;
                Ok(u64::try_from(changed).unwrap_or(u64::MAX))
            }
            Backend::Postgres(conn) => {
                conn.borrow_mut()
                    .execute(sql, &values, self.in_transaction.get())
            }
        }
    }

    /// Runs a query; `read` turns each row into a value.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut read: impl FnMut(&mut Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let values: Vec<Value<'_>> = params.iter().map(|p| p.value()).collect();
        let rows = match &self.backend {
            Backend::Sqlite(conn) => sqlite_rows(conn, sql, &values)?,
            Backend::Postgres(conn) => {
                conn.borrow_mut()
                    .query(sql, &values, self.in_transaction.get())?
            }
        };
        rows.into_iter().map(|mut row| read(&mut row)).collect()
    }

    /// The first row of a query, if any.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnMut(&mut Row) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        Ok(self.query(sql, params, read)?.into_iter().next())
    }

    /// The first row of a query that always returns one (an aggregate, say).
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnMut(&mut Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.query_opt(sql, params, read)?
            .ok_or_else(|| DbError::Column(format!("no row from {sql}")))
    }

    /// Several statements without parameters (migrations).
    pub fn batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.backend {
            Backend::Sqlite(conn) => conn.execute_batch(sql)?,
            Backend::Postgres(conn) => conn.borrow_mut().batch(sql, self.in_transaction.get())?,
        }
        Ok(())
    }

    /// Starts a transaction: committed by [`Tx::commit`], rolled back when dropped. Inside
    /// a transaction already open ([`Db::open_transaction`]) it joins that one: its commit
    /// and rollback are the outer transaction's to do.
    pub fn begin(&self) -> Result<Tx<'_>, DbError> {
        if self.in_transaction.get() {
            return Ok(Tx {
                db: self,
                open: false,
            });
        }
        self.batch("BEGIN")?;
        self.in_transaction.set(true);
        self.release_locks();
        Ok(Tx {
            db: self,
            open: true,
        })
    }

    /// Opens a transaction that statements and [`Db::begin`] join until
    /// [`Db::finish_transaction`]. SQLite takes its write lock at once (one HQ process, but
    /// its parts share the file).
    pub fn open_transaction(&self) -> Result<(), DbError> {
        self.touched.borrow_mut().clear();
        self.written.borrow_mut().clear();
        self.release_locks();
        self.batch(if self.is_postgres() {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        })?;
        self.in_transaction.set(true);
        Ok(())
    }

    /// Commits (`commit`) or rolls back the transaction of [`Db::open_transaction`];
    /// returns the documents it wrote and their versions (none when rolled back).
    pub fn finish_transaction(
        &self,
        commit: bool,
    ) -> Result<std::collections::BTreeMap<String, Touched>, DbError> {
        // PostgreSQL answers the COMMIT of a transaction that a failed statement aborted
        // with a silent ROLLBACK: an error logged and passed over inside (a relay that lost
        // a deadlock did that) lost the whole write while HQ went on as if stored. Asked
        // first, such a transaction is refused here instead.
        let aborted = if commit && self.is_postgres() {
            self.query("SELECT 1", &[], |_| Ok(())).err()
        } else {
            None
        };
        let commit = commit && aborted.is_none();
        let done = self.batch(if commit { "COMMIT" } else { "ROLLBACK" });
        self.in_transaction.set(false);
        self.release_locks();
        let touched = std::mem::take(&mut *self.touched.borrow_mut());
        self.written.borrow_mut().clear();
        if let Some(e) = aborted {
            return Err(e);
        }
        done.map(|()| if commit { touched } else { Default::default() })
    }

    /// The row keys of the documents the open transaction wrote so far.
    pub fn touched_keys(&self) -> Vec<String> {
        self.touched.borrow().keys().cloned().collect()
    }

    /// Where the open transaction wrote document `doc_key` so far: [`Written::Whole`] when
    /// nothing was recorded of a document it wrote (every write of it must say, or its
    /// readers redo everything).
    pub fn written(&self, doc_key: &str) -> Written {
        self.written
            .borrow()
            .get(doc_key)
            .cloned()
            .unwrap_or(Written::Whole)
    }

    /// Records that the open transaction wrote document `doc_key` at `paths` (`None`:
    /// anywhere), on top of what it wrote before.
    pub fn record_written(
        &self,
        doc_key: &str,
        paths: Option<std::collections::BTreeSet<Vec<String>>>,
    ) {
        let mut written = self.written.borrow_mut();
        let entry = written
            .entry(doc_key.to_owned())
            .or_insert_with(|| Written::Paths(Default::default()));
        match (entry, paths) {
            (Written::Paths(all), Some(paths)) => all.extend(paths),
            (entry, _) => *entry = Written::Whole,
        }
    }

    fn record_touched(&self, doc_key: &str, version: i64, change_id: Option<i64>) {
        let mut touched = self.touched.borrow_mut();
        let entry = touched.entry(doc_key.to_owned()).or_default();
        entry.version = version;
        entry.last_change_id = entry.last_change_id.max(change_id);
    }
}

/// An open transaction; statements go through it as through the [`Db`].
pub struct Tx<'a> {
    db: &'a Db,
    /// Whether this guard began the transaction (and so ends it); a guard that joined an
    /// outer transaction leaves that to its owner.
    open: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<(), DbError> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        let done = self.db.batch("COMMIT");
        self.db.in_transaction.set(false);
        self.db.release_locks();
        done
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // A failed rollback means the connection is gone, and its transaction with it.
            let _ = self.db.batch("ROLLBACK");
            self.db.in_transaction.set(false);
            self.db.release_locks();
        }
    }
}

fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, DbError> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let open_err = |e: rusqlite::Error| DbError::Open {
        target: path.display().to_string(),
        reason: e.to_string(),
    };
    let conn = rusqlite::Connection::open(path).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    // HQ opens the file once per part (state, privacy, EPCIS): they wait for each other.
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    Ok(conn)
}

fn sqlite_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[Value<'_>],
) -> Result<Vec<Row>, DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let width = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let cells = (0..width)
            .map(|i| value::Cell::from_sqlite(row.get_ref(i)?))
            .collect::<Result<_, DbError>>()?;
        out.push(Row(cells));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Failed before on PostgreSQL: a statement failed inside the transaction, its error was
    // passed over, and the commit "succeeded" while PostgreSQL had rolled everything back.
    #[test]
    fn a_transaction_a_failed_statement_aborted_is_not_reported_committed() {
        let dir = testing::TestDb::new();
        let db = Db::open(&dir.target).unwrap();
        db.batch("CREATE TABLE t (x BIGINT PRIMARY KEY)").unwrap();
        db.open_transaction().unwrap();
        db.execute("INSERT INTO t (x) VALUES (1)", &[]).unwrap();
        assert!(db.execute("INSERT INTO t (x) VALUES (1)", &[]).is_err());
        let finished = db.finish_transaction(true);
        let stored: i64 = db
            .query_one("SELECT COUNT(*) FROM t", &[], |r| r.get(0))
            .unwrap();
        // SQLite keeps the first row (a failed statement undoes only itself); PostgreSQL
        // lost both, and must say so.
        if db.is_postgres() {
            assert!(finished.is_err(), "{finished:?}");
            assert_eq!(stored, 0);
        } else {
            assert!(finished.is_ok());
            assert_eq!(stored, 1);
        }
    }
}
