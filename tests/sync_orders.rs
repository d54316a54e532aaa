//! Online click-and-collect orders end to end with real processes: HQ places orders for a
//! store, the store reserves them and staff work them on the POS API, and the status
//! (folded from HQ's and the store's events) flows back to HQ, also across a partition:
//! an order placed while the store is cut off arrives when it reconnects, and what the
//! store did offline reaches HQ then. Every wait is bounded.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use serde_json::{Value, json};
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn hq_status(hq: &HqNode, order: &str) -> Option<String> {
    let (status, body) = hq.get_json(&format!("/v1/orders/{order}"));
    (status == 200)
        .then(|| body["status"].as_str().map(str::to_owned))
        .flatten()
}

fn hq_shows_status(hq: &HqNode, order: &str, expected: &str) -> Value {
    wait_for(&format!("HQ shows {order} {expected}"), CONVERGE, || {
        let (status, body) = hq.get_json(&format!("/v1/orders/{order}"));
        (status == 200 && body["status"] == expected).then_some(body)
    })
}

fn store_shows_status(node: &StoreNode, order: &str, expected: &str) -> Value {
    wait_for(&format!("store shows {order} {expected}"), CONVERGE, || {
        let (status, body) = node.get_json(&format!("/v1/orders/{order}"));
        (status == 200 && body["status"] == expected).then_some(body)
    })
}

fn history_statuses(view: &Value) -> Vec<String> {
    view["history"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["status"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn reserved_at_hq(hq: &HqNode, store: &str, sku: &str) -> Option<i64> {
    let (status, body) = hq.stock(store, sku);
    (status == 200).then(|| body["reserved"].as_i64()).flatten()
}

#[test]
fn hq_orders_reach_the_store_and_status_flows_back_across_a_partition() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let store = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: proxy.port });
    store.receive("r1", "MILK", 20);
    wait_for("HQ knows store 1", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(20)).then_some(())
    });

    // HQ picks the fulfilment lane itself once it has seen the store's lane online.
    let web1 = json!({ "order_id": "web-1", "store": "s1", "pickup_code": "4711",
                       "lines": [{ "sku": "MILK", "quantity": 2 }], "hold_hours": 48 });
    let placed = wait_for("HQ accepts web-1", CONVERGE, || {
        let (status, body) = hq.post_json("/v1/orders", web1.clone());
        assert!(status == 201 || status == 422, "{status} {body}");
        (status == 201).then_some(body)
    });
    assert_eq!(placed["status"], "placed");
    assert_eq!(hq.post_json("/v1/orders", web1).0, 409, "placed once");

    // The store reserves it and staff see it; HQ sees the store's reservation.
    store_shows_status(&store, "web-1", "reserved");
    let (_, listed) = store.get_json("/v1/orders");
    assert_eq!(listed["orders"][0]["order_id"], "web-1", "{listed}");
    hq_shows_status(&hq, "web-1", "reserved");
    wait_for("HQ sees 2 MILK reserved", CONVERGE, || {
        (reserved_at_hq(&hq, "s1", "MILK") == Some(2)).then_some(())
    });

    // Partition: HQ takes an order the store cannot see yet; the store works web-1.
    proxy.cut();
    let web2 = json!({ "order_id": "web-2", "store": "s1", "node": "lane1",
                       "pickup_code_hash": pickup_hash_hex("web-2", "0815"),
                       "lines": [{ "sku": "MILK", "quantity": 1 }] });
    assert_eq!(hq.post_json("/v1/orders", web2).0, 201);
    let (status, body) = store.post_json(
        "/v1/orders/web-1/pick",
        "pick-1",
        json!({ "sku": "MILK", "quantity": 2 }),
    );
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, body) = store.post_json("/v1/orders/web-1/ready", "ready-1", json!({}));
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(store.get_json("/v1/orders/web-2").0, 404, "cut off from HQ");
    assert_eq!(hq_status(&hq, "web-1").as_deref(), Some("reserved"));

    // Reconnect: both directions catch up.
    proxy.restore();
    store_shows_status(&store, "web-2", "reserved");
    let view = hq_shows_status(&hq, "web-1", "ready");
    assert_eq!(
        history_statuses(&view),
        ["placed", "reserved", "picking", "ready"],
        "{view}"
    );
    hq_shows_status(&hq, "web-2", "reserved");

    // Collection and a cancel at the store reach HQ, and so does their stock effect.
    let (status, body) = store.post_json(
        "/v1/orders/web-1/collect",
        "collect-1",
        json!({ "pickup_code": "4711" }),
    );
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, body) = store.post_json("/v1/orders/web-2/cancel", "cancel-2", json!({}));
    assert!((200..300).contains(&status), "{status} {body}");
    let collected = hq_shows_status(&hq, "web-1", "collected");
    hq_shows_status(&hq, "web-2", "cancelled");
    assert_eq!(collected["decided_by"]["writer"], "s1.lane1", "{collected}");
    assert!(
        !collected.to_string().contains("4711"),
        "no pickup code at HQ"
    );
    wait_for("HQ stock after collection", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(18) && reserved_at_hq(&hq, "s1", "MILK") == Some(0))
            .then_some(())
    });
    wait_for("outbox drained", CONVERGE, || {
        (store.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
    });
}

#[test]
fn an_order_the_store_cannot_take_comes_back_cancelled() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "");
    let store = StoreNode::start("s1", "lane1", &direct);
    let order = json!({ "order_id": "web-9", "store": "s1", "node": "lane1",
                        "pickup_code": "1234",
                        "lines": [{ "sku": "NOT-IN-CATALOG", "quantity": 1 }] });
    assert_eq!(hq.post_json("/v1/orders", order).0, 201);
    let view = hq_shows_status(&hq, "web-9", "cancelled");
    assert_eq!(view["decided_by"]["writer"], "s1.lane1", "{view}");
    assert_eq!(store.get_json("/v1/orders/web-9").0, 404);
    // Malformed orders never reach a store.
    let bad = json!({ "order_id": "web 10", "store": "s1", "node": "lane1",
                      "pickup_code": "1234", "lines": [{ "sku": "MILK", "quantity": 1 }] });
    assert_eq!(hq.post_json("/v1/orders", bad).0, 422);
}

/// The store's pickup-code hash: SHA-256 of `order_id`, a zero byte and the code.
fn pickup_hash_hex(order_id: &str, code: &str) -> String {
    storenode::store::orders::pickup_code_hash(order_id, code)
}
