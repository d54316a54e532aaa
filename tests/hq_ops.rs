//! An HQ operators can run, against the real binary and a real Mosquitto: `/healthz`,
//! `/readyz` (database, broker, documents) and `/metrics` (messages in, apply latency, lag
//! per store, queue depth, rejections by reason); HTTPS (`hq.http_tls`); clients with
//! roles (`[[hq.clients]]`: `web`, `admin`; `hq.token` is admin).

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::node::binary;
use common::pki::Pki;
use serde_json::json;
use storenode::sync::transport::{MqttTransport, QoS, TransportConfig};
use sync_util::{BrokerAccess, HQ_TOKEN, HqNode, StoreNode, TENANT, wait_for};
use tokio_util::sync::CancellationToken;

const CONVERGE: Duration = Duration::from_secs(60);

/// A metric line's value (`name{labels} value`), as a float.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Publishes `payload` on `topic` as a client of the broker (no ACL on the plain broker).
fn publish_raw(port: u16, topic: &str, payload: &[u8]) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let (handle, _incoming, task) = MqttTransport::start(
            TransportConfig::new("s1.intruder", "127.0.0.1", port),
            shutdown.clone(),
        )
        .expect("start transport");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !handle.is_connected() {
            assert!(tokio::time::Instant::now() < deadline, "not connected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = tokio::time::timeout(
            Duration::from_secs(10),
            handle.publish(topic.to_owned(), payload.to_vec(), QoS::AtLeastOnce, false),
        )
        .await
        .expect("bounded");
        assert!(sent.is_ok(), "{sent:?}");
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    });
}

/// HQ used to answer 404 to all three.
#[test]
fn hq_reports_liveness_readiness_and_its_figures() {
    let mut broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&access, "");
    let (status, body) = hq.get_public("/healthz");
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ok")),
        "{body}"
    );
    // /metrics says ready without anyone asking /readyz (it waited for a /readyz before).
    wait_for("HQ ready in /metrics", CONVERGE, || {
        (metric(&hq.get_text("/metrics"), "storenode_hq_ready") == Some(1.0)).then_some(())
    });
    let body = wait_for("HQ ready", CONVERGE, || {
        let (status, body) = hq.get_public("/readyz");
        (status == 200).then_some(body)
    });
    for component in ["database", "broker", "documents"] {
        assert_eq!(body["components"][component]["state"], "ok", "{body}");
    }

    let store = StoreNode::start("s1", "lane1", &access);
    store.receive("r1", "MILK", 5);
    store.sell("sale-1", "MILK", 2);
    wait_for("HQ sees s1", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(3)).then_some(())
    });
    publish_raw(
        broker.port(),
        &format!("storenode/v1/{TENANT}/s1/changes/stock/s1.lane1"),
        b"not a sync message",
    );
    let text = wait_for("the rejection counted", CONVERGE, || {
        let text = hq.get_text("/metrics");
        (metric(&text, "storenode_hq_rejected_total{reason=\"payload\"}") == Some(1.0))
            .then_some(text)
    });
    assert!(
        metric(&text, "storenode_hq_messages_in_total").is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert!(
        metric(&text, "storenode_hq_apply_duration_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        metric(&text, "storenode_hq_store_lag_seconds{store=\"s1\"}").is_some_and(|s| s >= 0.0),
        "{text}"
    );
    assert!(
        metric(&text, "storenode_hq_incoming_queue").is_some(),
        "{text}"
    );
    assert_eq!(metric(&text, "storenode_hq_ready"), Some(1.0), "{text}");

    // The broker gone: not ready, and the reason names it.
    broker.stop();
    let body = wait_for("HQ not ready without its broker", CONVERGE, || {
        let (status, body) = hq.get_public("/readyz");
        (status == 503).then_some(body)
    });
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("broker"), "{body}");
    assert_eq!(body["components"]["database"]["state"], "ok", "{body}");
    broker.restart();
    wait_for("HQ ready again", CONVERGE, || {
        (hq.get_public("/readyz").0 == 200).then_some(())
    });
}

const WEB_TOKEN: &str = "web-shop-token-0123456789";

/// The web shop's client, its token in a file as the systemd unit's would be.
fn web_client(dir: &std::path::Path) -> String {
    let file = dir.join("web.token");
    std::fs::write(&file, format!("{WEB_TOKEN}\n")).expect("write token");
    format!(
        "[[hq.clients]]\nname = \"webshop\"\nrole = \"web\"\ntoken_file = \"{}\"\n",
        file.display()
    )
}

