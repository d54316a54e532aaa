//! Sync benchmark (issue 11). Not a test: it prints a table.
//!
//! ```sh
//! cargo run --release --example bench_sync            # full: up to 100,000 movements
//! cargo run --release --example bench_sync -- --quick # smaller sizes, a few seconds
//! cargo run --release --example bench_sync -- --hot   # only the hot SKU, 3 runs, medians
//! cargo run --release --example bench_sync -- --peer  # only issue 20's cases, beside cr-sqlite
//! ```
//!
//! 1. Offline catch-up: a store node (`Node::start` with `[sync]`) is cut off from the broker
//!    (a TCP link that drops), makes N stock movements in group commits of 100 (a busy
//!    store) or of 3 (a quiet store's 3-line sales, each its own commit), and is
//!    reconnected. Two patterns in the same run: *regular* (SKU `i % skus`, every 7th a
//!    receipt of 5, the rest sales of 1) and *random* (a seeded generator: uniform SKU, every
//!    7th on average a receipt of 1–24, the rest sales of 1–3). Measured until HQ's copy of the store's document has the store's heads:
//!    the time, the sync payload bytes on the wire both ways, bytes per movement.
//!    The naive baseline, in the same run over the same broker: every movement published as
//!    its own JSON message (QoS 1) to a subscriber, until the subscriber has all N.
//! 2. Hot SKU: the local cost per movement (SQLite + automerge change + outbox, per commit)
//!    in the first and the last tenth of 100,000 movements on one SKU: flat means the
//!    per-writer totals do not slow down as the key gets hot. The median commit of each
//!    tenth, so a compile running beside the benchmark does not decide the figure.
//!
//! 3. Beside cr-sqlite (issue 20, item 4): for every catch-up scenario, when
//!    `examples/peer_crsqlite/node_modules` is installed (`npm ci` there, see its README),
//!    the same movements (the plan is written to a file) go through cr-sqlite with the same
//!    model (per-writer totals, one CRR row per writer and SKU), the same durability (WAL,
//!    `synchronous=FULL`, one transaction per commit) and the same commit size; it reports
//!    local µs per movement, the row changes and bytes it ships from the cut (raw and
//!    DEFLATE-compressed) and the time to merge them into a second database. A second
//!    table prints both side by side with ratios. `--no-peer` skips it.
//!
//!    Time on the same footing: a subscriber beside HQ captures the change messages the
//!    store publishes; after each run a second HQ (`HqState` on its own SQLite database)
//!    takes the pre-cut ones, then applies the catch-up ones with HQ's code for queued
//!    messages (`handle_many`), timed: storenode's in-process merge, beside cr-sqlite's.
//!    The end-to-end figure stays, with a timeline of where it went (CONNACK, the backlog
//!    recorded, published, HQ has all, acknowledged; `SyncService::catch_up`).
//!
//! Start-up with 1,000,000 past movements is measured by `examples/bench_startup.rs`.
//!
//! The broker is `/usr/sbin/mosquitto` on a free loopback port when installed, else the
//! embedded broker (rumqttd).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use storenode::config::{Config, Secret};
use storenode::daemon::Node;
use storenode::demo::link::Link;
use storenode::hq::Hq;
use storenode::hq::state::HqState;
use storenode::store::catalog::{self, Item};
use storenode::store::ledger::{self, Movement, MovementKind};
use storenode::sync::config::{BrokerConfig, HqConfig, SyncConfig};
use storenode::sync::service::CatchUp;
use storenode::sync::topics::{Id, Scope, TopicSpace};
use storenode::sync::transport::{Incoming, MqttTransport, QoS, TransportConfig};
use storenode::sync::wire::WireMetrics;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// A busy store's group commit; [`SMALL_COMMIT`] is a quiet store's 3-line sale.
const MOVEMENTS_PER_COMMIT: usize = 100;
const SMALL_COMMIT: usize = 3;
/// The random pattern's generator seed: every run makes the same movements.
const SEED: u64 = 11;
const STORE: &str = "s1";
const LIMIT: Duration = Duration::from_secs(300);
/// Runs of the hot-SKU scenario in `--hot` mode.
const HOT_REPEATS: usize = 3;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Scenario {
    name: &'static str,
    movements: usize,
    skus: usize,
    per_commit: usize,
    pattern: Pattern,
}

#[derive(Clone, Copy)]
enum Pattern {
    /// SKU `i % skus`; every 7th a receipt of 5, the rest sales of 1.
    Regular,
    /// Seeded random SKU and quantity: receipts of 1–24 (one in 7), sales of 1–3.
    Random,
}

/// One planned movement: SKU index and on-hand delta (positive: a receipt).
#[derive(Clone, Copy)]
struct Planned {
    sku: usize,
    delta: i64,
}

