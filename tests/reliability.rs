//! Fault injection against the real binary: power cuts (SIGKILL) under load, a full disk, a
//! read-only file system, a corrupted database, a flooding terminal.
//!
//! `SOAK=1` (or `POWER_CUT_CYCLES=N`) runs more power-cut cycles than the CI default of 50.

mod common;
mod sync_util;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::node::{Api, NodeProcess, TOKEN_POS1, TOKEN_POS2, binary};
use rand::{Rng, SeedableRng};
use serde_json::json;
use sync_util::{BrokerAccess, HqNode, wait_for};

fn cycles() -> usize {
    if let Some(n) = std::env::var("POWER_CUT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var_os("SOAK").is_some() {
        500
    } else {
        50
    }
}

fn sale_body() -> serde_json::Value {
    json!({ "lines": [{ "sku": "MILK", "quantity": 1 }, { "sku": "SHIRT", "quantity": 2 }],
            "payments": [{ "method": "card", "amount_minor": 119 + 2 * 1299 }] })
}

/// A till: sends sales with fresh keys until told to stop; remembers which keys were
/// acknowledged and which were in flight when the connection broke.
fn till(
    base: String,
    token: &'static str,
    prefix: String,
    stop: &AtomicBool,
) -> (BTreeMap<String, String>, Vec<String>) {
    let api = Api {
        base,
        token: token.into(),
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    };
    let mut acknowledged = BTreeMap::new();
    let mut unknown = Vec::new();
    for n in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("{prefix}-{n}");
        let sent = api
            .http
            .post(format!("{}/v1/sales", api.base))
            .bearer_auth(&api.token)
            .header("idempotency-key", &key)
            .json(&sale_body())
            .send();
        match sent.map(|r| (r.status().as_u16(), r.json::<serde_json::Value>())) {
            Ok((201, Ok(body))) => {
                acknowledged.insert(
                    key,
                    body["sale_id"].as_str().unwrap_or_default().to_string(),
                );
            }
            // The node died mid-request: the till does not know; it will retry after restart.
            _ => {
                unknown.push(key);
                break;
            }
        }
    }
    (acknowledged, unknown)
}

fn seeded_rng() -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("power-cut seed {seed} (rerun with SEED={seed})");
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn open_stock(node: &NodeProcess) {
    let opening = json!({ "lines": [{ "sku": "MILK", "quantity": 1_000_000 }, { "sku": "SHIRT", "quantity": 1_000_000 }] });
    assert_eq!(
        node.client()
            .post("/v1/receipts", "opening", &opening)
            .status,
        201
    );
}

