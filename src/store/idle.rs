//! Memory an idle store gives back: SQLite's page caches and prepared statements, and the
//! answer packer's compressor. A busy store keeps them (they are what makes the next sale
//! fast); a store that sold nothing for a while holds them for nothing, and on a box with a
//! 20 MB budget the writer's cache alone (2 MB once full) is a tenth of it. The next sale
//! after an idle spell reads its pages from the OS page cache and prepares its statements
//! again: tens of microseconds each, once.

use std::time::Duration;

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use super::Store;

/// How often the node looks at its store and its free heap (the heap check is a walk of
/// glibc's free lists: microseconds).
pub const LOOK_EVERY: Duration = Duration::from_secs(10);
/// Looks in a row with nothing written before the caches are given back: 30 s idle.
pub const QUIET_LOOKS: u32 = 3;

/// Bytes SQLite's page cache of `conn` holds (`SQLITE_DBSTATUS_CACHE_USED`).
pub fn cache_used_bytes(conn: &Connection) -> Option<u64> {
    let (mut current, mut highwater) = (0, 0);
    // SAFETY: `conn.handle()` is a live connection owned by `conn` for this call, and the
    // two out-pointers are valid locals; sqlite3_db_status only reads the connection's
    // counters under its mutex.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_status(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
            &mut current,
            &mut highwater,
            0,
        )
    };
    (rc == rusqlite::ffi::SQLITE_OK)
        .then(|| u64::try_from(current).ok())
        .flatten()
}

/// Empties `conn`'s page cache (pages no statement holds) and its prepared statements.
/// Returns the page-cache bytes it gave back, as far as SQLite reports them.
pub fn release_caches(conn: &Connection) -> u64 {
    let before = cache_used_bytes(conn).unwrap_or(0);
    conn.flush_prepared_statement_cache();
    if let Err(e) = conn.release_memory() {
        tracing::debug!(error = %e, "SQLite kept its page cache");
    }
    before.saturating_sub(cache_used_bytes(conn).unwrap_or(0))
}

/// Tells an idle spell from work by the rows the store has written at each look (the
/// watchdog's and `/readyz`'s probe writes change none): caches are given back once per
/// spell, at the first look that finds nothing written since the last one.
#[derive(Debug)]
pub struct IdleWatch {
    quiet_looks_needed: u32,
    last_writes: Option<u64>,
    quiet_looks: u32,
    released_at: Option<u64>,
}

impl IdleWatch {
    pub fn new(quiet_looks_needed: u32) -> Self {
        Self {
            quiet_looks_needed,
            last_writes: None,
            quiet_looks: 0,
            released_at: None,
        }
    }

    /// Whether to give the caches back now, given the rows written as of this look.
    pub fn should_release(&mut self, writes: u64) -> bool {
        if self.last_writes == Some(writes) {
            self.quiet_looks = self.quiet_looks.saturating_add(1);
        } else {
            self.quiet_looks = 0;
        }
        self.last_writes = Some(writes);
        let already = self.released_at == Some(writes);
        if self.quiet_looks >= self.quiet_looks_needed && !already {
            self.released_at = Some(writes);
            return true;
        }
        false
    }
}

/// The node's memory upkeep: at each look, an idle store's caches are given back and the
/// heap trimmed after them; otherwise the heap is trimmed only when much of it is free
/// ([`crate::memory::trim_if_slack`]).
pub async fn give_back_memory(store: Store, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(LOOK_EVERY);
    let mut watch = IdleWatch::new(QUIET_LOOKS);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if watch.should_release(store.rows_written()) {
            let freed = store.release_idle_caches().await;
            let _ = tokio::task::spawn_blocking(crate::memory::release_freed).await;
            tracing::debug!(
                sqlite_cache_kib = freed / 1024,
                rss_kib = crate::memory::resident_kib(),
                "store idle: caches given back"
            );
        } else {
            crate::memory::give_back_slack().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_once_per_quiet_spell() {
        let mut watch = IdleWatch::new(2);
        assert!(
            !watch.should_release(5),
            "the first look has nothing to compare"
        );
        assert!(!watch.should_release(5), "quiet for one look only");
        assert!(watch.should_release(5), "quiet for two looks");
        assert!(!watch.should_release(5), "already given back in this spell");
        assert!(!watch.should_release(9), "writes since the last look");
        assert!(!watch.should_release(9));
        assert!(!watch.should_release(12), "a write resets the count");
        assert!(!watch.should_release(12));
        assert!(watch.should_release(12), "quiet again");
        assert!(!watch.should_release(12));
    }

    #[test]
    fn a_reader_gives_its_page_cache_back_and_reads_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idle.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT i, printf('%.200c', 'x') FROM n;",
        )
        .unwrap();
        let count = |conn: &Connection| -> i64 {
            conn.prepare_cached("SELECT count(*) FROM t WHERE body <> ''")
                .unwrap()
                .query_row([], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&conn), 2000);
        let held = cache_used_bytes(&conn).unwrap();
        assert!(held > 100 * 1024, "the scan filled the cache: {held}");
        let freed = release_caches(&conn);
        assert!(freed > held / 2, "freed {freed} of {held}");
        assert!(cache_used_bytes(&conn).unwrap() < held / 2);
        assert_eq!(count(&conn), 2000, "reads go on after the release");
    }

    #[tokio::test]
    async fn an_idle_store_gives_its_caches_back_and_writes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            super::super::StoreOptions {
                path: dir.path().join("store.db"),
                max_batch: 64,
                writer_id: "s1.lane1".into(),
            },
            Box::new(super::super::NoHook),
        )
        .unwrap();
        let fill = |conn: &Connection| -> Result<(), crate::store::StoreError> {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                 INSERT INTO t (body) SELECT printf('%.300c', 'x') FROM n;",
            )?;
            Ok(())
        };
        store.write(fill).await.unwrap();
        let count = || {
            store.read(|conn| {
                Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)
            })
        };
        assert_eq!(count().await.unwrap(), 1000);
        assert_eq!(
            store.inner.readers.lock().unwrap().len(),
            1,
            "a pooled reader"
        );
        let written = store.rows_written();
        assert!(written >= 1000, "{written}");
        store.probe_write().await.unwrap();
        store.write(|_| Ok(())).await.unwrap();
        assert_eq!(store.rows_written(), written, "probes change no row");
        let freed = store.release_idle_caches().await;
        assert!(
            freed > 200 * 1024,
            "the writer's cache held the new pages: {freed}"
        );
        assert_eq!(store.rows_written(), written, "giving back is not a write");
        assert!(
            store.inner.readers.lock().unwrap().is_empty(),
            "pooled readers closed"
        );
        store.write(fill).await.unwrap();
        assert_eq!(count().await.unwrap(), 2000, "reads open a new reader");
        store.close().await;
    }
}
