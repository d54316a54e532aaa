//! `storenode demo`: on this machine, with nothing else to install.
//! - default: HQ with an embedded broker and two stores; one is cut off, both keep selling,
//!   it reconnects and the converged stock is printed ([`chain`]). The README's "Try it".
//! - `--single`: one store with a sample catalog and stock, its API open for `curl`.

mod chain;
pub mod link;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::Config;
use crate::daemon::Node;
use crate::gs1::gtin::check_digit;
use crate::store::catalog::{self, Item};
use crate::store::ledger::{self, Movement, MovementKind};

pub use crate::config::DEMO_TOKEN;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Run one store only, with its API open for curl (no HQ, no sync).
    #[arg(long)]
    pub single: bool,
    /// Chain demo: keep HQ and the stores running after the summary, until Ctrl-C.
    #[arg(long, conflicts_with = "single")]
    pub stay: bool,
    /// `--single`: where the demo store's API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// `--single`: keep the demo's database here (default: a temporary directory, removed at exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `--single`: stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_parser = crate::cli_numbers::seconds)]
    pub seconds: Option<u64>,
}

/// (SKU, name, price in cents, tax class, sold by weight, opening stock)
pub(crate) const SAMPLE: &[(&str, &str, i64, &str, bool, i64)] = &[
    ("MILK-1L", "Whole milk 1 l", 119, "reduced", false, 48),
    (
        "BREAD-500",
        "Sourdough bread 500 g",
        349,
        "reduced",
        false,
        20,
    ),
    (
        "COFFEE-250",
        "Coffee beans 250 g",
        599,
        "reduced",
        false,
        30,
    ),
    (
        "APPLE-LOOSE",
        "Apples, loose (per kg)",
        299,
        "reduced",
        true,
        25_000,
    ),
    ("TSHIRT-M", "T-shirt, size M", 1299, "standard", false, 12),
    ("TSHIRT-L", "T-shirt, size L", 1299, "standard", false, 10),
    ("SOCKS-3", "Socks, 3 pairs", 899, "standard", false, 40),
    ("USB-C-1M", "USB-C cable 1 m", 999, "standard", false, 15),
    (
        "BATT-AA4",
        "AA batteries, 4 pack",
        549,
        "standard",
        false,
        60,
    ),
    ("MUG", "Coffee mug", 799, "standard", false, 8),
];

/// The demo catalog: GTIN-13s under the test prefix 4012345, check digits computed.
pub fn sample_items(currency: &str) -> anyhow::Result<Vec<(Item, i64)>> {
    SAMPLE
        .iter()
        .enumerate()
        .map(|(i, (sku, name, price, tax, weighed, stock))| {
            let body = format!("4012345{:05}", i + 1);
            let gtin = format!("{body}{}", check_digit(&body)?);
            let item = Item {
                sku: (*sku).into(),
                name: (*name).into(),
                price_minor: *price,
                currency: currency.into(),
                tax_class: (*tax).into(),
                variable_measure: *weighed,
                gtins: vec![gtin],
                epc_patterns: Vec::new(),
            };
            Ok((item, *stock))
        })
        .collect()
}

/// Loads the sample catalog and opening stock into an empty store (no-op if it has items).
pub async fn seed(node: &Node) -> anyhow::Result<()> {
    let items = sample_items(&node.state.config.node.currency)?;
    let tax = node.state.config.tax.clone();
    node.state
        .store
        .write(move |conn| {
            if catalog::count(conn)? > 0 {
                return Ok(());
            }
            let now = crate::clock::now_utc();
            for (item, stock) in items {
                let item = item.validated(|class| tax.rate_bp(class).is_some())?;
                catalog::upsert(conn, &item, &now)?;
                let opening = Movement {
                    sku: &item.sku,
                    kind: MovementKind::Receipt,
                    on_hand_delta: stock,
                    reserved_delta: 0,
                    ref_type: "receipt",
                    ref_id: "opening-stock",
                    terminal: "demo",
                };
                ledger::record(conn, &opening, &now)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if args.single {
        run_single(args).await
    } else {
        chain::run(args.stay).await
    }
}

async fn run_single(args: &DemoArgs) -> anyhow::Result<()> {
    let temp;
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let config = Config::demo(&data_dir, args.listen)?;
    let node = Node::start(config).await?;
    seed(&node).await?;
    print_welcome(node.local_addr);
    match args.seconds {
        Some(secs) => tokio::time::sleep(std::time::Duration::from_secs(secs)).await,
        None => {
            tokio::signal::ctrl_c()
                .await
                .context("cannot wait for Ctrl-C")?;
        }
    }
    node.stop().await;
    Ok(())
}

fn print_welcome(addr: SocketAddr) {
    let base = format!("http://{addr}");
    println!(
        "\nstorenode demo store is open at {base} (Ctrl-C to stop)\n\n\
         Try:\n  \
         curl -s -H 'Authorization: Bearer {DEMO_TOKEN}' {base}/v1/items/MILK-1L\n  \
         curl -s -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Idempotency-Key: demo-sale-1' \\\n       \
         -d '{{\"lines\":[{{\"sku\":\"MILK-1L\",\"quantity\":2}},{{\"sku\":\"APPLE-LOOSE\",\"weight_grams\":1086}}],\"payments\":[{{\"method\":\"cash\",\"amount_minor\":1000}}]}}' \\\n       \
         {base}/v1/sales\n  \
         curl -s {base}/metrics | grep storenode_sales\n"
    );
}
