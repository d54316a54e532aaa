//! Serial devices end to end, through real pseudo-terminal pairs (no hardware):
//! scans reach the POS event stream and the store; unplug/replug; garbage between frames;
//! a high-rate RFID stream with duplicates; `diag decode --json`.
//!
//! No timing assertions: every wait is bounded and only fails when its condition never
//! becomes true.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::node::{NodeProcess, TOKEN_POS1, binary};
use serde_json::{Value, json};
use storenode::diag::simulate::pty_at;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it returns `Some`, or panics after [`WAIT`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw SSE subscription: the test reads the text as it arrives.
struct Sse {
    stream: TcpStream,
    text: String,
}

impl Sse {
    fn connect(base: &str, device: &str) -> Sse {
        let addr = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect for SSE");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        write!(
            stream,
            "GET /v1/events?device={device} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN_POS1}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("send SSE request");
        let mut sse = Sse {
            stream,
            text: String::new(),
        };
        sse.wait_for_text("HTTP/1.1 200");
        sse
    }

    /// Reads until `needle` has arrived (anywhere in the stream so far).
    fn wait_for_text(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while !self.text.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "SSE never showed {needle:?}; got:\n{}",
                self.text
            );
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("SSE stream closed; got:\n{}", self.text),
                Ok(n) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("SSE read failed: {e}"),
            }
        }
    }

    /// The `data:` payloads of all `event: <kind>` events received so far.
    fn events(&self, kind: &str) -> Vec<Value> {
        let marker = format!("event: {kind}\n");
        self.text
            .split(&marker)
            .skip(1)
            .filter_map(|rest| {
                let data = rest.lines().find_map(|l| l.strip_prefix("data: "))?;
                serde_json::from_str(data).ok()
            })
            .collect()
    }
}

fn device_component(node: &NodeProcess, device: &str) -> Option<(u16, Value)> {
    let reply = node.client().get("/readyz");
    let component = reply.body["components"][format!("device:{device}")].clone();
    (!component.is_null()).then_some((reply.status, component))
}

fn scan_rows(db: &Path) -> Vec<(String, Option<String>, bool)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    let mut stmt = conn
        .prepare("SELECT raw, sku, valid FROM scan_event WHERE device = 'scanner0' ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Writes to the pty's master end, as the scanner would.
fn send(rt: &tokio::runtime::Runtime, master: &mut tokio_serial::SerialStream, bytes: &[u8]) {
    rt.block_on(AsyncWriteExt::write_all(master, bytes))
        .expect("write to the pty");
}

/// STX/ETX framing with a CR record suffix, as in PROTOCOLS.md §1.5.
fn stx_frame(data: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02];
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\x03\r");
    frame
}

