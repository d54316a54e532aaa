//! Which node `diag` talks to: the control socket named by the configuration file.
//!
//! `diag` reads only `[node] control_socket` and `data_dir` from the file instead of
//! loading the whole configuration, because a technician's shell usually lacks the
//! terminal tokens (`token_env`, root-only `token_file`) that a full load insists on.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{}: not valid TOML: {reason}", file.display())]
    Parse { file: PathBuf, reason: String },
}

const DEFAULT_DATA_DIR: &str = "/var/lib/storenode";

/// The control socket path for `config_file`; a missing file means the packaged defaults.
pub fn socket_path(config_file: &Path, explicit: Option<&Path>) -> Result<PathBuf, TargetError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let Ok(text) = std::fs::read_to_string(config_file) else {
        return Ok(Path::new(DEFAULT_DATA_DIR).join("control.sock"));
    };
    socket_from_toml(config_file, &text)
}

fn socket_from_toml(config_file: &Path, text: &str) -> Result<PathBuf, TargetError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| TargetError::Parse {
            file: config_file.to_path_buf(),
            reason: e.message().to_string(),
        })?;
    let node = table.get("node").and_then(toml::Value::as_table);
    let key = |name: &str| {
        node.and_then(|n| n.get(name))
            .and_then(toml::Value::as_str)
            .map(|s| resolve(config_file, Path::new(s)))
    };
    Ok(key("control_socket").unwrap_or_else(|| {
        key("data_dir")
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
            .join("control.sock")
    }))
}

/// The database file for `config_file` (`[database] path`, else `{data_dir}/store.db`).
pub fn db_path(config_file: &Path) -> Result<PathBuf, TargetError> {
    let text = std::fs::read_to_string(config_file).unwrap_or_default();
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| TargetError::Parse {
            file: config_file.to_path_buf(),
            reason: e.message().to_string(),
        })?;
    let string = |section: &str, key: &str| {
        table
            .get(section)
            .and_then(toml::Value::as_table)
            .and_then(|t| t.get(key))
            .and_then(toml::Value::as_str)
            .map(|s| resolve(config_file, Path::new(s)))
    };
    Ok(string("database", "path").unwrap_or_else(|| {
        string("node", "data_dir")
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
            .join("store.db")
    }))
}

/// The same rule as the configuration: relative paths are relative to the file's directory.
fn resolve(file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    file.parent()
        .map_or_else(|| path.to_path_buf(), |dir| dir.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_socket_wins_then_data_dir_then_default() {
        let file = Path::new("/etc/storenode/storenode.toml");
        let text = "[node]\nstore_id = \"s1\"\ncontrol_socket = \"/run/sn.sock\"\n";
        assert_eq!(
            socket_from_toml(file, text).unwrap(),
            PathBuf::from("/run/sn.sock")
        );
        let text = "[node]\nstore_id = \"s1\"\ndata_dir = \"state\"\n";
        assert_eq!(
            socket_from_toml(file, text).unwrap(),
            PathBuf::from("/etc/storenode/state/control.sock")
        );
        assert_eq!(
            socket_from_toml(file, "").unwrap(),
            PathBuf::from("/var/lib/storenode/control.sock")
        );
    }

    #[test]
    fn broken_toml_is_reported() {
        assert!(socket_from_toml(Path::new("x.toml"), "[node").is_err());
    }
}
