//! The `[sync]` section (store ↔ HQ over MQTT) and the `[hq]` section (`storenode hq`).
//!
//! TLS can never be switched off by accident: `mqtts://` needs `ca_file`, `cert_file` and
//! `key_file` (mutual TLS), and plain `mqtt://` is accepted only towards a loopback address
//! (a broker on the same machine: tests, the demo's embedded broker).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::crdt::doc::WriterId;
use crate::settings::ConfigError;
use crate::settings::Secret;
use crate::tls::TlsFiles;

pub use super::hq_api::{ApiClient, HttpTls, Role};

/// Where the broker is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub host: String,
    pub port: u16,
    /// `None` only for a loopback `mqtt://` broker.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    /// `mqtts://host:port` (mutual TLS) or `mqtt://127.0.0.1:port` (loopback only).
    pub broker: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// How often unacknowledged changes and heads are re-offered. Default 2000.
    pub resend_interval_ms: Option<u64>,
    /// Longest wait between reconnect attempts (random, doubling from 0.5 s). Default 60000.
    pub reconnect_max_ms: Option<u64>,
    /// Keep this many units of every SKU granted to the online channel, as far as free
    /// stock allows (see `crdt::escrow`). Default 0: grants only by `POST /v1/escrow/grants`.
    pub online_escrow_units: Option<i64>,
    /// The node ids of this store's provisioned lanes (`["lane1", "lane2"]`): changes of
    /// this store's documents by any other writer (HQ aside) are refused. Default: any.
    pub lanes: Option<Vec<String>>,
}

/// Validated sync configuration; `None` in [`crate::config::Config`] when sync is off.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub broker: BrokerConfig,
    pub resend_interval: Duration,
    /// Cap of the reconnect backoff (with jitter).
    pub reconnect_max: Duration,
    /// Units per SKU the node keeps granted to the online channel (0: manual grants only).
    pub online_escrow_units: i64,
    /// Node ids of the store's provisioned lanes; `None`: every `{store}.{node}` writer.
    pub lanes: Option<BTreeSet<String>>,
}

impl RawSync {
    pub fn validate(self, file: &Path) -> Result<SyncConfig, ConfigError> {
        let broker = broker_config(
            file,
            "sync",
            self.broker.as_deref(),
            [self.ca_file, self.cert_file, self.key_file],
        )?;
        let resend_ms = self.resend_interval_ms.unwrap_or(2000);
        if !(100..=600_000).contains(&resend_ms) {
            return Err(invalid(
                file,
                "sync.resend_interval_ms",
                "must be between 100 and 600000".into(),
            ));
        }
        let reconnect_ms = self.reconnect_max_ms.unwrap_or(60_000);
        if !(500..=3_600_000).contains(&reconnect_ms) {
            return Err(invalid(
                file,
                "sync.reconnect_max_ms",
                "must be between 500 and 3600000".into(),
            ));
        }
        let online_escrow_units = self.online_escrow_units.unwrap_or(0);
        if !(0..=1_000_000).contains(&online_escrow_units) {
            return Err(invalid(
                file,
                "sync.online_escrow_units",
                "must be between 0 and 1000000".into(),
            ));
        }
        let lanes = self
            .lanes
            .map(|nodes| {
                nodes
                    .into_iter()
                    .map(|node| {
                        super::mqtt::topics::Id::new(node.clone())
                            .map(|_| node)
                            .map_err(|e| invalid(file, "sync.lanes", e.to_string()))
                    })
                    .collect::<Result<BTreeSet<_>, _>>()
            })
            .transpose()?;
        Ok(SyncConfig {
            lanes,
            broker,
            resend_interval: Duration::from_millis(resend_ms),
            reconnect_max: Duration::from_millis(reconnect_ms),
            online_escrow_units,
        })
    }
}

/// Documents HQ keeps in memory when `[hq] documents_in_memory` is not set: the stock and
/// orders documents of 1,000 stores (docs/operations.md, "Deploying HQ").
pub const DEFAULT_DOCUMENTS_IN_MEMORY: usize = 2_000;

