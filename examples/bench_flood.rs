//! Hostile-connection benchmark (issue 17, item 5). Not a test: it prints a table.
//!
//! ```sh
//! cargo build --example bench_flood --bin storenode
//! target/debug/examples/bench_flood target/debug/storenode [OTHER_STORENODE_BINARY ...]
//! ```
//!
//! For each binary given (e.g. this one and an older build, for a before/after in one run):
//! starts it on a loopback port with a temporary data dir and the test catalog, then
//! 1. **baseline**: 200 sales, one after another, on a till's keep-alive connection: p50/p99;
//! 2. **flood**: 1,000 concurrent clients, each a new connection per request, fetching
//!    `/v1/openapi.json` (every tenth `/readyz`) in a loop for
//!    [`FLOOD`], while the same sales run: their p50/p99, the node's peak RSS and threads;
//! 3. **half-open**: 1,000 connections that send half a request line and nothing more;
//!    after [`HOLD`], how many the node still holds open.
//!
//! Bounded: every phase has a fixed duration or count; every read has a timeout.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "bench-token-pos1-0123456789";
const FLOOD_CONNECTIONS: usize = 1000;
const FLOOD: Duration = Duration::from_secs(20);
const HOLD: Duration = Duration::from_secs(15);
const BASELINE_SALES: usize = 200;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const CATALOG: &str = "sku,name,price_minor,currency,tax_class,variable_measure,gtins
MILK,Whole milk 1 l,119,EUR,reduced,false,4006381333931
";

fn main() -> anyhow::Result<()> {
    let binaries: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        !binaries.is_empty(),
        "usage: bench_flood STORENODE_BINARY..."
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "| binary | sale p50 / p99 alone | sale p50 / p99 in flood | flood requests | peak RSS | peak threads | half-open held after {} s |",
        HOLD.as_secs()
    );
    println!("|---|---|---|---|---|---|---|");
    for binary in &binaries {
        let node = Started::start(binary)?;
        let row = runtime.block_on(measure(&node))?;
        println!(
            "| {binary} | {} | {} | {} | {:.0} MiB | {} | {} / {FLOOD_CONNECTIONS} |",
            row.alone,
            row.flooded,
            row.flood_requests,
            row.peak_rss_mib,
            row.peak_threads,
            row.held
        );
    }
    Ok(())
}

struct Row {
    alone: String,
    flooded: String,
    flood_requests: u64,
    peak_rss_mib: f64,
    peak_threads: u64,
    held: usize,
}

async fn measure(node: &Started) -> anyhow::Result<Row> {
    let mut till = Till {
        addr: node.addr.clone(),
        conn: None,
        key: 0,
    };
    let mut alone = Vec::new();
    for _ in 0..BASELINE_SALES {
        alone.push(till.sale().await?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for i in 0..FLOOD_CONNECTIONS {
        let (addr, stop, requests) = (node.addr.clone(), stop.clone(), requests.clone());
        // Mostly the API document; every tenth client asks /readyz (a store read).
        let path = if i % 10 == 0 {
            "/readyz"
        } else {
            "/v1/openapi.json"
        };
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if get(&addr, path).await.is_ok() {
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let (mut peak_rss, mut peak_threads) = (0, 0);
    let mut flooded = Vec::new();
    let started = Instant::now();
    while started.elapsed() < FLOOD {
        if let Ok(took) = till.sale().await {
            flooded.push(took);
        }
        let (rss, threads) = proc_status(node.child.id());
        peak_rss = peak_rss.max(rss);
        peak_threads = peak_threads.max(threads);
        // 20 sales/s: well under the terminal's rate limit.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        let _ = tokio::time::timeout(IO_TIMEOUT, task).await;
    }
    let held = half_open(&node.addr).await;
    Ok(Row {
        alone: percentiles(&mut alone),
        flooded: percentiles(&mut flooded),
        flood_requests: requests.load(Ordering::Relaxed),
        peak_rss_mib: peak_rss as f64 / 1024.0,
        peak_threads,
        held,
    })
}

/// Opens connections that never finish their request line; counts those still open later.
async fn half_open(addr: &str) -> usize {
    let mut open = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        if let Ok(mut s) = TcpStream::connect(addr).await
            && s.write_all(b"GET /healthz HT").await.is_ok()
        {
            open.push(s);
        }
    }
    tokio::time::sleep(HOLD).await;
    let mut held = 0;
    for mut s in open {
        let mut buf = [0u8; 64];
        // Closed: read returns 0 or an error at once. Open: nothing arrives.
        if let Err(_pending) =
            tokio::time::timeout(Duration::from_millis(2), s.read(&mut buf)).await
        {
            held += 1;
        }
    }
    held
}

fn percentiles(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "none".into();
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "{:.1} / {:.1} ms ({} sales)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.len()
    )
}

/// A till: one keep-alive connection (reopened when the node closes it), as a POS client
/// pools its connection.
struct Till {
    addr: String,
    conn: Option<TcpStream>,
    key: u64,
}

impl Till {
    /// One sale; its latency to the whole answer.
    async fn sale(&mut self) -> anyhow::Result<Duration> {
        self.key += 1;
        let body = r#"{"lines":[{"sku":"MILK","quantity":1}],"payments":[{"method":"cash","amount_minor":200}]}"#;
        let request = format!(
            "POST /v1/sales HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nIdempotency-Key: flood-{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            self.key,
            body.len()
        );
        let started = Instant::now();
        let answer = match self.try_once(&request).await {
            Ok(answer) => answer,
            // The node closed the idle connection: reopen once.
            Err(_) => {
                self.conn = None;
                self.try_once(&request).await?
            }
        };
        anyhow::ensure!(answer.starts_with("HTTP/1.1 201"), "sale refused: {answer}");
        Ok(started.elapsed())
    }

    async fn try_once(&mut self, request: &str) -> anyhow::Result<String> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(TcpStream::connect(&self.addr).await?),
        };
        tokio::time::timeout(IO_TIMEOUT, async {
            conn.write_all(request.as_bytes()).await?;
            read_response(conn).await
        })
        .await?
    }
}

/// Reads one response with a Content-Length body.
async fn read_response(conn: &mut TcpStream) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Ok(text);
            }
        }
    }
}

async fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

async fn exchange(addr: &str, request: &str) -> anyhow::Result<String> {
    let io = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        anyhow::Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(IO_TIMEOUT, io).await?
}

/// (VmRSS in KiB, Threads) of a process.
fn proc_status(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

/// A node process on a free port, killed on drop.
struct Started {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Started {
    fn start(binary: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.path().join("storenode.toml");
        std::fs::write(
            &config,
            format!(
                "[node]\nstore_id = \"s1\"\ndata_dir = \"{}\"\n[log]\nlevel = \"warn\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[[api.terminals]]\nid = \"pos1\"\ntoken = \"{TOKEN}\"\n",
                dir.path().display()
            ),
        )?;
        let catalog = dir.path().join("catalog.csv");
        std::fs::write(&catalog, CATALOG)?;
        let import = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .args(["catalog", "import"])
            .arg(&catalog)
            .output()?;
        anyhow::ensure!(import.status.success(), "catalog import failed");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr = format!("127.0.0.1:{port}");
        wait_listening(&addr)?;
        Ok(Self {
            child,
            addr,
            _dir: dir,
        })
    }
}

fn wait_listening(addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "node not listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