/// `cycles` power cuts at random moments while two tills sell; after each restart the tills
/// retry what was in flight with the same key. Returns every acknowledged key → sale id.
fn cut_power_repeatedly(
    node: &mut NodeProcess,
    cycles: usize,
    rng: &mut rand::rngs::StdRng,
) -> BTreeMap<String, String> {
    let mut acknowledged = BTreeMap::new();
    for cycle in 0..cycles {
        let stop = AtomicBool::new(false);
        let kill_after = Duration::from_millis(rng.random_range(20..250));
        let results = std::thread::scope(|s| {
            let tills: Vec<_> = [TOKEN_POS1, TOKEN_POS2]
                .into_iter()
                .enumerate()
                .map(|(i, token)| {
                    let base = node.base.clone();
                    let stop = &stop;
                    s.spawn(move || till(base, token, format!("c{cycle}-t{i}"), stop))
                })
                .collect();
            std::thread::sleep(kill_after);
            node.kill();
            stop.store(true, Ordering::Relaxed);
            tills
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        });
        node.spawn();
        for ((acked, unknown), token) in results.into_iter().zip([TOKEN_POS1, TOKEN_POS2]) {
            for (key, sale_id) in acked {
                assert!(acknowledged.insert(key, sale_id).is_none());
            }
            // Retry what was in flight, as a till does after a restart: same key, same body.
            let api = node.client().with_token(token);
            for key in unknown {
                let retry = api.post("/v1/sales", &key, &sale_body());
                assert_eq!(retry.status, 201, "retry of {key}: {}", retry.body);
                let sale_id = retry.body["sale_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                acknowledged.insert(key, sale_id);
            }
        }
    }
    acknowledged
}

/// Every acknowledged sale exactly once, nothing else; stock equals the sum of the ledger.
/// Returns the number of sales.
fn check_database(node: &NodeProcess, acknowledged: &BTreeMap<String, String>) -> i64 {
    let db = rusqlite::Connection::open(node.dir.path().join("store.db")).unwrap();
    let sales: i64 = db
        .query_row("SELECT count(*) FROM sale", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        sales as usize,
        acknowledged.len(),
        "every acknowledged sale exactly once, nothing else"
    );
    for sale_id in acknowledged.values() {
        let n: i64 = db
            .query_row(
                "SELECT count(*) FROM sale WHERE sale_no = ?1",
                [sale_id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "sale {sale_id}");
    }
    let mismatched: i64 = db
        .query_row(
            "SELECT count(*) FROM stock_level l WHERE l.on_hand != (SELECT COALESCE(sum(on_hand_delta),0) FROM stock_movement m WHERE m.sku = l.sku)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mismatched, 0, "stock equals the sum of the ledger");
    let milk: i64 = db
        .query_row(
            "SELECT on_hand FROM stock_level WHERE sku = 'MILK'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(milk, 1_000_000 - sales);
    sales
}

#[test]
fn power_cuts_under_load_lose_no_acknowledged_sale() {
    let mut rng = seeded_rng();
    let mut node = NodeProcess::start();
    open_stock(&node);
    let cycles = cycles();
    let acknowledged = cut_power_repeatedly(&mut node, cycles, &mut rng);
    assert!(node.terminate().expect("running").success());
    check_database(&node, &acknowledged);
    println!(
        "{cycles} power cuts, {} acknowledged sales, none lost or doubled",
        acknowledged.len()
    );
}

/// The same with sync on: the outbox and CRDT document change in the same transaction as
/// each sale, so after the cuts HQ converges on exactly the node's stock and the outbox
/// drains.
#[test]
fn power_cuts_with_sync_keep_sqlite_outbox_and_hq_in_agreement() {
    let mut rng = seeded_rng();
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&access, "");
    let sync = format!(
        "[sync]\nbroker = \"mqtt://127.0.0.1:{}\"\nresend_interval_ms = 500\nreconnect_max_ms = 1000\n",
        broker.port()
    );
    let mut node = NodeProcess::start_with(&sync);
    open_stock(&node);
    let cycles = (cycles() / 2).max(10);
    let acknowledged = cut_power_repeatedly(&mut node, cycles, &mut rng);
    let api = node.client();
    let on_hand = |sku: &str| api.get(&format!("/v1/stock/{sku}")).body["on_hand"].as_i64();
    for sku in ["MILK", "SHIRT"] {
        let local = on_hand(sku);
        wait_for(
            &format!("HQ shows s1/{sku} = {local:?}"),
            Duration::from_secs(60),
            || (hq.on_hand("s1", sku) == local).then_some(()),
        );
    }
    wait_for("outbox drained", Duration::from_secs(60), || {
        let metrics = api
            .http
            .get(format!("{}/metrics", node.base))
            .send()
            .ok()?
            .text()
            .ok()?;
        metrics
            .lines()
            .any(|l| l == "storenode_sync_outbox_length 0")
            .then_some(())
    });
    assert!(node.terminate().expect("running").success());
    let sales = check_database(&node, &acknowledged);
    assert_eq!(
        hq.on_hand("s1", "MILK"),
        Some(1_000_000 - sales),
        "HQ shows every sale once"
    );
    println!("{cycles} power cuts with sync, {sales} sales, HQ agrees");
}

/// Mounts a small tmpfs for the node's data, so the disk can really fill up.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("SKIPPED: cannot mount a tmpfs (needs root; .ci/run runs as root)");
            return None;
        }
        Some(Self { path, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn start_on(disk: &SmallDisk) -> NodeProcess {
    NodeProcess::start_with(&format!(
        "\n[database]\npath = \"{}/store.db\"\n",
        disk.path.display()
    ))
}

#[test]
fn full_disk_refuses_writes_with_503_keeps_reads_and_recovers() {
    let Some(disk) = SmallDisk::mount("2M") else {
        return;
    };
    let node = start_on(&disk);
    let api = node.client();
    assert_eq!(
        api.post(
            "/v1/receipts",
            "r",
            &json!({ "lines": [{ "sku": "MILK", "quantity": 100 }] })
        )
        .status,
        201
    );
    // Fill the rest of the disk with a file we can delete later.
    let filler = disk.path.join("filler");
    let _ = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=64k",
            "count=1000",
        ])
        .output();

    let mut refused = None;
    for n in 0..2000 {
        let reply = api.post("/v1/sales", &format!("full-{n}"), &sale_body());
        if reply.status != 201 {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the disk never filled");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("disk"),
        "{}",
        refused.body
    );
    // Reads still work.
    let stock = api.get("/v1/stock/MILK");
    assert_eq!(stock.status, 200);
    let ready = api
        .http
        .get(format!("{}/readyz", node.base))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 503, "a full disk cannot sell: not ready");
    let ready = ready.json::<serde_json::Value>().unwrap();
    assert!(
        ready["reasons"].to_string().contains("disk full"),
        "{ready}"
    );
    assert!(node.log().contains("disk"), "the refusal is logged");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut recovered = false;
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        if api
            .post("/v1/sales", &format!("after-{n}"), &sale_body())
            .status
            == 201
        {
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(recovered, "writes resume by themselves once space returns");
    let ready = api
        .http
        .get(format!("{}/readyz", node.base))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    assert_eq!(ready["components"]["store"]["state"], "ok", "{ready}");
}

/// An ext4 image on a loop device, mounted with `errors=remount-ro`, so the kernel can turn
/// the file system read-only under the running node (as it does on a failing SD card).
struct Ext4Image {
    mount: std::path::PathBuf,
    device: String,
    _dir: tempfile::TempDir,
}

impl Ext4Image {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).ok()?;
        let run = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
        let made = run(Command::new("truncate").args(["-s", "32M"]).arg(&image))
            && run(Command::new("mkfs.ext4").args(["-q"]).arg(&image))
            && run(Command::new("mount")
                .args(["-o", "loop,errors=remount-ro"])
                .arg(&image)
                .arg(&mount));
        if !made {
            println!("SKIPPED: cannot mount an ext4 image on a loop device (needs root)");
            return None;
        }
        let source = Command::new("findmnt")
            .args(["-no", "SOURCE"])
            .arg(&mount)
            .output()
            .ok()?;
        let device = String::from_utf8_lossy(&source.stdout).trim().to_string();
        Some(Self {
            mount,
            device,
            _dir: dir,
        })
    }

    /// What ext4 does on an I/O error with `errors=remount-ro`: read-only at once, open
    /// files included.
    fn fail(&self) {
        let name = self.device.rsplit('/').next().unwrap_or_default();
        std::fs::write(
            format!("/sys/fs/ext4/{name}/trigger_fs_error"),
            "storenode test\n",
        )
        .expect("trigger an ext4 error");
    }
}

impl Drop for Ext4Image {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

#[test]
fn read_only_file_system_refuses_writes_with_503_and_keeps_reads() {
    let Some(disk) = Ext4Image::mount() else {
        return;
    };
    let mut node = NodeProcess::start_with(&format!(
        "\n[database]\npath = \"{}/store.db\"\n",
        disk.mount.display()
    ));
    let api = node.client();
    assert_eq!(
        api.post(
            "/v1/receipts",
            "r",
            &json!({ "lines": [{ "sku": "MILK", "quantity": 100 }] })
        )
        .status,
        201
    );
    disk.fail();
    let refused = api.post("/v1/sales", "ro-1", &sale_body());
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("disk"),
        "{}",
        refused.body
    );
    assert_eq!(
        api.get("/v1/stock/MILK").body["on_hand"],
        100,
        "reads still work"
    );
    let ready = api
        .http
        .get(format!("{}/readyz", node.base))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    assert_eq!(ready["components"]["store"]["state"], "down", "{ready}");
    assert_eq!(ready["ready"], false, "{ready}");
    assert!(
        node.log().contains("refuses writes"),
        "the refusal is logged"
    );
    node.kill();
}

#[test]
fn corrupted_database_is_refused_at_start() {
    let mut node = NodeProcess::start();
    let api = node.client();
    for n in 0..50 {
        assert_eq!(
            api.post("/v1/sales", &format!("s{n}"), &sale_body()).status,
            201
        );
    }
    node.terminate();
    let db = node.dir.path().join("store.db");
    let mut bytes = std::fs::read(&db).unwrap();
    // A torn write: the b-tree page headers of every page after the first are garbage, while
    // the file header is intact, so SQLite opens the file and only a check finds the damage.
    for page in bytes.chunks_mut(4096).skip(1) {
        for b in page.iter_mut().take(16) {
            *b = 0x5A;
        }
    }
    std::fs::write(&db, &bytes).unwrap();
    let mut child = Command::new(binary())
        .args(["--config", node.config.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node started on a damaged database");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "exit code 3 (database refused): {err}"
    );
    assert!(
        err.contains("damaged") && err.contains("diag restore"),
        "{err}"
    );
}

#[test]
fn a_flooding_terminal_is_rate_limited_without_starving_others() {
    let node = NodeProcess::start_configured("rate_per_terminal = 2\nburst_per_terminal = 10", "");
    let flood = node.client();
    let mut limited = 0;
    for _ in 0..50 {
        if flood.get("/v1/items/MILK").status == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0, "the flood was never limited");
    let other = node.client().with_token(TOKEN_POS2);
    assert_eq!(
        other.get("/v1/items/MILK").status,
        200,
        "another terminal is served"
    );
}