struct Outcome {
    name: &'static str,
    movements: usize,
    commits: usize,
    /// Automerge changes of the store that HQ received from the cut on.
    changes_shipped: usize,
    peer: Option<PeerOutcome>,
    local_us_first: f64,
    local_us_last: f64,
    converge: Duration,
    /// Where the converge time went, from the link's restore on.
    timeline: Timeline,
    /// storenode's merge in one process (no network): HQ's code applying the catch-up.
    in_process: InProcess,
    sync_bytes: u64,
    naive: Duration,
    naive_bytes: u64,
}

/// Milliseconds from the link's restore to each step of the catch-up (`None`: not seen).
#[derive(Default)]
struct Timeline {
    connected: Option<f64>,
    round_began: Option<f64>,
    recorded: Option<f64>,
    first_published: Option<f64>,
    last_published: Option<f64>,
    /// HQ's copy of the store's document has the store's heads (polled by the bench).
    hq_has_all: Option<f64>,
    acknowledged: Option<f64>,
}

impl Timeline {
    fn of(restored: Instant, t: &CatchUp, hq_has_all: Option<Instant>) -> Self {
        let ms = |at: Option<Instant>| {
            at.map(|at| at.saturating_duration_since(restored).as_secs_f64() * 1e3)
        };
        Self {
            connected: ms(t.connected),
            round_began: ms(t.round_began),
            recorded: ms(t.recorded),
            first_published: ms(t.first_published),
            last_published: ms(t.last_published),
            hq_has_all: ms(hq_has_all),
            acknowledged: ms(t.acknowledged),
        }
    }
}

/// storenode's merge on the same footing as cr-sqlite's: in one process, no network.
#[derive(Default)]
struct InProcess {
    /// The store node recording its offline backlog as changes (one SQLite commit): the
    /// counterpart of cr-sqlite's extract, taken from the live run's timeline.
    record_ms: Option<f64>,
    /// HQ's code (`HqState::handle_many`: decode, apply, store in SQLite, update the read
    /// model) applying the catch-up messages as captured off the broker.
    merge_ms: f64,
    messages: usize,
}

/// What `examples/peer_crsqlite/bench.mjs` reports (one JSON object).
#[derive(serde::Deserialize)]
struct PeerOutcome {
    movements: usize,
    commits: usize,
    local_us_first: f64,
    local_us_last: f64,
    row_changes: usize,
    bytes_raw: u64,
    bytes_compressed: u64,
    extract_ms: f64,
    merge_ms: f64,
    mismatches: usize,
}

fn peer_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/peer_crsqlite")
}

/// Whether to run cr-sqlite beside storenode: installed, and not `--no-peer`.
fn peer_wanted() -> bool {
    let installed = peer_dir()
        .join("node_modules/@vlcn.io/crsqlite/dist")
        .exists();
    if !installed {
        eprintln!(
            "cr-sqlite not installed: run `npm ci` in examples/peer_crsqlite (see its README) \
             to compare with it"
        );
    }
    installed && !std::env::args().any(|a| a == "--no-peer")
}

/// Runs cr-sqlite on the same movements (`plan`, movement 0 synced before the cut).
fn run_peer(dir: &Path, plan: &[Planned], per_commit: usize) -> BenchResult<PeerOutcome> {
    let plan_path = dir.join("plan.csv");
    let text: String = plan
        .iter()
        .map(|p| format!("{},{}\n", p.sku, p.delta))
        .collect();
    std::fs::write(&plan_path, text)?;
    let work = dir.join("peer");
    std::fs::create_dir_all(&work)?;
    let output = Command::new("node")
        .arg(peer_dir().join("bench.mjs"))
        .arg("--plan")
        .arg(&plan_path)
        .arg("--per-commit")
        .arg(per_commit.to_string())
        .arg("--dir")
        .arg(&work)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("cr-sqlite peer failed: {}", output.status).into());
    }
    let outcome: PeerOutcome = serde_json::from_slice(&output.stdout)?;
    if outcome.mismatches != 0 {
        return Err(format!("cr-sqlite merge differs in {} SKUs", outcome.mismatches).into());
    }
    Ok(outcome)
}

fn main() -> BenchResult<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let hot = std::env::args().any(|a| a == "--hot");
    storenode::telemetry::init("warn", storenode::config::LogFormat::Human);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if hot {
        return runtime.block_on(hot_only());
    }
    runtime.block_on(run(quick))
}

