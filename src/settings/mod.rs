//! What every module's config section shares: the error that names the file and the key, and
//! secrets that never reach a log line. Each module owns its own section's types (`[sync]` in
//! `sync::config`, `[devices]` in `devices::config`, ...); `config` assembles them.

mod secret;

use std::path::PathBuf;

pub use secret::{Secret, bearer_token};

/// A configuration problem, always naming the file and, where known, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: key `{key}`: {reason}")]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        key: String,
        reason: String,
    },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: PathBuf,
        key: String,
        reason: String,
    },
}
