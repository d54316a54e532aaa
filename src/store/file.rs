//! SQLite file operations for `diag db check`, `diag db backup` and `diag restore`: an
//! online backup taken through rusqlite's backup API, and checks of a database file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCheckReport {
    /// `["ok"]` when the database is sound, otherwise SQLite's findings.
    pub integrity: Vec<String>,
    /// SKUs whose stock level differs from the sum of their ledger movements.
    pub ledger_mismatches: Vec<String>,
    pub ok: bool,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// `PRAGMA quick_check` of the copy: "ok".
    pub quick_check: String,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DbFileError {
    #[error("{}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} failed its check: {verdict}", path.display())]
    Damaged { path: PathBuf, verdict: String },
    #[error("{} already exists; choose another --out", path.display())]
    Exists { path: PathBuf },
    #[error("backup of {} did not finish: the database stayed busy", path.display())]
    Busy { path: PathBuf },
    #[error(
        "{} has schema version {found}, newer than this storenode supports ({supported})",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("ledger check failed: {0}")]
    Ledger(#[from] super::StoreError),
}

/// Pages copied per backup step: small enough that the writer is not held up for long.
const PAGES_PER_STEP: i32 = 1024;
/// A busy source is retried this many times (the writer holds locks only briefly).
const MAX_BUSY_RETRIES: u32 = 200;
const BUSY_PAUSE: Duration = Duration::from_millis(25);

/// Copies the database behind `source` into a new file `out`, then proves the copy opens
/// and passes `quick_check`. The copy is written beside `out` and renamed into place, so a
/// failed backup never leaves a half file under the final name.
pub fn backup_online(source: &Connection, out: &Path) -> Result<BackupReport, DbFileError> {
    let started = Instant::now();
    if out.exists() {
        return Err(DbFileError::Exists {
            path: out.to_path_buf(),
        });
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DbFileError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let partial = partial_name(out);
    let result = copy_pages(source, &partial).and_then(|()| {
        std::fs::rename(&partial, out).map_err(|source| DbFileError::Io {
            path: out.to_path_buf(),
            source,
        })
    });
    if let Err(e) = result {
        // Best effort: the partial file is useless and must not be mistaken for a backup.
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let quick_check = check_file(out)?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        path: out.to_path_buf(),
        bytes,
        quick_check,
        elapsed_ms: elapsed_ms(started),
    })
}

fn copy_pages(source: &Connection, partial: &Path) -> Result<(), DbFileError> {
    let sqlite = |source| DbFileError::Sqlite {
        path: partial.to_path_buf(),
        source,
    };
    let mut target = Connection::open(partial).map_err(sqlite)?;
    copy_all_pages(source, &mut target, partial)?;
    // The copy inherits WAL mode from the live database; a backup is one self-contained
    // file, so it goes back to a rollback journal (no -wal/-shm beside it).
    target
        .pragma_update(None, "journal_mode", "DELETE")
        .map_err(sqlite)?;
    drop(target);
    // Sales data: readable by the service user and its group only.
    std::fs::set_permissions(partial, std::fs::Permissions::from_mode(0o640)).map_err(|source| {
        DbFileError::Io {
            path: partial.to_path_buf(),
            source,
        }
    })
}

fn copy_all_pages(
    source: &Connection,
    target: &mut Connection,
    partial: &Path,
) -> Result<(), DbFileError> {
    let sqlite = |source| DbFileError::Sqlite {
        path: partial.to_path_buf(),
        source,
    };
    let backup = Backup::new(source, target).map_err(sqlite)?;
    let mut busy = 0;
    loop {
        match backup.step(PAGES_PER_STEP).map_err(sqlite)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                busy += 1;
                if busy > MAX_BUSY_RETRIES {
                    return Err(DbFileError::Busy {
                        path: partial.to_path_buf(),
                    });
                }
                std::thread::sleep(BUSY_PAUSE);
            }
            // StepResult is non-exhaustive; treat anything new as "try again".
            _ => std::thread::sleep(BUSY_PAUSE),
        }
    }
}

fn partial_name(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// Opens `path` read-only and runs `PRAGMA quick_check`; returns "ok" or the damage found.
pub fn check_file(path: &Path) -> Result<String, DbFileError> {
    let sqlite = |source| DbFileError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(sqlite)?;
    if verdict == "ok" {
        Ok(verdict)
    } else {
        Err(DbFileError::Damaged {
            path: path.to_path_buf(),
            verdict,
        })
    }
}

/// The schema version (`PRAGMA user_version`) of a database file, checked against this binary.
pub fn check_schema_version(path: &Path) -> Result<u32, DbFileError> {
    let sqlite = |source| DbFileError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
    let found: u32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sqlite)?;
    let supported = crate::store::SCHEMA_VERSION;
    if found > supported {
        return Err(DbFileError::TooNew {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(found)
}

/// Full `PRAGMA integrity_check` plus the ledger check, on a reader connection.
pub fn full_check(conn: &Connection, path: &Path) -> Result<DbCheckReport, DbFileError> {
    let started = Instant::now();
    let sqlite = |source| DbFileError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(sqlite)?;
    let integrity = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?;
    let ledger_mismatches = super::ledger::verify(conn)?;
    let ok = integrity == ["ok"] && ledger_mismatches.is_empty();
    Ok(DbCheckReport {
        integrity,
        ledger_mismatches,
        ok,
        elapsed_ms: elapsed_ms(started),
    })
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_db(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1),(2),(3);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn backup_copies_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let conn = sample_db(&dir.path().join("a.db"));
        let out = dir.path().join("sub/b.db");
        let report = backup_online(&conn, &out).unwrap();
        assert_eq!(report.quick_check, "ok");
        assert!(report.bytes > 0);
        let copy = Connection::open(&out).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        assert!(!partial_name(&out).exists());
        let mut wal = out.as_os_str().to_os_string();
        wal.push("-wal");
        assert!(!PathBuf::from(wal).exists(), "a backup is one file");
    }

    #[test]
    fn backup_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let conn = sample_db(&dir.path().join("a.db"));
        let out = dir.path().join("b.db");
        std::fs::write(&out, b"keep").unwrap();
        assert!(matches!(
            backup_online(&conn, &out),
            Err(DbFileError::Exists { .. })
        ));
        assert_eq!(std::fs::read(&out).unwrap(), b"keep");
    }

    #[test]
    fn a_non_database_fails_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![0x42; 8192]).unwrap();
        assert!(check_file(&path).is_err());
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", crate::store::SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        assert!(matches!(
            check_schema_version(&path),
            Err(DbFileError::TooNew { .. })
        ));
    }
}
