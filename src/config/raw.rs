//! The file's shape, as serde sees it: its sections and their defaults, the demo's
//! configuration, and the parse that says where the text is wrong. `validate` turns
//! it into [`super::Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub node: RawNode,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub tax: RawTax,
    #[serde(default)]
    pub devices: crate::devices::config::RawDevices,
    /// Absent: the node runs standalone, without HQ.
    pub sync: Option<crate::sync::config::RawSync>,
    /// Only for `storenode hq`.
    pub hq: Option<crate::sync::config::RawHq>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    #[serde(default = "default_tenant")]
    pub tenant: String,
    pub store_id: String,
    #[serde(default = "default_node_id")]
    pub node_id: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Unix socket of `storenode diag`; defaults to `{data_dir}/control.sock`.
    pub control_socket: Option<PathBuf>,
    /// The store's GLN (13 digits): EPCIS locations become GS1 Digital Link URIs.
    pub gln: Option<String>,
    /// The store's IANA time zone (e.g. "Europe/Berlin"), for EPCIS `eventTimeZoneOffset`.
    /// Default "UTC". Times are still stored and exported in UTC.
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise, journald under systemd.
    #[default]
    Auto,
    Human,
    Json,
    Journald,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::Auto,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_rate_per_terminal")]
    pub rate_per_terminal: u32,
    #[serde(default = "default_burst_per_terminal")]
    pub burst_per_terminal: u32,
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_pickup_max_failures")]
    pub pickup_max_failures: u32,
    #[serde(default = "default_pickup_lockout_secs")]
    pub pickup_lockout_secs: u64,
    #[serde(default)]
    pub terminals: Vec<RawTerminal>,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
            request_timeout_ms: default_request_timeout_ms(),
            rate_per_terminal: default_rate_per_terminal(),
            burst_per_terminal: default_burst_per_terminal(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            max_connections: default_max_connections(),
            pickup_max_failures: default_pickup_max_failures(),
            pickup_lockout_secs: default_pickup_lockout_secs(),
            terminals: Vec::new(),
        }
    }
}

/// A terminal's token comes from exactly one of: the file itself, an environment variable, or a
/// file (e.g. a systemd credential).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTerminal {
    pub id: String,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    /// Defaults to `{data_dir}/store.db`.
    pub path: Option<PathBuf>,
    pub max_batch: Option<usize>,
    pub idempotency_retention_hours: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTax {
    #[serde(default = "default_true")]
    pub prices_include_tax: bool,
    #[serde(default = "default_tax_classes")]
    pub classes: toml::Table,
}

impl Default for RawTax {
    fn default() -> Self {
        Self {
            prices_include_tax: true,
            classes: default_tax_classes(),
        }
    }
}

fn default_tenant() -> String {
    "default".into()
}
fn default_node_id() -> String {
    "node1".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/storenode")
}
fn default_currency() -> String {
    "EUR".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_rate_per_terminal() -> u32 {
    200
}
fn default_burst_per_terminal() -> u32 {
    400
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    256
}
fn default_pickup_max_failures() -> u32 {
    5
}
fn default_pickup_lockout_secs() -> u64 {
    900
}
fn default_true() -> bool {
    true
}
fn default_tax_classes() -> toml::Table {
    let mut table = toml::Table::new();
    table.insert("standard".into(), toml::Value::Integer(1900));
    table.insert("reduced".into(), toml::Value::Integer(700));
    table.insert("zero".into(), toml::Value::Integer(0));
    table
}

impl RawConfig {
    pub fn demo(data_dir: &Path, listen: SocketAddr) -> Self {
        RawConfig {
            node: RawNode {
                tenant: "demo".into(),
                store_id: "demo-store".into(),
                node_id: "lane1".into(),
                data_dir: data_dir.to_path_buf(),
                currency: default_currency(),
                control_socket: None,
                gln: None,
                time_zone: None,
            },
            log: RawLog::default(),
            api: RawApi {
                listen: listen.to_string(),
                terminals: vec![RawTerminal {
                    id: "pos1".into(),
                    token: Some(super::DEMO_TOKEN.into()),
                    token_env: None,
                    token_file: None,
                }],
                ..RawApi::default()
            },
            database: RawDatabase::default(),
            tax: RawTax::default(),
            devices: Default::default(),
            sync: None,
            hq: None,
        }
    }
}

/// Parses TOML into [`RawConfig`], reporting the key path and position of any error.
pub fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    let parse_error = |key: String, message: &str, span: Option<std::ops::Range<usize>>| {
        let (line, column) = span.map_or((0, 0), |s| line_column(text, s.start));
        ConfigError::Parse {
            file: path.to_path_buf(),
            line,
            column,
            key,
            reason: first_line(message),
        }
    };
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|e| parse_error(String::from("."), e.message(), e.span()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        parse_error(key, inner.message(), inner.span())
    })
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}
