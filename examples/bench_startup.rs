//! Start-up benchmark (issue 11, item A). Not a test: it prints a table.
//!
//! ```sh
//! cargo build --release --bin storenode                    # for the peak-RSS columns
//! cargo run --release --example bench_startup              # 1,000,000 past movements
//! cargo run --release --example bench_startup -- --quick   # 100,000
//! cargo run --release --example bench_startup -- --bin PATH  # another storenode binary
//! ```
//!
//! In one run, three nodes of store `s1`, each restarted [`REPEATS`] times:
//! - **empty**: no past movements (the baseline);
//! - **one epoch**: N past movements over 10,000 SKUs, all in the stock document's epoch 0
//!   (HQ synced, no epoch switch);
//! - **after an epoch switch**: the same N movements, then HQ opens epoch 1 and the node
//!   moves over, so its document holds only the base and its carry-over.
//!
//! Measured per restart, in process: *start to ready* (`Node::start` returned: store open,
//! API listening, `/readyz` 200) and *start to sync-ready* (the sync documents are loaded
//! and the sync service runs). The movements are written in commits of 100, as a busy store
//! would, each becoming one automerge change, while the node is cut off from the broker;
//! then it reconnects and HQ acknowledges everything before the restarts. The median of the repeats is printed. After
//! each restart the node's document must agree with its SQLite stock (checked, not timed).
//!
//! Each repeat restarts the node warm (the database in the page cache, as the previous stop
//! left it) and then cold: every file of the data directory is fsynced and dropped from the
//! page cache with `posix_fadvise(POSIX_FADV_DONTNEED)` first, as after a reboot (the
//! binary and shared libraries stay cached). Peak RSS is not measured in process (the bench
//! itself, HQ and the setup's allocations would count): the real `storenode` binary
//! (`target/release/storenode` beside this example, or `--bin PATH`) is started as a child
//! on the same data directory, cold and then warm; its start to `/readyz` 200 is timed over
//! HTTP and its `VmHWM` (peak resident set) read from `/proc/PID/status` once `/readyz`
//! answers and again once `/metrics` shows the sync documents loaded. It is stopped with
//! SIGTERM (a clean stop, so the next start skips the full `quick_check`).
//!
//! The broker is `/usr/sbin/mosquitto` on a free loopback port when installed, else the
//! embedded broker (rumqttd).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use storenode::config::{Config, Secret};
use storenode::daemon::Node;
use storenode::demo::link::Link;
use storenode::hq::Hq;
use storenode::store::catalog::{self, Item};
use storenode::store::ledger::{self, Movement, MovementKind};
use storenode::sync::config::{BrokerConfig, HqConfig, SyncConfig};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const MOVEMENTS_PER_COMMIT: usize = 100;
const SKUS: usize = 10_000;
const STORE: &str = "s1";
const REPEATS: usize = 5;
const LIMIT: Duration = Duration::from_secs(600);

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Empty,
    OneEpoch,
    AfterSwitch,
}

impl Case {
    fn name(self, past: usize) -> String {
        match self {
            Case::Empty => "0 movements".into(),
            Case::OneEpoch => format!("{past} movements, one epoch"),
            Case::AfterSwitch => format!("{past} movements, after an epoch switch"),
        }
    }
}

struct Row {
    name: String,
    ready: Duration,
    /// `PRAGMA quick_check` alone on the same file, node stopped: the store's own check at
    /// open, part of "start to ready" and growing with the database.
    quick_check: Duration,
    /// `Store::open` alone (quick_check, migrations, writer thread), node stopped.
    store_open: Duration,
    sync_ready: Duration,
    cold_ready: Duration,
    cold_sync_ready: Duration,
    doc_bytes: u64,
    /// The `storenode` binary as a child process, cold and warm.
    binary: BinaryRow,
}

/// Medians of the child-process starts and the highest peak RSS seen.
#[derive(Default)]
struct BinaryRow {
    cold_ready: Duration,
    warm_ready: Duration,
    /// VmHWM when `/readyz` first answered 200, KiB.
    hwm_at_ready_kib: u64,
    /// VmHWM once the sync documents were loaded, KiB.
    hwm_loaded_kib: u64,
    /// VmRSS at the same moment, KiB.
    rss_loaded_kib: u64,
}