#[test]
fn scanner_on_a_pty_streams_to_pos_and_store_and_survives_unplug() {
    let rt = runtime();
    let ports = tempfile::tempdir().expect("tempdir");
    let link = ports.path().join("scanner0");
    // Port missing at start: the node must start anyway and report the device down.
    let node = NodeProcess::start_with(&format!(
        "[devices]\n[[devices.scanners]]\nid = \"scanner0\"\nport = \"{}\"\nstx_etx = true\nsuffix = \"cr\"\n",
        link.display()
    ));
    let (status, component) = wait_for("device:scanner0 in /readyz", || {
        device_component(&node, "scanner0")
    });
    assert_eq!(
        status, 200,
        "a missing scanner does not make the node unready"
    );
    assert_eq!(component["state"], "down", "{component}");
    assert_eq!(component["critical"], false);

    let (mut master, slave) = {
        let _guard = rt.enter();
        pty_at(&link).expect("pty")
    };
    wait_for("scanner0 connected", || {
        device_component(&node, "scanner0").filter(|(_, c)| c["state"] == "ok")
    });
    let mut sse = Sse::connect(&node.base, "scanner0");

    // Garbage before, between and after frames; GS1-128 with a real GS byte.
    let mut wire = b"\x7fnoise\x00".to_vec();
    wire.extend(stx_frame(b"]E05901234123457"));
    wire.extend_from_slice(b"\xff\xfe junk ");
    wire.extend(stx_frame(b"]C10107032069804988100329\x1d15210526"));
    wire.extend_from_slice(b"trailing");
    send(&rt, &mut master, &wire);
    sse.wait_for_text("07032069804988");
    let scans = sse.events("scan");
    assert_eq!(scans.len(), 2, "{scans:?}");
    assert_eq!(scans[0]["device"], "scanner0");
    assert_eq!(scans[0]["symbology"], "]E0");
    assert_eq!(scans[0]["gtin14"], "05901234123457");
    assert_eq!(scans[0]["item"]["sku"], "SHIRT");
    assert_eq!(scans[1]["ai"]["10"], "0329");
    assert_eq!(scans[1]["ai"]["15"], "210526");
    assert_eq!(scans[1]["item"], Value::Null, "not in the catalog");

    let db = node.dir.path().join("store.db");
    let rows = wait_for("scans in scan_event", || {
        let rows = scan_rows(&db);
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!(rows[0].1.as_deref(), Some("SHIRT"));
    assert!(rows.iter().all(|r| r.2));

    // Unplug: the device end disappears; the node reports it and keeps selling.
    drop(master);
    drop(slave);
    wait_for("scanner0 down after unplug", || {
        device_component(&node, "scanner0").filter(|(_, c)| c["state"] == "down")
    });
    let api = node.client();
    let sale = api.post(
        "/v1/sales",
        "sale-while-unplugged",
        &json!({"lines": [{"sku": "MILK", "quantity": 1}], "payments": [{"method": "cash", "amount_minor": 200}]}),
    );
    assert_eq!(sale.status, 201, "{}", sale.body);
    assert_eq!(node.client().get("/readyz").status, 200);

    // Replug at the same path: a new pty behind the same symlink.
    let (mut master, _slave) = {
        let _guard = rt.enter();
        pty_at(&link).expect("second pty")
    };
    wait_for("scanner0 reconnected", || {
        device_component(&node, "scanner0").filter(|(_, c)| c["state"] == "ok")
    });
    send(&rt, &mut master, &stx_frame(b"]E496385074"));
    sse.wait_for_text("00000096385074");
    let metrics = node.client().get("/metrics").body;
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains("storenode_device_reconnects_total{device=\"scanner0\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("storenode_device_garbage_bytes_total{device=\"scanner0\"} 0\n"),
        "garbage was counted: {metrics}"
    );
}

/// The in-process node (library API) with one M100 reader on a pty driven by the simulator.
mod rfid {
    use super::*;
    use storenode::config::Config;
    use storenode::daemon::Node;
    use storenode::devices::codec::ReaderProtocol;
    use storenode::devices::sim::{RfidSim, sample_epcs};
    use storenode::diag::simulate::run_rfid;
    use storenode::events::LiveEvent;
    use tokio::sync::broadcast;
    use tokio_util::sync::CancellationToken;

    const TAGS: usize = 40;

    fn config(dir: &Path, link: &Path) -> Config {
        config_with(dir, link, "")
    }

    /// `reader_extra`: more keys of the door reader's table.
    fn config_with(dir: &Path, link: &Path, reader_extra: &str) -> Config {
        let text = format!(
            r#"
[node]
store_id = "s1"
data_dir = "{dir}"
[api]
listen = "127.0.0.1:0"
[[api.terminals]]
id = "pos1"
token = "{TOKEN_POS1}"
[devices]
[[devices.readers]]
id = "door"
port = "{link}"
protocol = "m100"
region = "eu"
power_cdbm = 2000
exit = true
{reader_extra}
"#,
            dir = dir.display(),
            link = link.display()
        );
        Config::from_toml(&dir.join("storenode.toml"), &text).expect("config")
    }

    async fn next_event(
        events: &mut broadcast::Receiver<LiveEvent>,
        patience: Duration,
    ) -> Option<LiveEvent> {
        match tokio::time::timeout(patience, events.recv()).await {
            Ok(Ok(event)) => Some(event),
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => panic!("lagged {n} events"),
            _ => None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn high_rate_stream_with_duplicates_gives_one_enter_per_tag_and_exit_alerts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("reader0");
        let (master, _slave) = pty_at(&link).expect("pty");
        let node = Node::start(config(dir.path(), &link)).await.expect("node");
        let mut events = node.state.events.subscribe();
        let tags = sample_epcs(TAGS, 42);
        let sold = hex::encode_upper(&tags[0]);
        mark_sold(&node, &sold).await;

        // 40 tags, each read 8 times per round, 2 % noise, 20,000 reads/s for at most 3 s.
        let mut sim = RfidSim::new(ReaderProtocol::M100, tags.clone(), 8, 0.02, 7);
        let stop = CancellationToken::new();
        let stop_sim = stop.clone();
        let simulator = tokio::spawn(async move {
            let report = run_rfid(
                master,
                &mut sim,
                20_000.0,
                Some(Duration::from_secs(3)),
                &stop_sim,
            )
            .await;
            (report, sim)
        });

        let mut enters: Vec<String> = Vec::new();
        let mut alerts: Vec<String> = Vec::new();
        let mut saw_all = false;
        // Until every tag entered and the simulator is done; then 1 s more, so a duplicate
        // Enter would still be caught.
        loop {
            let patience = if saw_all && simulator.is_finished() {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            };
            let Some(event) = next_event(&mut events, patience).await else {
                break;
            };
            let body: Value = serde_json::from_str(&event.json).expect("event json");
            match (event.kind, body["event"].as_str()) {
                ("tag", Some("enter")) => {
                    enters.push(body["epc"].as_str().unwrap_or_default().into())
                }
                ("exit_alert", _) => alerts.push(body["epc"].as_str().unwrap_or_default().into()),
                _ => {}
            }
            saw_all |= enters.len() >= TAGS && alerts.len() >= TAGS - 1;
        }
        stop.cancel();
        let (report, sim) = simulator.await.expect("simulator task");
        let report = report.expect("simulator ran");
        assert!(
            report.items > 10 * TAGS as u64,
            "many duplicate reads: {report:?}"
        );
        assert!(sim.valid_reads() > 0);

        let mut unique = enters.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(enters.len(), TAGS, "exactly one Enter per tag: {enters:?}");
        assert_eq!(unique.len(), TAGS);
        assert!(!alerts.contains(&sold), "a sold tag raises no exit alert");
        assert_eq!(alerts.len(), TAGS - 1);

        let door = node.devices.get("door").expect("door status");
        assert!(
            door.counters.tag_reads.get() > TAGS as u64,
            "duplicates were read"
        );
        assert!(door.counters.bad_checksums.get() > 0, "noise was counted");
        let firmware = door.firmware().expect("reader info read at connect");
        assert!(firmware.firmware.is_some(), "{firmware:?}");

        let (tag_events, in_left) = node
            .state
            .store
            .read(|conn| {
                let enters: i64 = conn.query_row(
                    "SELECT count(*) FROM tag_event WHERE kind = 'enter'",
                    [],
                    |r| r.get(0),
                )?;
                let left: i64 = conn.query_row(
                    "SELECT count(*) FROM epc_item WHERE state = 'left'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((enters, left))
            })
            .await
            .expect("read store");
        assert_eq!(tag_events, TAGS as i64);
        assert_eq!(in_left, TAGS as i64 - 1);
        node.stop().await;
    }

    /// Presence events seen so far: (kind or tag event, EPC hex).
    type Seen = Vec<(String, String)>;

    /// Reads events into `seen` until `done(seen)`; panics after [`WAIT`].
    async fn events_until(
        events: &mut broadcast::Receiver<LiveEvent>,
        seen: &mut Seen,
        what: &str,
        done: impl Fn(&Seen) -> bool,
    ) {
        let deadline = Instant::now() + WAIT;
        while !done(seen) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {seen:?}"
            );
            let Some(event) = next_event(events, Duration::from_millis(500)).await else {
                continue;
            };
            let body: Value = serde_json::from_str(&event.json).expect("event json");
            let kind = match (event.kind, body["event"].as_str()) {
                ("tag", Some(e)) => e.to_string(),
                (kind, _) => kind.to_string(),
            };
            seen.push((kind, body["epc"].as_str().unwrap_or_default().into()));
        }
    }

    fn count(seen: &Seen, kind: &str) -> usize {
        seen.iter().filter(|(k, _)| k == kind).count()
    }

    /// Simulates the reader on `master` with `tags` until `stop`.
    fn simulate(
        master: tokio_serial::SerialStream,
        tags: Vec<Vec<u8>>,
        stop: &CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut sim = RfidSim::new(ReaderProtocol::M100, tags, 2, 0.0, 3);
            let _ = run_rfid(master, &mut sim, 200.0, None, &stop).await;
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn presence_resumes_after_an_unplug_and_a_silent_port_shows_stalled() {
        const N: usize = 4;
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("reader0");
        let (master, slave) = pty_at(&link).expect("pty");
        let node = Node::start(config_with(
            dir.path(),
            &link,
            "absence_secs = 2\nstall_secs = 3",
        ))
        .await
        .expect("node");
        let mut events = node.state.events.subscribe();
        let tags = sample_epcs(N, 5);
        let stop = CancellationToken::new();
        let sim = simulate(master, tags.clone(), &stop);
        let mut seen = Seen::new();
        events_until(&mut events, &mut seen, "tags entering", |s| {
            count(s, "enter") == N && count(s, "exit_alert") == N
        })
        .await;

        // Unplug for longer than `absence`: the reader sees nothing, so its tags leave.
        stop.cancel();
        sim.await.expect("simulator");
        drop(slave);
        events_until(
            &mut events,
            &mut seen,
            "tags leaving while unplugged",
            |s| count(s, "leave") == N,
        )
        .await;

        // Back with the same tags in the field: they enter again, unsold ones alert again.
        let (master, slave) = pty_at(&link).expect("second pty");
        let stop = CancellationToken::new();
        let sim = simulate(master, tags.clone(), &stop);
        events_until(&mut events, &mut seen, "tags entering again", |s| {
            count(s, "enter") == 2 * N && count(s, "exit_alert") == 2 * N
        })
        .await;
        stop.cancel();
        sim.await.expect("simulator");
        drop(slave);

        // A port that opens but never answers shows as stalled.
        let (_silent_master, _slave) = pty_at(&link).expect("silent pty");
        let door = node.devices.get("door").expect("door status").clone();
        let deadline = Instant::now() + WAIT;
        while !door.is_stalled() {
            assert!(
                Instant::now() < deadline,
                "the silent reader never showed stalled"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let component = node.state.health.snapshot()["device:door"].clone();
        assert!(component.detail.starts_with("stalled"), "{component:?}");
        let mut metrics = String::new();
        node.devices.render(&mut metrics);
        assert!(
            metrics.contains("storenode_device_stalled{device=\"door\"} 1"),
            "{metrics}"
        );
        node.stop().await;
    }

    /// Sells a T-shirt carrying `epc` through the real sale path.
    async fn mark_sold(node: &Node, epc: &str) {
        let config = node.state.config.clone();
        let writer = node.state.store.writer_id().to_owned();
        let epc = epc.to_owned();
        node.state
            .store
            .write(move |conn| {
                // A tag is sold only on a line of its own item: the T-shirt carries its GTIN.
                let gtin = storenode::gs1::decode_epc_hex(&epc)
                    .ok()
                    .and_then(|e| e.gtin14().map(|g| g.as_str().to_string()));
                let item = storenode::store::catalog::Item {
                    sku: "SHIRT".into(),
                    name: "T-shirt".into(),
                    price_minor: 1299,
                    currency: "EUR".into(),
                    tax_class: "standard".into(),
                    variable_measure: false,
                    gtins: gtin.into_iter().collect(),
                    epc_patterns: Vec::new(),
                };
                storenode::store::catalog::upsert(conn, &item, "t")?;
                let request: storenode::store::sales::SaleRequest = serde_json::from_value(json!({
                    "lines": [{"sku": "SHIRT", "quantity": 1, "epc": epc}],
                    "payments": [{"method": "card", "amount_minor": 1299}]
                }))
                .map_err(|e| storenode::store::StoreError::unprocessable("test", e.to_string()))?;
                let now = storenode::clock::now_utc();
                let ctx = storenode::store::sales::WriteContext {
                    terminal: "pos1",
                    writer_id: &writer,
                    currency: &config.node.currency,
                    tax: &config.tax,
                    now: &now,
                    pricing: None,
                };
                storenode::store::sales::record_sale(conn, &ctx, &request)
            })
            .await
            .expect("sale with EPC");
    }
}

fn decode_json(values: &[&str]) -> Vec<Value> {
    let output = Command::new(binary())
        .args(["diag", "decode", "--json"])
        .args(values)
        .stdin(Stdio::null())
        .output()
        .expect("run diag decode");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[test]
fn diag_decode_json_vectors() {
    let out = decode_json(&[
        "3074257BF7194E4000001A85",
        "]C10107032069804988100329<GS>15210526",
        "5901234123458",
    ]);
    assert_eq!(
        out[0],
        json!({"kind": "epc", "scheme": "sgtin-96", "filter": 3, "gtin14": "80614141123458",
               "serial": "6789", "epc_uri": "urn:epc:id:sgtin:0614141.812345.6789"})
    );
    assert_eq!(
        out[1],
        json!({"kind": "barcode", "symbology": "]C1", "gtin14": "07032069804988", "valid": true,
               "ai": {"01": "07032069804988", "10": "0329", "15": "210526"}})
    );
    assert_eq!(out[2]["valid"], false);
    assert_eq!(out[2]["error"], "GTIN check digit: expected 7, got 8");
}

#[test]
fn diag_decode_reads_stdin_with_real_gs_bytes() {
    let mut child = Command::new(binary())
        .args(["diag", "decode", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run diag decode -");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"]d20107032069804988100329\x1d15210526\nE28011704000021D35AE4008\n")
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["symbology"], "]d2");
    assert_eq!(lines[0]["ai"]["15"], "210526");
    assert_eq!(lines[1]["scheme"], "unknown");
    assert_eq!(lines[1]["hex"], "E28011704000021D35AE4008");
}
