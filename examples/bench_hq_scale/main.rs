//! HQ at chain scale (issue 20). Not a test: it prints a table.
//!
//! ```sh
//! cargo build --release --bin storenode && cargo run --release --example bench_hq_scale
//! cargo run --release --example bench_hq_scale -- --stores 1000 --history 1000000 --step-secs 10
//! ```
//!
//! N simulated stores (real automerge stock writers in this process, see `sim.rs`) commit
//! 3-line sales at rising total rates and publish every commit through one real Mosquitto,
//! against, in the same run: (a) one HQ on SQLite (the baseline), (b) one HQ on PostgreSQL,
//! (c) two HQ instances on the same PostgreSQL (MQTT shared subscription). HQ is the real
//! `storenode hq` binary (one process per instance: its RSS is its own), PostgreSQL a
//! scratch server in a temporary directory (`ScratchPostgres`).
//!
//! Per configuration: the highest rate sustained (the stores' changes HQ has not yet
//! acknowledged in its retained heads stay under half a second's worth at the end of the
//! step), p50/p99 change-to-visible at half that rate (commit at the store until
//! `GET /v1/stock/{store}/BENCH-SEQ` on HQ's API shows it), HQ's RSS, database bytes per
//! change and per store-day. Then HQ's per-change cost at a small and a large history of
//! one store, on both backends (`history.rs`).
//!
//! Everything shares this machine's cores: the stores, Mosquitto, PostgreSQL and every HQ
//! instance. The table prints how much CPU each took per change.
//!
//! Flags: `--stores N` (200), `--step-secs S` (5), `--start-rate R` (100), `--max-rate R`
//! (20000), `--history A,B,..` (10000,100000), `--configs sqlite,pg,pg2` (all),
//! `--configs none` (only the per-change cost against history), `--day N` (instead of the
//! ramp: HQ's memory after N changes per store, see `day.rs`; `--day-message M` changes per
//! message, 100),
//! `--hq-bin PATH` (target/release/storenode beside this example), `--skip-history`,
//! `--history-backends sqlite,pg` (both), `--history-doc stock|orders` (the document whose
//! per-change cost is measured: stock, or the orders document with `--history` counting its
//! changes), `--documents-in-memory N` (HQ's `[hq] documents_in_memory`; 0: no bound;
//! default: HQ's).

mod day;
mod history;
mod infra;
mod sim;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use storenode::hq::db::Target;
use storenode::hq::db::scratch::ScratchPostgres;

use infra::{Broker, HqProcess};
use sim::Sim;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A store committing every 10 s through a 12-hour trading day.
const CHANGES_PER_STORE_DAY: u64 = 12 * 3600 / 10;
/// Rate steps grow by this factor until one is not sustained.
const RAMP: f64 = 1.5;
/// A step is sustained when at its end HQ lacks at most this many seconds' worth of changes.
const LAG_BOUND_S: f64 = 0.5;
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

struct Args {
    stores: usize,
    step: Duration,
    start_rate: f64,
    max_rate: f64,
    history: Vec<usize>,
    configs: Vec<Kind>,
    hq_bin: Option<PathBuf>,
    skip_history: bool,
    /// Backends of the per-change cost against history: SQLite, PostgreSQL.
    history_backends: (bool, bool),
    /// The per-change cost of the orders document instead of the stock document.
    history_orders: bool,
    documents_in_memory: Option<usize>,
    /// Changes per store of the memory run (`day.rs`), and per message.
    day: Option<usize>,
    day_message: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
    TwoPostgres,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "1 HQ, SQLite",
            Kind::Postgres => "1 HQ, PostgreSQL",
            Kind::TwoPostgres => "2 HQ, one PostgreSQL",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "sqlite" => Some(Kind::Sqlite),
            "pg" => Some(Kind::Postgres),
            "pg2" => Some(Kind::TwoPostgres),
            _ => None,
        }
    }
}