/// HQ opens a new stock epoch of every store this often unless `hq.epoch_interval_s` says
/// otherwise (0: only on request): every 6 hours. HQ holds each trading store's open epoch in
/// memory, about 1.4 MiB of RSS per 12 hours of a store committing every 10 s; daily
/// epochs put 1,000 such stores past 1 GiB by the evening (docs/operations.md, "HQ's
/// memory").
pub const DEFAULT_EPOCH_INTERVAL_S: u64 = 21_600;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHq {
    pub tenant: Option<String>,
    /// Where HQ keeps its database. Default: the directory of the config file.
    pub data_dir: Option<PathBuf>,
    /// HTTP API address. Default 127.0.0.1:8090.
    pub listen: Option<String>,
    /// Bearer token of the HTTP API's admin (at least 16 characters): inline, from an env
    /// var or from a file. Optional when `clients` are listed.
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// The API's clients, each with a name, a role (`web`, `admin`) and a token.
    pub clients: Option<Vec<super::hq_api::RawClient>>,
    /// HTTPS for the API: `cert_file` and `key_file` (PEM).
    pub http_tls: Option<super::hq_api::RawHttpTls>,
    pub broker: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Units per SKU the web shop never promises (available = on hand − reserved − this).
    pub safety_stock: Option<i64>,
    /// Run an embedded MQTT broker (rumqttd) on this loopback address: demo and
    /// single-machine trials only (no persistence, no ACL).
    pub embedded_broker: Option<String>,
    /// Open a new stock epoch every this many seconds (0: only on `POST /v1/epochs/{store}`;
    /// default [`DEFAULT_EPOCH_INTERVAL_S`], 6 hours).
    pub epoch_interval_s: Option<u64>,
    /// The lanes provisioned per store (`[hq.lanes]`, `s1 = ["lane1", "lane2"]`): HQ takes
    /// changes about a listed store only from these lanes. Stores not listed accept any
    /// `{store}.{node}` writer, as before.
    pub lanes: Option<BTreeMap<String, Vec<String>>>,
    /// PostgreSQL connection string (`host=... dbname=... user=...`), inline or from an env
    /// var: HQ keeps its state there, and several HQ instances may share it. Default: a
    /// SQLite file `hq.db` in `data_dir` (one instance).
    pub database: Option<String>,
    pub database_env: Option<String>,
    /// At most this many store documents in memory (the least recently used are dropped
    /// and loaded again from the database when used); 0: no bound. Default
    /// [`DEFAULT_DOCUMENTS_IN_MEMORY`].
    pub documents_in_memory: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct HqConfig {
    pub tenant: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Who may call the HTTP API, each with a role; `hq.token` is the first, as `admin`.
    pub clients: Vec<ApiClient>,
    /// HTTPS for the API (plain HTTP without).
    pub http_tls: Option<HttpTls>,
    pub broker: BrokerConfig,
    pub safety_stock: i64,
    pub embedded_broker: Option<SocketAddr>,
    pub epoch_interval: Option<Duration>,
    /// Per store, the writer ids (`{store}.{node}`) of its provisioned lanes.
    pub lanes: BTreeMap<String, BTreeSet<WriterId>>,
    /// PostgreSQL connection string; `None`: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// At most this many documents in memory (`None`: no bound).
    pub documents_in_memory: Option<usize>,
}

impl HqConfig {
    /// An admin client's token: what the CLI on the HQ box uses (`hq catalog import`).
    pub fn admin_token(&self) -> Option<&Secret> {
        self.clients
            .iter()
            .find(|c| c.role == Role::Admin)
            .map(|c| &c.token)
    }
}

impl RawHq {
    pub fn validate(self, file: &Path) -> Result<HqConfig, ConfigError> {
        let tenant = self.tenant.unwrap_or_else(|| "acme".into());
        super::mqtt::topics::Id::new(tenant.clone())
            .map_err(|e| invalid(file, "hq.tenant", e.to_string()))?;
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:8090".into());
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                file,
                "hq.listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:8090"),
            )
        })?;
        let clients = super::hq_api::clients(
            file,
            super::hq_api::TokenSource {
                token: self.token.as_deref(),
                token_env: self.token_env.as_deref(),
                token_file: self.token_file.as_deref(),
            },
            self.clients.unwrap_or_default(),
        )?;
        let http_tls = super::hq_api::http_tls(file, self.http_tls)?;
        let embedded_broker = self
            .embedded_broker
            .map(|text| {
                text.parse::<SocketAddr>()
                    .ok()
                    .filter(|a| a.ip().is_loopback())
                    .ok_or_else(|| {
                        invalid(
                            file,
                            "hq.embedded_broker",
                            format!("{text:?} is not a loopback address like 127.0.0.1:1883"),
                        )
                    })
            })
            .transpose()?;
        let broker_text = match (&self.broker, embedded_broker) {
            (Some(b), _) => Some(b.clone()),
            (None, Some(addr)) => Some(format!("mqtt://{addr}")),
            (None, None) => None,
        };
        let broker = broker_config(
            file,
            "hq",
            broker_text.as_deref(),
            [self.ca_file, self.cert_file, self.key_file],
        )?;
        let safety_stock = self.safety_stock.unwrap_or(0);
        if safety_stock < 0 {
            return Err(invalid(file, "hq.safety_stock", "must be >= 0".into()));
        }
        // On by default: HQ's per-change ingest cost and memory grow with a store document's
        // history, and the epoch bounds both (docs/sync.md, "Epochs: bounded history").
        let epoch_interval_s = self.epoch_interval_s.unwrap_or(DEFAULT_EPOCH_INTERVAL_S);
        // A timer interval beyond this overflows the clock (it panicked at start).
        if epoch_interval_s > crate::cli_numbers::MAX_SECONDS {
            return Err(invalid(
                file,
                "hq.epoch_interval_s",
                format!(
                    "must be 0 (epochs only on request) or at most {} (a year)",
                    crate::cli_numbers::MAX_SECONDS
                ),
            ));
        }
        let data_dir = resolve(file, &self.data_dir.unwrap_or_else(|| PathBuf::from(".")));
        let lanes = provisioned_lanes(file, self.lanes.unwrap_or_default())?;
        let database_url = match (self.database, self.database_env) {
            (Some(url), None) => Some(url),
            (None, Some(var)) => Some(std::env::var(&var).map_err(|_| {
                invalid(
                    file,
                    "hq.database_env",
                    format!("environment variable {var} is not set"),
                )
            })?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    file,
                    "hq.database",
                    "give at most one of database, database_env".into(),
                ));
            }
        };
        #[cfg(feature = "hq")]
        if let Some(url) = &database_url {
            // Syntax and TLS options now, so `config check` names them; files at connect.
            crate::tls::pg::PgTarget::parse(url)
                .map_err(|e| invalid(file, "hq.database", e.to_string()))?;
        }
        let documents_in_memory = match self.documents_in_memory {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(DEFAULT_DOCUMENTS_IN_MEMORY),
        };
        Ok(HqConfig {
            documents_in_memory,
            database_url,
            lanes,
            tenant,
            data_dir,
            listen,
            clients,
            http_tls,
            broker,
            safety_stock,
            embedded_broker,
            epoch_interval: (epoch_interval_s > 0).then(|| Duration::from_secs(epoch_interval_s)),
        })
    }
}

