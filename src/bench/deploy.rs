//! The processes of a benchmark run, as a store runs them: Mosquitto, `storenode hq`, and
//! `storenode run` with or without `[sync]`, each on a free loopback port; and what /proc
//! says about them (RSS, bytes written to disk).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::TOKEN;
use super::http::HttpConn;
use crate::crdt::catalog::CatalogItem;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
pub const HQ_TOKEN: &str = "bench-hq-token-0123456789abcdef";
const TENANT: &str = "bench";
const STORE: &str = "bench";

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn spawn(bin: &Path, args: &[&str]) -> anyhow::Result<Child> {
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing listens on port {port} after 10 s")
}

/// Mosquitto and `storenode hq`: the sync side of the deployed shape.
pub struct Hq {
    pub broker_port: u16,
    pub listen: std::net::SocketAddr,
    _broker: Child,
    _hq: Child,
}

impl Hq {
    /// `None` when Mosquitto is not installed (the sync-on rows are then skipped).
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Option<Self>> {
        if !Path::new(MOSQUITTO).exists() {
            return Ok(None);
        }
        let broker_port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_packet_size 1048576\nlog_dest none\n"
            ),
        )?;
        let broker = spawn(Path::new(MOSQUITTO), &["-c", &conf.display().to_string()]).await?;
        wait_listening(broker_port).await?;
        let port = free_port()?;
        let hq_dir = dir.join("hq");
        std::fs::create_dir_all(&hq_dir)?;
        let config = hq_dir.join("hq.toml");
        std::fs::write(
            &config,
            format!(
                "[hq]\ntenant = \"{TENANT}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{HQ_TOKEN}\"\nbroker = \"mqtt://127.0.0.1:{broker_port}\"\n",
                hq_dir.display()
            ),
        )?;
        let hq = spawn(bin, &["--config", &config.display().to_string(), "hq"]).await?;
        wait_listening(port).await?;
        Ok(Some(Self {
            broker_port,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            _broker: broker,
            _hq: hq,
        }))
    }

    /// Publishes `items` through HQ's HTTP API, in the chunks `hq catalog import` sends.
    pub async fn publish(&self, items: &[CatalogItem]) -> anyhow::Result<()> {
        let client = crate::http_client::HqClient::own_listener(self.listen, HQ_TOKEN)?;
        crate::hq::publish_items(&client, items, |_, _| {}).await?;
        Ok(())
    }
}

/// `storenode run` on its own data directory.
pub struct Daemon {
    pub addr: String,
    child: Child,
}

impl Daemon {
    /// Writes the config (with `[sync]` towards `broker_port` when given) and, without sync,
    /// imports `items` locally first, as a store without HQ does.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        broker_port: Option<u16>,
        local_items: Option<usize>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let sync = broker_port
            .map(|p| format!("[sync]\nbroker = \"mqtt://127.0.0.1:{p}\"\n"))
            .unwrap_or_default();
        let config = dir.join("bench.toml");
        std::fs::write(
            &config,
            format!(
                "[node]\ntenant = \"{TENANT}\"\nstore_id = \"{STORE}\"\ndata_dir = \"{}\"\n[log]\nlevel = \"warn\"\nformat = \"json\"\n[api]\nlisten = \"127.0.0.1:{port}\"\nrate_per_terminal = 1000000\nburst_per_terminal = 1000000\n[[api.terminals]]\nid = \"bench\"\ntoken = \"{TOKEN}\"\n{sync}",
                dir.display()
            ),
        )?;
        if let Some(items) = local_items {
            let csv = dir.join("catalog.csv");
            std::fs::write(&csv, catalog_csv(&catalog(items, 100)))?;
            let status = Command::new(bin)
                .args([
                    "--config",
                    &config.display().to_string(),
                    "catalog",
                    "import",
                ])
                .arg(&csv)
                .stdout(Stdio::null())
                .status()
                .await?;
            if !status.success() {
                bail!("catalog import failed");
            }
        }
        let child = spawn(bin, &["--config", &config.display().to_string(), "run"]).await?;
        let daemon = Self {
            addr: format!("127.0.0.1:{port}"),
            child,
        };
        daemon.wait_ready().await?;
        Ok(daemon)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..400 {
            if let Ok(mut conn) = HttpConn::connect(&self.addr).await
                && conn
                    .request("GET", "/readyz", None, None)
                    .await
                    .is_ok_and(|(s, _)| s == 200)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the daemon did not become ready within 20 s")
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_field(&format!("/proc/{}/status", self.pid()), "VmRSS:")
    }

    /// Bytes this process caused to be written to disk so far (`write_bytes` of /proc/PID/io:
    /// what reaches the block device, WAL, checkpoints and temporary files alike).
    pub fn disk_bytes(&self) -> u64 {
        proc_field(&format!("/proc/{}/io", self.pid()), "write_bytes:")
    }

    /// Waits (at most `limit`) until the node sells `sku` at `price`.
    pub async fn wait_price(&self, sku: &str, price: i64, limit: Duration) -> anyhow::Result<()> {
        let mut conn = HttpConn::connect(&self.addr).await?;
        let deadline = std::time::Instant::now() + limit;
        let want = format!("\"price_minor\":{price}");
        while std::time::Instant::now() < deadline {
            let (status, body) = conn
                .request("GET", &format!("/v1/items/{sku}"), None, None)
                .await?;
            if status == 200 && body.contains(&want) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("{sku} did not reach price {price} within {limit:?}")
    }

    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

fn proc_field(file: &str, field: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `SKU000000`, … with one GTIN each, all at `price`.
pub fn catalog(items: usize, price: i64) -> Vec<CatalogItem> {
    (0..items.max(3))
        .map(|i| {
            let body = format!("20{i:010}");
            let check = crate::gs1::gtin::check_digit(&body).unwrap_or(0);
            CatalogItem {
                sku: sku(i),
                name: format!("Bench item {i}"),
                price_minor: price,
                currency: "EUR".into(),
                tax_class: "standard".into(),
                gtins: vec![format!("{body}{check}")],
                epc_patterns: Vec::new(),
                variable_measure: false,
            }
        })
        .collect()
}

pub fn sku(i: usize) -> String {
    format!("SKU{i:06}")
}

fn catalog_csv(items: &[CatalogItem]) -> String {
    let mut text = String::from("sku,name,price_minor,currency,tax_class,variable_measure,gtins\n");
    for item in items {
        text.push_str(&format!(
            "{},{},{},{},{},false,{}\n",
            item.sku,
            item.name,
            item.price_minor,
            item.currency,
            item.tax_class,
            item.gtins.join(";")
        ));
    }
    text
}