/// HQ answered only plain HTTP; with `[hq.http_tls]` it serves its API over HTTPS (and the
/// CLI on the box reaches it, trusting HQ's own certificate), and plain HTTP is refused.
#[test]
fn hq_serves_its_api_over_https() {
    let pki = Pki::new("hq-https");
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let tls = format!(
        "[hq.http_tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.server_cert().display(),
        pki.server_key().display()
    );
    let hq = HqNode::start_https(
        &BrokerAccess::Plain {
            port: broker.port(),
        },
        &tls,
        pki.ca_cert(),
    );
    assert!(hq.base.starts_with("https://"));
    let (status, body) = hq.call_as(HQ_TOKEN, "GET", "/v1/stock?store=s1", None);
    assert_eq!(status, 200, "{body}");
    wait_for("HQ ready over HTTPS", CONVERGE, || {
        (hq.get_public("/readyz").0 == 200).then_some(())
    });
    let plain = hq.base.replace("https://", "http://");
    let refused = reqwest::blocking::Client::new()
        .get(format!("{plain}/healthz"))
        .timeout(Duration::from_secs(5))
        .send();
    assert!(
        refused.is_err() || !refused.as_ref().is_ok_and(|r| r.status().is_success()),
        "plain HTTP answered: {refused:?}"
    );
    // `storenode hq catalog import` on the HQ box goes through HQ's HTTPS listener.
    let csv = hq.dir.path().join("items.csv");
    std::fs::write(
        &csv,
        "sku,name,price_minor,currency,tax_class,variable_measure,gtins\nMILK,Milk,119,EUR,reduced,false,\n",
    )
    .expect("write csv");
    let out = std::process::Command::new(binary())
        .args([
            "--config",
            hq.config.to_str().unwrap_or_default(),
            "hq",
            "catalog",
            "import",
        ])
        .arg(&csv)
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// HQ had one token that could do everything; now each client has its own, with a role:
/// the web shop's reads stock and orders and places and cancels orders, and is refused the
/// rest with 403 in the shared error shape; `hq.token` still works, as admin.
#[test]
fn each_client_has_its_token_and_role() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let clients = web_client(dir.path());
    let hq = HqNode::start_in(dir, &access, &clients);
    let (status, body) = hq.call_as(WEB_TOKEN, "GET", "/v1/stock?store=s1", None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = hq.call_as(WEB_TOKEN, "GET", "/v1/orders?store=s1", None);
    assert_eq!(status, 200, "{body}");
    // Placing is the web shop's right: refused for the store's state (no lane, no escrow),
    // never for the role.
    let order =
        json!({"order_id": "web-1", "store": "s1", "lines": [{"sku": "MILK", "quantity": 1}]});
    let (status, body) = hq.call_as(WEB_TOKEN, "POST", "/v1/orders", Some(order));
    assert_ne!(status, 403, "{body}");
    assert_ne!(status, 401, "{body}");
    let (status, body) = hq.call_as(WEB_TOKEN, "POST", "/v1/orders/web-1/cancel", None);
    assert!(status != 403 && status != 401, "{status} {body}");

    let catalog = json!({"items": []});
    let (status, body) = hq.call_as(WEB_TOKEN, "POST", "/v1/catalog", Some(catalog.clone()));
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("webshop")),
        "{body}"
    );
    let erase = json!({"email": "a@example.com"});
    let (status, _) = hq.call_as(WEB_TOKEN, "POST", "/v1/privacy/erase", Some(erase));
    assert_eq!(status, 403);
    let (status, _) = hq.call_as(WEB_TOKEN, "GET", "/v1/epcis/events", None);
    assert_eq!(status, 403);
    // The single hq.token is admin.
    let (status, body) = hq.call_as(HQ_TOKEN, "POST", "/v1/catalog", Some(catalog));
    assert_eq!(status, 200, "{body}");
    let (status, body) = hq.call_as("not-a-client-token-0123", "GET", "/v1/stock?store=s1", None);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
}

/// `storenode-hq.service` is `Type=notify` with `WatchdogSec=30`, but HQ never said READY=1
/// nor pinged the watchdog, so systemd never saw it started and killed it. A datagram socket
/// stands in for systemd.
#[test]
fn hq_notifies_ready_and_pings_the_watchdog() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let token = dir.path().join("hq-admin");
    std::fs::write(&token, format!("{HQ_TOKEN}\n")).expect("token");
    let config = dir.path().join("hq.toml");
    let port = common::node::free_port();
    std::fs::write(
        &config,
        format!(
            "[hq]\ntenant = \"{TENANT}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"\n{}",
            dir.path().display(),
            token.display(),
            BrokerAccess::Plain {
                port: broker.port()
            }
            .toml()
        ),
    )
    .expect("config");
    let mut child = std::process::Command::new(binary())
        .args(["--config", config.to_str().expect("utf-8"), "hq"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hq");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // Bounded: at most 50 messages or the read timeout.
    for _ in 0..50 {
        match notify.recv(&mut buf) {
            Ok(n) => seen.push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or_default())),
            Err(_) => break,
        }
        if seen.contains("READY=1") && seen.contains("WATCHDOG=1") {
            break;
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let status = child.wait().expect("wait");
    assert!(seen.contains("READY=1"), "{seen}");
    assert!(seen.contains("STATUS=serving on"), "{seen}");
    assert!(seen.contains("WATCHDOG=1"), "{seen}");
    assert!(
        status.success(),
        "HQ did not stop cleanly on SIGTERM: {status:?}"
    );
}
