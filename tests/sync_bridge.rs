//! In-store sync while the WAN is down: two lanes of one store on the store box's own
//! Mosquitto, bridged to HQ's Mosquitto over mutual TLS with a persistent queue by the
//! shipped `config/mosquitto/store-bridge.conf` (only its placeholders, file paths and
//! reconnect timer filled in). A member lookup by phone crosses the bridge while the WAN is
//! up, and is answered 503 while it is down, never reaching HQ later. Real brokers,
//! real binaries, loopback only; every wait is bounded and nothing asserts on timing.

mod common;
mod sync_util;

use std::path::Path;
use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::pki::{ClientCert, Pki};
use serde_json::{Value, json};
use sync_util::{BrokerAccess, HqNode, StoreNode, TENANT, wait_for};

const CONVERGE: Duration = Duration::from_secs(90);

/// The shipped bridge section for store `store`, pointed at HQ's broker on `hq_port`.
fn bridge_section(store: &str, hq_port: u16, cert: &ClientCert) -> String {
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto/store-bridge.conf"),
    )
    .expect("read config/mosquitto/store-bridge.conf");
    for placeholder in [
        "TENANT_ID",
        "STORE_ID",
        "HQ_BROKER",
        "restart_timeout 5 120",
    ] {
        assert!(
            template.contains(placeholder),
            "template lacks {placeholder}"
        );
    }
    template
        .replace("TENANT_ID", TENANT)
        .replace("STORE_ID", store)
        .replace("HQ_BROKER", &format!("127.0.0.1:{hq_port}"))
        .replace(
            "/etc/mosquitto/storenode/ca.pem",
            &cert.ca_cert.to_string_lossy(),
        )
        .replace(
            "/etc/mosquitto/storenode/store.pem",
            &cert.cert.to_string_lossy(),
        )
        .replace(
            "/etc/mosquitto/storenode/store.key",
            &cert.key.to_string_lossy(),
        )
        // A test cannot wait minutes for the bridge's reconnect backoff.
        .replace("restart_timeout 5 120", "restart_timeout 1 2")
}

fn lane_shows(lane: &StoreNode, sku: &str, expected: i64) {
    wait_for(
        &format!("the lane shows {sku} = {expected}"),
        CONVERGE,
        || (lane.on_hand(sku) == expected).then_some(()),
    );
}

fn hq_shows(hq: &HqNode, sku: &str, expected: i64) {
    wait_for(&format!("HQ shows s1/{sku} = {expected}"), CONVERGE, || {
        (hq.on_hand("s1", sku) == Some(expected)).then_some(())
    });
}

/// `POST /v1/loyalty/find` at the lane's till by phone: `(status, body)`.
fn find_by_phone(lane: &StoreNode, phone: &str) -> (u16, Value) {
    let reply = reqwest::blocking::Client::new()
        .post(format!("{}/v1/loyalty/find", lane.base))
        .bearer_auth(common::node::TOKEN_POS1)
        .timeout(Duration::from_secs(20))
        .json(&json!({ "phone": phone }))
        .send()
        .expect("POST /v1/loyalty/find");
    let status = reply.status().as_u16();
    (status, reply.json().unwrap_or(Value::Null))
}

/// How many store lookups HQ answered so far.
fn hq_answered(hq: &HqNode) -> usize {
    hq.log()
        .matches("member lookup from a store answered")
        .count()
}

#[test]
fn lanes_converge_through_the_store_broker_while_hq_is_cut_off_and_hq_gets_everything_once() {
    let pki = Pki::new("bridge");
    let mut hq_broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    let hq_cert = pki.client("hq");
    let hq = HqNode::start(
        &BrokerAccess::Mtls {
            port: hq_broker.port(),
            ca: hq_cert.ca_cert.clone(),
            cert: hq_cert.cert.clone(),
            key: hq_cert.key.clone(),
        },
        "",
    );
    let mut local_opts = MosquittoOptions::plain();
    local_opts.extra = bridge_section("s1", hq_broker.port(), &pki.client("s1"));
    let store_broker = Mosquitto::start(local_opts);
    let local = BrokerAccess::Plain {
        port: store_broker.port(),
    };
    let lane1 = StoreNode::start("s1", "lane1", &local);
    let lane2 = StoreNode::start("s1", "lane2", &local);

    lane1.receive("r1", "MILK", 100);
    lane_shows(&lane2, "MILK", 100);
    hq_shows(&hq, "MILK", 100);

    // A member lookup crosses the bridge both ways.
    let phone = "+46 70 123 45 67";
    let (status, body) = hq.post_json(
        "/v1/loyalty/members",
        json!({ "card": "CLUB-77", "customer": { "name": "Bo Bridge", "phone": phone,
                "email": "bo@example.com" } }),
    );
    assert_eq!(status, 201, "{body}");
    wait_for(
        "the lane finds the member through the bridge",
        CONVERGE,
        || {
            let (status, body) = find_by_phone(&lane1, phone);
            (status == 200 && body["members"][0]["card"] == "CLUB-77").then_some(())
        },
    );

    // The WAN goes down: HQ's broker is unreachable from the store.
    hq_broker.stop();
    // A lookup now gets 503 at once (the bridge brought HQ's status `offline` in before it
    // went down), and nothing asked while the WAN is down reaches HQ later.
    let answered = hq_answered(&hq);
    let (status, body) = find_by_phone(&lane2, phone);
    assert_eq!(status, 503, "{body}");
    lane1.sell("cut-1", "MILK", 3);
    lane2.sell("cut-2", "MILK", 5);
    lane2.sell("cut-3", "MILK", 1);
    // The lanes converge with each other through the store's broker alone.
    lane_shows(&lane1, "MILK", 91);
    lane_shows(&lane2, "MILK", 91);
    assert_eq!(hq.on_hand("s1", "MILK"), Some(100), "HQ was cut off");

    // Back: the bridge reconnects and delivers the queue; HQ counts every sale once.
    hq_broker.restart();
    hq_shows(&hq, "MILK", 91);
    for lane in [&lane1, &lane2] {
        wait_for("the lane's outbox drained", CONVERGE, || {
            (lane.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
        });
    }
    // Still exactly once after the re-offers and the queue have all arrived: one more sale
    // moves HQ by exactly one.
    lane2.sell("after", "MILK", 1);
    hq_shows(&hq, "MILK", 90);
    lane_shows(&lane1, "MILK", 90);
    assert_eq!(
        hq_answered(&hq),
        answered,
        "a lookup made while the WAN was down reached HQ later"
    );
    assert!(
        store_broker.log().contains("Connecting bridge"),
        "the store broker ran the bridge:\n{}",
        store_broker.log()
    );
}