/// `-- --hot`: only the hot-SKU scenario, [`HOT_REPEATS`] times, each row and the medians.
async fn hot_only() -> BenchResult<()> {
    let broker = Broker::start()?;
    println!("broker: {} on {}", broker.kind, broker.addr);
    let s = scenario("100,000 on one hot SKU", 100_000, 1);
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    for repeat in 1..=HOT_REPEATS {
        let o = offline_catch_up(broker.addr, &s).await?;
        println!(
            "repeat {repeat}: µs/movement first 10% {:.1} → last 10% {:.1} (ratio {:.2})",
            o.local_us_first,
            o.local_us_last,
            o.local_us_last / o.local_us_first
        );
        firsts.push(o.local_us_first);
        lasts.push(o.local_us_last);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (first, last) = (median(&mut firsts), median(&mut lasts));
    println!(
        "median of {HOT_REPEATS}: {first:.1} → {last:.1} µs/movement (ratio {:.2})",
        last / first
    );
    Ok(())
}

async fn run(quick: bool) -> BenchResult<()> {
    let broker = Broker::start()?;
    println!("broker: {} on {}", broker.kind, broker.addr);
    let scenarios = if std::env::args().any(|a| a == "--peer") {
        // Issue 20's comparison: the random pattern at 100 and 3 per commit, the regular
        // one at 3 per commit.
        vec![
            random(
                "100,000 random over 10,000 SKUs",
                100_000,
                10_000,
                MOVEMENTS_PER_COMMIT,
            ),
            random(
                "10,000 random over 10,000 SKUs",
                10_000,
                10_000,
                MOVEMENTS_PER_COMMIT,
            ),
            random(
                "10,000 random over 10,000, 3/commit",
                10_000,
                10_000,
                SMALL_COMMIT,
            ),
            scenario("10,000 over 10,000 SKUs, 3/commit", 10_000, 10_000).commits_of(SMALL_COMMIT),
        ]
    } else if quick {
        vec![
            scenario("1,000 over 1,000 SKUs", 1_000, 1_000),
            scenario("10,000 over 10,000 SKUs", 10_000, 10_000),
            scenario("10,000 on one hot SKU", 10_000, 1),
            random(
                "10,000 random over 10,000 SKUs",
                10_000,
                10_000,
                MOVEMENTS_PER_COMMIT,
            ),
            scenario("1,000 over 10,000 SKUs, 3/commit", 1_000, 10_000).commits_of(SMALL_COMMIT),
            random(
                "1,000 random over 10,000, 3/commit",
                1_000,
                10_000,
                SMALL_COMMIT,
            ),
        ]
    } else {
        vec![
            scenario("1,000 over 10,000 SKUs", 1_000, 10_000),
            scenario("10,000 over 10,000 SKUs", 10_000, 10_000),
            scenario("100,000 over 10,000 SKUs", 100_000, 10_000),
            scenario("100,000 on one hot SKU", 100_000, 1),
            random(
                "10,000 random over 10,000 SKUs",
                10_000,
                10_000,
                MOVEMENTS_PER_COMMIT,
            ),
            random(
                "100,000 random over 10,000 SKUs",
                100_000,
                10_000,
                MOVEMENTS_PER_COMMIT,
            ),
            scenario("1,000 over 10,000 SKUs, 3/commit", 1_000, 10_000).commits_of(SMALL_COMMIT),
            scenario("10,000 over 10,000 SKUs, 3/commit", 10_000, 10_000).commits_of(SMALL_COMMIT),
            random(
                "1,000 random over 10,000, 3/commit",
                1_000,
                10_000,
                SMALL_COMMIT,
            ),
            random(
                "10,000 random over 10,000, 3/commit",
                10_000,
                10_000,
                SMALL_COMMIT,
            ),
        ]
    };
    let peer = peer_wanted();
    let mut outcomes = Vec::new();
    for s in &scenarios {
        let mut outcome = offline_catch_up(broker.addr, s).await?;
        if peer {
            let dir = tempfile::tempdir()?;
            outcome.peer = Some(run_peer(dir.path(), &s.plan(), s.per_commit)?);
        }
        print_row(&outcome);
        outcomes.push(outcome);
    }
    println!();
    print_table(&outcomes);
    println!();
    print_timeline(&outcomes);
    if peer {
        println!();
        print_peer_table(&outcomes);
    }
    Ok(())
}

/// The regular pattern in commits of [`MOVEMENTS_PER_COMMIT`].
fn scenario(name: &'static str, movements: usize, skus: usize) -> Scenario {
    Scenario {
        name,
        movements,
        skus,
        per_commit: MOVEMENTS_PER_COMMIT,
        pattern: Pattern::Regular,
    }
}

fn random(name: &'static str, movements: usize, skus: usize, per_commit: usize) -> Scenario {
    Scenario {
        pattern: Pattern::Random,
        ..scenario(name, movements, skus).commits_of(per_commit)
    }
}

impl Scenario {
    fn commits_of(self, per_commit: usize) -> Self {
        Self { per_commit, ..self }
    }

    /// The movements of a run: index 0 is synced before the cut, 1..=N are made offline.
    fn plan(&self) -> Vec<Planned> {
        let n = self.movements + 1;
        match self.pattern {
            Pattern::Regular => (0..n)
                .map(|i| Planned {
                    sku: i % self.skus,
                    delta: delta(i),
                })
                .collect(),
            Pattern::Random => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
                (0..n)
                    .map(|_| Planned {
                        sku: rng.random_range(0..self.skus),
                        delta: if rng.random_ratio(1, 7) {
                            rng.random_range(1..=24)
                        } else {
                            -rng.random_range(1..=3)
                        },
                    })
                    .collect()
            }
        }
    }
}

