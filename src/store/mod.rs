//! The node's local store: SQLite in WAL mode, one writer thread with group commit, a few
//! reader connections.
//!
//! Writes are closures run on the writer thread. The thread takes every write waiting in its
//! queue (up to `max_batch`), runs each inside its own savepoint (a failing write rolls back
//! alone), commits them in ONE transaction with `synchronous=FULL` (one fsync), and only then
//! answers each caller. So a write acknowledged to a client is on disk, and under load the
//! cost of the fsync is shared by every write in the batch.

pub mod catalog;
pub mod catalog_file;
mod checkpoint;
mod clean_stop;
pub mod coupons;
pub mod customers;
pub mod devices;
pub mod escrow;
pub mod file;
pub mod idempotency;
pub mod idle;
pub mod inventory;
pub mod ledger;
pub mod loyalty;
pub mod orders;
pub mod pricing;
pub mod sales;
mod schema;
mod tax;
pub mod transfers;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

pub use schema::SCHEMA_VERSION;
pub use tax::TaxConfig;
pub use writer::{BatchHook, NoHook};

/// What a store operation can fail with. The API maps each variant to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unknown item, sale or order (404).
    #[error("{what} not found")]
    NotFound { what: String },
    /// A request the store understood but refuses (422), naming the field.
    #[error("{field}: {reason}")]
    Unprocessable { field: String, reason: String },
    /// A request that conflicts with what is stored (409).
    #[error("{0}")]
    Conflict(String),
    /// The store cannot take writes now (503): disk full, read-only, shutting down.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error(
        "database {path} was written by a newer storenode (schema {found}, this binary knows up to {supported}); upgrade the binary or restore a backup with `storenode diag restore`"
    )]
    SchemaTooNewAt {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("database schema {found} is newer than this binary supports ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error(
        "database {path} is damaged ({detail}); the node will not run on it: restore a backup with `storenode diag restore`"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(String),
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    pub fn unprocessable(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Unprocessable {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A write refused for a reason outside the request: disk trouble or the store stopping.
    pub fn is_write_refusal(&self) -> bool {
        self.is_disk_trouble() || matches!(self, Self::Unavailable(_))
    }

    /// True when SQLite says the disk is full or the file system is read-only: the node keeps
    /// serving reads and refuses writes until it recovers.
    pub fn is_disk_trouble(&self) -> bool {
        use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, DiskFull | ReadOnly | SystemIoFailure | CannotOpen)
            }
            _ => false,
        }
    }
}

/// Settings the store needs from the configuration.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub path: PathBuf,
    pub max_batch: usize,
    /// This node's writer id, `{store}.{node}`: prefixes sale and return numbers so they are
    /// unique across the chain.
    pub writer_id: String,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer_id: String,
    jobs: mpsc::Sender<writer::Job>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled reader: async reads beyond the pool wait here instead of each
    /// opening a connection on its own blocking thread (a flood once made 500 threads).
    read_slots: Arc<tokio::sync::Semaphore>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<checkpoint::Checkpointer>>,
    /// HQ's pricing rules as last parsed, for every sale of this store.
    pricing: Arc<pricing::RulesCache>,
    /// Deflates the answers kept for replay (`idempotency::run`), on the writer thread.
    answer_packer: Arc<idempotency::AnswerPacker>,
    /// Rows the writer has changed so far: how [`idle::give_back_memory`] tells a store
    /// that sells from one that only answers probes (their writes change no row).
    rows_written: Arc<AtomicU64>,
}

const READER_POOL_SIZE: usize = 4;
/// SQLite page cache of the writer, KiB (`PRAGMA cache_size` of minus this): SQLite's own
/// default, 2,000 pages of 1 KiB, which holds a sale's hot pages (every table's and
/// index's upper levels, the stock rows) between group commits.
const WRITER_CACHE_KIB: i64 = 2000;
/// SQLite page cache of each pooled reader, KiB. A cache is filled by whatever the
/// connection read last and stays resident until the connection closes: at SQLite's
/// default (2 MiB) the four readers held 8 MiB once HQ's catalog document (several MiB of
/// overflow pages) or the stock document had been read through them. A reader's queries
/// are short lookups and scans of recent rows, and the OS page cache holds the file anyway.
const READER_CACHE_KIB: i64 = 256;
/// Prepared statements the writer connection keeps (each a few KiB, only once used).
const WRITER_STATEMENT_CACHE: usize = 128;
/// Queue depth in front of the writer; a full queue pushes back on the API (it awaits).
const WRITE_QUEUE: usize = 4096;

