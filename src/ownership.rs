//! Who owns the node's files. The service runs as `storenode` (systemd/storenode.service),
//! but admin commands (`catalog import`, `provision`) are often run with sudo: a database
//! they create must not end up owned by root, or the service opens it read-only and
//! refuses every sale. Plain `/etc/passwd` parsing: no NSS, no extra crate.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The `User=` of systemd/storenode.service.
pub const SERVICE_USER: &str = "storenode";

/// `(uid, gid)` of `name` from /etc/passwd.
pub fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    parse_passwd(&passwd, name)
}

pub fn parse_passwd(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// The user name of `uid` from /etc/passwd.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// `name (uid N)`, or `uid N` when /etc/passwd does not know it.
pub fn describe_uid(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// The uid this process runs as (the owner of its /proc entry).
pub fn process_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The database and the files SQLite keeps beside it.
pub fn database_files(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

/// The first existing file of `files` owned by someone else than `uid` (root reads and
/// writes anything, so nothing is foreign to it).
pub fn foreign_owner(files: &[PathBuf], uid: u32) -> Option<(PathBuf, u32)> {
    if uid == 0 {
        return None;
    }
    files.iter().find_map(|f| {
        let owner = std::fs::metadata(f).ok()?.uid();
        (owner != uid).then(|| (f.clone(), owner))
    })
}

/// Whom files of the node should belong to: the service user when it exists, otherwise the
/// owner of the data directory when that is not root (a test or a custom unit).
pub fn service_owner(data_dir: &Path) -> Option<(u32, u32)> {
    lookup_user(SERVICE_USER).or_else(|| {
        let meta = std::fs::metadata(data_dir).ok()?;
        (meta.uid() != 0).then(|| (meta.uid(), meta.gid()))
    })
}

/// After an admin command run as root: hands the node's database files over to the
/// service's owner. Returns what to tell the operator when that could not be done.
pub fn hand_over_database(db: &Path, data_dir: &Path) -> Option<String> {
    if process_uid() != Some(0) {
        return None;
    }
    let files: Vec<PathBuf> = database_files(db)
        .into_iter()
        .filter(|f| f.exists())
        .collect();
    let Some((uid, gid)) = service_owner(data_dir) else {
        return Some(format!(
            "{} is owned by root and no user {SERVICE_USER} exists: if the service runs as another user, chown the database files to it",
            db.display()
        ));
    };
    for file in &files {
        if let Err(e) = std::os::unix::fs::chown(file, Some(uid), Some(gid)) {
            return Some(format!(
                "cannot hand {} over to uid {uid}: {e}; the service may open it read-only",
                file.display()
            ));
        }
    }
    tracing::debug!(uid, gid, "database files handed over to the service user");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nstorenode:x:998:20::/var/lib/storenode:/usr/sbin/nologin\n";
        assert_eq!(parse_passwd(passwd, "storenode"), Some((998, 20)));
        assert_eq!(parse_passwd(passwd, "nobody"), None);
    }

    #[test]
    fn database_files_include_wal_and_shm() {
        let files = database_files(Path::new("/d/store.db"));
        assert_eq!(
            files,
            [
                PathBuf::from("/d/store.db"),
                PathBuf::from("/d/store.db-wal"),
                PathBuf::from("/d/store.db-shm")
            ]
        );
    }

    #[test]
    fn nothing_is_foreign_to_root() {
        assert_eq!(foreign_owner(&[PathBuf::from("/etc/passwd")], 0), None);
        let found = foreign_owner(&[PathBuf::from("/etc/passwd")], 12345);
        assert_eq!(found.map(|(_, uid)| uid), Some(0));
    }
}
