//! All-or-nothing file writes: every file is written beside its target under a temporary
//! name, and only [`Stage::commit`] renames them into place. Dropped without a commit, the
//! stage removes its temporary files and the directories it created: a provisioning that
//! fails changes nothing.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ProvisionError;

#[derive(Default)]
pub struct Stage {
    /// `(temporary, target)` in write order.
    files: Vec<(PathBuf, PathBuf)>,
    created_dirs: Vec<PathBuf>,
    committed: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionError + '_ {
    move |source| ProvisionError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Stage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `dir` (and its missing parents), remembering what to remove on failure.
    pub fn dir(&mut self, dir: &Path) -> Result<(), ProvisionError> {
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(d.to_path_buf());
            at = d.parent();
        }
        fs::create_dir_all(dir).map_err(io(dir))?;
        // Innermost first, so removal on failure empties before it removes.
        self.created_dirs.extend(missing);
        Ok(())
    }

    /// Writes `data` with `mode` (from the start: a secret is never readable by others,
    /// even for a moment) to a temporary file beside `target`; returns the temporary path.
    pub fn write(
        &mut self,
        target: &Path,
        data: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<PathBuf, ProvisionError> {
        if let Some(dir) = target.parent() {
            self.dir(dir)?;
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = target.with_file_name(format!(".{name}.provision-{}", std::process::id()));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)
            .map_err(io(&temp))?;
        self.files.push((temp.clone(), target.to_path_buf()));
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io(&temp))?;
        file.write_all(data).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        if let Some((uid, gid)) = owner {
            // Not root: the files stay ours (a test, a dry run).
            let _ = std::os::unix::fs::chown(&temp, Some(uid), Some(gid));
        }
        Ok(temp)
    }

    /// Renames every staged file into place (each rename is atomic).
    pub fn commit(mut self) -> Result<Vec<PathBuf>, ProvisionError> {
        let mut done = Vec::new();
        for (temp, target) in &self.files {
            fs::rename(temp, target).map_err(io(target))?;
            done.push(target.clone());
        }
        self.committed = true;
        Ok(done)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (temp, _) in &self.files {
            let _ = fs::remove_file(temp);
        }
        for dir in &self.created_dirs {
            let _ = fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_stays_without_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("new/sub/file");
        {
            let mut stage = Stage::new();
            stage.write(&target, b"x", 0o600, None).unwrap();
        }
        assert!(!dir.path().join("new").exists());
    }

    #[test]
    fn commit_puts_files_in_place_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tokens/pos1");
        let mut stage = Stage::new();
        stage.write(&target, b"secret", 0o600, None).unwrap();
        stage.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"secret");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers = fs::read_dir(dir.path().join("tokens")).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