/// One start of the child binary.
struct BinaryStart {
    ready: Duration,
    hwm_at_ready_kib: u64,
    hwm_loaded_kib: u64,
    rss_loaded_kib: u64,
}

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let bin = match args.iter().position(|a| a == "--bin") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--bin needs a path")?),
        None => default_binary()?,
    };
    if !bin.is_file() {
        return Err(format!(
            "{} not found: `cargo build --release --bin storenode` or pass --bin PATH",
            bin.display()
        )
        .into());
    }
    storenode::telemetry::init("warn", storenode::config::LogFormat::Human);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(if quick { 100_000 } else { 1_000_000 }, &bin))
}

/// `target/release/storenode`: this example runs from `target/release/examples/`.
fn default_binary() -> BenchResult<PathBuf> {
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    Ok(release.join("storenode"))
}

async fn run(past: usize, bin: &Path) -> BenchResult<()> {
    let broker = Broker::start()?;
    println!("broker: {} on {}", broker.kind, broker.addr);
    println!("binary: {}", bin.display());
    let mut rows = Vec::new();
    for case in [Case::Empty, Case::OneEpoch, Case::AfterSwitch] {
        let row = measure(broker.addr, case, past, bin).await?;
        eprintln!(
            "done: {}: ready {:.0} ms warm / {:.0} ms cold, sync-ready {:.0} ms warm / {:.0} ms cold, \
             peak RSS {} KiB",
            row.name,
            ms(row.ready),
            ms(row.cold_ready),
            ms(row.sync_ready),
            ms(row.cold_sync_ready),
            row.binary.hwm_loaded_kib
        );
        rows.push(row);
    }
    print_in_process(&rows);
    print_binary(&rows);
    Ok(())
}

fn print_in_process(rows: &[Row]) {
    println!(
        "\n{:<44} {:>14} {:>16} {:>16} {:>20} {:>16}",
        "node holding",
        "start→ready",
        "(store open)",
        "(quick_check)",
        "start→sync-ready",
        "stock doc KiB"
    );
    for r in rows {
        println!(
            "{:<44} {:>11.0} ms {:>13.0} ms {:>13.0} ms {:>17.0} ms {:>16}",
            r.name,
            ms(r.ready),
            ms(r.store_open),
            ms(r.quick_check),
            ms(r.sync_ready),
            r.doc_bytes / 1024
        );
    }
    println!(
        "\n{:<44} {:>14} {:>14} {:>20} {:>20}",
        "in process, warm vs cold",
        "warm→ready",
        "cold→ready",
        "warm→sync-ready",
        "cold→sync-ready"
    );
    for r in rows {
        println!(
            "{:<44} {:>11.0} ms {:>11.0} ms {:>17.0} ms {:>17.0} ms",
            r.name,
            ms(r.ready),
            ms(r.cold_ready),
            ms(r.sync_ready),
            ms(r.cold_sync_ready)
        );
    }
    println!(
        "medians of {REPEATS} restarts; movements over {SKUS} SKUs in commits of \
         {MOVEMENTS_PER_COMMIT}; stock doc: last full save + changes logged since; cold: the \
         data directory's files dropped from the page cache before the start"
    );
}

