//! In-store sync while the WAN is down: two lanes of one store on the store box's own
//! Mosquitto, configured by `storenode provision --local-broker` (its loopback listener
//! with the store's ACL, and its bridge to HQ's Mosquitto over mutual TLS with a persistent
//! queue, from the shipped `config/mosquitto/store-*.conf`; only the bridge's reconnect
//! timer shortened). A member lookup by phone crosses the bridge while the WAN is up, and
//! is answered 503 while it is down, never reaching HQ later. Real brokers, real binaries,
//! loopback only; every wait is bounded and nothing asserts on timing.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::pki::{ClientCert, Pki};
use common::provision::{StoreBox, provision_local_broker};
use serde_json::{Value, json};
use sync_util::{BrokerAccess, HqNode, StoreNode, TENANT, wait_for};

const CONVERGE: Duration = Duration::from_secs(90);

/// The store box's Mosquitto configuration as `storenode provision --local-broker` writes
/// it for store `store`, bridged to HQ's broker on `hq_port`.
fn provision_store_broker(store: &str, hq_port: u16, cert: &ClientCert) -> StoreBox {
    let store_box = provision_local_broker(store, TENANT, hq_port, cert, None);
    let port = store_box.local_port;
    // The node provisioned on that box talks to this broker on loopback, as the lanes here.
    let config =
        std::fs::read_to_string(store_box.dir.path().join("etc/storenode.toml")).expect("config");
    assert!(
        config.contains(&format!("broker = \"mqtt://127.0.0.1:{port}\"")),
        "{config}"
    );
    let bridge = store_box.conf_d.join("storenode-30-bridge.conf");
    let text = std::fs::read_to_string(&bridge).expect("the bridge provision wrote");
    assert!(text.contains("restart_timeout 5 120"), "{text}");
    // A test cannot wait minutes for the bridge's reconnect backoff.
    std::fs::write(
        &bridge,
        text.replace("restart_timeout 5 120", "restart_timeout 1 2"),
    )
    .expect("shorten the bridge's backoff");
    store_box
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
    let store_box = provision_store_broker("s1", hq_broker.port(), &pki.client("s1"));
    let mut local_opts = MosquittoOptions::plain();
    local_opts.conf_d = Some((store_box.conf_d.clone(), store_box.local_port));
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
