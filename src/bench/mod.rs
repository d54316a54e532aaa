//! `storenode bench`: the POS sale path measured end to end, beside bare SQLite on the same
//! disk with the same durability, so the README can state the ratio.
//!
//! It spawns the real daemon (`storenode run`) on a temporary config with a 50,000-item
//! catalog, drives 3-line sales over HTTP/1.1 keep-alive connections from this process, and
//! reads the daemon's idle RSS from /proc. No numbers are asserted: the figures are printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TOKEN: &str = "bench-token-0123456789abcdef";

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Directory on the disk to measure (the database goes here). Default: the system temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Catalog size for the memory figure.
    #[arg(long, default_value_t = 50_000)]
    pub items: usize,
    /// Concurrent clients to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub clients: Vec<usize>,
}

struct Summary {
    count: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
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
    println!(
        "storenode bench — disk under {}, {} s per measurement\n",
        base.display(),
        duration.as_secs()
    );

    let bare = bare_sqlite_commits(&dir.path().join("bare.db"), duration)?;
    println!(
        "bare SQLite (WAL, synchronous=FULL, 1 row per commit): {:.0} commits/s, p50 {:?}, p99 {:?}",
        bare.rate(),
        bare.p50,
        bare.p99
    );

    let port = free_port()?;
    let config = write_config(dir.path(), port)?;
    import_catalog(dir.path(), &config, args.items).await?;
    let mut daemon = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--config", &config.display().to_string(), "run"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the daemon")?;
    let addr = format!("127.0.0.1:{port}");
    wait_ready(&addr).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = daemon.id().unwrap_or(0);
    let idle_rss = rss_kib(pid);
    println!(
        "daemon idle RSS with {} catalog items: {} MiB",
        args.items,
        idle_rss / 1024
    );

    println!("\n3-line sale through the HTTP API, durable before the reply:");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>14}",
        "clients", "sales/s", "p50", "p99", "vs bare SQLite"
    );
    for &clients in &args.clients {
        let summary = drive_sales(&addr, clients.max(1), duration).await?;
        println!(
            "{:>8} {:>10.0} {:>10.2?} {:>10.2?} {:>13.2}x",
            clients,
            summary.rate(),
            summary.p50,
            summary.p99,
            summary.rate() / bare.rate().max(1e-9)
        );
    }
    println!("daemon RSS after the load: {} MiB", rss_kib(pid) / 1024);
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn write_config(dir: &Path, port: u16) -> anyhow::Result<PathBuf> {
    let path = dir.join("bench.toml");
    let text = format!(
        "[node]\nstore_id = \"bench\"\ndata_dir = \"{}\"\n[log]\nlevel = \"warn\"\nformat = \"json\"\n[api]\nlisten = \"127.0.0.1:{port}\"\nrate_per_terminal = 1000000\nburst_per_terminal = 1000000\n[[api.terminals]]\nid = \"bench\"\ntoken = \"{TOKEN}\"\n",
        dir.display()
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

async fn import_catalog(dir: &Path, config: &Path, items: usize) -> anyhow::Result<()> {
    let csv = dir.join("catalog.csv");
    let mut text = String::from("sku,name,price_minor,currency,tax_class,variable_measure,gtins\n");
    for i in 0..items.max(3) {
        let body = format!("20{:010}", i);
        let gtin = format!("{body}{}", crate::gs1::gtin::check_digit(&body)?);
        text.push_str(&format!(
            "SKU{i:06},Bench item {i},100,EUR,standard,false,{gtin}\n"
        ));
    }
    std::fs::write(&csv, text)?;
    let config = crate::config::Config::load(config)?;
    crate::import::import_file(&config, &csv).await?;
    Ok(())
}

fn bare_sqlite_commits(path: &Path, duration: Duration) -> anyhow::Result<Summary> {
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
    Ok(Summary::from(latencies, start.elapsed()))
}

async fn wait_ready(addr: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(mut conn) = HttpConn::connect(addr).await
            && conn
                .request("GET", "/healthz", None, None)
                .await
                .is_ok_and(|s| s == 200)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the daemon did not become ready within 10 s")
}

async fn drive_sales(addr: &str, clients: usize, duration: Duration) -> anyhow::Result<Summary> {
    let start = Instant::now();
    let mut workers = Vec::with_capacity(clients);
    for client in 0..clients {
        let addr = addr.to_string();
        workers.push(tokio::spawn(async move {
            let mut conn = HttpConn::connect(&addr).await?;
            let mut latencies = Vec::new();
            let mut n = 0usize;
            while start.elapsed() < duration {
                let key = format!("c{clients}-{client}-{n}");
                let first = (client * 3 + n) % 1000;
                let body = format!(
                    r#"{{"lines":[{{"sku":"SKU{:06}","quantity":1}},{{"sku":"SKU{:06}","quantity":2}},{{"sku":"SKU{:06}","quantity":1}}],"payments":[{{"method":"card","amount_minor":400}}]}}"#,
                    first,
                    first + 1,
                    first + 2
                );
                let t = Instant::now();
                let status = conn.request("POST", "/v1/sales", Some(&key), Some(&body)).await?;
                if status != 201 {
                    bail!("sale answered {status}");
                }
                latencies.push(t.elapsed());
                n += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    Ok(Summary::from(all, start.elapsed()))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A minimal HTTP/1.1 keep-alive client: enough for the benchmark, no client library in the
/// daemon's dependency tree.
struct HttpConn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl HttpConn {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> anyhow::Result<u16> {
        let body = body.unwrap_or("");
        let key = key
            .map(|k| format!("Idempotency-Key: {k}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n{key}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<u16> {
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().context("bad content-length")?;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}
