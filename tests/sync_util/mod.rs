//! Helpers of the sync tests: real `storenode run` / `storenode hq` processes with chosen
//! store and node ids, a cuttable TCP proxy (a network partition of one store), and a
//! bounded wait.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::node::{CATALOG_CSV, TOKEN_POS1, binary, free_port};

pub const HQ_TOKEN: &str = "hq-test-token-0123456789";
pub const TENANT: &str = "test";

/// Polls `check` every 100 ms until it returns `Some`, at most `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How a process reaches the broker.
#[derive(Clone)]
pub enum BrokerAccess {
    Plain {
        port: u16,
    },
    Mtls {
        port: u16,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
}

impl BrokerAccess {
    pub fn toml(&self) -> String {
        match self {
            BrokerAccess::Plain { port } => format!("broker = \"mqtt://127.0.0.1:{port}\"\n"),
            BrokerAccess::Mtls {
                port,
                ca,
                cert,
                key,
            } => format!(
                "broker = \"mqtts://127.0.0.1:{port}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                ca.display(),
                cert.display(),
                key.display()
            ),
        }
    }
}

struct Proc {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(binary())
            .args(args)
            .env("RUST_LOG", "storenode=debug,info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn storenode");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        Proc {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGKILL: the process gets no chance to finish anything.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A store lane: `storenode run` with `[sync]`.
pub struct StoreNode {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub base: String,
    proc: Proc,
    http: reqwest::blocking::Client,
}

impl StoreNode {
    pub fn start(store: &str, node: &str, broker: &BrokerAccess) -> StoreNode {
        StoreNode::start_with(store, node, broker, "")
    }

    /// `sync_extra` goes into the `[sync]` table (e.g. `reconnect_max_ms = 1000`).
    pub fn start_with(
        store: &str,
        node: &str,
        broker: &BrokerAccess,
        sync_extra: &str,
    ) -> StoreNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("storenode.toml");
        let text = format!(
            r#"
[node]
tenant = "{TENANT}"
store_id = "{store}"
node_id = "{node}"
data_dir = "{data}"

[log]
level = "storenode=debug,info"
format = "json"

[api]
listen = "127.0.0.1:{port}"

[[api.terminals]]
id = "pos1"
token = "{TOKEN_POS1}"

[sync]
resend_interval_ms = 500
{sync_extra}
{broker}"#,
            data = dir.path().display(),
            broker = broker.toml(),
        );
        std::fs::write(&config, text).expect("write config");
        let catalog = dir.path().join("catalog.csv");
        std::fs::write(&catalog, CATALOG_CSV).expect("write catalog");
        let import = Command::new(binary())
            .args([
                "--config",
                config.to_str().unwrap_or_default(),
                "catalog",
                "import",
            ])
            .arg(&catalog)
            .output()
            .expect("catalog import");
        assert!(
            import.status.success(),
            "{}",
            String::from_utf8_lossy(&import.stderr)
        );
        let proc = Proc::spawn(&["--config", config.to_str().unwrap_or_default(), "run"]);
        let node = StoreNode {
            dir,
            config,
            base: format!("http://127.0.0.1:{port}"),
            proc,
            http: reqwest::blocking::Client::new(),
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&self) {
        wait_for("node ready", Duration::from_secs(30), || {
            self.http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(1))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn stop(&mut self) {
        self.proc.terminate();
    }

    /// Starts the node again on the same configuration and data (after [`Self::stop`]).
    pub fn restart(&mut self) {
        self.proc.terminate();
        self.proc = Proc::spawn(&["--config", self.config.to_str().unwrap_or_default(), "run"]);
        self.wait_ready();
    }

    /// SIGKILL (nothing gets finished), then starts the node again on the same data.
    pub fn kill_and_restart(&mut self) {
        self.proc.kill();
        self.proc = Proc::spawn(&["--config", self.config.to_str().unwrap_or_default(), "run"]);
        self.wait_ready();
    }

    /// Runs `storenode --config … diag ARGS` and returns (success, stdout + stderr).
    pub fn diag(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(binary())
            .args(["--config", self.config.to_str().unwrap_or_default(), "diag"])
            .args(args)
            .output()
            .expect("run diag");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn post(&self, path: &str, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN_POS1)
            .header("idempotency-key", key)
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
            .expect("POST");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }

    pub fn receive(&self, key: &str, sku: &str, quantity: i64) {
        let (status, body) = self.post(
            "/v1/receipts",
            key,
            json!({ "lines": [{ "sku": sku, "quantity": quantity }] }),
        );
        assert_eq!(status, 201, "{body}");
    }

    /// Grants `quantity` of `sku` to the online channel (the escrow HQ's orders draw on).
    pub fn grant_online(&self, key: &str, sku: &str, quantity: i64) {
        let (status, body) = self.post(
            "/v1/escrow/grants",
            key,
            json!({ "sku": sku, "quantity": quantity }),
        );
        assert_eq!(status, 201, "{body}");
    }

    /// Sells `quantity` of `sku`, paying in cash (overpaying; change is given).
    pub fn sell(&self, key: &str, sku: &str, quantity: i64) {
        let (status, body) = self.post(
            "/v1/sales",
            key,
            json!({ "lines": [{ "sku": sku, "quantity": quantity }],
                    "payments": [{ "method": "cash", "amount_minor": 100_000 }] }),
        );
        assert_eq!(status, 201, "{body}");
    }

    /// `(status, body)` of `GET /v1/items/{sku}`.
    pub fn item(&self, sku: &str) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .get(format!("{}/v1/items/{sku}", self.base))
            .bearer_auth(TOKEN_POS1)
            .timeout(Duration::from_secs(10))
            .send()
            .expect("GET item");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }

    pub fn on_hand(&self, sku: &str) -> i64 {
        let reply = self
            .http
            .get(format!("{}/v1/stock/{sku}", self.base))
            .bearer_auth(TOKEN_POS1)
            .timeout(Duration::from_secs(10))
            .send()
            .expect("GET stock");
        let body: serde_json::Value = reply.json().expect("stock json");
        body["on_hand"].as_i64().unwrap_or(i64::MIN)
    }

    pub fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// The body of `/readyz`.
    pub fn readyz(&self) -> String {
        self.http
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// A metric's value from `/metrics`.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.metrics().lines().find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .and_then(|v| v.trim().parse().ok())
        })
    }
}

/// `storenode hq`.
pub struct HqNode {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub base: String,
    proc: Proc,
    http: reqwest::blocking::Client,
}

impl HqNode {
    pub fn start(broker: &BrokerAccess, extra: &str) -> HqNode {
        let dir = tempfile::tempdir().expect("tempdir");
        HqNode::start_in(dir, broker, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, broker: &BrokerAccess, extra: &str) -> HqNode {
        HqNode::start_with(dir, broker, extra, None)
    }

    /// HQ whose `extra` configures `[hq.http_tls]`: reached over HTTPS, trusting `ca`.
    pub fn start_https(broker: &BrokerAccess, extra: &str, ca: &Path) -> HqNode {
        let dir = tempfile::tempdir().expect("tempdir");
        HqNode::start_with(dir, broker, extra, Some(ca))
    }

    fn start_with(
        dir: tempfile::TempDir,
        broker: &BrokerAccess,
        extra: &str,
        ca: Option<&Path>,
    ) -> HqNode {
        let port = free_port();
        let config = dir.path().join("hq.toml");
        let text = format!(
            "[hq]\ntenant = \"{TENANT}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{HQ_TOKEN}\"\nsafety_stock = 1\n{}{extra}",
            dir.path().display(),
            broker.toml()
        );
        std::fs::write(&config, text).expect("write hq config");
        let proc = Proc::spawn(&["--config", config.to_str().unwrap_or_default(), "hq"]);
        let (scheme, http) = match ca {
            None => ("http", reqwest::blocking::Client::new()),
            Some(ca) => {
                let pem = std::fs::read(ca).expect("read CA");
                let root = reqwest::Certificate::from_pem(&pem).expect("CA PEM");
                let client = reqwest::blocking::Client::builder()
                    .add_root_certificate(root)
                    .tls_built_in_root_certs(false)
                    .build()
                    .expect("HTTPS client");
                ("https", client)
            }
        };
        let node = HqNode {
            dir,
            config,
            base: format!("{scheme}://127.0.0.1:{port}"),
            proc,
            http,
        };
        wait_for("hq http", Duration::from_secs(30), || {
            node.http
                .get(format!("{}/v1/stock?store=none", node.base))
                .bearer_auth(HQ_TOKEN)
                .timeout(Duration::from_secs(1))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
        node
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn stop(mut self) -> tempfile::TempDir {
        self.proc.terminate();
        self.dir
    }

    /// Kills HQ with SIGKILL, as a crash or a lost machine would.
    pub fn kill(mut self) -> tempfile::TempDir {
        self.proc.kill();
        self.dir
    }

    /// Status of `GET {path}` with this `Authorization` header value, as a client sends it.
    pub fn status_with_authorization(&self, path: &str, authorization: &str) -> u16 {
        self.http
            .get(format!("{}{path}", self.base))
            .header("Authorization", authorization)
            .timeout(Duration::from_secs(10))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// `(status, body)` of `POST {path}` with `body` sent as is, without a content type
    /// (what `curl -d` sends).
    pub fn post_untyped(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(HQ_TOKEN)
            .body(body.to_owned())
            .timeout(Duration::from_secs(10))
            .send()
            .expect("POST to hq");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }

    /// `(status, body)` of `GET /v1/stock/{store}/{sku}`.
    pub fn stock(&self, store: &str, sku: &str) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .get(format!("{}/v1/stock/{store}/{sku}", self.base))
            .bearer_auth(HQ_TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .expect("GET hq stock");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }

    pub fn on_hand(&self, store: &str, sku: &str) -> Option<i64> {
        let (status, body) = self.stock(store, sku);
        (status == 200).then(|| body["on_hand"].as_i64()).flatten()
    }

    pub fn publish_catalog(&self, items: serde_json::Value) -> u16 {
        self.http
            .post(format!("{}/v1/catalog", self.base))
            .bearer_auth(HQ_TOKEN)
            .timeout(Duration::from_secs(10))
            .json(&json!({ "items": items }))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

/// A TCP proxy on loopback that can be cut (every connection closed, new ones refused) and
/// restored: a network partition between one store and the broker.
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let open = Arc::new(AtomicBool::new(true));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (o, l, s) = (open.clone(), live.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if !o.load(Ordering::Relaxed) {
                            drop(client);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                            continue;
                        };
                        pipe(client, server, &l);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            port,
            open,
            live,
            stop,
        }
    }

    /// Partition: close every connection and refuse new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::Relaxed);
        if let Ok(mut live) = self.live.lock() {
            for s in live.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn pipe(client: TcpStream, server: TcpStream, live: &Arc<Mutex<Vec<TcpStream>>>) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if let Ok(mut live) = live.lock()
        && let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone())
    {
        live.push(a);
        live.push(b);
    }
    copy_in_thread(client, s2);
    copy_in_thread(server, c2);
}

fn copy_in_thread(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

pub fn data_path(dir: &Path) -> PathBuf {
    dir.join("store.db")
}

impl HqNode {
    /// `POST /v1/epochs/{store}`: `(status, body)`.
    pub fn open_epoch(&self, store: &str) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .post(format!("{}/v1/epochs/{store}", self.base))
            .bearer_auth(HQ_TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .expect("POST epoch");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }
}

impl StoreNode {
    /// `(status, body)` of a POS API `POST` (for the orders API).
    pub fn post_json(
        &self,
        path: &str,
        key: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.post(path, key, body)
    }

    /// `(status, body)` of a POS API `GET`.
    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN_POS1)
            .timeout(Duration::from_secs(10))
            .send()
            .expect("GET");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }
}

impl HqNode {
    /// `(status, body)` of an HQ API `POST`.
    pub fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(HQ_TOKEN)
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
            .expect("POST hq");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }

    /// `(status, body)` of `method path` with `token` (a client's) and an optional JSON body.
    pub fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().expect("call hq");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }

    /// `(status, body)` of a `GET` without a token (the operator's endpoints).
    pub fn get_public(&self, path: &str) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .expect("GET hq");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }

    /// The text of a `GET` without a token (`/metrics`).
    pub fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// `(status, body)` of an HQ API `GET`.
    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let reply = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(HQ_TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .expect("GET hq");
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(serde_json::Value::Null))
    }
}