fn print_binary(rows: &[Row]) {
    println!(
        "\n{:<44} {:>14} {:>14} {:>18} {:>18} {:>16}",
        "storenode binary (child)",
        "cold→ready",
        "warm→ready",
        "peak RSS @ready",
        "peak RSS loaded",
        "RSS loaded"
    );
    for r in rows {
        let b = &r.binary;
        println!(
            "{:<44} {:>11.0} ms {:>11.0} ms {:>14.1} MiB {:>14.1} MiB {:>12.1} MiB",
            r.name,
            ms(b.cold_ready),
            ms(b.warm_ready),
            mib(b.hwm_at_ready_kib),
            mib(b.hwm_loaded_kib),
            mib(b.rss_loaded_kib)
        );
    }
    println!(
        "process start to /readyz 200 over HTTP (polled every {} ms), medians of {REPEATS}; \
         peak RSS = VmHWM, the highest of the {REPEATS} cold and {REPEATS} warm starts, at the \
         first 200 and once /metrics shows the sync documents loaded",
        POLL.as_millis()
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn measure(broker: SocketAddr, case: Case, past: usize, bin: &Path) -> BenchResult<Row> {
    let dir = tempfile::tempdir()?;
    let store_dir = dir.path().join("store");
    let hq = start_hq(dir.path(), broker).await?;
    {
        // Written offline and then synced in bundles: online, every commit's round trip
        // to HQ would make writing a million movements take far longer than the start-up.
        let link = Link::start(broker).await?;
        let node = start_node(&store_dir, link.addr).await?;
        wait_sync_ready(&node).await?;
        add_catalog(&node, SKUS).await?;
        link.cut();
        let movements = if case == Case::Empty { 0 } else { past };
        let mut done = 0;
        while done < movements {
            let n = (10 * 1000).min(movements - done);
            make_movements(&node, done, n).await?;
            done += n;
            eprintln!(
                "{}: {done} / {movements} movements written",
                case.name(past)
            );
        }
        link.restore();
        wait_drained(&node).await?;
        if case == Case::AfterSwitch {
            switch_epoch(&hq, &node).await?;
        }
        node.stop().await;
    }
    let mut ready = Vec::new();
    let mut sync_ready = Vec::new();
    let mut quick_check = Vec::new();
    let mut store_open = Vec::new();
    let mut cold_ready = Vec::new();
    let mut cold_sync_ready = Vec::new();
    let mut binary = Vec::new();
    let mut doc_bytes = 0;
    let child_config = write_child_config(dir.path(), &store_dir, broker)?;
    for _ in 0..REPEATS {
        // Warm: the previous stop (or the setup) left the files in the page cache.
        let (took, took_sync, db, bytes) = restart_in_process(&store_dir, broker).await?;
        doc_bytes = bytes;
        ready.push(took);
        sync_ready.push(took_sync);
        quick_check.push(time_quick_check(&db)?);
        store_open.push(time_store_open(&db).await?);
        drop_page_cache(&store_dir)?;
        let (took, took_sync, _, _) = restart_in_process(&store_dir, broker).await?;
        cold_ready.push(took);
        cold_sync_ready.push(took_sync);
        drop_page_cache(&store_dir)?;
        let cold = start_binary(bin, &child_config).await?;
        let warm = start_binary(bin, &child_config).await?;
        binary.push((cold, warm));
    }
    hq.stop().await;
    Ok(Row {
        name: case.name(past),
        ready: median(ready),
        quick_check: median(quick_check),
        store_open: median(store_open),
        sync_ready: median(sync_ready),
        cold_ready: median(cold_ready),
        cold_sync_ready: median(cold_sync_ready),
        doc_bytes,
        binary: binary_row(&binary),
    })
}

fn binary_row(starts: &[(BinaryStart, BinaryStart)]) -> BinaryRow {
    let all = || starts.iter().flat_map(|(c, w)| [c, w]);
    BinaryRow {
        cold_ready: median(starts.iter().map(|(c, _)| c.ready).collect()),
        warm_ready: median(starts.iter().map(|(_, w)| w.ready).collect()),
        hwm_at_ready_kib: all().map(|s| s.hwm_at_ready_kib).max().unwrap_or(0),
        hwm_loaded_kib: all().map(|s| s.hwm_loaded_kib).max().unwrap_or(0),
        rss_loaded_kib: all().map(|s| s.rss_loaded_kib).max().unwrap_or(0),
    }
}

/// Starts the node in process; returns start→ready, start→sync-ready, the database path and
/// the stored stock document's bytes. The loaded document is checked against SQLite (not
/// timed).
async fn restart_in_process(
    store_dir: &Path,
    broker: SocketAddr,
) -> BenchResult<(Duration, Duration, PathBuf, u64)> {
    let began = Instant::now();
    let node = start_node(store_dir, broker).await?;
    let ready = began.elapsed();
    wait_sync_ready(&node).await?;
    let sync_ready = began.elapsed();
    let doc_bytes = stored_doc_bytes(&node).await?;
    check_doc_matches_sqlite(&node).await?;
    let db = node.state.config.database.path.clone();
    node.stop().await;
    Ok((ready, sync_ready, db, doc_bytes))
}

/// fsync and `POSIX_FADV_DONTNEED` every file under `dir`: the next start reads them from
/// disk (the page cache drops only clean pages, hence the fsync first).
fn drop_page_cache(dir: &Path) -> BenchResult<()> {
    use std::os::fd::AsRawFd;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            drop_page_cache(&path)?;
            continue;
        }
        if !path.is_file() {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        file.sync_all()?;
        // SAFETY: a valid open descriptor; the call only advises the kernel.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(format!("posix_fadvise {}: error {rc}", path.display()).into());
        }
    }
    Ok(())
}

