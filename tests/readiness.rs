//! Ready means able to sell: `/readyz`, `diag status` (headline and exit code) and the
//! `storenode_ready` metric turn not-ready when the store refuses writes, say why, and
//! recover without a restart once the cause is fixed. Real binary, real files; the cases
//! that need another uid or a lock run as root (as .ci/run does) and are skipped otherwise.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::node::{CATALOG_CSV, NodeProcess, TOKEN_POS1, binary, config_text, free_port};
use serde_json::json;

/// The uid/gid the node runs as in these tests ("nobody" on Debian).
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn storenode(config: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run storenode")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sale_body() -> serde_json::Value {
    json!({ "lines": [{ "sku": "MILK", "quantity": 1 }],
            "payments": [{ "method": "card", "amount_minor": 119 }] })
}

/// A data directory anyone may write (the node runs as another uid than the test).
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    base: String,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let port = free_port();
        let config = dir.path().join("storenode.toml");
        std::fs::write(&config, config_text(dir.path(), port, "")).expect("config");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        Self {
            dir,
            config,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn import_catalog(&self) -> Output {
        let catalog = self.dir.path().join("catalog.csv");
        std::fs::write(&catalog, CATALOG_CSV).expect("catalog");
        storenode(
            &self.config,
            &["catalog", "import", catalog.to_str().unwrap()],
        )
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("store.db")
    }
}

/// `storenode run` as `uid`; killed on drop.
struct Running(Child);

impl Running {
    fn start(site: &Site, uid: u32) -> Self {
        let child = Command::new(binary())
            .args(["--config", site.config.to_str().unwrap(), "run"])
            .uid(uid)
            .gid(uid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start storenode");
        let running = Running(child);
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http
                .get(format!("{}/healthz", site.base))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return running;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the node did not start");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn readyz(base: &str) -> (u16, serde_json::Value) {
    let response = reqwest::blocking::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(20))
        .send()
        .expect("GET /readyz");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

fn sell(base: &str, key: &str) -> u16 {
    reqwest::blocking::Client::new()
        .post(format!("{base}/v1/sales"))
        .bearer_auth(TOKEN_POS1)
        .header("idempotency-key", key)
        .json(&sale_body())
        .timeout(Duration::from_secs(20))
        .send()
        .expect("POST /v1/sales")
        .status()
        .as_u16()
}

/// Polls `/readyz` (the probe runs at most every 5 s) until it answers `want`.
fn wait_readyz(base: &str, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (status, body) = readyz(base);
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {status}, wanted {want}: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn assert_fits_80_columns(out: &str) {
    for line in out.lines() {
        assert!(line.chars().count() <= 80, "line too long: {line:?}");
    }
}

#[test]
fn root_owned_database_is_not_ready_says_why_and_recovers_once_chowned() {
    if !is_root() {
        println!("SKIPPED: needs root to run the node as another uid (.ci/run runs as root)");
        return;
    }
    let site = Site::new();
    // `sudo storenode catalog import` before the first start; no storenode user and a
    // root-owned data dir here, so the file stays root's (the bug's situation).
    let import = site.import_catalog();
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert_eq!(std::fs::metadata(site.db()).unwrap().uid(), 0);
    let _node = Running::start(&site, NOBODY);

    assert_eq!(sell(&site.base, "before-fix"), 503);
    let body = wait_readyz(&site.base, 503);
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("belongs to root"), "{body}");
    assert!(reasons.contains("chown"), "{body}");

    let status = storenode(&site.config, &["diag", "status"]);
    let out = text(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{out}");
    assert!(out.contains("NOT READY"), "{out}");
    assert!(out.contains("why"), "{out}");
    assert_fits_80_columns(&out);
    let metrics = reqwest::blocking::get(format!("{}/metrics", site.base))
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("storenode_ready 0"), "{metrics}");
    assert!(metrics.contains("storenode_disk_free_bytes "), "{metrics}");

    // The fix the message names, without restarting the node.
    for file in common_db_files(&site.db()) {
        std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    wait_readyz(&site.base, 200);
    assert_eq!(sell(&site.base, "after-fix"), 201);
    let status = storenode(&site.config, &["diag", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));
}

fn common_db_files(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn catalog_import_as_root_hands_the_database_to_the_service_owner() {
    if !is_root() {
        println!("SKIPPED: needs root (chown)");
        return;
    }
    let site = Site::new();
    // The data dir belongs to the service (StateDirectory=); no storenode user in CI.
    std::os::unix::fs::chown(site.dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let import = site.import_catalog();
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert_eq!(std::fs::metadata(site.db()).unwrap().uid(), NOBODY);
    let _node = Running::start(&site, NOBODY);
    wait_readyz(&site.base, 200);
    assert_eq!(sell(&site.base, "s1"), 201);
}

#[test]
fn a_lock_held_by_another_process_makes_the_node_not_ready_until_released() {
    let node = NodeProcess::start();
    wait_readyz(&node.base, 200);
    let db = node.dir.path().join("store.db");
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let body = wait_readyz(&node.base, 503);
    assert!(body["reasons"].to_string().contains("locked"), "{body}");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    wait_readyz(&node.base, 200);
    assert_eq!(
        node.client().post("/v1/sales", "k", &sale_body()).status,
        201
    );
}

#[test]
fn config_check_refuses_a_certificate_for_another_store_or_ca_with_exit_2() {
    let pki = common::pki::Pki::new("readiness");
    let other = common::pki::Pki::new("other");
    let cases = [
        (pki.client("s1"), None),
        (
            pki.client("s2"),
            Some("is for \"s2\" but this store is \"s1\""),
        ),
        (other.client("s1"), Some("does not verify against the CA")),
    ];
    for (client, refused) in cases {
        let dir = tempfile::tempdir().unwrap();
        let sync = format!(
            "\n[sync]\nbroker = \"mqtts://127.0.0.1:8883\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            pki.ca_cert().display(),
            client.cert.display(),
            client.key.display()
        );
        let config = dir.path().join("storenode.toml");
        std::fs::write(&config, config_text(dir.path(), free_port(), &sync)).unwrap();
        let check = storenode(&config, &["config", "check"]);
        match refused {
            None => assert!(check.status.success(), "{}", text(&check.stderr)),
            Some(why) => {
                assert_eq!(check.status.code(), Some(2), "{}", text(&check.stderr));
                assert!(text(&check.stderr).contains(why), "{}", text(&check.stderr));
            }
        }
    }
}
