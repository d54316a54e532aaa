//! The checks of the file's values and their conversion into [`super::Config`]: ranges,
//! identifiers, paths resolved against the file's directory, terminal tokens read from
//! where the file says.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    ApiConfig, ApiLimits, Config, ConfigError, DatabaseConfig, LogConfig, NodeConfig, RawConfig,
    Secret, TaxConfig, Terminal,
};

const MAX_BATCH_LIMIT: usize = 10_000;
/// A week: a till that lost an answer retries within minutes, a crashed one at its restart;
/// a replay after the retention runs the write again, so the margin is wide.
const DEFAULT_IDEMPOTENCY_RETENTION_HOURS: u32 = 7 * 24;
/// A year; beyond that the kept answers are a history nobody replays.
const MAX_IDEMPOTENCY_RETENTION_HOURS: u32 = 366 * 24;
const MIN_TOKEN_LEN: usize = 16;
/// The store id HQ uses for itself (the tenant's catalog document is HQ's "store"): a store
/// with that id would write into HQ's documents and topics.
const RESERVED_STORE_ID: &str = crate::crdt::catalog::CATALOG_STORE;

/// An IANA time zone name from the bundled tz database; `None` is UTC.
fn time_zone(name: Option<&str>) -> Result<jiff::tz::TimeZone, String> {
    match name {
        None => Ok(jiff::tz::TimeZone::UTC),
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
            format!("{name:?} is not an IANA time zone name like \"Europe/Berlin\" or \"UTC\"")
        }),
    }
}

/// An identifier that is safe in MQTT topics, file names and metric labels.
fn check_id(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(c) => Err(format!(
            "character {c:?} not allowed (use letters, digits, '-' and '_')"
        )),
        None => Ok(()),
    }
}

