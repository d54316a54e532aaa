//! Device-layer benchmark (issue 10). Not a test: it prints a table.
//!
//! ```sh
//! cargo run --release --example bench_devices
//! ```
//!
//! 1. Decode + de-duplicate (+ persist presence changes) of an M100 notification stream,
//!    in tag reads per second, on a current-thread runtime (one core; the store's writer
//!    thread only sees the rare Enter events).
//! 2. CPU share of the whole node process while an M100 reader on a pty streams at
//!    115,200 baud line rate (11,520 bytes/s = 480 reads/s); the simulator's own CPU time
//!    (another thread) is subtracted.
//! 3. Scan-to-POS-stream latency: a scan written to a pty until its SSE event arrives at an
//!    HTTP client of the running node, p50/p99.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use storenode::config::Config;
use storenode::daemon::Node;
use storenode::devices::codec::{ReaderCodec, ReaderEvent, ReaderProtocol};
use storenode::devices::pipeline::Pipeline;
use storenode::devices::presence::{PresenceConfig, PresenceTracker, ReadPoint};
use storenode::devices::sim::{RfidSim, sample_epcs};
use storenode::devices::status::DeviceRegistry;
use storenode::diag::simulate::{pty_at, run_rfid};
use storenode::events::EventBus;
use storenode::gs1::{RcnRegion, decode_epc};
use storenode::store::devices::TagRow;
use storenode::store::{NoHook, Store, StoreOptions};

const TOKEN: &str = "bench-token-0123456789";
/// 96-bit EPC notification: BB 02 22 00 11 + 17 params + checksum + 7E = 24 bytes.
const M100_NOTIFICATION_BYTES: f64 = 24.0;
const LINE_RATE_BYTES_PER_S: f64 = 11_520.0;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    println!("storenode device benchmark ({} build)", build_kind());
    println!("{:<58} {:>16}", "measure", "result");
    let one_core = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for (label, tags, duplicates) in [
        (
            "decode+dedupe+persist, 500 tags x 20 dups (reads/s)",
            500,
            20,
        ),
        (
            "decode+dedupe+persist, 400000 new tags x 1 read (reads/s)",
            20_000,
            1,
        ),
    ] {
        let rate = one_core.block_on(throughput(
            &dir.path().join(format!("t{tags}.db")),
            tags,
            duplicates,
        ))?;
        println!("{label:<58} {rate:>16.0}");
    }
    let node_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let share = node_rt.block_on(line_rate_cpu(dir.path()))?;
    println!(
        "{:<58} {:>15.2}%",
        "CPU share of one core at 115,200 baud (480 reads/s)",
        share * 100.0
    );
    let (p50, p99, n) = node_rt.block_on(scan_latency(dir.path()))?;
    println!(
        "{:<58} {:>16}",
        format!("scan-to-SSE latency over a pty, p50 / p99 ({n} scans)"),
        format!(
            "{:.2} / {:.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        )
    );
    Ok(())
}

fn build_kind() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Decodes a pre-generated stream, de-duplicates it and persists the presence changes
/// through the real pipeline (batched group commits); returns reads per second.
async fn throughput(db: &Path, tags: usize, duplicates: u32) -> anyhow::Result<f64> {
    let store = Store::open(
        StoreOptions {
            path: db.to_path_buf(),
            max_batch: 512,
            writer_id: "bench.lane1".into(),
        },
        Box::new(NoHook),
    )?;
    let (pipeline, batcher) =
        Pipeline::new(store.clone(), EventBus::default(), RcnRegion::None, "EUR");
    let batcher = tokio::spawn(batcher.run(DeviceRegistry::default()));
    let mut sim = RfidSim::new(
        ReaderProtocol::M100,
        sample_epcs(tags, 3),
        duplicates,
        0.01,
        3,
    );
    let rounds = (400_000 / (tags * duplicates as usize)).max(1);
    // Without duplicates, every round reads tags never seen before, so every read is an
    // Enter that is written (the same tags again would be 95 % already-present reads).
    let stream: Vec<u8> = (0..rounds)
        .flat_map(|round| {
            if duplicates == 1 && round > 0 {
                sim.set_tags(sample_epcs(tags, 3 + round as u64));
            }
            sim.next_chunk()
        })
        .collect();

    let start = Instant::now();
    let mut codec = ReaderCodec::new(ReaderProtocol::M100);
    let mut tracker = PresenceTracker::new(PresenceConfig::default());
    let point = ReadPoint::new("bench", 1);
    let mut buf = BytesMut::with_capacity(8192);
    let mut reads = 0u64;
    for piece in stream.chunks(4096) {
        buf.extend_from_slice(piece);
        while let Some(event) = codec.decode(&mut buf)? {
            let ReaderEvent::Tag(read) = event else {
                continue;
            };
            reads += 1;
            if let Some(enter) = tracker.observe(&point, &read.epc, read.rssi_dbm, Instant::now()) {
                pipeline.handle_tag(TagRow {
                    reader: enter.read_point.reader,
                    antenna: enter.read_point.antenna,
                    at: storenode::clock::now_utc(),
                    kind: enter.kind,
                    epc: decode_epc(&enter.epc),
                    rssi: enter.rssi,
                    reads: enter.reads,
                    exit: false,
                });
            }
        }
        // Let the batcher run between chunks, as it would between serial reads.
        tokio::task::yield_now().await;
    }
    drop(pipeline);
    batcher.await?;
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        reads == sim.valid_reads(),
        "decoded {reads} of {}",
        sim.valid_reads()
    );
    store.close().await;
    Ok(reads as f64 / elapsed)
}