fn parse_args() -> BenchResult<Args> {
    let mut args = Args {
        stores: 200,
        step: Duration::from_secs(5),
        start_rate: 100.0,
        max_rate: 20_000.0,
        history: vec![10_000, 100_000],
        configs: vec![Kind::Sqlite, Kind::Postgres, Kind::TwoPostgres],
        hq_bin: None,
        skip_history: false,
        history_backends: (true, true),
        history_orders: false,
        documents_in_memory: None,
        day: None,
        day_message: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--stores" => args.stores = value()?.parse()?,
            "--step-secs" => args.step = Duration::from_secs_f64(value()?.parse()?),
            "--start-rate" => args.start_rate = value()?.parse()?,
            "--max-rate" => args.max_rate = value()?.parse()?,
            "--history" => {
                args.history = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--configs" => {
                let list = value()?;
                args.configs = list
                    .split(',')
                    .filter(|c| *c != "none")
                    .map(|c| Kind::parse(c).ok_or_else(|| format!("unknown config {c}")))
                    .collect::<Result<_, _>>()?;
            }
            "--hq-bin" => args.hq_bin = Some(PathBuf::from(value()?)),
            "--skip-history" => args.skip_history = true,
            "--history-backends" => {
                let list = value()?;
                let names: Vec<&str> = list.split(',').collect();
                if let Some(bad) = names.iter().find(|n| !matches!(**n, "sqlite" | "pg")) {
                    return Err(format!("unknown history backend {bad}").into());
                }
                args.history_backends = (names.contains(&"sqlite"), names.contains(&"pg"));
            }
            "--history-doc" => {
                args.history_orders = match value()?.as_str() {
                    "stock" => false,
                    "orders" => true,
                    other => return Err(format!("unknown history document {other}").into()),
                };
            }
            "--documents-in-memory" => args.documents_in_memory = Some(value()?.parse()?),
            "--day" => args.day = Some(value()?.parse()?),
            "--day-message" => args.day_message = value()?.parse()?,
            other => {
                return Err(format!("unknown flag {other} (see the file's doc comment)").into());
            }
        }
    }
    Ok(args)
}

/// What one configuration measured.
struct Outcome {
    kind: Kind,
    sustained: f64,
    p50: Duration,
    p99: Duration,
    probes: usize,
    rss: u64,
    peak_rss: u64,
    bytes_per_change: f64,
    hq_cpu_ms_per_change: f64,
    broker_cpu_ms_per_change: f64,
    stores_cpu_ms_per_change: f64,
    resent: u64,
}

