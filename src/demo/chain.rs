//! `storenode demo` (the default): a small chain on this machine. HQ with the embedded
//! broker, two stores syncing with it, store 2 cut off from the broker while both keep
//! selling, then reconnected; prints the converged stock at each node and at HQ.
//!
//! Everything runs in this process on loopback; store 2 reaches the broker through a
//! cuttable [`Link`], so the partition is a real dropped TCP connection, not a flag.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::link::Link;
use super::{SAMPLE, seed};
use crate::config::{Config, Secret};
use crate::daemon::Node;
use crate::hq::Hq;
use crate::store::ledger;
use crate::store::sales::{self, SaleRequest, WriteContext};
use crate::sync::config::{ApiClient, BrokerConfig, HqConfig, SyncConfig};

const TENANT: &str = "demo";
/// Public on purpose: the demo's HQ listens on loopback only.
pub const DEMO_HQ_TOKEN: &str = "demo-hq-token-0123456789";
/// How often the demo's stores re-offer what a peer lacks (production default: 2 s).
const RESEND: Duration = Duration::from_millis(500);
/// Bound on every wait of the demo: it fails rather than hangs.
const STEP_LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const SAFETY_STOCK: i64 = 2;

/// Sales made while both stores are online, before the partition.
const ONLINE_SALES: &[(usize, &str, i64)] = &[(0, "MILK-1L", 2), (1, "COFFEE-250", 1)];
/// Sales during the partition: store 1 is online, store 2 offline.
const PARTITION_SALES: &[(usize, &str, i64)] = &[
    (0, "MILK-1L", 3),
    (1, "MILK-1L", 4),
    (0, "TSHIRT-M", 1),
    (1, "TSHIRT-M", 2),
    (1, "BREAD-500", 2),
    (0, "SOCKS-3", 2),
    (1, "BATT-AA4", 4),
    (0, "MUG", 1),
    (1, "MUG", 1),
    (1, "USB-C-1M", 1),
];

struct DemoStore {
    id: String,
    node: Node,
    /// Opening stock minus everything this demo sold here.
    expected: BTreeMap<String, i64>,
}

/// Stock of one store: at its node and as HQ has it.
struct Views {
    node: BTreeMap<String, i64>,
    hq: BTreeMap<String, i64>,
}

pub async fn run(stay: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let broker_addr = free_loopback_addr()?;
    let _broker = start_broker(broker_addr)?;
    let hq = Hq::start(&hq_config(dir.path(), broker_addr)).await?;
    let link = Link::start(broker_addr)
        .await
        .context("cannot start the demo's link")?;
    let mut stores = vec![
        start_store(dir.path(), "store-1", broker_addr).await?,
        start_store(dir.path(), "store-2", link.addr).await?,
    ];
    println!(
        "\nstorenode demo: HQ, an embedded MQTT broker and two stores on this machine\n  \
         broker   mqtt://{broker_addr} (embedded: no persistence, no ACL, no TLS; demo only)\n  \
         HQ       http://{} (token {DEMO_HQ_TOKEN})\n  \
         store-1  http://{} → broker directly\n  \
         store-2  http://{} → broker through a link the demo can cut\n",
        hq.http_addr, stores[0].node.local_addr, stores[1].node.local_addr
    );

    let step = Instant::now();
    sell_all(&mut stores, ONLINE_SALES).await?;
    wait_converged(&stores, &hq).await?;
    println!(
        "[1/4] both stores opened with sample stock, sold a little, and synced with HQ ({:.1} s)",
        step.elapsed().as_secs_f64()
    );

    link.cut();
    wait_offline(&stores[1]).await?;
    println!("[2/4] store-2 is cut off from the broker (its uplink dropped)");

    sell_all(&mut stores, PARTITION_SALES).await?;
    wait_store_at_hq(&stores[0], &hq).await?;
    let (sold_1, sold_2) = partition_units();
    let stale = views(&stores[1], &hq).await?;
    println!(
        "[3/4] both sides kept selling: store-1 {sold_1} units (HQ is up to date), \
         store-2 {sold_2} units offline (HQ still shows MILK-1L = {} there, the store {})",
        stale.hq.get("MILK-1L").copied().unwrap_or(0),
        stale.node.get("MILK-1L").copied().unwrap_or(0),
    );

    let step = Instant::now();
    link.restore();
    let final_views = wait_converged(&stores, &hq).await?;
    println!(
        "[4/4] link restored: store-2 reconnected and everything converged in {:.1} s\n",
        step.elapsed().as_secs_f64()
    );
    print_table(&stores, &final_views);
    println!(
        "\nCONVERGED: every node and HQ show the same stock, equal to opening stock minus all \
         sales on both sides (nothing lost, nothing doubled). Demo took {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    if stay {
        println!(
            "\nStill running (Ctrl-C to stop). Try:\n  \
             curl -s -H 'Authorization: Bearer {DEMO_HQ_TOKEN}' 'http://{}/v1/stock?store=store-2'",
            hq.http_addr
        );
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
    }
    for store in stores {
        store.node.stop().await;
    }
    hq.stop().await;
    Ok(())
}

