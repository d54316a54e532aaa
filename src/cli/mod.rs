//! Command line: parsed by clap, turned into validated configuration, dispatched. Only this
//! module decides exit codes: 0 success, 1 failure, 2 bad configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};
use crate::store::StoreError;

/// Exit code for a configuration error; systemd's `RestartPreventExitStatus=2` uses it.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a database the node refuses to run on (damaged, or from a newer version):
/// restarting cannot help, so systemd does not (`RestartPreventExitStatus=2 3`).
pub const EXIT_DATABASE: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "storenode",
    version,
    about = "Edge store node: POS API, scanners and RFID, stock, sync with HQ"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "STORENODE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the node (the daemon).
    Run,
    /// Check the configuration and explain it, without starting anything.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Catalog maintenance.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Measure the sale path (HTTP API, durable) against bare SQLite on the same disk.
    #[cfg(feature = "hq")]
    Bench(crate::bench::BenchArgs),
    #[cfg(feature = "hq")]
    /// Demo on this machine, no external services: HQ, embedded broker, two stores, a
    /// partition and convergence (`--single`: one store with its API open for curl).
    Demo(crate::demo::DemoArgs),
    /// Run HQ: merge every store's stock, serve it over HTTP, publish catalog (config: an
    /// `[hq]` section, see config/hq.example.toml).
    #[cfg(feature = "hq")]
    Hq {
        #[command(subcommand)]
        action: Option<HqAction>,
    },
    /// Write this box's configuration, certificates and terminal tokens (IT's one command).
    Provision(Box<crate::provision::ProvisionArgs>),
    /// Diagnostics for technicians: the running node, serial devices, database, network.
    Diag {
        #[command(subcommand)]
        action: DiagAction,
    },
    /// The store's lanes: list them, retire one that is gone for good (`lane retire NODE`).
    Lane {
        #[command(subcommand)]
        action: crate::diag::lane::LaneCommand,
    },
    /// Customer data (GDPR): erase a customer's data at HQ and every store.
    #[cfg(feature = "hq")]
    Privacy {
        #[command(subcommand)]
        action: PrivacyAction,
    },
}

#[cfg(feature = "hq")]
#[derive(Subcommand, Debug)]
pub enum PrivacyAction {
    /// Erase the customer data of an order, or of every order with an e-mail or phone,
    /// through HQ's API; prints the erased orders, never the data.
    Erase(crate::hq::erase::EraseArgs),
}

#[cfg(feature = "hq")]
#[derive(Subcommand, Debug)]
pub enum HqAction {
    /// Publish a catalog file (CSV or JSON, as `catalog import`) through the running HQ.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Promotions, pricing, the quote, coupons and loyalty through HQ's API.
    #[command(flatten)]
    Api(Box<crate::hq::cli::ApiCommand>),
}

