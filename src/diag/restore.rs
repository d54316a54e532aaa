//! `diag restore FILE`: puts a backup in place of the node's database. The node must be
//! stopped (two writers on one SQLite file is how databases get lost); the backup is
//! checked before anything is touched, and the current database is kept aside, not deleted.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::control::{Client, ClientError};
use crate::store::file::{self as dbfile, DbFileError};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "storenode is running (its control socket {} answers); stop it first: systemctl stop storenode",
        socket.display()
    )]
    NodeRunning { socket: PathBuf },
    #[error("backup rejected, nothing was changed: {0}")]
    BadBackup(#[from] DbFileError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    pub restored_from: PathBuf,
    pub database: PathBuf,
    pub schema_version: u32,
    /// Where the previous database (and its WAL) went; `None` if there was none.
    pub previous_kept_at: Option<PathBuf>,
}

pub fn restore(
    socket: &Path,
    database: &Path,
    backup: &Path,
) -> Result<RestoreSummary, RestoreError> {
    match Client::connect(socket) {
        Ok(_) => {
            return Err(RestoreError::NodeRunning {
                socket: socket.to_path_buf(),
            });
        }
        // Not running, or a stale socket from a crash: both mean nobody has the file open.
        Err(ClientError::NotRunning { .. } | ClientError::Stale { .. }) => {}
        Err(ClientError::PermissionDenied { .. }) => {
            return Err(RestoreError::NodeRunning {
                socket: socket.to_path_buf(),
            });
        }
        Err(_) => {}
    }
    dbfile::check_file(backup)?;
    let schema_version = dbfile::check_schema_version(backup)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    let owner = std::fs::metadata(database)
        .or_else(|_| std::fs::metadata(database.parent().unwrap_or(Path::new("."))))
        .ok()
        .map(|m| (m.uid(), m.gid()));
    let previous_kept_at = set_aside(database)?;
    let incoming = with_suffix(database, ".restoring");
    std::fs::copy(backup, &incoming).map_err(io(&incoming))?;
    std::fs::File::open(&incoming)
        .and_then(|f| f.sync_all())
        .map_err(io(&incoming))?;
    if let Some((uid, gid)) = owner {
        // Root restoring for the service user: the node must be able to write the file.
        // Failing to chown as a normal user is fine: the file is already theirs.
        let _ = std::os::unix::fs::chown(&incoming, Some(uid), Some(gid));
    }
    std::fs::rename(&incoming, database).map_err(io(database))?;
    Ok(RestoreSummary {
        restored_from: backup.to_path_buf(),
        database: database.to_path_buf(),
        schema_version,
        previous_kept_at,
    })
}

/// Renames the database and its `-wal`/`-shm` files to `*.before-restore-{time}` (together,
/// so a WAL with unmerged commits stays with its database).
fn set_aside(database: &Path) -> Result<Option<PathBuf>, RestoreError> {
    if !database.exists() {
        return Ok(None);
    }
    let stamp: String = crate::clock::now_utc()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let kept = with_suffix(database, &format!(".before-restore-{stamp}Z"));
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(database, suffix);
        if from.exists() {
            let to = with_suffix(&kept, suffix);
            std::fs::rename(&from, &to)
                .map_err(|source| RestoreError::Io { path: from, source })?;
        }
    }
    std::fs::rename(database, &kept).map_err(|source| RestoreError::Io {
        path: database.to_path_buf(),
        source,
    })?;
    Ok(Some(kept))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn db_with(path: &Path, value: i64) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("CREATE TABLE t(x INTEGER)").unwrap();
        conn.execute("INSERT INTO t VALUES (?1)", [value]).unwrap();
    }

    fn value(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn restores_and_keeps_the_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("store.db");
        let backup = dir.path().join("backup.db");
        db_with(&live, 1);
        db_with(&backup, 2);
        let summary = restore(&dir.path().join("control.sock"), &live, &backup).unwrap();
        assert_eq!(value(&live), 2);
        assert_eq!(value(summary.previous_kept_at.as_ref().unwrap()), 1);
    }

    #[test]
    fn a_damaged_backup_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("store.db");
        let backup = dir.path().join("backup.db");
        db_with(&live, 1);
        std::fs::write(&backup, vec![7u8; 4096]).unwrap();
        assert!(matches!(
            restore(&dir.path().join("control.sock"), &live, &backup),
            Err(RestoreError::BadBackup(_))
        ));
        assert_eq!(value(&live), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn refuses_while_the_node_answers() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let live = dir.path().join("store.db");
        db_with(&live, 1);
        assert!(matches!(
            restore(&socket, &live, &live),
            Err(RestoreError::NodeRunning { .. })
        ));
    }
}