/// A `storenode run` configuration for the child: the same data directory, store and
/// broker as the in-process node, a free loopback port.
fn write_child_config(dir: &Path, store_dir: &Path, broker: SocketAddr) -> BenchResult<PathBuf> {
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let path = dir.join("child.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\ntenant = \"{tenant}\"\nstore_id = \"{STORE}\"\nnode_id = \"lane1\"\n\
             data_dir = {data_dir:?}\n\n[log]\nlevel = \"warn\"\n\n[api]\nlisten = \"{listen}\"\n\n\
             [[api.terminals]]\nid = \"pos1\"\ntoken = \"{token}\"\n\n[sync]\n\
             broker = \"mqtt://{broker}\"\nresend_interval_ms = 500\nreconnect_max_ms = 500\n",
            data_dir = store_dir.display().to_string(),
            token = storenode::config::DEMO_TOKEN,
            tenant = tenant_of(store_dir),
        ),
    )?;
    Ok(path)
}

const POLL: Duration = Duration::from_millis(10);

/// Runs the binary until `/readyz` answers 200 and the sync documents are loaded, reads its
/// peak RSS, stops it with SIGTERM.
async fn start_binary(bin: &Path, config: &Path) -> BenchResult<BinaryStart> {
    let text = std::fs::read_to_string(config)?;
    let listen: SocketAddr = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .and_then(|l| l.strip_suffix('"'))
        .ok_or("no listen address in the child configuration")?
        .parse()?;
    let began = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("child exited at once")?;
    let deadline = Instant::now() + LIMIT;
    while http_get(listen, "/readyz").await.map(|(status, _)| status) != Some(200) {
        if Instant::now() > deadline {
            return Err("the binary did not become ready".into());
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the binary exited: {status}").into());
        }
        tokio::time::sleep(POLL).await;
    }
    let ready = began.elapsed();
    let (hwm_at_ready_kib, _) = memory_kib(pid)?;
    // /metrics allows 10 requests a second: ask it less often than /readyz.
    loop {
        let body = http_get(listen, "/metrics").await.map(|(_, b)| b);
        if body.is_some_and(|b| b.contains("storenode_sync_documents_load_ms")) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the binary's sync documents did not load".into());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (hwm_loaded_kib, rss_loaded_kib) = memory_kib(pid)?;
    let pid = libc::pid_t::try_from(pid)?;
    // SAFETY: signals our own child, which has not been reaped yet.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await??;
    if !status.success() {
        return Err(format!("the binary stopped with {status}").into());
    }
    Ok(BinaryStart {
        ready,
        hwm_at_ready_kib,
        hwm_loaded_kib,
        rss_loaded_kib,
    })
}

/// (VmHWM, VmRSS) of `pid` in KiB.
fn memory_kib(pid: u32) -> BenchResult<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> BenchResult<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib = line
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| format!("bad {name} line"))?;
        Ok(kib.parse()?)
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// A plain HTTP/1.1 GET; `None` while nothing listens yet.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

async fn time_store_open(db: &Path) -> BenchResult<Duration> {
    let began = Instant::now();
    let store = storenode::store::Store::open(
        storenode::store::StoreOptions {
            path: db.to_owned(),
            max_batch: 64,
            writer_id: format!("{STORE}.bench"),
        },
        Box::new(storenode::store::NoHook),
    )?;
    let took = began.elapsed();
    store.close().await;
    Ok(took)
}

fn time_quick_check(db: &Path) -> BenchResult<Duration> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let began = Instant::now();
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    let took = began.elapsed();
    if verdict != "ok" {
        return Err(format!("quick_check: {verdict}").into());
    }
    Ok(took)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