impl Store {
    /// Opens (creating if needed) the database, checks it, migrates it and starts the writer.
    pub fn open(options: StoreOptions, hook: Box<dyn BatchHook>) -> Result<Self, StoreError> {
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: options.path.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        refuse_empty_file(&options.path)?;
        let untouched = clean_stop::take(&options.path);
        let mut conn = open_connection(&options.path, false)?;
        if untouched {
            tracing::debug!(path = %options.path.display(), "database as the last clean stop left it; full check skipped");
        } else {
            check_integrity(&conn, &options.path)?;
        }
        schema::migrate(&mut conn).map_err(|e| match e {
            StoreError::SchemaTooNew { found, supported } => StoreError::SchemaTooNewAt {
                path: options.path.clone(),
                found,
                supported,
            },
            other => other,
        })?;
        let wal_fill = checkpoint::WalFill::default();
        checkpoint::configure_writer(&mut conn, &wal_fill)?;
        let checkpointer = checkpoint::Checkpointer::spawn(options.path.clone(), wal_fill.clone())?;
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE);
        let rows_written = Arc::new(AtomicU64::new(0));
        let thread = writer::spawn(
            conn,
            options.path.clone(),
            queue,
            options.max_batch,
            hook,
            wal_fill,
            Arc::clone(&rows_written),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: options.path,
                writer_id: options.writer_id,
                jobs,
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(tokio::sync::Semaphore::new(READER_POOL_SIZE)),
                writer_thread: Mutex::new(Some(thread)),
                checkpointer: Mutex::new(Some(checkpointer)),
                pricing: Arc::default(),
                answer_packer: Arc::default(),
                rows_written,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The parsed pricing rules every sale of this store prices with (see
    /// [`pricing::RulesCache`]); put it in the sale's `WriteContext`.
    pub fn pricing(&self) -> Arc<pricing::RulesCache> {
        Arc::clone(&self.inner.pricing)
    }

    /// The compressor every kept answer goes through; pass it to `idempotency::run`.
    pub fn answer_packer(&self) -> Arc<idempotency::AnswerPacker> {
        Arc::clone(&self.inner.answer_packer)
    }

    pub fn writer_id(&self) -> &str {
        &self.inner.writer_id
    }

    /// Runs `op` on the writer thread inside the next group commit; resolves once it is durable.
    pub async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = writer::Job::new(op, reply);
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store writer stopped".into()))?
    }

    /// A real write through the writer thread's group commit (page 1 rewritten with the same
    /// schema version, so nothing changes): fails as a sale would when the file is read-only,
    /// locked by another process or the disk refuses. For readiness, so callers rate-limit it.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        self.write(|conn| {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            conn.pragma_update(None, "user_version", version)?;
            Ok(())
        })
        .await
    }

    /// Runs a read-only `op` on a pooled reader connection on the blocking pool.
    pub async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // Held by the blocking task itself, so a caller that gives up (a request timeout)
        // does not free the slot while its read still runs.
        let slot = self
            .inner
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            store.read_blocking(op)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reader task failed: {e}")))?
    }

    /// The same as [`Store::read`], for code already on a blocking thread (not bounded by the
    /// async read slots: its callers are the node's own few tasks, not clients).
    pub fn read_blocking<T>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.take_reader();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.inner.path, true)?,
        };
        let result = op(&conn);
        self.return_reader(conn);
        result
    }

    fn take_reader(&self) -> Option<Connection> {
        self.inner.readers.lock().ok()?.pop()
    }

    fn return_reader(&self, conn: Connection) {
        if let Ok(mut pool) = self.inner.readers.lock()
            && pool.len() < READER_POOL_SIZE
        {
            pool.push(conn);
        }
    }

    /// Rows the writer has inserted, updated or deleted since the store opened, as of its
    /// last group commit.
    pub fn rows_written(&self) -> u64 {
        self.inner.rows_written.load(Ordering::Relaxed)
    }

    /// Gives back what an idle store's caches hold (see [`idle`]): the pooled readers
    /// (closed: each holds its own copy of the schema besides its caches; the next reads
    /// open new ones), the writer's page cache and prepared statements, and the answer
    /// packer's compressor. Returns the page-cache bytes freed. The store works on as before.
    pub async fn release_idle_caches(&self) -> u64 {
        let readers: Vec<Connection> = self
            .inner
            .readers
            .lock()
            .map(|mut pool| pool.drain(..).collect())
            .unwrap_or_default();
        let mut freed: u64 = readers.iter().filter_map(idle::cache_used_bytes).sum();
        drop(readers);
        self.inner.answer_packer.release();
        freed += self
            .ask_writer(writer::Job::ReleaseCaches)
            .await
            .unwrap_or(0);
        freed
    }

    /// Queues a control job for the writer thread and waits for its answer; `None` when
    /// the writer has stopped.
    async fn ask_writer<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<T>) -> writer::Job,
    ) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.inner.jobs.send(job(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Stops taking writes, lets the writer finish what is queued, checkpoints the WAL and
    /// closes the database. Safe to call more than once.
    pub async fn close(&self) {
        // The checkpoint thread first: the writer's final checkpoint truncates the WAL.
        let checkpointer = self
            .inner
            .checkpointer
            .lock()
            .ok()
            .and_then(|mut c| c.take());
        if let Some(mut checkpointer) = checkpointer {
            let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
        }
        // Dropping our sender is not enough while clones exist, so the writer is told to stop.
        let _ = self.ask_writer(writer::Job::shutdown).await;
        let thread = self
            .inner
            .writer_thread
            .lock()
            .ok()
            .and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            clean_stop::record(&self.inner.path);
        }
        if let Ok(mut pool) = self.inner.readers.lock() {
            pool.clear();
        }
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let open_err = |source: rusqlite::Error| match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: source.to_string(),
            }
        }
        _ => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    };
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    if !read_only {
        // A new database gets 1 KiB pages. A sale dirties a leaf page of each table and
        // index it touches, and each is appended to the WAL as a whole page plus a 24-byte
        // frame header: 4 KiB frames straddle two disk pages each, so a sale wrote about
        // 11 frames = 88 KB to the SD card; 1 KiB frames write a quarter of that. Fixed once
        // the file has pages (an existing database keeps its size).
        conn.pragma_update(None, "page_size", 1024)
            .map_err(open_err)?;
        // FULL: a commit is on disk before we answer (WAL + NORMAL can lose the last commits
        // on power loss, and an acknowledged sale must survive).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        // Deleted rows are overwritten with zeros, so erased customer data (src/privacy)
        // does not linger in free pages of the file.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(open_err)?;
        // The statement journal of the savepoint around each write (writer.rs) spills past
        // 64 KiB into a temporary file: about 84 KB of SD-card writes per sale for a
        // journal that is discarded at RELEASE. In memory it never touches the disk.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(open_err)?;
        // A group commit runs more distinct statements (a sale's, the idempotency row's,
        // the sync hook's) than rusqlite's default cache of 16 holds: every
        // `prepare_cached` missed and SQLite parsed and planned the statement again, about
        // 6 % of the node's CPU at 16 tills with sync (perf, docs/benchmarks.md).
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
    }
    let cache_kib = if read_only {
        READER_CACHE_KIB
    } else {
        WRITER_CACHE_KIB
    };
    conn.pragma_update(None, "cache_size", -cache_kib)
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    Ok(conn)
}

