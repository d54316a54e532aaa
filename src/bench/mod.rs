//! `storenode bench`: the POS sale path measured end to end, as a store runs it, beside bare
//! SQLite on the same disk with the same durability, so docs/benchmarks.md can state ratios.
//!
//! In one run: bare SQLite commits; the real daemon (`storenode run`) without sync on a
//! locally imported catalog; and, when Mosquitto is installed, the daemon with `[sync]`
//! against Mosquitto and a real `storenode hq` that publishes the catalog. 3-line sales of
//! random SKUs and quantities go over HTTP/1.1 keep-alive connections from this process. For
//! each: sales/s, p50, p99, bytes the daemon wrote to disk per sale (/proc/PID/io), and RSS
//! (empty, with the catalog, after the sales). With sync, sale latency is also measured
//! while HQ publishes a price change of one item and of every item. Nothing is asserted:
//! the figures are printed.

mod deploy;
mod http;
mod load;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use deploy::{Daemon, Hq, catalog, sku};
use load::{Until, drive_sales};

const TOKEN: &str = "bench-token-0123456789abcdef";

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Directory on the disk to measure (the database goes here). Default: the system temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10, value_parser = crate::cli_numbers::seconds)]
    pub seconds: u64,
    /// Catalog size for the memory figure (1 to 10000000).
    #[arg(long, default_value_t = 50_000, value_parser = |t: &str| crate::cli_numbers::integer(t, 1..=10_000_000usize))]
    pub items: usize,
    /// Concurrent clients to measure, comma separated (1 to 10000 each).
    #[arg(long, value_delimiter = ',', default_value = "1,16", value_parser = |t: &str| crate::cli_numbers::integer(t, 1..=10_000usize))]
    pub clients: Vec<usize>,
    /// The storenode binary run as daemon and HQ (default: this one); lets one driver
    /// measure an older build in the same way.
    #[arg(long, hide = true)]
    pub daemon_bin: Option<PathBuf>,
}

struct Summary {
    count: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// Bytes written to disk per operation, where measured.
    bytes_per: f64,
}