fn node_config(dir: &Path, name: &str, device: &str) -> anyhow::Result<Config> {
    let data = dir.join(name);
    std::fs::create_dir_all(&data)?;
    let text = format!(
        "[node]\nstore_id = \"bench\"\ndata_dir = \"{}\"\n[log]\nlevel = \"warn\"\n[api]\nlisten = \"127.0.0.1:0\"\n[[api.terminals]]\nid = \"pos1\"\ntoken = \"{TOKEN}\"\n[devices]\n{device}",
        data.display()
    );
    Ok(Config::from_toml(&data.join("storenode.toml"), &text)?)
}

/// CPU time (user + system) of this process, or of the calling thread.
fn cpu_time(who: libc::c_int) -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer it is given; on failure
    // the zeroed value stays and reads as 0 s.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

async fn line_rate_cpu(dir: &Path) -> anyhow::Result<f64> {
    let link = dir.join("reader0");
    let stop = CancellationToken::new();
    let sim_cpu_ns = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let simulator = {
        let (link, stop, sim_cpu_ns) = (link.clone(), stop.clone(), sim_cpu_ns.clone());
        // The simulator gets its own thread and runtime, so its CPU time can be subtracted.
        std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let (master, _slave) = pty_at(&link)?;
                ready_tx.send(())?;
                tokio::spawn(publish_thread_cpu(sim_cpu_ns, stop.clone()));
                let mut sim = RfidSim::new(ReaderProtocol::M100, sample_epcs(10, 9), 1, 0.0, 9);
                let rate = LINE_RATE_BYTES_PER_S / M100_NOTIFICATION_BYTES;
                run_rfid(master, &mut sim, rate, None, &stop).await?;
                anyhow::Ok(())
            })
        })
    };
    ready_rx.recv_timeout(Duration::from_secs(10))?;
    let device = format!(
        "[[devices.readers]]\nid = \"reader0\"\nport = \"{}\"\nprotocol = \"m100\"\n",
        link.display()
    );
    let node = Node::start(node_config(dir, "cpu", &device)?).await?;
    // Connect, initialise, start inventory, let the first Enter events settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reader = node
        .devices
        .get("reader0")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("reader0 not registered"))?;
    let (cpu0, sim0, reads0, t0) = (
        cpu_time(libc::RUSAGE_SELF),
        sim_cpu_ns.load(Ordering::Relaxed),
        reader.counters.tag_reads.get(),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let wall = t0.elapsed();
    let node_cpu = cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu0);
    let sim_cpu = Duration::from_nanos(sim_cpu_ns.load(Ordering::Relaxed).saturating_sub(sim0));
    let reads = reader.counters.tag_reads.get() - reads0;
    stop.cancel();
    node.stop().await;
    simulator
        .join()
        .map_err(|_| anyhow::anyhow!("simulator thread panicked"))??;
    println!(
        "{:<58} {:>16.0}",
        "  reads/s the node received during that window",
        reads as f64 / wall.as_secs_f64()
    );
    Ok(node_cpu.saturating_sub(sim_cpu).as_secs_f64() / wall.as_secs_f64())
}

/// Publishes this thread's CPU time every 50 ms (the simulator's runtime is single-threaded,
/// so this covers the whole simulator).
async fn publish_thread_cpu(slot: Arc<AtomicU64>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !stop.is_cancelled() {
        tick.tick().await;
        let ns = u64::try_from(cpu_time(libc::RUSAGE_THREAD).as_nanos()).unwrap_or(u64::MAX);
        slot.store(ns, Ordering::Relaxed);
    }
}

async fn scan_latency(dir: &Path) -> anyhow::Result<(Duration, Duration, usize)> {
    let link = dir.join("scanner0");
    let (mut master, _slave) = pty_at(&link)?;
    let device = format!(
        "[[devices.scanners]]\nid = \"scanner0\"\nport = \"{}\"\n",
        link.display()
    );
    let node = Node::start(node_config(dir, "latency", &device)?).await?;
    let scanner = node
        .devices
        .get("scanner0")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("scanner0 not registered"))?;
    for _ in 0..200 {
        if scanner.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(scanner.is_connected(), "scanner0 did not connect");
    let mut sse = tokio::net::TcpStream::connect(node.local_addr).await?;
    sse.write_all(
        format!("GET /v1/events?device=scanner0 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut received = String::new();
    read_until(&mut sse, &mut received, "200 OK").await?;
    let mut latencies = Vec::new();
    for i in 0..500 {
        let marker = format!("BENCH{i:06}");
        received.clear();
        let start = Instant::now();
        master
            .write_all(format!("]A0{marker}\r\n").as_bytes())
            .await?;
        read_until(&mut sse, &mut received, &marker).await?;
        latencies.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.stop().await;
    latencies.sort();
    let n = latencies.len();
    let at = |q: usize| {
        latencies
            .get((n * q / 100).min(n.saturating_sub(1)))
            .copied()
    };
    Ok((at(50).unwrap_or_default(), at(99).unwrap_or_default(), n))
}

async fn read_until(
    stream: &mut tokio::net::TcpStream,
    received: &mut String,
    needle: &str,
) -> anyhow::Result<()> {
    let mut buf = [0u8; 4096];
    while !received.contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "SSE stream closed");
        received.push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or_default()));
    }
    Ok(())
}
