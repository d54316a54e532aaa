//! The real components a configuration runs on: Mosquitto on a free loopback port, HQ as the
//! real `storenode hq` binary (one process per instance, so its RSS is its own), and what is
//! read off them (RSS from `/proc`, PostgreSQL's database size, SQLite's file size).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchResult;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
pub const TOKEN: &str = "bench-hq-token-0123456789";

pub fn free_addr() -> BenchResult<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn wait_listening(addr: SocketAddr, what: &str) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what} not listening on {addr}").into())
}

/// Mosquitto for one configuration (a fresh one each, so no retained heads carry over).
pub struct Broker {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> BenchResult<Self> {
        if !Path::new(MOSQUITTO).exists() {
            return Err(format!("{MOSQUITTO} is needed (apt-get install mosquitto)").into());
        }
        let dir = tempfile::tempdir()?;
        let addr = free_addr()?;
        let conf = dir.path().join("mosquitto.conf");
        // Unlimited queues: a lagging HQ must see every change late, not lose some (the
        // default drops QoS 1 messages past 1,000 queued per client).
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_packet_size 1048576\nmax_queued_messages 0\nmax_inflight_messages 100\n\
                 log_dest none\n",
                addr.port()
            ),
        )?;
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        wait_listening(addr, "mosquitto")?;
        Ok(Self {
            addr,
            child,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `storenode hq` process.
pub struct HqProcess {
    pub base: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl HqProcess {
    /// Starts `bin hq` on `broker`, on SQLite in its own directory or on `database`.
    pub fn start(
        bin: &Path,
        broker: SocketAddr,
        database: Option<&str>,
        documents_in_memory: Option<usize>,
    ) -> BenchResult<Self> {
        let dir = tempfile::tempdir()?;
        let listen = free_addr()?;
        let mut database = database
            .map(|url| format!("database = \"{url}\"\n"))
            .unwrap_or_default();
        if let Some(n) = documents_in_memory {
            database.push_str(&format!("documents_in_memory = {n}\n"));
        }
        let config = dir.path().join("hq.toml");
        std::fs::write(
            &config,
            format!(
                "[hq]\ntenant = \"bench\"\ndata_dir = \"{}\"\nlisten = \"{listen}\"\n\
                 token = \"{TOKEN}\"\nsafety_stock = 0\nbroker = \"mqtt://{broker}\"\n{database}",
                dir.path().display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("hq.log"))?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("hq")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut hq = Self {
            base: format!("http://{listen}"),
            dir,
            child,
        };
        wait_listening(listen, "HQ")?;
        hq.wait_ready()?;
        Ok(hq)
    }

    /// `/readyz` says ready (database, broker, documents).
    fn wait_ready(&mut self) -> BenchResult<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("HQ exited ({status}): {}", self.log()).into());
            }
            let ready = client
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("HQ not ready: {}", self.log()).into())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hq.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in bytes.
    pub fn rss(&self) -> (u64, u64) {
        rss_of(self.pid())
    }

    /// Size of the SQLite database with its WAL (the SQLite configuration).
    pub fn sqlite_bytes(&self) -> u64 {
        ["hq.db", "hq.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HqProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// (VmRSS, VmHWM) of a process in bytes, 0 when unreadable.
pub fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after the name and state.
    let total = ticks(11) + ticks(12);
    Duration::from_millis(total * 10) // USER_HZ is 100 on Linux
}

/// The database's size as PostgreSQL counts it (`pg_database_size`).
pub fn pg_size(url: &str) -> BenchResult<u64> {
    let url = url.to_owned();
    std::thread::spawn(move || -> BenchResult<u64> {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        let row = client.query_one("SELECT pg_database_size(current_database())", &[])?;
        let size: i64 = row.get(0);
        Ok(u64::try_from(size)?)
    })
    .join()
    .map_err(|_| "pg_size thread panicked")?
}

/// Where `storenode hq` is: `--hq-bin`, else beside the examples directory
/// (`target/release/storenode` for `target/release/examples/bench_hq_scale`).
pub fn hq_binary(explicit: Option<PathBuf>) -> BenchResult<PathBuf> {
    let path = match explicit {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .ok_or("no directory above the example")?
            .join("storenode"),
    };
    if !path.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release --bin storenode) or pass --hq-bin",
            path.display()
        )
        .into());
    }
    Ok(path)
}