fn print_row(o: &Outcome) {
    eprintln!(
        "done: {} in {:.2} s, {} bytes",
        o.name,
        o.converge.as_secs_f64(),
        o.sync_bytes
    );
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<36} {:>8} {:>10} {:>11} {:>9} {:>11} {:>9} {:>10} {:>9} {:>11}",
        "offline movements",
        "commits",
        "sync s",
        "sync bytes",
        "B/mvmt",
        "naive s",
        "naive B",
        "B/mvmt",
        "ratio",
        "µs/mvmt 1st→last 10%"
    );
    for o in outcomes {
        let per = |bytes: u64| bytes as f64 / o.movements as f64;
        println!(
            "{:<36} {:>8} {:>10.2} {:>11} {:>9.1} {:>11.2} {:>9} {:>10.1} {:>9.3} {:>8.1} → {:.1}",
            o.name,
            o.commits,
            o.converge.as_secs_f64(),
            o.sync_bytes,
            per(o.sync_bytes),
            o.naive.as_secs_f64(),
            o.naive_bytes,
            per(o.naive_bytes),
            o.sync_bytes as f64 / o.naive_bytes.max(1) as f64,
            o.local_us_first,
            o.local_us_last,
        );
    }
    println!(
        "sync bytes: MQTT payloads both ways (store→HQ changes, HQ→store heads) from reconnect \
         to convergence; naive: one JSON message per movement, payload bytes.\n\
         µs/mvmt: local cost of a commit (SQLite, automerge change, outbox) divided by its \
         movements ({MOVEMENTS_PER_COMMIT}, or {SMALL_COMMIT} where marked), median commit of \
         the first vs the last tenth of the run.\n\
         regular: SKU i % skus, every 7th a receipt of 5, else a sale of 1; random (seed \
         {SEED}): uniform SKU, 1 in 7 a receipt of 1-24, else a sale of 1-3."
    );
}

/// storenode beside cr-sqlite, same movements, same commit size, same durability.
fn print_peer_table(outcomes: &[Outcome]) {
    println!(
        "{:<36} {:>7} {:>21} {:>21} {:>7} {:>15} {:>13} {:>13} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "storenode vs cr-sqlite",
        "commits",
        "µs/mvmt storenode",
        "µs/mvmt cr-sqlite",
        "ratio",
        "changes s / cr",
        "B/mvmt s",
        "B/mvmt cr",
        "ratio",
        "e2e s",
        "from CONNACK s",
        "in-proc merge ms",
        "cr merge ms",
        "merge ÷",
        "record ms",
        "cr extract ms"
    );
    for o in outcomes {
        let Some(p) = &o.peer else { continue };
        let n = o.movements as f64;
        let ours = (o.local_us_first + o.local_us_last) / 2.0;
        let theirs = (p.local_us_first + p.local_us_last) / 2.0;
        let ours_b = o.sync_bytes as f64 / n;
        let theirs_b = p.bytes_compressed as f64 / p.movements as f64;
        println!(
            "{:<36} {:>7} {:>9.1} → {:>9.1} {:>9.1} → {:>9.1} {:>7.2} {:>7} / {:>5} {:>13.2} {:>5.2} ({:.1} raw) {:>7.2} {:>9.2} {:>9} {:>9.1} {:>9.1} {:>7.2} {:>9} {:>9.1}",
            o.name,
            o.commits,
            o.local_us_first,
            o.local_us_last,
            p.local_us_first,
            p.local_us_last,
            ours / theirs,
            o.changes_shipped,
            p.row_changes,
            ours_b,
            theirs_b,
            p.bytes_raw as f64 / p.movements as f64,
            ours_b / theirs_b,
            o.converge.as_secs_f64(),
            o.timeline.connected.map_or("-".into(), |c| format!(
                "{:.2}",
                o.converge.as_secs_f64() - c / 1e3
            )),
            o.in_process.merge_ms,
            p.merge_ms,
            o.in_process.merge_ms / p.merge_ms,
            o.in_process
                .record_ms
                .map_or("-".into(), |r| format!("{r:.1}")),
            p.extract_ms,
        );
        debug_assert_eq!(p.commits, o.commits);
    }
    println!(
        "µs/mvmt: median commit of the first → last tenth, divided by its movements (ratio: \
         storenode ÷ cr-sqlite, of the two tenths' mean; < 1 means storenode is cheaper).\n\
         changes: automerge changes HQ received from the cut on / cr-sqlite row changes \
         since the cut. B/mvmt: storenode's MQTT payloads both ways (automerge's own \
         compression) vs cr-sqlite's changes, compact encoding, DEFLATE (raw in brackets).\n\
         e2e s: storenode from the link's restore until HQ has everything and the store has \
         HQ's acknowledgement, over Mosquitto (reconnect backoff included); from CONNACK s: \
         the same from the store's reconnect.\n\
         in-proc merge ms: storenode's catch-up messages (as shipped) applied by HQ's code \
         (HqState::handle_many: decode, apply, SQLite, read model) in one process, no \
         network; cr merge ms: cr-sqlite decompress + insert into a second database, same \
         footing. record ms: the store recording its backlog as changes (one commit, from \
         the live run); cr extract ms: cr-sqlite reading its changes since the cut + encode \
         + compress."
    );
}