impl RawConfig {
    pub fn validate(self, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        check_id(&self.node.tenant).map_err(|r| invalid("node.tenant", r))?;
        check_id(&self.node.store_id).map_err(|r| invalid("node.store_id", r))?;
        if self.node.store_id.eq_ignore_ascii_case(RESERVED_STORE_ID) {
            return Err(invalid(
                "node.store_id",
                format!("{RESERVED_STORE_ID:?} is reserved: HQ's own topics and documents use it"),
            ));
        }
        check_id(&self.node.node_id).map_err(|r| invalid("node.node_id", r))?;
        let currency = &self.node.currency;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(invalid(
                "node.currency",
                format!("{currency:?} is not an ISO 4217 code like \"EUR\""),
            ));
        }
        let data_dir = resolve(file, &self.node.data_dir);
        let control_socket = self
            .node
            .control_socket
            .as_ref()
            .map_or_else(|| data_dir.join("control.sock"), |p| resolve(file, p));
        check_socket_path(&control_socket).map_err(|r| invalid("node.control_socket", r))?;
        if let Some(gln) = &self.node.gln {
            crate::epcis::check_gln(gln).map_err(|e| invalid("node.gln", e.to_string()))?;
        }
        let time_zone =
            time_zone(self.node.time_zone.as_deref()).map_err(|r| invalid("node.time_zone", r))?;

        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not a level (error, warn, info, debug, trace) or filter",
                    self.log.level
                ),
            ));
        }

        let listen: SocketAddr = self.api.listen.parse().map_err(|_| {
            invalid(
                "api.listen",
                format!("{:?} is not an address like 0.0.0.0:8080", self.api.listen),
            )
        })?;
        if !(1024..=16 * 1024 * 1024).contains(&self.api.max_body_bytes) {
            return Err(invalid(
                "api.max_body_bytes",
                "must be between 1024 and 16777216".into(),
            ));
        }
        if !(100..=300_000).contains(&self.api.request_timeout_ms) {
            return Err(invalid(
                "api.request_timeout_ms",
                "must be between 100 and 300000".into(),
            ));
        }
        if self.api.rate_per_terminal == 0 {
            return Err(invalid(
                "api.rate_per_terminal",
                "must be at least 1 request per second".into(),
            ));
        }
        if self.api.burst_per_terminal < 1 {
            return Err(invalid(
                "api.burst_per_terminal",
                "must be at least 1".into(),
            ));
        }
        let limits = self.api_limits(file)?;
        let terminals = self.validate_terminals(file)?;

        let max_batch = self.database.max_batch.unwrap_or(512);
        if !(1..=MAX_BATCH_LIMIT).contains(&max_batch) {
            return Err(invalid(
                "database.max_batch",
                format!("must be between 1 and {MAX_BATCH_LIMIT}"),
            ));
        }
        let retention_hours = self
            .database
            .idempotency_retention_hours
            .unwrap_or(DEFAULT_IDEMPOTENCY_RETENTION_HOURS);
        if !(1..=MAX_IDEMPOTENCY_RETENTION_HOURS).contains(&retention_hours) {
            return Err(invalid(
                "database.idempotency_retention_hours",
                format!("must be between 1 and {MAX_IDEMPOTENCY_RETENTION_HOURS}"),
            ));
        }
        let db_path = self
            .database
            .path
            .as_ref()
            .map_or_else(|| data_dir.join("store.db"), |p| resolve(file, p));

        let mut classes = Vec::new();
        for (name, value) in &self.tax.classes {
            let key = format!("tax.classes.{name}");
            check_id(name).map_err(|r| invalid(&key, r))?;
            let rate = value
                .as_integer()
                .filter(|r| (0..=10_000).contains(r))
                .ok_or_else(|| {
                    invalid(
                        &key,
                        "must be a rate in basis points from 0 to 10000 (1900 = 19 %)".into(),
                    )
                })?;
            // In range 0..=10_000, so the conversion cannot fail.
            classes.push((name.clone(), u32::try_from(rate).unwrap_or(0)));
        }
        if classes.is_empty() {
            return Err(invalid(
                "tax.classes",
                "at least one tax class is needed".into(),
            ));
        }

        let devices = self.devices.validate(file)?;
        let sync = self.sync.map(|s| s.validate(file)).transpose()?;
        let hq = self.hq.map(|h| h.validate(file)).transpose()?;

        Ok(Config {
            file: file.to_path_buf(),
            devices,
            sync,
            hq,
            node: NodeConfig {
                tenant: self.node.tenant,
                store_id: self.node.store_id,
                node_id: self.node.node_id,
                data_dir,
                currency: self.node.currency,
                control_socket,
                gln: self.node.gln,
                time_zone,
            },
            log: LogConfig {
                level: self.log.level,
                format: self.log.format,
            },
            api: ApiConfig {
                listen,
                max_body_bytes: self.api.max_body_bytes,
                request_timeout_ms: self.api.request_timeout_ms,
                rate_per_terminal: self.api.rate_per_terminal,
                burst_per_terminal: self.api.burst_per_terminal,
                limits,
                terminals,
            },
            database: DatabaseConfig {
                path: db_path,
                max_batch,
                idempotency_retention: std::time::Duration::from_secs(
                    u64::from(retention_hours) * 3600,
                ),
            },
            tax: TaxConfig {
                prices_include_tax: self.tax.prices_include_tax,
                classes,
            },
        })
    }

    /// Connection and brute-force limits of the API (`[api]`), checked for sane ranges.
    fn api_limits(&self, file: &Path) -> Result<ApiLimits, ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            file: file.to_path_buf(),
            key: format!("api.{key}"),
            reason: reason.to_string(),
        };
        let api = &self.api;
        if !(100..=300_000).contains(&api.header_read_timeout_ms) {
            return Err(invalid(
                "header_read_timeout_ms",
                "must be between 100 and 300000",
            ));
        }
        if !(8..=65_536).contains(&api.max_connections) {
            return Err(invalid("max_connections", "must be between 8 and 65536"));
        }
        if !(1..=1000).contains(&api.pickup_max_failures) {
            return Err(invalid("pickup_max_failures", "must be between 1 and 1000"));
        }
        if !(1..=86_400).contains(&api.pickup_lockout_secs) {
            return Err(invalid(
                "pickup_lockout_secs",
                "must be between 1 and 86400",
            ));
        }
        Ok(ApiLimits {
            header_read_timeout: Duration::from_millis(api.header_read_timeout_ms),
            max_connections: api.max_connections,
            pickup_max_failures: api.pickup_max_failures,
            pickup_lockout: Duration::from_secs(api.pickup_lockout_secs),
        })
    }

    fn validate_terminals(&self, file: &Path) -> Result<Vec<Terminal>, ConfigError> {
        let mut terminals: Vec<Terminal> = Vec::new();
        for (index, raw) in self.api.terminals.iter().enumerate() {
            let key = |field: &str| format!("api.terminals[{index}].{field}");
            let invalid = |field: &str, reason: String| ConfigError::Invalid {
                file: file.to_path_buf(),
                key: key(field),
                reason,
            };
            check_id(&raw.id).map_err(|r| invalid("id", r))?;
            if terminals.iter().any(|t| t.id == raw.id) {
                return Err(invalid(
                    "id",
                    format!("terminal {:?} is listed twice", raw.id),
                ));
            }
            let token = match (&raw.token, &raw.token_env, &raw.token_file) {
                (Some(token), None, None) => token.trim().to_string(),
                (None, Some(var), None) => std::env::var(var)
                    .map_err(|_| {
                        invalid(
                            "token_env",
                            format!("environment variable {var} is not set"),
                        )
                    })?
                    .trim()
                    .to_string(),
                (None, None, Some(path)) => {
                    let path = resolve(file, path);
                    std::fs::read_to_string(&path)
                        .map_err(|e| {
                            invalid("token_file", format!("cannot read {}: {e}", path.display()))
                        })?
                        .trim()
                        .to_string()
                }
                _ => {
                    return Err(invalid(
                        "token",
                        "give exactly one of token, token_env, token_file".into(),
                    ));
                }
            };
            if token.len() < MIN_TOKEN_LEN {
                return Err(invalid(
                    "token",
                    format!("too short: at least {MIN_TOKEN_LEN} characters"),
                ));
            }
            if terminals.iter().any(|t| t.token.expose() == token) {
                return Err(invalid("token", "two terminals share one token".into()));
            }
            terminals.push(Terminal {
                id: raw.id.clone(),
                token: Secret::new(token),
            });
        }
        Ok(terminals)
    }
}

/// Longest unix socket path Linux accepts (`sun_path` is 108 bytes with the final NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A unix socket path must fit in `sun_path` and name a file, or binding fails at start.
fn check_socket_path(path: &Path) -> Result<(), String> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "{} is {len} bytes long; unix socket paths are limited to {MAX_SOCKET_PATH}",
            path.display()
        ));
    }
    if path.file_name().is_none() {
        return Err(format!("{} does not name a file", path.display()));
    }
    Ok(())
}

/// Relative paths in the file are relative to the file's directory, not the working directory.
fn resolve(file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    file.parent()
        .map_or_else(|| path.to_path_buf(), |dir| dir.join(path))
}