impl Summary {
    fn from(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Self {
            count: latencies.len(),
            elapsed,
            p50: at(0.50),
            p99: at(0.99),
            bytes_per: 0.0,
        }
    }

    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("storenode-bench")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a directory in {}", base.display()))?;
    let duration = Duration::from_secs(args.seconds.max(1));
    let bin = match &args.daemon_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?,
    };
    println!(
        "storenode bench — disk under {}, {} s per measurement, {} catalog items\n",
        base.display(),
        duration.as_secs(),
        args.items
    );
    let bare = bare_sqlite_commits(&dir.path().join("bare.db"), duration)?;
    println!(
        "bare SQLite (WAL, synchronous=FULL, 1 row per commit): {:.0} commits/s, p50 {:?}, p99 {:?}, {:.0} bytes written per commit",
        bare.rate(),
        bare.p50,
        bare.p99,
        bare.bytes_per
    );
    let hq = Hq::start(&bin, dir.path()).await?;
    if hq.is_none() {
        println!("(no /usr/sbin/mosquitto: the sync-on rows are skipped)");
    }
    println!(
        "\n3-line sale of random SKUs and quantities through the HTTP API, durable before the reply:"
    );
    println!(
        "{:>5} {:>8} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "sync", "clients", "sales/s", "p50", "p99", "vs bare", "disk B/sale"
    );
    let mut memory = Vec::new();
    for sync in [false, true] {
        let broker = match (&hq, sync) {
            (_, false) => None,
            (Some(hq), true) => Some(hq.broker_port),
            (None, true) => continue,
        };
        let name = if sync { "on" } else { "off" };
        let local = (!sync).then_some(args.items);
        let daemon = Daemon::start(&bin, &dir.path().join(name), broker, local).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut rss = vec![("ready".to_string(), daemon.rss_kib())];
        if let (Some(hq), true) = (&hq, sync) {
            hq.publish(&catalog(args.items, 100)).await?;
            let last = sku(args.items.max(3) - 1);
            daemon
                .wait_price(&last, 100, Duration::from_secs(600))
                .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            rss.push((
                format!("HQ published {} items", args.items),
                daemon.rss_kib(),
            ));
        }
        let mut sales = 0;
        for &clients in &args.clients {
            let written = daemon.disk_bytes();
            let until = Until::fixed(duration);
            let s = drive_sales(
                &daemon.addr,
                clients.max(1),
                args.items,
                until,
                &format!("{name}{clients}"),
            )
            .await?;
            let per_sale =
                daemon.disk_bytes().saturating_sub(written) as f64 / s.count.max(1) as f64;
            sales += s.count;
            println!(
                "{:>5} {:>8} {:>10.0} {:>10.2?} {:>10.2?} {:>9.2}x {:>14.0}",
                name,
                clients,
                s.rate(),
                s.p50,
                s.p99,
                s.rate() / bare.rate().max(1e-9),
                per_sale
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss.push((format!("after {sales} sales"), daemon.rss_kib()));
        memory.push((name, rss));
        if let (Some(hq), true) = (&hq, sync) {
            catalog_change(hq, &daemon, args.items, duration).await?;
        }
        daemon.stop().await;
    }
    println!("\ndaemon RSS:");
    for (name, rss) in memory {
        let figures: Vec<String> = rss
            .iter()
            .map(|(when, kib)| format!("{when} {:.1} MiB", *kib as f64 / 1024.0))
            .collect();
        println!("  sync {name}: {}", figures.join("; "));
    }
    Ok(())
}

/// Sale latency (1 till) while HQ publishes a price change, beside a quiet run: the
/// window lasts until the store sells at the new price.
async fn catalog_change(
    hq: &Hq,
    daemon: &Daemon,
    items: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    println!("\nsale latency (1 client, sync on) while HQ publishes a price change:");
    println!(
        "{:>28} {:>10} {:>10} {:>10} {:>12}",
        "", "sales", "p50", "p99", "visible after"
    );
    let quiet = drive_sales(&daemon.addr, 1, items, Until::fixed(duration), "quiet").await?;
    println!(
        "{:>28} {:>10} {:>10.2?} {:>10.2?} {:>12}",
        "no change", quiet.count, quiet.p50, quiet.p99, "-"
    );
    let one: Vec<_> = catalog(items, 100)
        .into_iter()
        .take(8)
        .map(|mut i| {
            if i.sku == sku(7) {
                i.price_minor = 150;
            }
            i
        })
        .collect();
    let cases = [
        ("1 item", one, sku(7), 150),
        (
            "every item",
            catalog(items, 110),
            sku(items.max(3) - 1),
            110,
        ),
    ];
    for (label, change, probe, price) in cases {
        let done = Arc::new(AtomicBool::new(false));
        let until = Until {
            min: duration,
            done: done.clone(),
        };
        let publish = async {
            let t = Instant::now();
            hq.publish(&change).await?;
            daemon
                .wait_price(&probe, price, Duration::from_secs(600))
                .await?;
            done.store(true, Ordering::Release);
            anyhow::Ok(t.elapsed())
        };
        let tag = label.replace(' ', "-");
        let (sales, visible) =
            tokio::join!(drive_sales(&daemon.addr, 1, items, until, &tag), publish);
        let (sales, visible) = (sales?, visible?);
        println!(
            "{:>28} {:>10} {:>10.2?} {:>10.2?} {:>12.2?}",
            label, sales.count, sales.p50, sales.p99, visible
        );
    }
    Ok(())
}

fn bare_sqlite_commits(path: &Path, duration: Duration) -> anyhow::Result<Summary> {
    let io = |field: &str| {
        std::fs::read_to_string("/proc/self/io")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let written = io("write_bytes:");
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")?;
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        conn.execute(
            "INSERT INTO t (payload) VALUES ('a sale of three lines')",
            [],
        )?;
        latencies.push(t.elapsed());
    }
    let mut summary = Summary::from(latencies, start.elapsed());
    summary.bytes_per =
        io("write_bytes:").saturating_sub(written) as f64 / summary.count.max(1) as f64;
    Ok(summary)
}