/// Where the end-to-end time goes: ms from the link's restore to each step.
fn print_timeline(outcomes: &[Outcome]) {
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5}",
        "catch-up timeline, ms from restore",
        "CONNACK",
        "round",
        "recorded",
        "1st pub",
        "last pub",
        "HQ has",
        "acked",
        "converged",
        "in-proc",
        "msgs"
    );
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for o in outcomes {
        let t = &o.timeline;
        println!(
            "{:<36} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.1} {:>9.1} {:>5}",
            o.name,
            f(t.connected),
            f(t.round_began),
            f(t.recorded),
            f(t.first_published),
            f(t.last_published),
            f(t.hq_has_all),
            f(t.acknowledged),
            o.converge.as_secs_f64() * 1e3,
            o.in_process.merge_ms,
            o.in_process.messages,
        );
    }
    println!(
        "CONNACK: the store's reconnect; round: its publisher's first round; recorded: the \
         offline backlog committed as changes; 1st/last pub: stock change messages \
         acknowledged by the broker; HQ has: HQ's copy has the store's heads (polled every \
         ms); acked: the last HQ heads that emptied the outbox; converged: the bench saw \
         both. in-proc: HQ's code applying the same msgs (change messages shipped from the \
         restore on) in one process."
    );
}

/// A broker for the whole run: Mosquitto if installed, else the embedded one.
struct Broker {
    addr: SocketAddr,
    kind: &'static str,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> BenchResult<Self> {
        let dir = tempfile::tempdir()?;
        let addr = free_addr()?;
        if Path::new(MOSQUITTO).exists() {
            let conf = dir.path().join("mosquitto.conf");
            // Unlimited queue: the naive baseline floods one subscriber with 100,000 messages.
            std::fs::write(
                &conf,
                format!(
                    "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     max_packet_size 262144\nmax_queued_messages 0\nlog_dest none\n",
                    addr.port()
                ),
            )?;
            let child = Command::new(MOSQUITTO)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            wait_listening(addr)?;
            return Ok(Self {
                addr,
                kind: "mosquitto",
                child: Some(child),
                _dir: dir,
            });
        }
        let _broker = storenode::hq::broker::EmbeddedBroker::start(addr)?;
        Ok(Self {
            addr,
            kind: "embedded (rumqttd)",
            child: None,
            _dir: dir,
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_addr() -> BenchResult<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn wait_listening(addr: SocketAddr) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("broker not listening on {addr}").into())
}

fn broker_config(addr: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: None,
    }
}

async fn start_hq(dir: &Path, broker: SocketAddr, tenant: &str) -> BenchResult<Hq> {
    Ok(Hq::start(&HqConfig {
        database_url: None,
        documents_in_memory: None,
        tenant: tenant.into(),
        data_dir: dir.join("hq"),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        clients: vec![storenode::sync::config::ApiClient::admin(Secret::new(
            "bench-token-0123456789".to_owned(),
        ))],
        http_tls: None,
        broker: broker_config(broker),
        safety_stock: 0,
        embedded_broker: None,
        epoch_interval: None,
        lanes: Default::default(),
    })
    .await?)
}

