//! `storenode diag …` for technicians: the commands, their arguments and their output.
//!
//! Commands about the running node go through its control socket; `ports`, `probe`, `net`
//! and `restore` work without it. Every command prints readable text (coloured on a
//! terminal) or, with `--json`, one JSON document for scripts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::style::Style;
use super::{bundle, net, ports, probe, report, restore, target};
use crate::control::protocol::{
    BackupReport, Command, DbCheckReport, StatusReport, SyncReport, TailItem,
};
use crate::control::{Client, ClientError};
use crate::store::file as dbfile;

/// A status answer takes milliseconds; a check or backup of a large database takes longer.
const QUICK: Duration = Duration::from_secs(10);
const SLOW: Duration = Duration::from_secs(600);

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// The node's control socket (default: from the configuration file).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum OpsCommand {
    /// The running node: version, uptime, database size, components, metrics.
    Status(Common),
    /// Serial ports on this box, with USB vendor:product ids (no node needed).
    Ports(Common),
    /// Find the baud rate and protocol of a scanner or RFID reader on PORT (no node needed).
    Probe(ProbeArgs),
    /// Live scans and tag events from the running node.
    Tail(TailArgs),
    /// Database checks and backups, done by the running node.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Replace the database with a backup (the node must be stopped).
    Restore(RestoreArgs),
    /// Sync with HQ: link state, pending changes, lag.
    Sync(Common),
    /// Reach HQ's broker: DNS, TCP, TLS handshake, certificate expiry (no node needed).
    Net(NetArgs),
    /// One .tar.gz for support: redacted config, logs, status, metrics, versions.
    Bundle(BundleArgs),
}

