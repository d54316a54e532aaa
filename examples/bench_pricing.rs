//! Pricing benchmark: a 20-line basket under 200 active promotions, beside the same baskets
//! with no rules, and the sale path with those promotions beside the same sales without.
//! Not a test: it prints a table.
//!
//! ```sh
//! cargo run --release --example bench_pricing              # 20,000 baskets, 2,000 sales each
//! cargo run --release --example bench_pricing -- --quick   # 2,000 baskets, 300 sales each
//! ```
//!
//! Engine: 1,000 SKUs in 20 categories; 200 promotions (percent and amount off SKUs and
//! categories, multi-buy, mix and match, 10 basket thresholds), 3 price lists of 100 SKUs,
//! windows and scopes that all hold; baskets of 20 lines of 1 to 4 pieces drawn from the 300
//! SKUs the promotions target most. "parsing the rules each time" adds reading the rules'
//! JSON from SQLite and parsing it, as the till did per sale before it cached them; "from
//! the cache" is what it does now: read their version, parse only after a change.
//!
//! Sale path: two stores on disk (real writer thread, group commit, durable before the
//! answer), one with the rules and one without, sales sent alternately to each, one at a
//! time, so both see the same machine noise.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use storenode::domain::pricing::{
    BasketLine, LocalDateTime, PriceContext, PriceList, PricingRules, Promotion, Rule, Scope,
    Target, Window, price_basket,
};
use storenode::money::Quantity;
use storenode::store::TaxConfig;
use storenode::store::catalog::{self, Item};
use storenode::store::sales::{
    PaymentMethod, PaymentRequest, SaleLineRequest, SaleRequest, WriteContext, record_sale,
};
use storenode::store::{NoHook, Store, StoreOptions, pricing};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const SKUS: usize = 1_000;
const HOT_SKUS: usize = 300;
const PROMOTIONS: usize = 200;
const LINES: usize = 20;

fn sku(i: usize) -> String {
    format!("SKU{i:04}")
}

fn price_of(i: usize) -> i64 {
    99 + (i as i64 * 37) % 1_900
}

fn target(rng: &mut StdRng) -> Target {
    let mut t = Target::default();
    if rng.random_bool(0.2) {
        t.categories
            .insert(format!("cat{:02}", rng.random_range(0..20)));
    } else {
        for _ in 0..5 {
            t.skus.insert(sku(rng.random_range(0..HOT_SKUS)));
        }
    }
    t
}

fn rules(rng: &mut StdRng) -> PricingRules {
    let mut promotions = Vec::with_capacity(PROMOTIONS);
    for k in 0..PROMOTIONS {
        let rule = match k % 20 {
            0 => Rule::BasketPercentOff {
                min_total_minor: rng.random_range(2_000..20_000),
                percent_bp: 500,
            },
            1..=5 => Rule::PercentOff {
                target: target(rng),
                percent_bp: rng.random_range(500..5_000),
            },
            6..=9 => Rule::AmountOff {
                target: target(rng),
                amount_minor: rng.random_range(10..200),
            },
            10..=14 => Rule::MultiBuy {
                target: target(rng),
                group: rng.random_range(2..4),
                percent_bp: if rng.random_bool(0.5) { 10_000 } else { 5_000 },
            },
            _ => Rule::MixMatch {
                target: target(rng),
                group: rng.random_range(2..4),
                price_minor: rng.random_range(300..2_000),
            },
        };
        promotions.push(Promotion {
            id: format!("promo{k:03}"),
            name: format!("Promotion {k}"),
            priority: rng.random_range(0..5),
            exclusive: rng.random_bool(0.1),
            scope: Scope {
                stores: ["s1".to_owned(), "s2".to_owned()].into(),
            },
            window: Window {
                from: LocalDateTime::parse("2026-01-01T00:00").ok(),
                until: LocalDateTime::parse("2027-01-01T00:00").ok(),
                ..Window::default()
            },
            rule,
        });
    }
    let price_lists = (0..3)
        .map(|l| PriceList {
            id: format!("list{l}"),
            name: format!("List {l}"),
            priority: l,
            scope: Scope::default(),
            window: Window::default(),
            prices: (0..100)
                .map(|_| {
                    let i = rng.random_range(0..SKUS);
                    (sku(i), price_of(i) - 10)
                })
                .collect(),
        })
        .collect();
    let categories: BTreeMap<String, BTreeSet<String>> = (0..20)
        .map(|c| {
            (
                format!("cat{c:02}"),
                (0..50).map(|k| sku(c * 50 + k)).collect(),
            )
        })
        .collect();
    let mut time_zones = BTreeMap::new();
    time_zones.insert("*".to_owned(), "Europe/Berlin".to_owned());
    PricingRules {
        price_lists,
        promotions,
        categories,
        time_zones,
    }
}