async fn start_node(dir: &Path, broker: SocketAddr, tenant: &str) -> BenchResult<Node> {
    std::fs::create_dir_all(dir)?;
    let mut config = Config::demo(dir, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    config.node.tenant = tenant.into();
    config.node.store_id = STORE.into();
    config.sync = Some(SyncConfig {
        broker: broker_config(broker),
        resend_interval: Duration::from_millis(500),
        // Reconnect promptly after the cut: the figure is catch-up, not backoff.
        reconnect_max: Duration::from_millis(500),
        online_escrow_units: 0,
        lanes: None,
    });
    let node = Node::start(config).await?;
    // The sync documents load in the background; the figures start once sync runs.
    let deadline = Instant::now() + LIMIT;
    while !node.sync.as_ref().is_some_and(|s| s.service().is_loaded()) {
        if Instant::now() > deadline {
            return Err("sync documents did not load".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(node)
}

/// Every 7th movement is a receipt of 5, the rest single-unit sales: a commit of 100 never
/// nets to zero on a hot SKU (a net-zero commit makes no change at all).
fn receipt(i: usize) -> bool {
    i.is_multiple_of(7)
}

fn delta(i: usize) -> i64 {
    if receipt(i) { 5 } else { -1 }
}

fn sku(i: usize) -> String {
    format!("SKU-{i:05}")
}

async fn add_catalog(node: &Node, skus: usize) -> BenchResult<()> {
    node.state
        .store
        .write(move |conn| {
            let now = storenode::clock::now_utc();
            for i in 0..skus {
                let item = Item {
                    sku: sku(i),
                    name: format!("Item {i}"),
                    price_minor: 100,
                    currency: "EUR".into(),
                    tax_class: "standard".into(),
                    variable_measure: false,
                    gtins: Vec::new(),
                    epc_patterns: Vec::new(),
                };
                catalog::upsert(conn, &item, &now)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// Records `planned` in commits of `per_commit`; returns the wall time of each commit.
async fn make_movements(
    node: &Node,
    planned: &[Planned],
    per_commit: usize,
) -> BenchResult<Vec<Duration>> {
    let mut times = Vec::with_capacity(planned.len() / per_commit + 1);
    for chunk in planned.chunks(per_commit) {
        let chunk = chunk.to_vec();
        let began = Instant::now();
        node.state
            .store
            .write(move |conn| {
                let now = storenode::clock::now_utc();
                for p in &chunk {
                    let s = sku(p.sku);
                    let m = Movement {
                        sku: &s,
                        kind: if p.delta > 0 {
                            MovementKind::Receipt
                        } else {
                            MovementKind::Sale
                        },
                        on_hand_delta: p.delta,
                        reserved_delta: 0,
                        ref_type: "bench",
                        ref_id: "bench",
                        terminal: "bench",
                    };
                    ledger::record(conn, &m, &now)?;
                }
                Ok(())
            })
            .await?;
        times.push(began.elapsed());
    }
    Ok(times)
}

/// The node's stock heads once everything it committed is in its document: movements made
/// while cut off wait in the outbox and become changes when they are published, so until
/// the outbox is empty the document's heads are not yet the store's (`None`).
async fn node_heads(node: &Node) -> Option<Vec<String>> {
    let diag = node.sync.as_ref()?.service().refresh_diag().await;
    (diag.outbox_pending == 0).then_some(diag.stock_heads)
}

fn hq_heads(hq: &Hq) -> Vec<String> {
    storenode::hq::lock(&hq.state)
        .stock_doc(STORE)
        .map(|d| d.core().heads().iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// Changes in HQ's copy of the store's stock document.
fn hq_changes(hq: &Hq) -> usize {
    storenode::hq::lock(&hq.state)
        .stock_doc(STORE)
        .map(|d| d.core().automerge().get_changes(&[]).len())
        .unwrap_or(0)
}

async fn wait_hq_has_node(hq: &Hq, node: &Node) -> BenchResult<()> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut at_hq = hq_heads(hq);
        at_hq.sort();
        if let Some(mut target) = node_heads(node).await {
            target.sort();
            if at_hq == target {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("HQ did not converge with the store".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn wire_total(m: &WireMetrics) -> u64 {
    m.bytes_in.load(Ordering::Relaxed) + m.bytes_out.load(Ordering::Relaxed)
}

fn median_us(times: &[Duration], per_commit: usize) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    median.as_secs_f64() * 1e6 / per_commit as f64
}

/// A message as captured: when it arrived, its topic, its payload.
type Captured = (Instant, String, Vec<u8>);
/// Messages to hand to HQ's code: topic, payload.
type Messages = Vec<(String, Vec<u8>)>;

/// Every change message of the store's scope as the broker delivers it, with its arrival:
/// what the store shipped, for the in-process merge.
struct Capture {
    messages: Arc<Mutex<Vec<Captured>>>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Capture {
    async fn start(broker: SocketAddr, tenant: &str) -> BenchResult<Self> {
        let shutdown = CancellationToken::new();
        let filter =
            TopicSpace::new(Id::new(tenant)?).changes_filter(Some(&Scope::store(Id::new(STORE)?)?));
        let mut cfg = TransportConfig::new(format!("{tenant}-capture"), "127.0.0.1", broker.port());
        cfg.subscriptions = vec![(filter, QoS::AtLeastOnce)];
        cfg.max_packet_size = 4 * 1024 * 1024;
        let (_handle, mut incoming, transport) = MqttTransport::start(cfg, shutdown.clone())?;
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let (connected_tx, connected) = tokio::sync::oneshot::channel();
        let drain = tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            while let Some(event) = incoming.recv().await {
                match event {
                    Incoming::Connected => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Incoming::Message { topic, payload, .. } => {
                        let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                        sink.push((Instant::now(), topic, payload.to_vec()));
                    }
                    Incoming::Disconnected { .. } => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected).await??;
        // A subscription is active once the broker's SUBACK went out; give it a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(Self {
            messages,
            shutdown,
            tasks: vec![transport, drain],
        })
    }

    /// The messages that arrived before `at` and those from `at` on.
    async fn split_at(self, at: Instant) -> (Messages, Messages) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let all = std::mem::take(&mut *self.messages.lock().unwrap_or_else(|e| e.into_inner()));
        let (before, after): (Vec<_>, Vec<_>) = all.into_iter().partition(|(t, _, _)| *t < at);
        let strip = |v: Vec<Captured>| {
            v.into_iter()
                .map(|(_, topic, payload)| (topic, payload))
                .collect()
        };
        (strip(before), strip(after))
    }
}

/// storenode's merge in one process: a second HQ (`HqState` on its own SQLite database)
/// that holds the store's document as HQ had it before the cut, then applies the catch-up
/// messages with HQ's code for queued messages (`handle_many`), timed. Its read model
/// must then show the store's levels.
fn merge_in_process(
    dir: &Path,
    tenant: &str,
    before: &[(String, Vec<u8>)],
    catch_up: &[(String, Vec<u8>)],
    at_node: &BTreeMap<String, i64>,
) -> BenchResult<f64> {
    let mut hq = HqState::open(&dir.join("hq-in-process.db"), tenant, 0)?;
    for (i, result) in hq.handle_many(before).into_iter().enumerate() {
        result.map_err(|e| format!("in-process HQ refused pre-cut message {i}: {e:?}"))?;
    }
    let began = Instant::now();
    let results = hq.handle_many(catch_up);
    let merge_ms = began.elapsed().as_secs_f64() * 1e3;
    for (i, result) in results.into_iter().enumerate() {
        result.map_err(|e| format!("in-process HQ refused catch-up message {i}: {e:?}"))?;
    }
    let at_hq: BTreeMap<String, i64> = hq
        .store_stock(STORE)?
        .into_iter()
        .filter(|r| r.on_hand != 0)
        .map(|r| (r.sku, r.on_hand))
        .collect();
    if &at_hq != at_node {
        return Err("the in-process HQ's stock differs from the store's".into());
    }
    Ok(merge_ms)
}

/// Waits until HQ has the store's heads and the store's outbox is empty; returns when HQ
/// first had the heads (polled every millisecond once the store recorded its backlog).
async fn wait_catch_up(hq: &Hq, node: &Node) -> BenchResult<Option<Instant>> {
    let sync = node.sync.as_ref().ok_or("node has no sync")?;
    let deadline = Instant::now() + LIMIT;
    let mut hq_has_all = None;
    loop {
        let mut at_hq = hq_heads(hq);
        at_hq.sort();
        let recorded = sync.service().get().and_then(|s| s.catch_up().recorded);
        if hq_has_all.is_none() && recorded.is_some() {
            let diag = sync.service().refresh_diag().await;
            let mut heads = diag.stock_heads.clone();
            heads.sort();
            if heads == at_hq {
                hq_has_all = Some(Instant::now());
            }
        }
        if let Some(mut target) = node_heads(node).await {
            target.sort();
            if at_hq == target {
                return Ok(hq_has_all.or(Some(Instant::now())));
            }
        }
        if Instant::now() > deadline {
            return Err("HQ did not converge with the store".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn offline_catch_up(broker: SocketAddr, s: &Scenario) -> BenchResult<Outcome> {
    let dir = tempfile::tempdir()?;
    // A tenant of its own per scenario: the scenarios share one broker, and what an earlier
    // one left retained there (HQ's heads, the lane's status) would otherwise be taken for
    // this one's (a new HQ and a new incarnation of the same lane).
    let tenant = format!(
        "bench{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
            % (1 << 40)
    );
    let hq = start_hq(dir.path(), broker, &tenant).await?;
    let capture = Capture::start(broker, &tenant).await?;
    let link = Link::start(broker).await?;
    let node = start_node(&dir.path().join("store"), link.addr, &tenant).await?;
    add_catalog(&node, s.skus).await?;
    let plan = s.plan();
    // HQ must know the store's document before the cut (a first movement, synced).
    make_movements(&node, &plan[..1], 1).await?;
    wait_hq_has_node(&hq, &node).await?;

    link.cut();
    let deadline = Instant::now() + LIMIT;
    while node
        .sync
        .as_ref()
        .is_some_and(|s| s.service().is_connected())
    {
        if Instant::now() > deadline {
            return Err("store still connected after the cut".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let times = make_movements(&node, &plan[1..], s.per_commit).await?;
    let tenth = (times.len() / 10).max(1);
    let (first, last) = (&times[..tenth], &times[times.len() - tenth..]);

    let sync = node.sync.as_ref().ok_or("node has no sync")?;
    let before = wire_total(sync.service().wire_metrics());
    let changes_before = hq_changes(&hq);
    link.restore();
    let began = Instant::now();
    let hq_has_all = wait_catch_up(&hq, &node).await?;
    let converge = began.elapsed();
    let changes_shipped = hq_changes(&hq) - changes_before;
    let sync_bytes = wire_total(sync.service().wire_metrics()) - before;
    let catch_up = sync
        .service()
        .get()
        .map(|s| s.catch_up())
        .unwrap_or_default();
    let timeline = Timeline::of(began, &catch_up, hq_has_all);
    let at_node = check_levels(&hq, &node).await?;

    node.stop().await;
    hq.stop().await;
    let (pre_cut, shipped) = capture.split_at(began).await;
    let in_process = InProcess {
        record_ms: catch_up
            .round_began
            .zip(catch_up.recorded)
            .map(|(a, b)| b.saturating_duration_since(a).as_secs_f64() * 1e3),
        merge_ms: merge_in_process(dir.path(), &tenant, &pre_cut, &shipped, &at_node)?,
        messages: shipped.len(),
    };
    let (naive, naive_bytes) = naive_baseline(broker, &plan[1..]).await?;
    Ok(Outcome {
        name: s.name,
        movements: s.movements,
        commits: times.len(),
        changes_shipped,
        peer: None,
        local_us_first: median_us(first, s.per_commit),
        local_us_last: median_us(last, s.per_commit),
        converge,
        timeline,
        in_process,
        sync_bytes,
        naive,
        naive_bytes,
    })
}

/// HQ's levels for the store equal the node's SQLite levels (the figures, not just heads);
/// returns the node's.
async fn check_levels(hq: &Hq, node: &Node) -> BenchResult<BTreeMap<String, i64>> {
    let at_node: BTreeMap<String, i64> = node
        .state
        .store
        .read(|conn| ledger::page(conn, "", 100_000))
        .await?
        .into_iter()
        .filter(|r| r.on_hand != 0)
        .map(|r| (r.sku, r.on_hand))
        .collect();
    let at_hq: BTreeMap<String, i64> = storenode::hq::lock(&hq.state)
        .store_stock(STORE)?
        .into_iter()
        .filter(|r| r.on_hand != 0)
        .map(|r| (r.sku, r.on_hand))
        .collect();
    if at_node != at_hq {
        return Err("HQ's stock differs from the store's".into());
    }
    Ok(at_node)
}

/// Each movement as its own JSON message (QoS 1) to one subscriber; time until all arrive.
async fn naive_baseline(broker: SocketAddr, planned: &[Planned]) -> BenchResult<(Duration, u64)> {
    let movements = planned.len();
    let shutdown = CancellationToken::new();
    let topic = "bench/naive/s1/movements";
    let mut sub_cfg = TransportConfig::new("naive-hq", "127.0.0.1", broker.port());
    sub_cfg.subscriptions = vec![(topic.to_owned(), QoS::AtLeastOnce)];
    sub_cfg.incoming_capacity = 4096;
    let (_sub, mut incoming, sub_task) = MqttTransport::start(sub_cfg, shutdown.clone())?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let drain = tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        while let Some(event) = incoming.recv().await {
            match event {
                Incoming::Connected => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Incoming::Message { .. } => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Incoming::Disconnected { .. } => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed).await??;
    let mut pub_cfg = TransportConfig::new("naive-store", "127.0.0.1", broker.port());
    pub_cfg.max_pending_publishes = 256;
    let (publisher, mut pub_events, pub_task) = MqttTransport::start(pub_cfg, shutdown.clone())?;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = pub_events.recv().await {
            if event == Incoming::Connected {
                return;
            }
        }
    })
    .await?;
    tokio::spawn(async move { while pub_events.recv().await.is_some() {} });
    // A subscription is active once the broker's SUBACK went out; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let began = Instant::now();
    let mut bytes = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    for (i, p) in planned.iter().enumerate() {
        let payload = serde_json::to_vec(&serde_json::json!({
            "store": STORE, "writer": "s1.lane1", "seq": i + 1, "sku": sku(p.sku),
            "kind": if p.delta > 0 { "receipt" } else { "sale" },
            "delta": p.delta,
            "at": "2026-11-23T14:25:22.635Z",
        }))?;
        bytes += payload.len() as u64;
        let handle = publisher.clone();
        inflight.spawn(async move {
            handle
                .publish(topic, payload, QoS::AtLeastOnce, false)
                .await
        });
        while inflight.len() >= 256 {
            if let Some(done) = inflight.join_next().await {
                done??;
            }
        }
    }
    while let Some(done) = inflight.join_next().await {
        done??;
    }
    let deadline = Instant::now() + LIMIT;
    while received.load(Ordering::Relaxed) < movements as u64 {
        if Instant::now() > deadline {
            return Err("naive subscriber did not get every message".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = began.elapsed();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), pub_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), sub_task).await;
    drain.abort();
    Ok((elapsed, bytes))
}