#[derive(Subcommand, Debug, Clone)]
pub enum DbAction {
    /// PRAGMA integrity_check and the stock ledger consistency check.
    Check(Common),
    /// Online backup (the node keeps selling), then a check of the copy.
    Backup {
        /// Backup file (default: {data_dir}/backups/store-<time>.db).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The node is stopped: copy the database file directly (package upgrades use this).
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Print the database file's path (from the configuration).
    Path,
}

#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    /// Serial device, e.g. /dev/ttyUSB0.
    pub port: String,
    /// Seconds to listen for scans at each baud rate (scan a barcode meanwhile).
    #[arg(long, default_value_t = 3, value_parser = |t: &str| crate::cli_numbers::integer(t, 1..=3600u64))]
    pub listen_secs: u64,
    /// Only listen; send no command to the device.
    #[arg(long)]
    pub listen_only: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct TailArgs {
    /// Only this device's events.
    #[arg(long)]
    pub device: Option<String>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_parser = crate::cli_numbers::seconds)]
    pub seconds: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The backup to restore (from `diag db backup`).
    pub file: PathBuf,
    /// Database to replace (default: from the configuration file).
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// Broker URL, e.g. mqtts://hq.example.com:8883 (default: from [sync]).
    #[arg(long)]
    pub broker: Option<String>,
    /// CA certificate (PEM) the broker's certificate must chain to.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// This node's client certificate (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct BundleArgs {
    /// Output file (default: ./storenode-bundle-<time>.tar.gz).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(config_file: &Path, command: &OpsCommand) -> anyhow::Result<()> {
    match command {
        OpsCommand::Status(common) => {
            let status: StatusReport = call(config_file, common, Command::Status, QUICK)?;
            emit(common, &status, |s| report::status(s, Style::detect()))?;
            if !status.ready {
                // Exit 1, like a node that does not answer: scripts and monitors read it.
                bail!("the node is not ready: it cannot sell (see \"why\" above)");
            }
            Ok(())
        }
        OpsCommand::Ports(common) => {
            let found = crate::devices::ports::list()?;
            emit(common, &found, |p| ports::render(p, Style::detect()))
        }
        OpsCommand::Probe(args) => run_probe(config_file, args),
        OpsCommand::Tail(args) => run_tail(config_file, args),
        OpsCommand::Db {
            action: DbAction::Check(common),
        } => {
            let check: DbCheckReport = call(config_file, common, Command::DbCheck, SLOW)?;
            emit(common, &check, |c| report::db_check(c, Style::detect()))?;
            if !check.ok {
                bail!("database check failed");
            }
            Ok(())
        }
        OpsCommand::Db {
            action:
                DbAction::Backup {
                    out,
                    offline: false,
                    common,
                },
        } => {
            let out = out.as_deref().map(absolute).transpose()?;
            let backup: BackupReport = call(config_file, common, Command::DbBackup { out }, SLOW)?;
            emit(common, &backup, |b| report::backup(b, Style::detect()))
        }
        OpsCommand::Db {
            action:
                DbAction::Backup {
                    out,
                    offline: true,
                    common,
                },
        } => {
            let backup = offline_backup(config_file, out.as_deref(), common)?;
            emit(common, &backup, |b| report::backup(b, Style::detect()))
        }
        OpsCommand::Db {
            action: DbAction::Path,
        } => {
            println!("{}", target::db_path(config_file)?.display());
            Ok(())
        }
        OpsCommand::Restore(args) => {
            let socket = target::socket_path(config_file, args.common.socket.as_deref())?;
            let db = match &args.db {
                Some(db) => db.clone(),
                None => target::db_path(config_file)?,
            };
            let summary = restore::restore(&socket, &db, &args.file)?;
            emit(&args.common, &summary, |s| {
                let kept = s.previous_kept_at.as_ref().map_or_else(
                    || "there was no previous database".to_string(),
                    |p| format!("the previous database is kept at {}", p.display()),
                );
                format!(
                    "restored {} into {} (schema {}); {kept}\nstart the node: systemctl start storenode\n",
                    s.restored_from.display(),
                    s.database.display(),
                    s.schema_version
                )
            })
        }
        OpsCommand::Sync(common) => {
            let sync: SyncReport = call(config_file, common, Command::Sync, QUICK)?;
            emit(common, &sync, |s| report::sync(s, Style::detect()))
        }
        OpsCommand::Net(args) => run_net(config_file, args),
        OpsCommand::Bundle(args) => {
            let socket = target::socket_path(config_file, args.common.socket.as_deref())?;
            let out = match &args.out {
                Some(out) => out.clone(),
                None => PathBuf::from(format!("storenode-bundle-{}.tar.gz", stamp())),
            };
            let summary = bundle::create(config_file, &socket, &out)?;
            emit(&args.common, &summary, |s| {
                let mut text = format!("wrote {} ({})\n", s.path.display(), s.files.join(", "));
                for note in &s.notes {
                    text.push_str(&format!("  note: {note}\n"));
                }
                text
            })
        }
    }
}

fn call<T: serde::de::DeserializeOwned>(
    config_file: &Path,
    common: &Common,
    command: Command,
    timeout: Duration,
) -> anyhow::Result<T> {
    let socket = target::socket_path(config_file, common.socket.as_deref())?;
    Ok(Client::connect(&socket)?.call(command, timeout)?)
}

fn emit<T: Serialize>(
    common: &Common,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if common.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", human(value));
    }
    Ok(())
}

/// The node resolves paths in its own working directory, so the client sends absolute ones.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current directory")?
        .join(path))
}

fn stamp() -> String {
    crate::clock::now_utc()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect()
}

/// A backup taken while the node is stopped (package upgrades): refused if it runs, since
/// then only the node may touch its database.
fn offline_backup(
    config_file: &Path,
    out: Option<&Path>,
    common: &Common,
) -> anyhow::Result<BackupReport> {
    let socket = target::socket_path(config_file, common.socket.as_deref())?;
    match Client::connect(&socket) {
        Err(ClientError::NotRunning { .. } | ClientError::Stale { .. }) => {}
        Ok(_) => bail!("storenode is running: use `storenode diag db backup` without --offline"),
        Err(e) => return Err(e.into()),
    }
    let db = target::db_path(config_file)?;
    let out = match out {
        Some(out) => absolute(out)?,
        None => {
            crate::control::handlers::default_backup_path(db.parent().unwrap_or(Path::new(".")))
        }
    };
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", db.display()))?;
    Ok(dbfile::backup_online(&conn, &out)?)
}

