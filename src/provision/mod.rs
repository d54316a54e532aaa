//! `storenode provision`: a blank box to a selling one in one step.
//!
//! From the command line or a provisioning file (`--from`, e.g. dropped on the image's boot
//! partition and consumed once by storenode-provision.service), writes the configuration
//! (ids, API address, terminal tokens, the HQ broker and the store's certificates, devices),
//! copies the certificates into `{config dir}/certs` (the key 0600), generates terminal
//! tokens into `{config dir}/tokens/<id>` (0600, printed once), udev rules naming the
//! devices by USB serial number, and imports a catalog. Before anything is written the
//! certificate is checked against the CA, the key and the store id, and the new
//! configuration must load; every file is staged and renamed into place at the end
//! ([`stage`]), so a failed provisioning changes nothing. Re-provisioning (`--force`) edits
//! the existing file ([`plan`]): comments, hand-written sections and the other terminals
//! stay, and existing tokens are kept unless `--rotate-tokens`. With `--local-broker` it
//! also writes the store's own Mosquitto ([`broker`]: a loopback listener for this box's
//! lanes, the bridge to HQ's broker, optionally a TLS listener for the lanes of other
//! boxes) and points this node's `[sync]` at it.

pub mod broker;
pub mod plan;
pub mod stage;
pub mod udev;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use toml_edit::DocumentMut;

use self::plan::{ProvisionFile, Settings};
use self::stage::Stage;
use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};

