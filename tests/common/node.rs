//! Starts the real `storenode` binary on a free loopback port with a temporary config.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN_POS1: &str = "test-token-pos1-0123456789";
pub const TOKEN_POS2: &str = "test-token-pos2-0123456789";

pub const CATALOG_CSV: &str = "sku,name,price_minor,currency,tax_class,variable_measure,gtins
MILK,Whole milk 1 l,119,EUR,reduced,false,4006381333931
SHIRT,T-shirt,1299,EUR,standard,false,5901234123457|96385074
APPLE,Apples per kg,299,EUR,reduced,true,
";

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_storenode")
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

pub struct NodeProcess {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub base: String,
    child: Option<Child>,
    /// Everything the node wrote to stderr (its log), for assertions.
    pub log: Arc<Mutex<String>>,
}

pub fn config_text(dir: &Path, port: u16, extra: &str) -> String {
    config_text_with_api(dir, port, "", extra)
}

/// `api_extra` goes into the `[api]` table, `extra` after everything (other tables).
pub fn config_text_with_api(dir: &Path, port: u16, api_extra: &str, extra: &str) -> String {
    format!(
        r#"
[node]
tenant = "test"
store_id = "s1"
node_id = "lane1"
data_dir = "{dir}"

[log]
level = "info"
format = "json"

[api]
listen = "127.0.0.1:{port}"
{api_extra}

[[api.terminals]]
id = "pos1"
token = "{TOKEN_POS1}"

[[api.terminals]]
id = "pos2"
token = "{TOKEN_POS2}"
{extra}
"#,
        dir = dir.display()
    )
}

impl NodeProcess {
    /// A node with the test catalog imported, started and ready.
    pub fn start() -> Self {
        Self::start_with("")
    }

    pub fn start_with(extra: &str) -> Self {
        Self::start_configured("", extra)
    }

    pub fn start_configured(api_extra: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("storenode.toml");
        std::fs::write(
            &config,
            config_text_with_api(dir.path(), port, api_extra, extra),
        )
        .expect("write config");
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
            .expect("run catalog import");
        assert!(
            import.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&import.stderr)
        );
        let mut node = NodeProcess {
            dir,
            config,
            base: format!("http://127.0.0.1:{port}"),
            child: None,
            log: Arc::default(),
        };
        node.spawn();
        node
    }

    pub fn spawn(&mut self) {
        let mut child = Command::new(binary())
            .args(["--config", self.config.to_str().unwrap_or_default(), "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start storenode run");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = log.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("storenode exited early with {status}: {}", self.log());
            }
            if client
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(1))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("storenode not ready after 30 s: {}", self.log());
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Power cut: SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    pub fn client(&self) -> Api {
        Api {
            base: self.base.clone(),
            token: TOKEN_POS1.into(),
            http: reqwest::blocking::Client::new(),
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A terminal talking to the node.
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::blocking::Client,
}

pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub replayed: bool,
}

impl Api {
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = token.into();
        self
    }

    pub fn get(&self, path: &str) -> Reply {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .expect("GET");
        reply(response)
    }

    pub fn post(&self, path: &str, key: &str, body: &serde_json::Value) -> Reply {
        self.post_raw(path, Some(key), body.to_string().into_bytes())
    }

    pub fn post_raw(&self, path: &str, key: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        reply(request.send().expect("POST"))
    }
}

fn reply(response: reqwest::blocking::Response) -> Reply {
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let text = response.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Reply {
        status,
        body,
        replayed,
    }
}