fn run_probe(config_file: &Path, args: &ProbeArgs) -> anyhow::Result<()> {
    let socket = target::socket_path(config_file, args.common.socket.as_deref())?;
    // A running node may hold the port; its components name the ports they read.
    if let Ok(status) =
        Client::connect(&socket).and_then(|c| c.call::<StatusReport>(Command::Status, QUICK))
    {
        probe::check_not_held(&args.port, &status.components)?;
    }
    let options = probe::ProbeOptions {
        listen: Duration::from_secs(args.listen_secs),
        listen_only: args.listen_only,
    };
    let quiet = args.common.json;
    let found = probe::run(&args.port, options, |step| {
        if !quiet {
            eprintln!("{step}");
        }
    })?;
    emit(&args.common, &found, |found| {
        match found {
        Some(d) => format!(
            "{} {} at {} baud, protocol {}\n{}",
            Style::detect().good("found"),
            d.device,
            d.baud,
            d.protocol,
            d.evidence.iter().map(|e| format!("  {e}\n")).collect::<String>()
        ),
        None => "nothing recognised at 9600-115200 baud: check the cable and the device's power, scan a barcode during the listen window, or try --listen-secs 10\n".into(),
    }
    })?;
    if found.is_none() {
        bail!("no device recognised on {}", args.port);
    }
    Ok(())
}

fn run_tail(config_file: &Path, args: &TailArgs) -> anyhow::Result<()> {
    let socket = target::socket_path(config_file, args.common.socket.as_deref())?;
    let tail = Client::connect(&socket)?.tail(args.device.clone())?;
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    if !args.common.json {
        eprintln!("live events from {} (Ctrl-C to stop)", socket.display());
    }
    if let Some(deadline) = deadline {
        tail.set_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))?;
    }
    let style = Style::detect();
    for item in tail {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let item = match item {
            Ok(item) => item,
            Err(ClientError::Timeout(_)) if deadline.is_some() => break,
            Err(e) => return Err(e.into()),
        };
        if args.common.json {
            println!("{}", serde_json::to_string(&item)?);
            continue;
        }
        match item {
            TailItem::Event { kind, device, data } => {
                println!(
                    "{} {:<10} {:<12} {data}",
                    style.dim(&crate::clock::now_utc()),
                    style.heading(&kind),
                    device
                )
            }
            TailItem::Lagged { missed } => println!(
                "{}",
                style.warn(&format!("… {missed} events missed (terminal too slow)"))
            ),
        }
    }
    Ok(())
}

fn run_net(config_file: &Path, args: &NetArgs) -> anyhow::Result<()> {
    let from_file = SyncKeys::read(config_file);
    let Some(url) = args.broker.clone().or(from_file.broker) else {
        bail!(
            "sync not configured: no broker in {} — pass --broker mqtts://HOST:8883",
            config_file.display()
        );
    };
    let (host, port, tls) = net::parse_broker(&url)?;
    let target = net::Target {
        host,
        port,
        tls,
        ca: args.ca.clone().or(from_file.ca),
        cert: args.cert.clone().or(from_file.cert),
        key: args.key.clone().or(from_file.key),
    };
    let result = net::check(&target);
    emit(&args.common, &result, |r| net::render(r, Style::detect()))?;
    if !result.ok {
        bail!("network check failed");
    }
    Ok(())
}

/// Broker and certificate paths from the file's `[sync]` section, read leniently (like
/// [`target`]) so `diag net` works when the rest of the file does not load.
#[derive(Default)]
struct SyncKeys {
    broker: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl SyncKeys {
    fn read(config_file: &Path) -> Self {
        let Some(sync) = std::fs::read_to_string(config_file)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("sync").and_then(toml::Value::as_table).cloned())
        else {
            return Self::default();
        };
        let first = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| sync.get(*k).and_then(toml::Value::as_str))
                .map(str::to_string)
        };
        let dir = config_file.parent().unwrap_or(Path::new("/"));
        let path = |keys: &[&str]| first(keys).map(|p| dir.join(p));
        Self {
            broker: first(&["broker"]),
            ca: path(&["ca_file"]),
            cert: path(&["cert_file"]),
            key: path(&["key_file"]),
        }
    }
}