async fn wait_sync_ready(node: &Node) -> BenchResult<()> {
    let sync = node.sync.as_ref().ok_or("node has no sync")?;
    let deadline = Instant::now() + LIMIT;
    while !sync.service().is_loaded() {
        if Instant::now() > deadline {
            return Err("sync documents did not load".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Until HQ acknowledged every change (the outbox is empty).
async fn wait_drained(node: &Node) -> BenchResult<()> {
    let sync = node.sync.as_ref().ok_or("node has no sync")?;
    let deadline = Instant::now() + LIMIT;
    loop {
        let diag = sync.service().refresh_diag().await;
        if diag.connected && diag.outbox_pending == 0 && !diag.stock_heads.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("HQ did not acknowledge the store's changes".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// HQ opens epoch 1 of the store; waits until the node moved over and HQ has its carry-over.
async fn switch_epoch(hq: &Hq, node: &Node) -> BenchResult<()> {
    let (epoch, messages) = storenode::hq::lock(&hq.state).open_epoch(STORE)?;
    hq.send(messages);
    let sync = node.sync.as_ref().ok_or("node has no sync")?;
    let deadline = Instant::now() + LIMIT;
    while sync.service().refresh_diag().await.epoch != epoch {
        if Instant::now() > deadline {
            return Err("the node did not move to the new epoch".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_drained(node).await
}

/// The stored form of the stock document: the last full save plus the changes logged since.
async fn stored_doc_bytes(node: &Node) -> BenchResult<u64> {
    let bytes: i64 = node
        .state
        .store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT (SELECT COALESCE(sum(length(saved)), 0) FROM sync_doc
                          WHERE doc_key LIKE '%/stock')
                      + (SELECT COALESCE(sum(length(bytes)), 0) FROM sync_change
                          WHERE doc_key LIKE '%/stock')",
                [],
                |r| r.get(0),
            )?)
        })
        .await?;
    Ok(bytes.unsigned_abs())
}

/// The loaded document's store-wide stock equals SQLite's, SKU by SKU.
async fn check_doc_matches_sqlite(node: &Node) -> BenchResult<()> {
    let sync = node.sync.as_ref().ok_or("node has no sync")?;
    let docs = sync.service().docs().ok_or("sync not running")?;
    let in_doc = storenode::sync::local::levels_by_sku(
        &storenode::sync::local::lock(docs).stock().stock_levels(),
    );
    let in_sqlite: std::collections::BTreeMap<String, i64> = node
        .state
        .store
        .read(|conn| ledger::page(conn, "", 100_000))
        .await?
        .into_iter()
        .filter(|r| r.on_hand != 0)
        .map(|r| (r.sku, r.on_hand))
        .collect();
    let in_doc: std::collections::BTreeMap<String, i64> = in_doc
        .into_iter()
        .map(|(sku, (on_hand, _))| (sku, on_hand))
        .filter(|(_, q)| *q != 0)
        .collect();
    if in_doc != in_sqlite {
        return Err("the loaded stock document disagrees with SQLite".into());
    }
    Ok(())
}

fn broker_config(addr: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: None,
    }
}

/// A tenant per case (from its store's directory): the cases share one broker, and what
/// an earlier case left retained there (HQ's heads and epochs, the lane's status) would
/// otherwise be taken for this case's own (a new HQ, a new incarnation of the same lane).
fn tenant_of(store_dir: &Path) -> String {
    // FNV-1a of the path: stable for the case's HQ, node and child, apart between cases.
    let hash = store_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("bench{:x}", hash % (1 << 40))
}

async fn start_hq(dir: &Path, broker: SocketAddr) -> BenchResult<Hq> {
    Ok(Hq::start(&HqConfig {
        database_url: None,
        documents_in_memory: None,
        tenant: tenant_of(&dir.join("store")),
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

async fn start_node(dir: &Path, broker: SocketAddr) -> BenchResult<Node> {
    std::fs::create_dir_all(dir)?;
    let mut config = Config::demo(dir, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    config.node.tenant = tenant_of(dir);
    config.node.store_id = STORE.into();
    config.sync = Some(SyncConfig {
        broker: broker_config(broker),
        resend_interval: Duration::from_millis(500),
        reconnect_max: Duration::from_millis(500),
        online_escrow_units: 0,
        lanes: None,
    });
    Ok(Node::start(config).await?)
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

/// `count` movements from `first` on (SKU `i % SKUS`), in commits of 100: every 7th a
/// receipt of 5, the rest single-unit sales.
async fn make_movements(node: &Node, first: usize, count: usize) -> BenchResult<()> {
    let mut done = 0;
    while done < count {
        let n = MOVEMENTS_PER_COMMIT.min(count - done);
        let start = first + done;
        node.state
            .store
            .write(move |conn| {
                let now = storenode::clock::now_utc();
                for i in start..start + n {
                    let s = sku(i % SKUS);
                    let receipt = i.is_multiple_of(7);
                    let m = Movement {
                        sku: &s,
                        kind: if receipt {
                            MovementKind::Receipt
                        } else {
                            MovementKind::Sale
                        },
                        on_hand_delta: if receipt { 5 } else { -1 },
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
        done += n;
    }
    Ok(())
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
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        if Path::new(MOSQUITTO).exists() {
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     max_packet_size 262144\nlog_dest none\n",
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