fn basket(rng: &mut StdRng) -> Vec<(usize, i64)> {
    (0..LINES)
        .map(|_| (rng.random_range(0..HOT_SKUS), rng.random_range(1..5)))
        .collect()
}

fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Wall-clock and on-CPU time of each basket: on a shared box the wall clock's p99 is the
/// scheduler's (the thread waits for a core), the CPU time's is the engine's.
#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Samples {
    fn measure<T>(&mut self, work: impl FnOnce() -> BenchResult<T>) -> BenchResult<T> {
        let (wall, cpu) = (Instant::now(), thread_cpu_time());
        let out = work()?;
        self.cpu.push(thread_cpu_time().saturating_sub(cpu));
        self.wall.push(wall.elapsed());
        Ok(out)
    }
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID, nanoseconds).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given; on failure
    // the zeroed value stays and reads as 0 s.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn bench_engine(rules: &PricingRules, baskets: &[Vec<(usize, i64)>]) -> BenchResult<()> {
    let none = PricingRules::default();
    let ctx = PriceContext {
        store: "s1",
        at: LocalDateTime::parse("2026-12-05T10:00")?,
    };
    let json = serde_json::to_string(rules)?;
    let conn = rusqlite::Connection::open_in_memory()?;
    // The store's table (`store/pricing_version.sql`): the version ahead of the JSON.
    conn.execute_batch(
        "CREATE TABLE pricing_rules (id INTEGER PRIMARY KEY, version INTEGER, updated_at TEXT, rules TEXT)",
    )?;
    conn.execute("INSERT INTO pricing_rules VALUES (1, 1, '', ?1)", [&json])?;
    let cache = pricing::RulesCache::default();
    let (mut with, mut without, mut loaded, mut cached) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let mut discounted = 0usize;
    for b in baskets {
        let lines: Vec<BasketLine> = b
            .iter()
            .map(|&(i, q)| BasketLine {
                sku: sku(i),
                quantity: Quantity::Pieces(q),
                list_price_minor: price_of(i),
            })
            .collect();
        let priced = with.measure(|| Ok(price_basket(rules, ctx, &lines)?))?;
        discounted += priced.promotions.len();
        without.measure(|| Ok(std::hint::black_box(price_basket(&none, ctx, &lines)?)))?;
        loaded.measure(|| {
            let parsed = pricing::load_rules(&conn)?.ok_or("no rules")?;
            Ok(std::hint::black_box(price_basket(&parsed, ctx, &lines)?))
        })?;
        cached.measure(|| {
            let parsed = cache.rules(&conn)?.ok_or("no rules")?;
            Ok(std::hint::black_box(price_basket(&parsed, ctx, &lines)?))
        })?;
    }
    println!(
        "Engine, {LINES}-line basket, {} baskets, {:.1} promotions applied per basket, rules JSON {} KB:",
        baskets.len(),
        discounted as f64 / baskets.len() as f64,
        json.len() / 1024
    );
    println!("| pricing | p50 | p99 | on-CPU p50 | on-CPU p99 |\n|---|---|---|---|---|");
    for (name, samples) in [
        ("no rules (baseline)", without),
        (
            &format!("{PROMOTIONS} promotions, 3 price lists") as &str,
            with,
        ),
        (
            "same, parsing the rules each time (SQLite + JSON parse)",
            loaded,
        ),
        (
            "same, rules from the cache (SQLite reads their version)",
            cached,
        ),
    ] {
        let (p50, p99) = quantiles(samples.wall);
        let (cpu50, cpu99) = quantiles(samples.cpu);
        println!(
            "| {name} | {} | {} | {} | {} |",
            micros(p50),
            micros(p99),
            micros(cpu50),
            micros(cpu99)
        );
    }
    Ok(())
}

