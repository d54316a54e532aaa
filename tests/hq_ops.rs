//! An HQ operators can run, against the real binary and a real Mosquitto: `/healthz`,
//! `/readyz` (database, broker, documents) and `/metrics` (messages in, apply latency, lag
//! per store, queue depth, rejections by reason).

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use storenode::sync::transport::{MqttTransport, QoS, TransportConfig};
use sync_util::{BrokerAccess, HqNode, StoreNode, TENANT, wait_for};
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
        (metric(&text, "storenode_hq_rejected_total{reason=\"malformed\"}") == Some(1.0))
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