/// A quick structural check at start: a damaged file is refused rather than written to.
/// SQLite takes a zero-length file for an empty database, so a store.db truncated by a
/// full disk or a failed copy would start as an empty store (no stock, no sales) and sync
/// that to HQ. A database this node created is never empty: refuse it like a damaged one.
fn refuse_empty_file(path: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == 0 => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: "the file is empty (0 bytes), not a storenode database; if this is a new \
                     install with nothing in it yet, delete the file"
                .into(),
        }),
        _ => Ok(()),
    }
}

fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| corrupt(e.to_string()))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(corrupt(verdict))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A migrated in-memory database for unit tests of the store's functions.
    pub fn memory_db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        schema::migrate(&mut conn).unwrap();
        conn
    }
}

#[cfg(test)]
mod page_size_tests {
    use super::*;

    fn cache_size(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn readers_keep_a_small_page_cache_and_the_writer_sqlites_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let writer = open_connection(&path, false).unwrap();
        schema::migrate(&mut { writer }).unwrap();
        let writer = open_connection(&path, false).unwrap();
        let reader = open_connection(&path, true).unwrap();
        assert_eq!(cache_size(&writer), -WRITER_CACHE_KIB);
        assert_eq!(cache_size(&reader), -READER_CACHE_KIB);
    }

    fn page_size(path: &Path) -> i64 {
        let conn = open_connection(path, true).unwrap();
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_database_gets_small_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        let conn = open_connection(&fresh, false).unwrap();
        schema::migrate(&mut { conn }).unwrap();
        assert_eq!(page_size(&fresh), 1024);

        let old = dir.path().join("old.db");
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x INTEGER);")
            .unwrap();
        drop(conn);
        let mut conn = open_connection(&old, false).unwrap();
        schema::migrate(&mut conn).unwrap();
        drop(conn);
        assert_eq!(page_size(&old), 4096, "an existing file is not rewritten");
    }
}