#[derive(Subcommand, Debug)]
pub enum DiagAction {
    /// Node, device, database and network diagnostics (status, ports, probe, tail, db, …).
    #[command(flatten)]
    Ops(crate::diag::ops::OpsCommand),
    /// Explain barcodes and RFID EPCs (no database, no running node needed).
    Decode(crate::diag::decode::DecodeArgs),
    /// Simulate a serial barcode scanner or UHF RFID reader on a port or a pseudo-terminal.
    Simulate(crate::diag::simulate::SimulateArgs),
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Load, validate and explain the effective configuration.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum CatalogAction {
    /// Import items from a CSV or JSON file: all rows or none.
    Import {
        /// `.csv` or `.json` file.
        file: PathBuf,
        /// Let GTINs move from the SKU that has them to the SKU the file gives them to
        /// (each move is listed). Without it such a file is refused.
        #[arg(long)]
        move_gtins: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else if store_error(&err).is_some_and(|e| {
                matches!(
                    e,
                    StoreError::Corrupt { .. } | StoreError::SchemaTooNewAt { .. }
                )
            }) {
                ExitCode::from(EXIT_DATABASE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The store's error behind `err`, also when a command wrapped it (catalog import).
fn store_error(err: &anyhow::Error) -> Option<&StoreError> {
    err.downcast_ref::<StoreError>().or_else(|| {
        match err.downcast_ref::<crate::store::catalog_file::ImportError>() {
            Some(crate::store::catalog_file::ImportError::Store(e)) => Some(e),
            _ => None,
        }
    })
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(&cli.config)?)
}

/// The store certificate against the CA, its key and the store id (exit 2 when wrong: the
/// broker would refuse the store).
fn check_identity(config: &Config) -> Result<(), ConfigError> {
    let Some(files) = config.sync.as_ref().and_then(|s| s.broker.tls.as_ref()) else {
        return Ok(());
    };
    crate::probes::check_identity_files(files, &config.node.store_id)
        .map(|_| ())
        .map_err(|reason| ConfigError::Invalid {
            file: config.file.clone(),
            key: "sync.cert_file".into(),
            reason,
        })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Run => {
            let config = load_config(&cli)?;
            crate::telemetry::init(&config.log.level, config.log.format);
            crate::daemon::runtime()?.block_on(crate::daemon::run(config))
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let config = load_config(&cli)?;
            check_identity(&config)?;
            print!("{}", config.explain());
            Ok(())
        }
        Command::Catalog {
            action: CatalogAction::Import { file, move_gtins },
        } => {
            let config = load_config(&cli)?;
            crate::telemetry::init("warn", crate::config::LogFormat::Human);
            let report =
                runtime()?.block_on(crate::import::import_file(&config, file, *move_gtins))?;
            println!("{report}");
            Ok(())
        }
        #[cfg(feature = "hq")]
        Command::Bench(args) => runtime()?.block_on(crate::bench::run(args)),
        Command::Provision(args) => {
            let done = crate::provision::run(args)?;
            print!("{}", crate::provision::render(&done));
            if let Some(catalog) = &done.catalog {
                // After the configuration is in place: the import needs its data_dir and
                // tax classes; it hands the database it creates to the service user.
                let config = Config::load(&done.config)?;
                let report =
                    runtime()?.block_on(crate::import::import_file(&config, catalog, false))?;
                println!("{report}");
            }
            Ok(())
        }
        Command::Diag {
            action: DiagAction::Ops(command),
        } => crate::diag::ops::run(&cli.config, command),
        Command::Lane { action } => crate::diag::lane::run(&cli.config, action),
        Command::Diag {
            action: DiagAction::Decode(args),
        } => Ok(crate::diag::decode::run(
            args,
            std::io::stdin().lock(),
            std::io::stdout().lock(),
        )?),
        Command::Diag {
            action: DiagAction::Simulate(args),
        } => {
            let report = runtime()?.block_on(crate::diag::simulate::run(args))?;
            eprintln!("wrote {} items, {} bytes", report.items, report.bytes);
            Ok(())
        }
        #[cfg(feature = "hq")]
        Command::Hq { action } => {
            let local_hq = || -> anyhow::Result<_> {
                let config = crate::sync::config::load_hq(&cli.config)?;
                crate::telemetry::init("info", crate::config::LogFormat::Auto);
                Ok(config)
            };
            match action {
                // HQ is a long-running process holding MiBs per store: the store node's
                // allocator settings (fewer heaps, large blocks in their own mappings).
                None => crate::daemon::runtime()?.block_on(crate::hq::run(local_hq()?)),
                Some(HqAction::Catalog {
                    action: CatalogAction::Import { file, .. },
                }) => runtime()?.block_on(crate::hq::catalog_import(&local_hq()?, file)),
                // An operator's command talks to HQ over its API, from any box.
                Some(HqAction::Api(command)) => {
                    let report = runtime()?.block_on(crate::hq::cli::run(command, &cli.config))?;
                    print!("{report}");
                    Ok(())
                }
            }
        }
        #[cfg(feature = "hq")]
        Command::Privacy {
            action: PrivacyAction::Erase(args),
        } => {
            let report = runtime()?.block_on(crate::hq::erase::erase(args, &cli.config))?;
            print!("{report}");
            Ok(())
        }
        #[cfg(feature = "hq")]
        Command::Demo(args) => {
            // The chain demo tells its story on stdout; only warnings (e.g. the store going
            // offline) go to the log.
            // rumqttd logs every closed probe connection as an error; the demo hides it.
            let level = if args.single {
                "info"
            } else {
                "warn,rumqttd=off"
            };
            crate::telemetry::init(level, crate::config::LogFormat::Human);
            runtime()?.block_on(crate::demo::run(args))
        }
    }
}

#[cfg(test)]
mod numbers_tests;
