//! Command line: parsed by clap, turned into validated configuration, dispatched. Only this
//! module decides exit codes: 0 success, 1 failure, 2 bad configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};

/// Exit code for a configuration error; systemd's `RestartPreventExitStatus=2` uses it.
pub const EXIT_CONFIG: u8 = 2;

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
    Bench(crate::bench::BenchArgs),
    /// Run a demo store with a sample catalog on this machine, no external services.
    Demo(crate::demo::DemoArgs),
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
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(&cli.config)?)
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
            runtime()?.block_on(crate::daemon::run(config))
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let config = load_config(&cli)?;
            print!("{}", config.explain());
            Ok(())
        }
        Command::Catalog {
            action: CatalogAction::Import { file },
        } => {
            let config = load_config(&cli)?;
            crate::telemetry::init("warn", crate::config::LogFormat::Human);
            let report = runtime()?.block_on(crate::import::import_file(&config, file))?;
            println!("{report}");
            Ok(())
        }
        Command::Bench(args) => runtime()?.block_on(crate::bench::run(args)),
        Command::Demo(args) => {
            crate::telemetry::init("info", crate::config::LogFormat::Human);
            runtime()?.block_on(crate::demo::run(args))
        }
    }
}
