//! Configuration: one TOML file, validated into ready-to-use types before anything starts.
//!
//! Every key is declared once here (with serde) and documented in
//! `config/storenode.example.toml`. Unknown keys, wrong types and bad values are refused with
//! the file, the key and the reason; `main` maps [`ConfigError`] to exit code 2 so systemd's
//! `RestartPreventExitStatus=2` does not restart a node whose configuration is wrong.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::settings::{ConfigError, Secret};
pub use crate::store::TaxConfig;
pub use raw::{LogFormat, RawConfig};

/// The demo terminal's token (the demo configuration is built here): public on purpose,
/// the demo listens on loopback only.
pub const DEMO_TOKEN: &str = "demo-token-pos1-0123456789";

/// Where `run` looks when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/storenode/storenode.toml";

/// The validated configuration the node runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub node: NodeConfig,
    pub log: LogConfig,
    pub api: ApiConfig,
    pub database: DatabaseConfig,
    pub tax: TaxConfig,
    pub devices: crate::devices::config::DevicesConfig,
    /// `None`: standalone store without HQ.
    pub sync: Option<crate::sync::config::SyncConfig>,
    /// Settings of `storenode hq`.
    pub hq: Option<crate::sync::config::HqConfig>,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub tenant: String,
    pub store_id: String,
    pub node_id: String,
    pub data_dir: PathBuf,
    pub currency: String,
    /// Where the daemon listens for `storenode diag` (mode 0660).
    pub control_socket: PathBuf,
    /// The store's GLN (checked: 13 digits, check digit), for EPCIS locations.
    pub gln: Option<String>,
    /// The store's time zone (`node.time_zone`, IANA, default UTC): EPCIS
    /// `eventTimeZoneOffset`. Everything is still stored in UTC.
    pub time_zone: jiff::tz::TimeZone,
}

impl NodeConfig {
    /// This node's identity as a writer in the chain: `{store}.{node}`.
    pub fn writer_id(&self) -> String {
        format!("{}.{}", self.store_id, self.node_id)
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
    /// Requests per second each terminal may send (token bucket), and its burst.
    pub rate_per_terminal: u32,
    pub burst_per_terminal: u32,
    pub limits: ApiLimits,
    pub terminals: Vec<Terminal>,
}

/// Limits that keep hostile or broken clients from exhausting the node.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// A connection must send a request's headers within this (also bounds idle keep-alive).
    pub header_read_timeout: std::time::Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Wrong pickup codes (per order, and per terminal) before collecting is locked.
    pub pickup_max_failures: u32,
    pub pickup_lockout: std::time::Duration,
}

/// A POS terminal or handheld allowed to call the API.
#[derive(Debug, Clone)]
pub struct Terminal {
    pub id: String,
    pub token: Secret,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    /// Most writes that share one transaction and one fsync (group commit).
    pub max_batch: usize,
    /// How long a write's first answer is kept for replays of its idempotency key (then
    /// pruned, in small batches, off the sale path). A till retries within minutes.
    pub idempotency_retention: std::time::Duration,
}

impl Config {
    /// Reads, parses and validates `path`. Secrets given as `*_env` / `*_file` are resolved here.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let config = Self::from_toml(path, &text)?;
        config.check_files()?;
        Ok(config)
    }

    /// The files the configuration names exist and parse (TLS certificates and keys). Apart
    /// from [`Self::from_toml`], which only looks at the text.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        if let Some(sync) = &self.sync {
            crate::sync::config::check_tls_files(&self.file, "sync", &sync.broker)?;
        }
        if let Some(hq) = &self.hq {
            crate::sync::config::check_tls_files(&self.file, "hq", &hq.broker)?;
        }
        Ok(())
    }

    /// Parses and validates TOML text; `path` is used in messages and to resolve relative paths.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw = raw::parse(path, text)?;
        raw.validate(path)
    }

    /// The configuration of the embedded demo store, rooted at `data_dir`.
    pub fn demo(data_dir: &Path, listen: SocketAddr) -> Result<Self, ConfigError> {
        RawConfig::demo(data_dir, listen).validate(Path::new("<demo>"))
    }

    /// A human explanation of the effective configuration (secrets redacted), for `config check`.
    pub fn explain(&self) -> String {
        explain::render(self)
    }
}

mod explain;

#[cfg(test)]
mod tests;
