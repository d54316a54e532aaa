//! HQ's own writes on two connections at once (issue 20): orders placed for different
//! stores by two HQ instances over one PostgreSQL, with HQ's per-document locks ("after")
//! and with one lock shared by all of HQ's writes, as HQ locked before ("before",
//! `HqState::with_one_write_lock`), in the same run. Not a test: it prints a table.
//!
//! ```sh
//! cargo run --release --example bench_hq_writes -- --stores 8 --orders 400
//! ```
//!
//! Per mode, a fresh database on one scratch PostgreSQL (`ScratchPostgres`, `fsync=off`):
//! each store's lane grants the online channel units (one change, received as over MQTT),
//! then `--orders` orders are placed (`HqState::create_order`, one line of one unit each)
//! by one instance, then as many by two instances on their own connections and threads,
//! each placing for its own half of the stores. Printed: orders per second (wall clock)
//! and each order's p50/p99 time. Everything shares this machine's cores, PostgreSQL too.

use std::time::{Duration, Instant};

use storenode::crdt::doc::{DocId, DocKind, WriterId};
use storenode::crdt::escrow::EscrowField;
use storenode::crdt::orders::OrdersDoc;
use storenode::domain::orders::Delivery;
use storenode::hq::db::Target;
use storenode::hq::db::scratch::ScratchPostgres;
use storenode::hq::orders::{NewHqOrder, OrderLine};
use storenode::hq::state::HqState;
use storenode::sync::payload::SyncMessage;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Units each store grants the online channel: more than the benchmark places.
const GRANTED: i64 = 1_000_000;

struct Args {
    stores: usize,
    orders: usize,
}

fn args() -> BenchResult<Args> {
    let mut out = Args {
        stores: 8,
        orders: 400,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--stores" => out.stores = value.parse()?,
            "--orders" => out.orders = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if out.stores < 2 {
        return Err("--stores: at least 2 (one set per instance)".into());
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Mode {
    OneWriteLock,
    PerDocument,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::OneWriteLock => "before: one lock for all HQ writes",
            Mode::PerDocument => "after: per-document locks",
        }
    }

    fn open(self, target: &Target) -> BenchResult<HqState> {
        let hq = HqState::open_target(target, "bench", 0)?;
        Ok(match self {
            Mode::OneWriteLock => hq.with_one_write_lock(),
            Mode::PerDocument => hq,
        })
    }
}

fn store(i: usize) -> String {
    format!("s{i:03}")
}

/// Each store's lane 1 grants [`GRANTED`] units of `WEB` to the online channel.
fn grant_escrow(hq: &mut HqState, stores: usize) -> BenchResult<()> {
    for i in 0..stores {
        let store = store(i);
        let mut lane = OrdersDoc::genesis(&store, 0, WriterId::new(&format!("{store}.lane1"))?)?;
        let entries = [("WEB".to_owned(), EscrowField::Granted, GRANTED)];
        let change = lane.add_escrow(&entries, 1)?.ok_or("no escrow change")?;
        let message = SyncMessage::Changes {
            doc: DocId::new(&store, DocKind::Orders)?,
            epoch: 0,
            changes: vec![change.bytes],
        }
        .encode()?;
        let topic = format!("storenode/v1/bench/{store}/changes/orders/{store}.lane1");
        hq.handle(&topic, &message)
            .map_err(|e| format!("escrow of {store}: {e}"))?;
    }
    Ok(())
}

fn order(id: String, store: String) -> NewHqOrder {
    NewHqOrder {
        order_id: id,
        store,
        lines: vec![OrderLine {
            sku: "WEB".into(),
            quantity: 1,
        }],
        pickup_code: Some("4711".into()),
        pickup_code_hash: None,
        hold_hours: None,
        delivery: Delivery::Collect,
        channel: "web".into(),
        node: Some("lane1".into()),
        customer: None,
    }
}

/// Places `count` orders round robin over `stores`; returns each order's time.
fn place(
    hq: &mut HqState,
    tag: &str,
    stores: &[String],
    count: usize,
) -> BenchResult<Vec<Duration>> {
    let mut times = Vec::with_capacity(count);
    for n in 0..count {
        let store = stores[n % stores.len()].clone();
        let started = Instant::now();
        hq.create_order(&order(format!("{tag}-{n}"), store))
            .map_err(|e| format!("order {tag}-{n}: {e}"))?;
        times.push(started.elapsed());
    }
    Ok(times)
}

struct Figure {
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn figure(mut times: Vec<Duration>, wall: Duration, orders: usize) -> Figure {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Figure {
        per_s: orders as f64 / wall.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

fn run_mode(server: &ScratchPostgres, mode: Mode, args: &Args, n: usize) -> BenchResult<()> {
    let target = Target::Postgres(server.create_database(&format!("writes{n}"))?);
    let mut a = mode.open(&target)?;
    grant_escrow(&mut a, args.stores)?;
    let mut b = mode.open(&target)?;
    let all: Vec<String> = (0..args.stores).map(store).collect();
    // One order per store by each instance first: both have every document in memory.
    place(&mut a, "warm-a", &all, all.len())?;
    place(&mut b, "warm-b", &all, all.len())?;

    let started = Instant::now();
    let times = place(&mut a, "one", &all, args.orders)?;
    let one = figure(times, started.elapsed(), args.orders);

    let (even, odd): (Vec<_>, Vec<_>) = all
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let even: Vec<String> = even.into_iter().map(|(_, s)| s).collect();
    let odd: Vec<String> = odd.into_iter().map(|(_, s)| s).collect();
    let half = args.orders / 2;
    let started = Instant::now();
    let (ta, tb) = std::thread::scope(|s| {
        let x = s.spawn(|| place(&mut a, "two-a", &even, half));
        let y = s.spawn(|| place(&mut b, "two-b", &odd, half));
        (x.join(), y.join())
    });
    let wall = started.elapsed();
    let mut times = ta.map_err(|_| "instance a panicked")??;
    times.extend(tb.map_err(|_| "instance b panicked")??);
    let two = figure(times, wall, half * 2);
    println!(
        "| {} | {:.0} | {:.1} / {:.1} | {:.0} | {:.1} / {:.1} | {:.2}× |",
        mode.name(),
        one.per_s,
        one.p50_ms,
        one.p99_ms,
        two.per_s,
        two.p50_ms,
        two.p99_ms,
        two.per_s / one.per_s
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let args = args()?;
    let server = ScratchPostgres::start()?;
    println!(
        "{} stores, {} orders per configuration, {} cores\n",
        args.stores,
        args.orders,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| mode | 1 instance: orders/s | p50 / p99 ms | 2 instances at once: orders/s | p50 / p99 ms | 2 ÷ 1 |"
    );
    println!("|---|---|---|---|---|---|");
    for (n, mode) in [Mode::OneWriteLock, Mode::PerDocument]
        .into_iter()
        .enumerate()
    {
        run_mode(&server, mode, &args, n)?;
    }
    Ok(())
}