fn main() -> BenchResult<()> {
    let args = parse_args()?;
    // automerge logs the bundles of the history feed at ERROR although they apply (checked).
    storenode::telemetry::init("warn,automerge=off", storenode::config::LogFormat::Human);
    // Without configurations (`--configs none`) only the history part runs, in this process.
    let bin = if args.configs.is_empty() {
        PathBuf::new()
    } else {
        infra::hq_binary(args.hq_bin.clone())?
    };
    let needs_pg = args
        .configs
        .iter()
        .any(|k| matches!(k, Kind::Postgres | Kind::TwoPostgres))
        || (!args.skip_history && args.history_backends.1);
    let pg = if needs_pg {
        Some(ScratchPostgres::start()?)
    } else {
        None
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "hq: {}; {} stores; {} cores; load average {}",
        bin.display(),
        args.stores,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(per_store) = args.day {
        let mut rows = Vec::new();
        for (i, &kind) in args.configs.iter().enumerate() {
            let url = match (kind, &pg) {
                (Kind::Sqlite, _) => None,
                (_, Some(pg)) => Some(pg.create_database(&format!("day{i}"))?),
                (_, None) => return Err("no PostgreSQL".into()),
            };
            let run = day::Run {
                name: kind.name(),
                stores: args.stores,
                per_store,
                per_message: args.day_message,
                documents_in_memory: args.documents_in_memory,
            };
            rows.push(runtime.block_on(day::run(&run, &bin, url.as_deref()))?);
        }
        day::print(&rows);
        return Ok(());
    }
    let mut outcomes = Vec::new();
    for (i, &kind) in args.configs.iter().enumerate() {
        let outcome = runtime.block_on(run_config(kind, &args, &bin, pg.as_ref(), i))?;
        outcomes.push(outcome);
    }
    drop(runtime);
    let mut costs = Vec::new();
    if !args.skip_history {
        let dir = tempfile::tempdir()?;
        let cost = |target: &Target| {
            if args.history_orders {
                history::per_orders_change_cost(target, &args.history)
            } else {
                history::per_change_cost(target, &args.history)
            }
        };
        let of = if args.history_orders {
            "orders"
        } else {
            "stock"
        };
        if args.history_backends.0 {
            eprintln!(
                "per-change cost at history {:?} ({of}), SQLite",
                args.history
            );
            costs.push(("SQLite", cost(&Target::Sqlite(dir.path().join("hist.db")))?));
        }
        if let (true, Some(pg)) = (args.history_backends.1, &pg) {
            eprintln!(
                "per-change cost at history {:?} ({of}), PostgreSQL",
                args.history
            );
            let url = pg.create_database("hist")?;
            costs.push(("PostgreSQL", cost(&Target::Postgres(url))?));
        }
    }
    print_tables(&args, &outcomes, &costs);
    Ok(())
}

async fn run_config(
    kind: Kind,
    args: &Args,
    bin: &std::path::Path,
    pg: Option<&ScratchPostgres>,
    index: usize,
) -> BenchResult<Outcome> {
    eprintln!("== {}", kind.name());
    let broker = Broker::start()?;
    let url = match (kind, pg) {
        (Kind::Sqlite, _) => None,
        (_, Some(pg)) => Some(pg.create_database(&format!("hq{index}"))?),
        (_, None) => return Err("no PostgreSQL".into()),
    };
    let instances = if kind == Kind::TwoPostgres { 2 } else { 1 };
    let mut hqs = Vec::new();
    for _ in 0..instances {
        // The blocking HTTP client of the readiness wait may not run on an async worker as is.
        hqs.push(tokio::task::block_in_place(|| {
            HqProcess::start(bin, broker.addr, url.as_deref(), args.documents_in_memory)
        })?);
    }
    let db_bytes = |hqs: &[HqProcess]| -> BenchResult<u64> {
        match &url {
            Some(url) => infra::pg_size(url),
            None => Ok(hqs[0].sqlite_bytes()),
        }
    };
    let size_before = db_bytes(&hqs)?;
    let sim = Sim::start(args.stores, broker.addr).await?;
    // Every store's first change: HQ learns the stores before the figures start.
    sim.run(args.stores as f64 * 4.0, Duration::from_millis(250), None)
        .await?;
    sim.drain(DRAIN_LIMIT).await?;
    eprintln!("warm-up: {} first changes acknowledged", sim.committed());
    let pids: Vec<u32> = hqs.iter().map(HqProcess::pid).collect();
    let cpu = |pids: &[u32]| pids.iter().map(|&p| infra::cpu_of(p)).sum::<Duration>();
    let self_pid = std::process::id();
    let (hq_cpu0, broker_cpu0, self_cpu0, changes0) = (
        cpu(&pids),
        infra::cpu_of(broker.pid()),
        infra::cpu_of(self_pid),
        sim.committed(),
    );

    let mut rate = args.start_rate;
    let mut sustained = 0.0;
    while rate <= args.max_rate {
        let step = sim.run(rate, args.step, None).await?;
        let bound = (rate * LAG_BOUND_S).max(10.0);
        let kept_up = step.achieved >= rate * 0.9;
        let ok = kept_up && (step.lag_end() as f64) <= bound;
        let drained = sim.drain(DRAIN_LIMIT).await?;
        eprintln!(
            "  {:>7.0}/s offered, {:>7.0}/s committed, HQ behind by {} mid-step, {} at the end \
             (bound {bound:.0}), drained in {:.1} s{}{}",
            step.offered,
            step.achieved,
            step.lag_mid(),
            step.lag_end(),
            drained.as_secs_f64(),
            if step.publish_errors > 0 {
                format!(", {} publish errors", step.publish_errors)
            } else {
                String::new()
            },
            if ok { "" } else { "  <- not sustained" }
        );
        if !kept_up {
            eprintln!("  (the simulated stores could not commit and publish at the offered rate)");
        }
        if !ok {
            break;
        }
        sustained = rate;
        rate *= RAMP;
    }

    // Change-to-visible at half the sustained rate, about 10 probes a second.
    let half = (sustained / 2.0).max(args.start_rate / 2.0);
    let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel();
    let bases: Vec<String> = hqs.iter().map(|h| h.base.clone()).collect();
    let seen = sim::start_prober(bases, probe_rx);
    let every = ((half / 10.0) as u64).max(1);
    let length = args.step * 2;
    let step = sim.run(half, length, Some((&probe_tx, every))).await?;
    drop(probe_tx);
    sim.drain(DRAIN_LIMIT).await?;
    let expected = (step.achieved * length.as_secs_f64()) as usize / every as usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut latencies = loop {
        let got = seen.lock().map(|v| v.clone()).unwrap_or_default();
        if got.len() >= expected || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    latencies.sort();
    let pick = |q: usize| {
        latencies
            .get((latencies.len() * q / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    eprintln!(
        "  latency at {half:.0}/s: {} probes, p50 {:.0} ms, p99 {:.0} ms, HQ behind by {} at the end",
        latencies.len(),
        pick(50).as_secs_f64() * 1e3,
        pick(99).as_secs_f64() * 1e3,
        step.lag_end()
    );

    verify_figures(&sim, &hqs).await?;
    let changes = (sim.committed() - changes0).max(1) as f64;
    let per_change = |d: Duration| d.as_secs_f64() * 1e3 / changes;
    let hq_cpu = per_change(cpu(&pids).saturating_sub(hq_cpu0));
    let broker_cpu = per_change(infra::cpu_of(broker.pid()).saturating_sub(broker_cpu0));
    let stores_cpu = per_change(infra::cpu_of(self_pid).saturating_sub(self_cpu0));
    let (rss, peak_rss) = hqs
        .iter()
        .map(HqProcess::rss)
        .fold((0, 0), |(a, b), (r, p)| (a + r, b + p));
    let size_after = db_bytes(&hqs)?;
    let total_changes = sim.committed().max(1) as f64;
    let bytes_per_change = size_after.saturating_sub(size_before) as f64 / total_changes;
    let resent = sim.resent.load(std::sync::atomic::Ordering::Relaxed);
    sim.stop();
    tokio::task::block_in_place(|| {
        for hq in hqs {
            hq.stop();
        }
    });
    drop(broker);
    Ok(Outcome {
        kind,
        sustained,
        p50: pick(50),
        p99: pick(99),
        probes: latencies.len(),
        rss,
        peak_rss,
        bytes_per_change,
        hq_cpu_ms_per_change: hq_cpu,
        broker_cpu_ms_per_change: broker_cpu,
        stores_cpu_ms_per_change: stores_cpu,
        resent,
    })
}

/// HQ's API shows every store's last commit (the figures, not just the heads).
pub async fn verify_figures(sim: &Arc<Sim>, hqs: &[HqProcess]) -> BenchResult<()> {
    let client = reqwest::Client::new();
    let expected = sim.committed_by_store();
    for (i, (store, committed)) in expected
        .iter()
        .enumerate()
        .step_by(expected.len().div_ceil(10).max(1))
    {
        let hq = &hqs[i % hqs.len()];
        let body: serde_json::Value = client
            .get(format!("{}/v1/stock/{store}/{}", hq.base, sim::SEQ_SKU))
            .bearer_auth(infra::TOKEN)
            .send()
            .await?
            .json()
            .await?;
        if body["on_hand"].as_i64() != Some(i64::try_from(*committed)?) {
            return Err(
                format!("HQ shows {body} for {store}, the store committed {committed}").into(),
            );
        }
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_tables(args: &Args, outcomes: &[Outcome], costs: &[(&str, Vec<history::Cost>)]) {
    println!();
    println!(
        "HQ at chain scale: {} simulated stores, 3-line sales, steps of {:.0} s from {:.0}/s (x{RAMP})",
        args.stores,
        args.step.as_secs_f64(),
        args.start_rate
    );
    println!();
    println!(
        "| configuration | sustained changes/s | p50 / p99 change-to-visible at half | probes | HQ RSS (peak) | DB bytes/change | DB MB per store-day | CPU ms/change: HQ, broker, stores |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        println!(
            "| {} | {:.0} | {:.0} / {:.0} ms | {} | {:.0} MiB ({:.0}) | {:.0} | {:.2} | {:.2}, {:.2}, {:.2} |",
            o.kind.name(),
            o.sustained,
            o.p50.as_secs_f64() * 1e3,
            o.p99.as_secs_f64() * 1e3,
            o.probes,
            mib(o.rss),
            mib(o.peak_rss),
            o.bytes_per_change,
            o.bytes_per_change * CHANGES_PER_STORE_DAY as f64 / 1e6,
            o.hq_cpu_ms_per_change,
            o.broker_cpu_ms_per_change,
            o.stores_cpu_ms_per_change,
        );
    }
    let find = |k: Kind| outcomes.iter().find(|o| o.kind == k);
    let resent: u64 = outcomes.iter().map(|o| o.resent).sum();
    println!();
    if let (Some(one), Some(two)) = (find(Kind::Postgres), find(Kind::TwoPostgres)) {
        println!(
            "2 instances / 1 instance (PostgreSQL): sustained {:.2}x, p99 {:.2}x",
            two.sustained / one.sustained.max(1.0),
            two.p99.as_secs_f64() / one.p99.as_secs_f64().max(1e-9)
        );
    }
    if let (Some(sqlite), Some(pg)) = (find(Kind::Sqlite), find(Kind::Postgres)) {
        println!(
            "PostgreSQL / SQLite (1 instance): sustained {:.2}x, p99 {:.2}x, RSS {:.2}x, bytes/change {:.2}x",
            pg.sustained / sqlite.sustained.max(1.0),
            pg.p99.as_secs_f64() / sqlite.p99.as_secs_f64().max(1e-9),
            pg.rss as f64 / sqlite.rss.max(1) as f64,
            pg.bytes_per_change / sqlite.bytes_per_change.max(1.0)
        );
    }
    println!(
        "store-day: {CHANGES_PER_STORE_DAY} changes (one every 10 s for 12 h); changes resent by \
         the simulated stores after 3 s unacknowledged: {resent}"
    );
    if costs.is_empty() {
        return;
    }
    println!();
    let unit = if args.history_orders {
        "changes of one store's orders document"
    } else {
        "movements of one store"
    };
    println!("| backend | history ({unit}) | per-change p50 | p99 |");
    println!("|---|---|---|---|");
    for (backend, rows) in costs {
        for c in rows {
            println!(
                "| {backend} | {} | {:.2} ms | {:.2} ms |",
                c.movements,
                c.p50.as_secs_f64() * 1e3,
                c.p99.as_secs_f64() * 1e3
            );
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            println!(
                "| {backend} | last / first | {:.2}x | |",
                last.p50.as_secs_f64() / first.p50.as_secs_f64().max(1e-9)
            );
        }
    }
}
