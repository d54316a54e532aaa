//! When the WAL is copied back into the database file, and by whom.
//!
//! Every page a checkpoint copies is written to the SD card as a whole 4 KiB disk page, and
//! pages a sale touches at random places (stock levels, the idempotency keys) are copied once
//! per checkpoint however often they changed in between. SQLite's default checkpoints every
//! 1,000 pages (about 60 sales), inside the commit of the sale that crosses the mark: a
//! latency spike on the till and the same hot pages rewritten over and over. Here the
//! checkpoint runs on its own thread and connection, rarely (past [`WAL_CHECKPOINT_BYTES`]),
//! so a page changed by many sales is written back once; PASSIVE, so it never blocks a sale.
//! The writer keeps a checkpoint of its own as a backstop at twice that size: a background
//! checkpoint cannot reset the WAL while sales keep appending to it, the writer's can.
//!
//! The WAL file keeps its length when SQLite restarts it from the top. A WAL cut back to
//! nothing grows again with every commit, and on ext4 the `fsync` of a file that grew also
//! commits the file system's journal (the new size and blocks): about 16 KiB more on the
//! card per commit, invisible in the process's own write count but measured at the block
//! device (`examples/wal_file_growth.py`). So how full the WAL is cannot be read from its
//! length: the writer's WAL hook reports the frames after each commit ([`WalFill`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::StoreError;

/// Checkpoint once the WAL holds this much: 4 MiB, about 250 sales with sync on. Bounded so
/// that crash recovery and readers' WAL look-ups stay cheap.
pub const WAL_CHECKPOINT_BYTES: u64 = 4 * 1024 * 1024;
/// The writer's own checkpoint when the background one falls behind; also the length the
/// WAL file is cut back to when a restart finds it longer (after a backlog).
pub const WRITER_AUTOCHECKPOINT_BYTES: u64 = 2 * WAL_CHECKPOINT_BYTES;
/// How often the fill is looked at (an atomic load, nothing more).
const POLL: Duration = Duration::from_secs(1);

/// How many bytes of frames the WAL holds after the writer's last commit, as SQLite's WAL
/// hook reports them. Shared by the writer connection and the checkpoint thread.
#[derive(Clone, Debug, Default)]
pub struct WalFill(Arc<AtomicU64>);

impl WalFill {
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }
}

/// Settings on the writer connection that go with the background checkpoint: the WAL hook
/// that reports the fill and checkpoints past the backstop (it takes the place of SQLite's
/// `wal_autocheckpoint`, which is a WAL hook too), and a WAL file that keeps its length.
pub fn configure_writer(conn: &mut Connection, fill: &WalFill) -> Result<(), rusqlite::Error> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let frame_bytes = u64::try_from(page_size.max(512)).unwrap_or(4096) + 24;
    conn.pragma_update(
        None,
        "journal_size_limit",
        WRITER_AUTOCHECKPOINT_BYTES as i64,
    )?;
    let fill = fill.clone();
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames| {
        let bytes = u64::try_from(frames).unwrap_or(0) * frame_bytes;
        fill.set(bytes);
        if bytes >= WRITER_AUTOCHECKPOINT_BYTES {
            // As SQLite's own auto-checkpoint does: PASSIVE, and a busy reader is no error.
            match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                Ok(_) => {}
                Err(e) if is_another_checkpoint(&e) => {
                    tracing::debug!(wal_bytes = bytes, "background checkpoint under way");
                }
                Err(e) => {
                    tracing::warn!(error = %e, wal_bytes = bytes, "writer's WAL checkpoint failed");
                }
            }
        }
        Ok(())
    }))
}

/// A PASSIVE checkpoint answers "busy" when another connection (the checkpoint thread) is
/// checkpointing: the WAL is being copied already, nothing failed. Warning on it logged a
/// line per commit through a long backlog.
fn is_another_checkpoint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}

/// The checkpoint thread; stops when dropped or [`Checkpointer::stop`]ped.
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn spawn(db_path: PathBuf, fill: WalFill) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&db_path, &fill, &stopped))
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

fn run(db_path: &Path, fill: &WalFill, stopped: &mpsc::Receiver<()>) {
    let mut conn = None;
    // The fill last checkpointed: the fill only changes with the next commit, and an idle
    // box need not checkpoint an already copied WAL every second.
    let mut done_at = None;
    loop {
        match stopped.recv_timeout(POLL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let wal_bytes = fill.bytes();
        if wal_bytes < WAL_CHECKPOINT_BYTES || done_at == Some(wal_bytes) {
            continue;
        }
        if conn.is_none() {
            conn = open(db_path);
        }
        let Some(c) = &conn else { continue };
        match checkpoint(c, wal_bytes) {
            Ok(()) => done_at = Some(wal_bytes),
            // The writer's backstop is copying the WAL: try again at the next poll.
            Err(e) if is_another_checkpoint(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "background WAL checkpoint failed");
                conn = None;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_checkpoint_under_way_is_not_a_failure() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(is_another_checkpoint(&busy));
        let io = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            None,
        );
        assert!(!is_another_checkpoint(&io));
    }

    fn wal_path(db_path: &Path) -> PathBuf {
        let mut name = db_path.as_os_str().to_owned();
        name.push("-wal");
        PathBuf::from(name)
    }

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

    fn writer(path: &Path) -> (Connection, WalFill) {
        let mut conn = crate::store::open_connection(path, false).unwrap();
        let wal_fill = WalFill::default();
        configure_writer(&mut conn, &wal_fill).unwrap();
        (conn, wal_fill)
    }

    #[test]
    fn the_writer_no_longer_checkpoints_every_thousand_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (conn, wal_fill) = writer(&path);
        // 1,500 commits of a page or two each: past SQLite's default mark of 1,000 pages.
        fill(&conn, 1500);
        let len = wal_len(&path);
        assert!(
            len > 1_500 * 1024,
            "WAL was checkpointed early: {len} bytes"
        );
        assert!(wal_fill.bytes() > 1_500 * 1024, "{wal_fill:?}");
    }

    #[test]
    fn the_writer_checkpoints_past_the_backstop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (conn, wal_fill) = writer(&path);
        fill(&conn, WRITER_AUTOCHECKPOINT_BYTES / 1024 + 200);
        // The backstop copied everything, so a later commit restarted the WAL at the top.
        assert!(
            wal_fill.bytes() < WRITER_AUTOCHECKPOINT_BYTES / 2,
            "{wal_fill:?}"
        );
    }

    #[test]
    fn the_thread_checkpoints_a_full_wal_and_the_file_keeps_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (conn, wal_fill) = writer(&path);
        fill(&conn, WAL_CHECKPOINT_BYTES / 1024 + 100);
        assert!(wal_fill.bytes() >= WAL_CHECKPOINT_BYTES);
        let full = wal_len(&path);
        let mut checkpointer = Checkpointer::spawn(path.clone(), wal_fill.clone()).unwrap();
        // Bounded wait (the thread looks every second); the first write after a complete
        // checkpoint restarts the WAL at the top.
        let mut restarted = false;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            fill(&conn, 1);
            if wal_fill.bytes() < 64 * 1024 {
                restarted = true;
                break;
            }
        }
        checkpointer.stop();
        assert!(restarted, "the WAL was not checkpointed within 10 s");
        // Cut back to nothing, the file would grow with every commit again, and each
        // fsync would commit the file system's journal too.
        assert_eq!(wal_len(&path), full, "the WAL file was cut back");
    }
}