/// `[hq.lanes]` as writer ids, each checked.
fn provisioned_lanes(
    file: &Path,
    raw: BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, BTreeSet<WriterId>>, ConfigError> {
    raw.into_iter()
        .map(|(store, nodes)| {
            let key = format!("hq.lanes.{store}");
            super::mqtt::topics::Id::new(store.clone())
                .map_err(|e| invalid(file, &key, e.to_string()))?;
            let writers = nodes
                .iter()
                .map(|node| {
                    WriterId::new(&format!("{store}.{node}"))
                        .map_err(|e| invalid(file, &key, e.to_string()))
                })
                .collect::<Result<BTreeSet<_>, _>>()?;
            Ok((store, writers))
        })
        .collect()
}

/// The broker's TLS files exist and parse (CA, certificate, key that match), checked when
/// the file is loaded: `config check` reports them and `run` stops with the configuration's
/// exit code (2: systemd does not restart a node whose files are wrong).
pub fn check_tls_files(
    file: &Path,
    section: &str,
    broker: &BrokerConfig,
) -> Result<(), ConfigError> {
    let Some(files) = &broker.tls else {
        return Ok(());
    };
    crate::tls::client_config(files).map(drop).map_err(|e| {
        let key = match &e {
            crate::tls::TlsError::Read { path, .. }
            | crate::tls::TlsError::BadPem { path, .. }
            | crate::tls::TlsError::NoCertificate { path }
            | crate::tls::TlsError::NoPrivateKey { path }
            | crate::tls::TlsError::BadCaCertificate { path, .. } => {
                if *path == files.ca_cert {
                    "ca_file"
                } else if *path == files.client_key {
                    "key_file"
                } else {
                    "cert_file"
                }
            }
            crate::tls::TlsError::BadClientIdentity { .. }
            | crate::tls::TlsError::BadServerIdentity { .. } => "cert_file",
            crate::tls::TlsError::Provider(_) => "broker",
        };
        invalid(file, &format!("{section}.{key}"), e.to_string())
    })
}

/// A file holding only an `[hq]` section: `storenode hq --config hq.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HqFile {
    pub hq: RawHq,
}