/// Random bytes per terminal token (hex-encoded: 64 characters).
const TOKEN_BYTES: usize = 32;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProvisionArgs {
    /// A provisioning file (TOML; see docs/operations.md, "Provisioning file"); the options below override it.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Delete the provisioning file after success (it holds the store's private key).
    #[arg(long, requires = "from")]
    pub consume: bool,
    /// This store's id, unique in the chain (the CN of its certificate).
    #[arg(long)]
    pub store_id: Option<String>,
    /// The chain (tenant) the store belongs to.
    #[arg(long)]
    pub tenant: Option<String>,
    /// This box's id within the store [default: node1].
    #[arg(long)]
    pub node_id: Option<String>,
    /// HQ broker, e.g. mqtts://hq.example.com:8883 (omit for a standalone store).
    #[arg(long)]
    pub broker: Option<String>,
    /// CA certificate (PEM) of the broker.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// This store's client certificate (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Generate a token for this terminal id (repeat for each till or handheld).
    #[arg(long = "token-for", value_name = "TERMINAL")]
    pub token_for: Vec<String>,
    /// A catalog (.csv or .json) to import once the configuration is in place.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Where the configuration goes; certs/ and tokens/ are created beside it.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    pub out: PathBuf,
    /// Re-provision an existing configuration (keeps its other sections and tokens).
    #[arg(long)]
    pub force: bool,
    /// With --force: new tokens for the listed terminals (the old ones stop working).
    #[arg(long)]
    pub rotate_tokens: bool,
    /// Address of the POS API [default: 0.0.0.0:8080].
    #[arg(long)]
    pub listen: Option<String>,
    /// [default: /var/lib/storenode]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// [default: EUR]
    #[arg(long)]
    pub currency: Option<String>,
    /// The service user that must read the secrets (chown when it exists and we are root).
    #[arg(long, default_value = crate::ownership::SERVICE_USER)]
    pub owner: String,
    /// Where the udev rules for devices with a `usb_serial` go.
    #[arg(long, default_value = "/etc/udev/rules.d")]
    pub udev_dir: PathBuf,
    /// This box runs the store's own Mosquitto: write its listener and its bridge to
    /// --broker (HQ's) into Mosquitto's conf.d, and point this node at it.
    #[arg(long)]
    pub local_broker: bool,
    /// The loopback port of the store's broker [default: 1883].
    #[arg(long, requires = "local_broker")]
    pub local_broker_port: Option<u16>,
    /// With --local-broker: this box's server certificate (signed by the CA, naming the box)
    /// for a TLS listener on 8883 that the lanes of the store's other boxes use.
    #[arg(long, requires = "lanes_key")]
    pub lanes_cert: Option<PathBuf>,
    /// The key of --lanes-cert.
    #[arg(long, requires = "lanes_cert")]
    pub lanes_key: Option<PathBuf>,
    /// Mosquitto's configuration directory (conf.d/storenode-*.conf, storenode/).
    #[arg(long, default_value = broker::DEFAULT_DIR)]
    pub mosquitto_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{} already exists; pass --force to re-provision it (its other sections and tokens are kept)", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the new configuration does not load, nothing was changed: {0}")]
    Invalid(#[from] ConfigError),
    #[error("--ca, --cert and --key are all needed for an mqtts:// broker (mutual TLS)")]
    IncompleteTls,
    #[error("{what} is required (on the command line or in the provisioning file)")]
    Missing { what: &'static str },
    #[error("{}: {reason}", file.display())]
    File { file: PathBuf, reason: String },
    #[error("the store's certificate is refused, nothing was changed: {0}")]
    Identity(#[from] crate::tls::x509::IdentityError),
    #[error("the catalog is refused, nothing was changed: {0}")]
    Catalog(String),
    #[error("the store's broker cannot be configured, nothing was changed: {0}")]
    Broker(#[from] broker::BrokerError),
}

/// What provisioning wrote; the tokens are shown to the operator once.
#[derive(Debug)]
pub struct Provisioned {
    pub config: PathBuf,
    /// New tokens: `(terminal, token, file)`.
    pub tokens: Vec<(String, String, PathBuf)>,
    /// Terminals whose existing token was kept.
    pub kept: Vec<String>,
    pub certs: Vec<PathBuf>,
    pub udev_rules: Option<PathBuf>,
    /// The store's broker's files (`--local-broker`).
    pub broker_files: Vec<PathBuf>,
    /// The catalog to import now that the configuration is in place.
    pub catalog: Option<PathBuf>,
    pub notes: Vec<String>,
}

/// Command line over file.
fn merged(args: &ProvisionArgs) -> Result<(ProvisionArgs, Option<toml::Table>), ProvisionError> {
    let Some(from) = &args.from else {
        return Ok((args.clone(), None));
    };
    let bad = |reason: String| ProvisionError::File {
        file: from.clone(),
        reason,
    };
    let text = fs::read_to_string(from).map_err(|e| bad(e.to_string()))?;
    let file = ProvisionFile::parse(&text, from).map_err(bad)?;
    let mut out = args.clone();
    out.store_id = args.store_id.clone().or(file.store_id);
    out.tenant = args.tenant.clone().or(file.tenant);
    out.node_id = args.node_id.clone().or(file.node_id);
    out.listen = args.listen.clone().or(file.listen);
    out.data_dir = args.data_dir.clone().or(file.data_dir);
    out.currency = args.currency.clone().or(file.currency);
    out.broker = args.broker.clone().or(file.broker);
    out.ca = args.ca.clone().or(file.ca);
    out.cert = args.cert.clone().or(file.cert);
    out.key = args.key.clone().or(file.key);
    out.catalog = args.catalog.clone().or(file.catalog);
    out.local_broker = args.local_broker || file.local_broker.unwrap_or(false);
    out.local_broker_port = args.local_broker_port.or(file.local_broker_port);
    out.lanes_cert = args.lanes_cert.clone().or(file.lanes_cert);
    out.lanes_key = args.lanes_key.clone().or(file.lanes_key);
    for terminal in file.terminals {
        if !out.token_for.contains(&terminal) {
            out.token_for.push(terminal);
        }
    }
    Ok((out, file.devices))
}

fn read(path: &Path) -> Result<Vec<u8>, ProvisionError> {
    fs::read(path).map_err(|source| ProvisionError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn check_terminal_id(id: &str, tokens: &Path) -> Result<(), ProvisionError> {
    // A token file name comes from the operator: refuse path tricks before any write.
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(ProvisionError::Invalid(ConfigError::Invalid {
            file: tokens.to_path_buf(),
            key: "--token-for".into(),
            reason: format!("{id:?} is not a terminal id"),
        }));
    }
    Ok(())
}

pub fn run(args: &ProvisionArgs) -> Result<Provisioned, ProvisionError> {
    let (args, devices) = merged(args)?;
    let store_id = args
        .store_id
        .clone()
        .ok_or(ProvisionError::Missing { what: "store_id" })?;
    let tenant = args
        .tenant
        .clone()
        .ok_or(ProvisionError::Missing { what: "tenant" })?;
    let existing = args.out.exists();
    if existing && !args.force {
        return Err(ProvisionError::Exists {
            path: args.out.clone(),
        });
    }
    let tls = [&args.ca, &args.cert, &args.key];
    let some = tls.iter().filter(|f| f.is_some()).count();
    if some != 0 && (some != 3 || args.broker.is_none()) {
        return Err(ProvisionError::IncompleteTls);
    }
    let dir = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let (certs_dir, tokens_dir) = (dir.join("certs"), dir.join("tokens"));
    let owner = crate::ownership::lookup_user(&args.owner);
    let mut notes = Vec::new();
    if owner.is_none() {
        notes.push(format!(
            "user {} does not exist: secrets stay owned by the current user (the package's postinst creates it)",
            args.owner
        ));
    }
    // Everything that can be refused is checked before the first write.
    let pems = match (&args.ca, &args.cert, &args.key) {
        (Some(ca), Some(cert), Some(key)) => {
            let pems = [read(ca)?, read(cert)?, read(key)?];
            crate::tls::x509::check_identity(
                &pems[0],
                &pems[1],
                &pems[2],
                &store_id,
                time::OffsetDateTime::now_utc(),
            )?;
            Some(pems)
        }
        _ => None,
    };
    let broker_plan = local_broker(&args, &store_id, &tenant)?;
    if let Some(catalog) = &args.catalog {
        let text = fs::read_to_string(catalog)
            .map_err(|e| ProvisionError::Catalog(format!("{}: {e}", catalog.display())))?;
        crate::store::catalog_file::parse_items(catalog, &text, &|_| true)
            .map_err(|e| ProvisionError::Catalog(e.to_string()))?;
    }
    let previous: Option<DocumentMut> = if existing {
        let text = fs::read_to_string(&args.out).map_err(|source| ProvisionError::Io {
            path: args.out.clone(),
            source,
        })?;
        Some(text.parse().map_err(|e| ProvisionError::File {
            file: args.out.clone(),
            reason: format!("cannot be edited: {e}"),
        })?)
    } else {
        None
    };
    let known = previous
        .as_ref()
        .map(plan::existing_terminals)
        .unwrap_or_default();

    let mut stage = Stage::new();
    // Staged path for each final path, so the validation copy loads the staged files.
    let mut staged: Vec<(String, String)> = Vec::new();
    let mut stage_file =
        |stage: &mut Stage, target: &Path, data: &[u8], mode: u32| -> Result<(), ProvisionError> {
            let temp = stage.write(target, data, mode, owner)?;
            staged.push((
                target.to_string_lossy().into_owned(),
                temp.to_string_lossy().into_owned(),
            ));
            Ok(())
        };

    let mut certs = Vec::new();
    let mut tls_names = None;
    if let Some(pems) = &pems {
        for (data, name, mode) in [
            (&pems[0], "ca.pem", 0o644),
            (&pems[1], "node.pem", 0o644),
            (&pems[2], "node.key", 0o600),
        ] {
            let target = certs_dir.join(name);
            stage_file(&mut stage, &target, data, mode)?;
            certs.push(target);
        }
        let name = |p: &PathBuf| p.to_string_lossy().into_owned();
        tls_names = Some([name(&certs[0]), name(&certs[1]), name(&certs[2])]);
    }

    let mut tokens = Vec::new();
    let mut kept = Vec::new();
    let mut terminals = Vec::new();
    for id in &args.token_for {
        check_terminal_id(id, &tokens_dir)?;
        let current = known.iter().find(|(k, _)| k == id);
        let path = current
            .and_then(|(_, file)| file.clone())
            .map(PathBuf::from)
            .unwrap_or_else(|| tokens_dir.join(id));
        // A token written into the configuration itself (token/token_env) is the
        // operator's: kept, and said so when a rotation was asked for.
        let inline = current.is_some_and(|(_, f)| f.is_none());
        if inline && args.rotate_tokens {
            notes.push(format!(
                "{id}: its token is set in the configuration itself, not rotated; replace it there"
            ));
        }
        let keep = inline || (current.is_some() && !args.rotate_tokens && path.exists());
        if keep {
            kept.push(id.clone());
        } else {
            let token = random_token();
            stage_file(&mut stage, &path, format!("{token}\n").as_bytes(), 0o600)?;
            tokens.push((id.clone(), token, path.clone()));
        }
        terminals.push((id.clone(), path.to_string_lossy().into_owned()));
    }

    let (devices, wanted) = match &devices {
        Some(d) => {
            let (config, wanted) = plan::split_devices(d);
            (Some(config), wanted)
        }
        None => (None, Vec::new()),
    };
    let mut udev_rules = None;
    if !wanted.is_empty() {
        let found = crate::devices::ports::list().unwrap_or_default();
        let (text, udev_notes) = udev::rules(&wanted, &found);
        notes.extend(udev_notes);
        let target = args.udev_dir.join(udev::RULES_FILE);
        stage.write(&target, text.as_bytes(), 0o644, None)?;
        udev_rules = Some(target);
    }

    let mut broker_files = Vec::new();
    if let (Some(plan), Some(pems)) = (&broker_plan, &pems) {
        let lanes = match (&args.lanes_cert, &args.lanes_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        let mosquitto = crate::ownership::lookup_user(broker::MOSQUITTO_USER);
        if mosquitto.is_none() {
            notes.push(format!(
                "user {} does not exist: the broker's keys stay owned by the current user (apt-get install mosquitto)",
                broker::MOSQUITTO_USER
            ));
        }
        let sources = broker::Pems {
            ca: &pems[0],
            store_cert: &pems[1],
            store_key: &pems[2],
            lanes: lanes.as_ref().map(|(c, k)| (&c[..], &k[..])),
        };
        for file in plan.files(&sources) {
            // Root's, readable by Mosquitto's group where secret (it reads them after
            // dropping root).
            let owner = mosquitto
                .filter(|_| file.mosquitto_group)
                .map(|(_, gid)| (0, gid));
            stage.write(&file.path, &file.data, file.mode, owner)?;
            broker_files.push(file.path);
        }
    }

    let settings = Settings {
        tenant,
        store_id,
        node_id: args.node_id.clone(),
        data_dir: args
            .data_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
        currency: args.currency.clone(),
        listen: args.listen.clone(),
        terminals,
        // The node talks to the store's broker on loopback; the bridge carries its topics.
        broker: match &broker_plan {
            Some(plan) => Some(plan.node_broker()),
            None => args.broker.clone(),
        },
        tls: if broker_plan.is_some() {
            None
        } else {
            tls_names
        },
        devices,
    };
    let text = plan::apply(previous, &settings).to_string();
    validate(&mut stage, &args.out, &text, &staged)?;
    stage.write(&args.out, text.as_bytes(), 0o644, None)?;
    stage.commit()?;
    if args.consume
        && let Some(from) = &args.from
        && let Err(e) = fs::remove_file(from)
    {
        notes.push(format!(
            "could not delete {}: {e}; delete it by hand (it holds the key)",
            from.display()
        ));
    }
    Ok(Provisioned {
        config: args.out.clone(),
        tokens,
        kept,
        certs,
        udev_rules,
        broker_files,
        catalog: args.catalog.clone(),
        notes,
    })
}

/// The store's broker to write (`--local-broker`), checked before anything is written.
fn local_broker(
    args: &ProvisionArgs,
    store_id: &str,
    tenant: &str,
) -> Result<Option<broker::BrokerPlan>, ProvisionError> {
    if !args.local_broker {
        if args.lanes_cert.is_some() || args.lanes_key.is_some() {
            return Err(ProvisionError::Missing {
                what: "local_broker (--lanes-cert is for the store's broker)",
            });
        }
        return Ok(None);
    }
    let hq = match (&args.broker, &args.ca) {
        (Some(url), Some(_)) => broker::hq_address(url)?,
        _ => return Err(broker::BrokerError::NeedsHq.into()),
    };
    let lanes = match (&args.lanes_cert, &args.lanes_key) {
        (Some(cert), Some(key)) => {
            // The same loader rustls servers use: a certificate and a key that belong
            // together, or a refusal naming the files.
            crate::tls::server_config(cert, key).map_err(|e| ProvisionError::File {
                file: cert.clone(),
                reason: e.to_string(),
            })?;
            true
        }
        (None, None) => false,
        _ => return Err(broker::BrokerError::IncompleteLanes.into()),
    };
    Ok(Some(broker::BrokerPlan {
        dir: args.mosquitto_dir.clone(),
        tenant: tenant.to_string(),
        store_id: store_id.to_string(),
        hq,
        local_port: args.local_broker_port.unwrap_or(broker::DEFAULT_LOCAL_PORT),
        lanes,
    }))
}

/// Loads a copy of the new configuration that names the staged files, then removes it.
fn validate(
    stage: &mut Stage,
    out: &Path,
    text: &str,
    staged: &[(String, String)],
) -> Result<(), ProvisionError> {
    let mut copy = text.to_string();
    for (target, temp) in staged {
        copy = copy.replace(&plan_quote(target), &plan_quote(temp));
    }
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    stage.dir(dir)?;
    let io = |source| ProvisionError::Io {
        path: dir.to_path_buf(),
        source,
    };
    // Removed when dropped; 0600 (it may name token files, never tokens).
    let mut check = tempfile::Builder::new()
        .prefix(".storenode.toml.check-")
        .tempfile_in(dir)
        .map_err(io)?;
    std::io::Write::write_all(&mut check, copy.as_bytes()).map_err(io)?;
    Config::load(check.path())?;
    Ok(())
}

/// How a path appears in the TOML toml_edit writes (a basic string).
fn plan_quote(value: &str) -> String {
    toml_edit::Value::from(value).to_string().trim().to_string()
}

fn random_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    hex::encode(bytes)
}

/// The operator's summary; the only place the tokens are ever shown.
pub fn render(done: &Provisioned) -> String {
    let mut out = format!("wrote {}\n", done.config.display());
    for cert in &done.certs {
        let _ = writeln!(out, "  certificate {}", cert.display());
    }
    if let Some(rules) = &done.udev_rules {
        let _ = writeln!(
            out,
            "  udev rules  {} (udevadm trigger applies them)",
            rules.display()
        );
    }
    if !done.broker_files.is_empty() {
        let _ = writeln!(out, "  the store's broker (Mosquitto), bridged to HQ:");
        for file in &done.broker_files {
            let _ = writeln!(out, "    {}", file.display());
        }
    }
    if !done.tokens.is_empty() {
        let _ = writeln!(
            out,
            "terminal tokens (shown once; also in the files, readable by the service only):"
        );
        for (id, token, path) in &done.tokens {
            let _ = writeln!(out, "  {id:<10} {token}   ({})", path.display());
        }
    }
    if !done.kept.is_empty() {
        let _ = writeln!(
            out,
            "tokens kept (--rotate-tokens to replace): {}",
            done.kept.join(", ")
        );
    }
    for note in &done.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let restart = if done.broker_files.is_empty() {
        "storenode"
    } else {
        "mosquitto storenode"
    };
    let _ = writeln!(
        out,
        "next: systemctl restart {restart} && storenode diag status"
    );
    out
}

#[cfg(test)]
mod tests;
