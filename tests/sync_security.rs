//! Security of sync against a real Mosquitto with mutual TLS and the project's ACL:
//! stores and HQ converge over mTLS; an unknown certificate is refused; a store publishing
//! under another store's topic is denied (PUBACK 135) and sees the denial.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::pki::{ClientCert, Pki};
use storenode::sync::transport::{MqttTransport, PublishError, QoS, TransportConfig};
use storenode::tls::{TlsFiles, client_config};
use sync_util::{BrokerAccess, HQ_TOKEN, HqNode, StoreNode, TENANT, wait_for};
use tokio_util::sync::CancellationToken;

fn access(port: u16, cert: &ClientCert) -> BrokerAccess {
    BrokerAccess::Mtls {
        port,
        ca: cert.ca_cert.clone(),
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    }
}

fn transport(port: u16, client_id: &str, cert: &ClientCert) -> TransportConfig {
    let mut cfg = TransportConfig::new(client_id, "127.0.0.1", port);
    cfg.tls = Some(
        client_config(&TlsFiles {
            ca_cert: cert.ca_cert.clone(),
            client_cert_chain: cert.cert.clone(),
            client_key: cert.key.clone(),
        })
        .expect("client TLS config"),
    );
    cfg
}

#[test]
fn stores_and_hq_converge_over_mtls_with_the_acl() {
    let pki = Pki::new("sync-mtls");
    let broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    let hq = HqNode::start(&access(broker.port(), &pki.client("hq")), "");
    let store = StoreNode::start("s1", "lane1", &access(broker.port(), &pki.client("s1")));
    store.receive("r1", "SHIRT", 7);
    store.sell("sale-1", "SHIRT", 2);
    wait_for(
        "HQ sees s1/SHIRT = 5 over mTLS",
        Duration::from_secs(60),
        || (hq.on_hand("s1", "SHIRT") == Some(5)).then_some(()),
    );
    wait_for("outbox acknowledged", Duration::from_secs(60), || {
        (store.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
    });
    assert_eq!(
        store.metric("storenode_sync_denied_total"),
        Some(0),
        "{}",
        broker.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let pki = Pki::new("trusted");
    let stranger = Pki::new("stranger");
    let broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    // Trusts the broker (right CA) but presents a certificate the broker does not know.
    let mut cert = stranger.client("s1");
    cert.ca_cert = pki.ca_cert().to_owned();
    let shutdown = CancellationToken::new();
    let (handle, _incoming, task) = MqttTransport::start(
        transport(broker.port(), "s1.lane1", &cert),
        shutdown.clone(),
    )
    .expect("start transport");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = handle.status();
        assert!(
            !status.connected,
            "an unknown certificate must never connect"
        );
        if status.last_error.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no connection error reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_writing_another_stores_topic_is_denied_and_sees_it() {
    let pki = Pki::new("acl");
    let broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    let shutdown = CancellationToken::new();
    let (handle, _incoming, task) = MqttTransport::start(
        transport(broker.port(), "s1.lane1", &pki.client("s1")),
        shutdown.clone(),
    )
    .expect("start transport");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !handle.is_connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not connected: {}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let own = format!("storenode/v1/{TENANT}/s1/changes/stock/s1.lane1");
    let foreign = format!("storenode/v1/{TENANT}/s2/changes/stock/s2.lane1");
    let allowed = tokio::time::timeout(
        Duration::from_secs(10),
        handle.publish(own, vec![1u8], QoS::AtLeastOnce, false),
    )
    .await
    .expect("bounded");
    assert!(allowed.is_ok(), "own topic: {allowed:?}");
    let denied = tokio::time::timeout(
        Duration::from_secs(10),
        handle.publish(foreign, vec![1u8], QoS::AtLeastOnce, false),
    )
    .await
    .expect("bounded");
    assert_eq!(denied, Err(PublishError::Denied));
    assert_eq!(handle.metrics().snapshot().denied, 1);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

/// Regression: with a certificate the ACL does not match (here another store's), the broker
/// refused every publish (PUBACK 135) while `/readyz` said sync was ok ("connected").
#[test]
fn readyz_shows_sync_down_while_the_broker_refuses_every_publish() {
    let pki = Pki::new("denied");
    let broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    let lane = StoreNode::start("s1", "lane1", &access(broker.port(), &pki.client("s2")));
    lane.receive("r1", "MILK", 10);
    wait_for(
        "/readyz shows the refused publishes",
        Duration::from_secs(60),
        || {
            let body = lane.readyz();
            body.contains("PUBACK 135").then_some(body)
        },
    );
    assert!(lane.metric("storenode_sync_denied_total").unwrap_or(0) > 0);
}

/// HQ reads the bearer scheme case-insensitively (RFC 9110 §11.1), as the store's API does;
/// it used to answer 401 to `bearer <token>`.
#[test]
fn hq_takes_the_bearer_scheme_in_any_case() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let hq = HqNode::start(
        &BrokerAccess::Plain {
            port: broker.port(),
        },
        "",
    );
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let header = format!("{scheme} {HQ_TOKEN}");
        assert_eq!(
            hq.status_with_authorization("/v1/stock?store=s1", &header),
            200,
            "{scheme}"
        );
    }
    assert_eq!(
        hq.status_with_authorization("/v1/stock?store=s1", &format!("Basic {HQ_TOKEN}")),
        401
    );
}

/// HQ reads a JSON body whatever its content type says, as the store does (it answered a
/// `curl -d` 415), and refuses a bad one in the store API's JSON error shape
/// (`{"error": code, "message": ..., "field"?: ...}`; HQ used to answer `{"error": text}`):
/// 400 for what is not JSON, 422 for JSON that does not fit the request, naming the field.
#[test]
fn hq_reads_json_without_a_content_type_and_refuses_bad_bodies_as_json() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let hq = HqNode::start(
        &BrokerAccess::Plain {
            port: broker.port(),
        },
        "",
    );
    let item = r#"{"items":[{"sku":"MILK","name":"Milk","price_minor":119,"currency":"EUR",
        "tax_class":"reduced","gtins":[],"variable_measure":false}]}"#;
    let (status, body) = hq.post_untyped("/v1/catalog", item);
    assert_eq!(status, 200, "{body}");
    let (status, body) = hq.post_untyped("/v1/catalog", "{\"items\": [");
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let (status, body) = hq.post_untyped("/v1/catalog", r#"{"items": 7}"#);
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("unprocessable")),
        "{body}"
    );
    assert_eq!(body["field"], "items", "{body}");
    // The same shape for refusals axum makes itself, and for a wrong token.
    let (status, body) = hq.get_json("/v1/no-such-route");
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = hq.get_json("/v1/stock");
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (status, body) = hq.get_json("/v1/stock/s1/NOPE");
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(
        hq.status_with_authorization("/v1/stock?store=s1", "Bearer wrong-token-0123456789"),
        401
    );
}