/// Loads and validates an HQ config file.
pub fn load_hq(file: &Path) -> Result<HqConfig, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let parsed: HqFile = toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((0, 0));
        ConfigError::Parse {
            file: file.to_path_buf(),
            line,
            column,
            key: "hq".into(),
            reason: e.message().to_owned(),
        }
    })?;
    let cfg = parsed.hq.validate(file)?;
    check_tls_files(file, "hq", &cfg.broker)?;
    Ok(cfg)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, str::len) + 1;
    (line, column)
}

fn invalid(file: &Path, key: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_path_buf(),
        key: key.to_owned(),
        reason,
    }
}

fn resolve(file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    file.parent().unwrap_or(Path::new(".")).join(path)
}

fn broker_config(
    file: &Path,
    section: &str,
    broker: Option<&str>,
    [ca, cert, key]: [Option<PathBuf>; 3],
) -> Result<BrokerConfig, ConfigError> {
    let key_name = format!("{section}.broker");
    let text = broker.ok_or_else(|| {
        invalid(
            file,
            &key_name,
            "required, e.g. \"mqtts://broker.example.net:8883\"".into(),
        )
    })?;
    let (tls, rest) = if let Some(rest) = text.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(invalid(
            file,
            &key_name,
            format!("{text:?} must start with mqtts:// (or mqtt:// for a loopback broker)"),
        ));
    };
    let (host, port) = rest
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| invalid(file, &key_name, format!("{text:?} needs host:port")))?;
    if !tls {
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(invalid(
                file,
                &key_name,
                format!(
                    "plain mqtt:// is only allowed to a loopback broker, not {host:?}; use mqtts:// with ca_file, cert_file, key_file"
                ),
            ));
        }
        return Ok(BrokerConfig {
            host,
            port,
            tls: None,
        });
    }
    let need = |value: Option<PathBuf>, name: &str| {
        value.map(|p| resolve(file, &p)).ok_or_else(|| {
            invalid(
                file,
                &format!("{section}.{name}"),
                "required with mqtts://".into(),
            )
        })
    };
    Ok(BrokerConfig {
        host,
        port,
        tls: Some(TlsFiles {
            ca_cert: need(ca, "ca_file")?,
            client_cert_chain: need(cert, "cert_file")?,
            client_key: need(key, "key_file")?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(broker: &str, with_files: bool) -> Result<SyncConfig, ConfigError> {
        let files = |n: &str| with_files.then(|| PathBuf::from(n));
        RawSync {
            broker: Some(broker.into()),
            ca_file: files("ca.pem"),
            cert_file: files("c.pem"),
            key_file: files("c.key"),
            resend_interval_ms: None,
            reconnect_max_ms: None,
            online_escrow_units: None,
            lanes: None,
        }
        .validate(Path::new("/etc/storenode/storenode.toml"))
    }

    #[test]
    fn mqtts_needs_all_three_files() {
        let ok = sync("mqtts://broker.example.net:8883", true).unwrap();
        let tls = ok.broker.tls.unwrap();
        assert_eq!(tls.ca_cert, Path::new("/etc/storenode/ca.pem"));
        let err = sync("mqtts://broker.example.net:8883", false).unwrap_err();
        assert!(err.to_string().contains("sync.ca_file"), "{err}");
    }

    #[test]
    fn plain_mqtt_only_to_loopback() {
        assert!(
            sync("mqtt://127.0.0.1:1883", false)
                .unwrap()
                .broker
                .tls
                .is_none()
        );
        let err = sync("mqtt://broker.example.net:1883", false).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(sync("http://x:1", false).is_err());
        assert!(sync("mqtt://127.0.0.1", false).is_err());
    }
}