#[cfg(feature = "embedded-broker")]
fn start_broker(addr: SocketAddr) -> anyhow::Result<crate::hq::broker::EmbeddedBroker> {
    Ok(crate::hq::broker::EmbeddedBroker::start(addr)?)
}

#[cfg(not(feature = "embedded-broker"))]
fn start_broker(_addr: SocketAddr) -> anyhow::Result<()> {
    anyhow::bail!(
        "this build has no embedded broker (feature `embedded-broker`); run `storenode demo --single`"
    )
}

/// A loopback port nobody listens on now (the broker binds it right after).
fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(probe.local_addr()?)
}

fn hq_config(dir: &Path, broker: SocketAddr) -> HqConfig {
    HqConfig {
        database_url: None,
        documents_in_memory: None,
        tenant: TENANT.into(),
        data_dir: dir.join("hq"),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        clients: vec![ApiClient::admin(Secret::new(DEMO_HQ_TOKEN.to_owned()))],
        http_tls: None,
        broker: loopback_broker(broker),
        safety_stock: SAFETY_STOCK,
        embedded_broker: None,
        epoch_interval: None,
        lanes: Default::default(),
    }
}

fn loopback_broker(addr: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: None,
    }
}

async fn start_store(dir: &Path, id: &str, broker: SocketAddr) -> anyhow::Result<DemoStore> {
    let data_dir = dir.join(id);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut config = Config::demo(&data_dir, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    config.node.tenant = TENANT.into();
    config.node.store_id = id.into();
    config.sync = Some(SyncConfig {
        broker: loopback_broker(broker),
        resend_interval: RESEND,
        // A store cut off for seconds retries within a second of the link coming back.
        reconnect_max: Duration::from_secs(1),
        online_escrow_units: 0,
        lanes: None,
    });
    let node = Node::start(config).await?;
    seed(&node).await?;
    let expected = SAMPLE
        .iter()
        .map(|(sku, _, _, _, _, stock)| ((*sku).to_owned(), *stock))
        .collect();
    Ok(DemoStore {
        id: id.into(),
        node,
        expected,
    })
}

async fn sell_all(stores: &mut [DemoStore], plan: &[(usize, &str, i64)]) -> anyhow::Result<()> {
    for (index, sku, quantity) in plan {
        let store = stores
            .get_mut(*index)
            .context("demo sale plan names a store that does not exist")?;
        sell(&store.node, sku, *quantity).await?;
        *store.expected.entry((*sku).to_owned()).or_insert(0) -= quantity;
    }
    Ok(())
}

/// One cash sale through the same code path as `POST /v1/sales`.
async fn sell(node: &Node, sku: &str, quantity: i64) -> anyhow::Result<()> {
    let request: SaleRequest = serde_json::from_value(serde_json::json!({
        "lines": [{ "sku": sku, "quantity": quantity }],
        "payments": [{ "method": "cash", "amount_minor": 100_000 }],
    }))?;
    let config = node.state.config.clone();
    let writer_id = node.state.store.writer_id().to_owned();
    let pricing = node.state.store.pricing();
    node.state
        .store
        .write(move |conn| {
            let now = crate::clock::now_utc();
            let ctx = WriteContext {
                terminal: "demo",
                writer_id: &writer_id,
                currency: &config.node.currency,
                tax: &config.tax,
                now: &now,
                pricing: Some(&pricing),
            };
            sales::record_sale(conn, &ctx, &request)
        })
        .await
        .with_context(|| format!("demo sale of {quantity} × {sku}"))?;
    Ok(())
}

fn partition_units() -> (i64, i64) {
    PARTITION_SALES
        .iter()
        .fold((0, 0), |(a, b), (store, _, qty)| match store {
            0 => (a + qty, b),
            _ => (a, b + qty),
        })
}

async fn views(store: &DemoStore, hq: &Hq) -> anyhow::Result<Views> {
    let node = store
        .node
        .state
        .store
        .read(|conn| ledger::page(conn, "", 10_000))
        .await?
        .into_iter()
        .map(|row| (row.sku, row.on_hand))
        .collect();
    let at_hq = crate::hq::lock(&hq.state)
        .store_stock(&store.id)?
        .into_iter()
        .map(|row| (row.sku, row.on_hand))
        .collect();
    Ok(Views { node, hq: at_hq })
}

/// Whether `shown` has exactly the expected figure for every SKU.
fn matches(expected: &BTreeMap<String, i64>, shown: &BTreeMap<String, i64>) -> bool {
    expected
        .iter()
        .all(|(sku, qty)| shown.get(sku).copied().unwrap_or(0) == *qty)
}

/// Waits until every node and HQ show each store's expected stock; returns the views.
async fn wait_converged(stores: &[DemoStore], hq: &Hq) -> anyhow::Result<Vec<Views>> {
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        let mut all = Vec::with_capacity(stores.len());
        for store in stores {
            all.push(views(store, hq).await?);
        }
        let done = stores
            .iter()
            .zip(&all)
            .all(|(s, v)| matches(&s.expected, &v.node) && matches(&s.expected, &v.hq));
        if done {
            return Ok(all);
        }
        if Instant::now() >= deadline {
            print_table(stores, &all);
            anyhow::bail!("NOT CONVERGED within {STEP_LIMIT:?}: see the table above");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_store_at_hq(store: &DemoStore, hq: &Hq) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_LIMIT;
    while !matches(&store.expected, &views(store, hq).await?.hq) {
        if Instant::now() >= deadline {
            anyhow::bail!(
                "HQ did not receive {}'s sales within {STEP_LIMIT:?}",
                store.id
            );
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

async fn wait_offline(store: &DemoStore) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_LIMIT;
    let connected = || {
        store
            .node
            .sync
            .as_ref()
            .is_some_and(|s| s.service().is_connected())
    };
    while connected() {
        if Instant::now() >= deadline {
            anyhow::bail!("{} still connected after the cut", store.id);
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

fn print_table(stores: &[DemoStore], views: &[Views]) {
    let mut header = format!("{:<12}", "SKU");
    for store in stores {
        header.push_str(&format!(
            " {:>14} {:>14}",
            format!("{} node", store.id),
            format!("{} @HQ", store.id)
        ));
    }
    println!("{header}");
    for (sku, ..) in SAMPLE {
        let mut line = format!("{sku:<12}");
        for view in views {
            let at = |m: &BTreeMap<String, i64>| m.get(*sku).copied().unwrap_or(0);
            line.push_str(&format!(" {:>14} {:>14}", at(&view.node), at(&view.hq)));
        }
        println!("{line}");
    }
}
