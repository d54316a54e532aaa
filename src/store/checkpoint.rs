//! When the WAL is copied back into the database file, and by whom.
//!
//! Every page a checkpoint copies is written to the SD card as a whole 4 KiB disk page, and
//! pages a sale touches at random places (stock levels, the idempotency keys) are copied once
//! per checkpoint however often they changed in between. SQLite's default checkpoints every
//! 1,000 pages (about 60 sales), inside the commit of the sale that crosses the mark: a
//! latency spike on the till and the same hot pages rewritten over and over. Here the
//! checkpoint runs on its own thread and connection, rarely (past [`WAL_CHECKPOINT_BYTES`]),
//! so a page changed by many sales is written back once; PASSIVE, so it never blocks a sale.
//! The writer keeps SQLite's own checkpoint as a backstop at twice that size: a background
//! checkpoint cannot reset the WAL while sales keep appending to it, the writer's can.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// Checkpoint once the WAL holds this much: 4 MiB, about 250 sales with sync on. Bounded so
/// that crash recovery and readers' WAL look-ups stay cheap.
pub const WAL_CHECKPOINT_BYTES: u64 = 4 * 1024 * 1024;
/// The writer's own checkpoint, in pages, when the background one falls behind.
pub const WRITER_AUTOCHECKPOINT_BYTES: u64 = 2 * WAL_CHECKPOINT_BYTES;
/// How often the WAL's size is looked at (a `stat`, nothing more).
const POLL: Duration = Duration::from_secs(1);

/// Settings on the writer connection that go with the background checkpoint.
pub fn configure_writer(conn: &Connection) -> Result<(), rusqlite::Error> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let pages = WRITER_AUTOCHECKPOINT_BYTES as i64 / page_size.max(512);
    conn.pragma_update(None, "wal_autocheckpoint", pages)?;
    // The WAL file is cut back to nothing each time it restarts, so its length is what it
    // holds since the last restart (what the checkpointer measures).
    conn.pragma_update(None, "journal_size_limit", 0)?;
    Ok(())
}

/// The checkpoint thread; stops when dropped or [`Checkpointer::stop`]ped.
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn spawn(db_path: PathBuf) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&db_path, &stopped))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (a checkpoint under way finishes first).
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(db_path: &Path, stopped: &mpsc::Receiver<()>) {
    let wal = wal_path(db_path);
    let mut conn = None;
    loop {
        match stopped.recv_timeout(POLL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Ok(meta) = std::fs::metadata(&wal) else {
            continue;
        };
        if meta.len() < WAL_CHECKPOINT_BYTES {
            continue;
        }
        if conn.is_none() {
            conn = open(db_path);
        }
        if let Some(c) = &conn
            && let Err(e) = checkpoint(c, meta.len())
        {
            tracing::warn!(error = %e, "background WAL checkpoint failed");
            conn = None;
        }
    }
}

/// The checkpoint connection's page cache, KiB: a checkpoint copies WAL frames into the
/// file without going through it, so the writer's 2 MiB would sit there for nothing.
const CHECKPOINT_CACHE_KIB: i64 = 64;

fn open(db_path: &Path) -> Option<Connection> {
    let opened = super::open_connection(db_path, false).and_then(|conn| {
        conn.pragma_update(None, "cache_size", -CHECKPOINT_CACHE_KIB)?;
        Ok(conn)
    });
    match opened {
        Ok(conn) => Some(conn),
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint thread cannot open the database");
            None
        }
    }
}

fn checkpoint(conn: &Connection, wal_bytes: u64) -> Result<(), rusqlite::Error> {
    let (busy, frames, copied): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    tracing::debug!(wal_bytes, busy, frames, copied, "WAL checkpoint");
    Ok(())
}

fn wal_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_len(path: &Path) -> u64 {
        std::fs::metadata(wal_path(path)).map_or(0, |m| m.len())
    }

    fn fill(conn: &Connection, pages: u64) {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (v BLOB)")
            .unwrap();
        for _ in 0..pages {
            conn.execute("INSERT INTO t VALUES (zeroblob(900))", [])
                .unwrap();
        }
    }

    #[test]
    fn the_writer_no_longer_checkpoints_every_thousand_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = crate::store::open_connection(&path, false).unwrap();
        configure_writer(&conn).unwrap();
        // 1,500 commits of a page or two each: past SQLite's default mark of 1,000 pages.
        fill(&conn, 1500);
        let len = wal_len(&path);
        assert!(
            len > 1_500 * 1024,
            "WAL was checkpointed early: {len} bytes"
        );
    }

    #[test]
    fn the_thread_checkpoints_a_large_wal_so_it_restarts_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = crate::store::open_connection(&path, false).unwrap();
        configure_writer(&conn).unwrap();
        fill(&conn, WAL_CHECKPOINT_BYTES / 1024 + 100);
        assert!(wal_len(&path) >= WAL_CHECKPOINT_BYTES);
        let mut checkpointer = Checkpointer::spawn(path.clone()).unwrap();
        // Bounded wait (the thread looks every second); each write after a complete
        // checkpoint restarts the WAL, cut back to nothing.
        let mut restarted = false;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            fill(&conn, 1);
            if wal_len(&path) < 64 * 1024 {
                restarted = true;
                break;
            }
        }
        checkpointer.stop();
        assert!(restarted, "the WAL was not checkpointed within 10 s");
    }
}