async fn open_store(dir: &std::path::Path, name: &str) -> BenchResult<Store> {
    let store = Store::open(
        StoreOptions {
            path: dir.join(name),
            max_batch: 64,
            writer_id: "s1.bench".into(),
        },
        Box::new(NoHook),
    )?;
    store
        .write(|conn| {
            for i in 0..SKUS {
                let item = Item {
                    sku: sku(i),
                    name: sku(i),
                    price_minor: price_of(i),
                    currency: "EUR".into(),
                    tax_class: "standard".into(),
                    variable_measure: false,
                    gtins: Vec::new(),
                    epc_patterns: Vec::new(),
                };
                catalog::upsert(conn, &item, "2026-12-05T00:00:00.000Z")?;
            }
            Ok(())
        })
        .await?;
    Ok(store)
}

async fn sell(store: &Store, lines: &[(usize, i64)]) -> BenchResult<Duration> {
    let request = SaleRequest {
        coupons: Vec::new(),
        lines: lines
            .iter()
            .map(|&(i, q)| SaleLineRequest {
                sku: Some(sku(i)),
                gtin: None,
                quantity: Some(q),
                weight_grams: None,
                epc: None,
            })
            .collect(),
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount_minor: 10_000_000,
            reference: None,
        }],
        member: None,
    };
    let started = Instant::now();
    let rules = store.pricing();
    store
        .write(move |conn| {
            let tax = TaxConfig {
                prices_include_tax: true,
                classes: vec![("standard".into(), 1900)],
            };
            let now = storenode::clock::now_utc();
            let ctx = WriteContext {
                terminal: "pos1",
                writer_id: "s1.bench",
                currency: "EUR",
                tax: &tax,
                now: &now,
                pricing: Some(&rules),
            };
            record_sale(conn, &ctx, &request)
        })
        .await?;
    Ok(started.elapsed())
}

async fn bench_sales(rules: PricingRules, baskets: &[Vec<(usize, i64)>]) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let plain = open_store(dir.path(), "plain.db").await?;
    let promo = open_store(dir.path(), "promo.db").await?;
    promo
        .write(move |conn| pricing::save_rules(conn, &rules, "2026-12-05T00:00:00.000Z"))
        .await?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for b in baskets {
        without.push(sell(&plain, b).await?);
        with.push(sell(&promo, b).await?);
    }
    let (p50_without, p99_without) = quantiles(without);
    let (p50_with, p99_with) = quantiles(with);
    println!(
        "\nSale path, {LINES}-line sale, {} sales each, durable before the answer:",
        baskets.len()
    );
    println!("| sale | p50 | p99 |\n|---|---|---|");
    println!(
        "| without promotions (baseline) | {} | {} |",
        micros(p50_without),
        micros(p99_without)
    );
    println!(
        "| with {PROMOTIONS} promotions | {} ({:.2}×) | {} ({:.2}×) |",
        micros(p50_with),
        p50_with.as_secs_f64() / p50_without.as_secs_f64(),
        micros(p99_with),
        p99_with.as_secs_f64() / p99_without.as_secs_f64()
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n_baskets, n_sales) = if quick { (2_000, 300) } else { (20_000, 2_000) };
    let mut rng = StdRng::seed_from_u64(22);
    let rules = rules(&mut rng);
    rules.validate()?;
    let baskets: Vec<_> = (0..n_baskets).map(|_| basket(&mut rng)).collect();
    bench_engine(&rules, &baskets)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(bench_sales(rules, &baskets[..n_sales]))
}
