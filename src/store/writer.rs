//! The writer thread: group commit with a savepoint per write.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::checkpoint::WalFill;

/// Called on the writer thread around each group commit, inside the transaction, so that
/// derived state (the sync outbox and CRDT document) changes atomically with the business
/// data. `before_commit` failing rolls the whole batch back and fails every write in it.
pub trait BatchHook: Send {
    fn before_commit(&mut self, conn: &Connection) -> Result<(), StoreError>;
    /// After a failed commit, so in-memory state can be rebuilt from what is on disk.
    fn after_rollback(&mut self, conn: &Connection);
    /// After a durable commit.
    fn after_commit(&mut self) {}
}

/// A hook that does nothing: a node without sync.
pub struct NoHook;

impl BatchHook for NoHook {
    fn before_commit(&mut self, _conn: &Connection) -> Result<(), StoreError> {
        Ok(())
    }
    fn after_rollback(&mut self, _conn: &Connection) {}
}

/// What the caller hears after the commit: its own result, or the commit's failure.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A queued write, type-erased so writes of any result type share one queue.
pub trait WriteJob: Send {
    /// Runs the write; says whether it succeeded and how to answer once the commit is known.
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Completion);
    /// Answers without running (the batch could not start).
    fn fail(self: Box<Self>, error: StoreError);
}

struct TypedJob<T, F> {
    op: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Completion) {
        let TypedJob { op, reply } = *self;
        let result = op(conn);
        let succeeded = result.is_ok();
        let completion: Completion = Box::new(move |commit| {
            // The caller may have gone away (client hung up): nothing to tell then.
            let _ = reply.send(commit.and(result));
        });
        (succeeded, completion)
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

pub enum Job {
    Write(Box<dyn WriteJob>),
    Shutdown(oneshot::Sender<()>),
    /// Give the writer connection's caches back ([`super::idle`]); answers the bytes freed.
    ReleaseCaches(oneshot::Sender<u64>),
}

impl Job {
    pub fn new<T, F>(op: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Self
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Job::Write(Box::new(TypedJob { op, reply }))
    }

    pub fn shutdown(reply: oneshot::Sender<()>) -> Self {
        Job::Shutdown(reply)
    }
}

pub fn spawn(
    conn: Connection,
    path: PathBuf,
    queue: mpsc::Receiver<Job>,
    max_batch: usize,
    hook: Box<dyn BatchHook>,
    wal_fill: WalFill,
    rows_written: Arc<AtomicU64>,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let counters = Counters {
                wal_fill,
                rows_written,
            };
            run(conn, &path, queue, max_batch, hook, &counters)
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))
}

/// What the writer shares with the rest of the store.
struct Counters {
    wal_fill: WalFill,
    /// Rows the writer connection has inserted, updated or deleted since it opened
    /// (`sqlite3_total_changes`): how the store tells a sale from an empty probe write.
    rows_written: Arc<AtomicU64>,
}

fn run(
    mut conn: Connection,
    path: &std::path::Path,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    mut hook: Box<dyn BatchHook>,
    counters: &Counters,
) {
    let wal_fill = &counters.wal_fill;
    let mut rows_before_reopen = 0;
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut shutdown_reply = None;
    let mut release_replies = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut writes = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            match job {
                Job::Write(op) => writes.push(op),
                Job::Shutdown(reply) => shutdown_reply = Some(reply),
                Job::ReleaseCaches(reply) => release_replies.push(reply),
            }
        }
        if !writes.is_empty() {
            if reopen_if_read_only(&mut conn, path, wal_fill) {
                rows_before_reopen = counters.rows_written.load(Ordering::Relaxed);
            }
            commit_batch(&conn, writes, hook.as_mut());
            counters
                .rows_written
                .store(rows_before_reopen + conn.total_changes(), Ordering::Relaxed);
        }
        if !release_replies.is_empty() {
            let freed = super::idle::release_caches(&conn);
            for reply in release_replies.drain(..) {
                let _ = reply.send(freed);
            }
        }
        if shutdown_reply.is_some() {
            break;
        }
    }
    // Anything still queued after the shutdown request is refused by dropping it (callers see
    // "writer stopped"); the database is checkpointed so the WAL does not outlive us.
    queue.close();
    while let Ok(job) = queue.try_recv() {
        drop(job);
    }
    if let Err(e) = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
        tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
    }
    drop(conn);
    tracing::info!("store closed");
    if let Some(reply) = shutdown_reply {
        let _ = reply.send(());
    }
}

type WriteOp = Box<dyn WriteJob>;

/// SQLite opens a file it may not write (owned by root after `sudo storenode catalog
/// import`, say) read-only without a word, and the connection stays read-only after the
/// owner is fixed. Before each batch a read-only writer connection is reopened, so the node
/// recovers without a restart once the file is writable again.
/// Says whether it reopened.
fn reopen_if_read_only(conn: &mut Connection, path: &std::path::Path, wal_fill: &WalFill) -> bool {
    if !conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return false;
    }
    match super::open_connection(path, false) {
        Ok(mut fresh) if !fresh.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) => {
            if let Err(e) = super::checkpoint::configure_writer(&mut fresh, wal_fill) {
                tracing::warn!(error = %e, "reopened writer keeps SQLite's checkpoint settings");
            }
            tracing::info!(path = %path.display(), "database is writable again; writer reopened it");
            *conn = fresh;
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::debug!(error = %e, "reopening the read-only database failed");
            false
        }
    }
}

fn commit_batch(conn: &Connection, writes: Vec<WriteOp>, hook: &mut dyn BatchHook) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let reason = StoreError::from(e);
        tracing::error!(error = %reason, writes = writes.len(), "cannot begin a write transaction");
        let disk = reason.is_disk_trouble();
        for op in writes {
            op.fail(batch_error(&reason, disk));
        }
        return;
    }
    let mut completions = Vec::with_capacity(writes.len());
    for op in writes {
        if let Some(completion) = run_in_savepoint(conn, op) {
            completions.push(completion);
        }
    }
    let committed = hook
        .before_commit(conn)
        .and_then(|()| conn.execute_batch("COMMIT").map_err(StoreError::from));
    match committed {
        Ok(()) => {
            hook.after_commit();
            for completion in completions {
                completion(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, writes = completions.len(), "group commit failed; batch rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            hook.after_rollback(conn);
            let disk = e.is_disk_trouble();
            for completion in completions {
                completion(Err(batch_error(&e, disk)));
            }
        }
    }
}

/// One write inside a savepoint: its failure undoes only its own changes. `None` when the
/// write was answered already (its savepoint could not be opened).
fn run_in_savepoint(conn: &Connection, op: WriteOp) -> Option<Completion> {
    if let Err(e) = execute_cached(conn, "SAVEPOINT write") {
        op.fail(StoreError::from(e));
        return None;
    }
    let (succeeded, completion) = op.run(conn);
    let end = if succeeded {
        execute_cached(conn, "RELEASE write")
    } else {
        execute_cached(conn, "ROLLBACK TO write")
            .and_then(|()| execute_cached(conn, "RELEASE write"))
    };
    if let Err(e) = end {
        tracing::error!(error = %e, "ending a savepoint failed");
    }
    Some(completion)
}

/// Runs a statement from the connection's statement cache: the savepoint statements run
/// twice per write, and `execute_batch` would parse them each time.
fn execute_cached(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn batch_error(e: &StoreError, disk: bool) -> StoreError {
    if disk {
        StoreError::Unavailable(format!("disk trouble, writes refused until it clears: {e}"))
    } else {
        StoreError::Unavailable(format!("commit failed: {e}"))
    }
}
