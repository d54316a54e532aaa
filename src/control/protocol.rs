//! The control socket's wire protocol: one JSON object per line, both ways.
//!
//! A client sends one [`Request`] line; the daemon answers one [`Response`] line. `tail` is
//! the only streaming command: after its `ok` response the daemon keeps writing
//! [`TailItem`] lines until the client hangs up. Every line carries the protocol version
//! `v`, so a `storenode diag` from another release is told so instead of misreading answers.
//! Pure: bytes in, values out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::store::file::{BackupReport, DbCheckReport};

/// Bumped when a request or a response changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the daemon reads; requests are tiny, so this only stops abuse.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("not a control request: {0}")]
    Malformed(String),
    #[error(
        "control protocol version {found} is not supported (this storenode speaks {supported}); use the storenode binary of the running release"
    )]
    Version { found: u32, supported: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

/// What a client can ask the running node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    Status,
    /// `PRAGMA integrity_check` and the ledger consistency check.
    DbCheck,
    /// Online backup to `out` (absolute; `None`: a dated file under `{data_dir}/backups`).
    DbBackup {
        out: Option<PathBuf>,
    },
    /// Live scans and tag events, optionally of one device.
    Tail {
        device: Option<String>,
    },
    Sync,
    /// The store's lanes; with an action, retire or bring one back first (`storenode lane`).
    Lanes {
        action: crate::sync::node::LaneAction,
    },
}

impl Request {
    pub fn new(command: Command) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            command,
        }
    }
}

/// One answer line: `result` when `ok`, `error` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn success(result: serde_json::Value) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

/// One line of a `tail` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TailItem {
    Event {
        kind: String,
        device: String,
        data: serde_json::Value,
    },
    /// The client read too slowly and `missed` events were dropped for it.
    Lagged { missed: u64 },
}

/// A health component as the control protocol carries it (see [`crate::health::Component`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentView {
    pub state: String,
    pub detail: String,
    pub since: String,
    pub critical: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub protocol: u32,
    pub tenant: String,
    pub store_id: String,
    pub node_id: String,
    pub listen: String,
    pub uptime_seconds: u64,
    pub db_path: PathBuf,
    /// The database file plus its WAL.
    pub db_bytes: u64,
    pub ready: bool,
    pub components: BTreeMap<String, ComponentView>,
    /// Every unlabelled sample of `/metrics` (histogram buckets left out).
    pub metrics: BTreeMap<String, f64>,
    /// `storenode_sync_outbox*` when the sync module reports it.
    pub outbox: Option<f64>,
    pub sync_configured: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    pub configured: bool,
    /// Health components the sync module reports (names starting with `sync` or `mqtt`).
    pub components: BTreeMap<String, ComponentView>,
    /// `storenode_sync_*` metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Heads, pending changes and lag, when the sync module provides an inspector.
    pub details: Option<serde_json::Value>,
}

/// Encodes a value as one line (with its newline).
pub fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs to a Vec cannot fail; an empty object is a safe fallback.
    let mut line = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

/// Parses and version-checks one request line.
pub fn decode_request(line: &str) -> Result<Request, ProtocolError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    check_version(&value)?;
    serde_json::from_value(value).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Parses and version-checks one line from the daemon.
pub fn decode_line<T: DeserializeOwned>(line: &str) -> Result<T, ProtocolError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    check_version(&value)?;
    serde_json::from_value(value).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Lines without `v` (tail items) are accepted; a `v` must match ours.
fn check_version(value: &serde_json::Value) -> Result<(), ProtocolError> {
    match value.get("v").and_then(serde_json::Value::as_u64) {
        None => Ok(()),
        Some(v) if v == u64::from(PROTOCOL_VERSION) => Ok(()),
        Some(v) => Err(ProtocolError::Version {
            found: u32::try_from(v).unwrap_or(u32::MAX),
            supported: PROTOCOL_VERSION,
        }),
    }
}

/// Unlabelled samples of a Prometheus text exposition (`name value`), for status reports.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            if name.contains('{') || name.ends_with("_bucket") {
                return None;
            }
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for command in [
            Command::Status,
            Command::DbCheck,
            Command::DbBackup {
                out: Some(PathBuf::from("/tmp/x.db")),
            },
            Command::Tail {
                device: Some("scanner1".into()),
            },
            Command::Sync,
        ] {
            let line = encode_line(&Request::new(command.clone()));
            let text = std::str::from_utf8(&line).unwrap();
            assert!(text.ends_with('\n'));
            assert_eq!(decode_request(text.trim_end()).unwrap().command, command);
        }
    }

    #[test]
    fn wire_form_is_stable() {
        let line = encode_line(&Request::new(Command::DbBackup { out: None }));
        assert_eq!(line, b"{\"v\":1,\"cmd\":\"db_backup\",\"out\":null}\n");
    }

    #[test]
    fn other_versions_are_refused_by_name() {
        let err = decode_request(r#"{"v":2,"cmd":"status"}"#).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::Version {
                found: 2,
                supported: 1
            }
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for line in ["", "{", "null", r#"{"v":1,"cmd":"rm -rf"}"#, "[1,2]"] {
            assert!(matches!(
                decode_request(line),
                Err(ProtocolError::Malformed(_))
            ));
        }
    }

    #[test]
    fn metrics_keep_plain_samples_only() {
        let text =
            "# HELP a x\n# TYPE a counter\na 3\nh_bucket{le=\"1\"} 2\nh_sum 0.5\nl{x=\"y\"} 1\n";
        let parsed = parse_metrics(text);
        assert_eq!(parsed.get("a"), Some(&3.0));
        assert_eq!(parsed.get("h_sum"), Some(&0.5));
        assert_eq!(parsed.len(), 2);
    }
}
