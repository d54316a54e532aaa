//! Store-to-store transfers end to end with real processes (Mosquitto, HQ and two store
//! nodes): dispatch at one store while the other is cut off, receipt (short by one) once it
//! is back, cancel before receipt, and a cancel that crosses a receipt during a partition.
//! Every unit moves exactly once: on hand at both stores plus in transit plus the
//! recorded discrepancy stays constant. Every wait is bounded.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use serde_json::{Value, json};
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn hq_transfer(hq: &HqNode, id: &str, status: &str) -> Value {
    wait_for(&format!("HQ shows {id} {status}"), CONVERGE, || {
        let (code, body) = hq.get_json(&format!("/v1/transfers/{id}"));
        (code == 200 && body["status"] == status && body["synced"] == true).then_some(body)
    })
}

fn store_transfer(node: &StoreNode, id: &str, status: &str) -> Value {
    wait_for(&format!("store shows {id} {status}"), CONVERGE, || {
        let (code, body) = node.get_json(&format!("/v1/transfers/{id}"));
        (code == 200 && body["status"] == status).then_some(body)
    })
}

fn hq_on_hand_is(hq: &HqNode, store: &str, sku: &str, expected: i64) {
    wait_for(
        &format!("HQ shows {expected} {sku} at {store}"),
        CONVERGE,
        || (hq.on_hand(store, sku) == Some(expected)).then_some(()),
    );
}

/// Units of `sku` in transit out of `store`, as HQ reports them.
fn hq_in_transit_out(hq: &HqNode, store: &str, sku: &str) -> i64 {
    let (code, body) = hq.get_json(&format!("/v1/transfers?store={store}"));
    assert_eq!(code, 200, "{body}");
    body["in_transit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["sku"] == sku)
        .filter_map(|row| row["outbound"].as_i64())
        .sum()
}

fn dispatch(node: &StoreNode, key: &str, id: &str, qty: i64) -> Value {
    let (code, body) = node.post_json(
        "/v1/transfers",
        key,
        json!({ "transfer_id": id, "to_store": "s2", "lines": [{ "sku": "MILK", "quantity": qty }] }),
    );
    assert_eq!(code, 201, "{body}");
    body
}

struct Chain {
    _broker: Mosquitto,
    hq: HqNode,
    a: StoreNode,
    b: StoreNode,
    a_link: Proxy,
    b_link: Proxy,
}

/// HQ, store s1 with 20 MILK and store s2 with 3, each store behind its own cuttable link.
fn chain() -> Chain {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let a_link = Proxy::start(broker.port());
    let b_link = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let a = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: a_link.port });
    let b = StoreNode::start("s2", "lane1", &BrokerAccess::Plain { port: b_link.port });
    a.receive("r-a", "MILK", 20);
    b.receive("r-b", "MILK", 3);
    hq_on_hand_is(&hq, "s1", "MILK", 20);
    hq_on_hand_is(&hq, "s2", "MILK", 3);
    Chain {
        _broker: broker,
        hq,
        a,
        b,
        a_link,
        b_link,
    }
}

#[test]
fn a_transfer_to_a_store_that_is_cut_off_arrives_short_and_everything_adds_up() {
    // Bind every field: a `..` pattern would drop the broker and links at once.
    let Chain {
        _broker,
        hq,
        a,
        b,
        a_link: _a_link,
        b_link,
    } = chain();

    // s2 is cut off while s1 dispatches 5.
    b_link.cut();
    let sent = dispatch(&a, "tr-1", "T-1", 5);
    assert_eq!(sent["transfer_id"], "s1.lane1:T-1");
    assert_eq!(sent["status"], "in_transit");
    assert_eq!(a.on_hand("MILK"), 15);
    // A replay of the same request changes nothing.
    assert_eq!(dispatch(&a, "tr-1", "T-1", 5), sent);
    assert_eq!(a.on_hand("MILK"), 15);
    // The same id under another key is refused.
    let (code, _) = a.post_json(
        "/v1/transfers",
        "tr-1-again",
        json!({ "transfer_id": "T-1", "to_store": "s2", "lines": [{ "sku": "MILK", "quantity": 1 }] }),
    );
    assert_eq!(code, 409);

    // HQ sees it in transit; the chain's units are all accounted for.
    hq_on_hand_is(&hq, "s1", "MILK", 15);
    wait_for("HQ shows 5 MILK in transit", CONVERGE, || {
        (hq_in_transit_out(&hq, "s1", "MILK") == 5).then_some(())
    });
    let (_, view) = hq.get_json("/v1/transfers/s1.lane1:T-1");
    assert_eq!(view["status"], "in_transit", "{view}");
    assert_eq!(
        b.get_json("/v1/transfers/s1.lane1:T-1").0,
        404,
        "s2 is cut off"
    );
    assert_eq!(
        hq.on_hand("s1", "MILK").unwrap()
            + hq.on_hand("s2", "MILK").unwrap()
            + hq_in_transit_out(&hq, "s1", "MILK"),
        23
    );

    // s2 reconnects, sees the inbound transfer and receives 4 of 5.
    b_link.restore();
    let inbound = store_transfer(&b, "s1.lane1:T-1", "in_transit");
    assert_eq!(inbound["direction"], "inbound", "{inbound}");
    let (_, listed) = b.get_json("/v1/transfers?direction=inbound&status=in_transit");
    assert_eq!(
        listed["transfers"][0]["transfer_id"], "s1.lane1:T-1",
        "{listed}"
    );
    let (code, got) = b.post_json(
        "/v1/transfers/T-1/receive",
        "rcv-1",
        json!({ "lines": [{ "sku": "MILK", "quantity": 4 }] }),
    );
    assert_eq!(code, 201, "{got}");
    assert_eq!(got["status"], "received");
    assert_eq!(got["lines"][0]["discrepancy"], -1, "{got}");
    assert_eq!(b.on_hand("MILK"), 7);
    let (code, _) = b.post_json(
        "/v1/transfers/T-1/receive",
        "rcv-1-again",
        json!({ "lines": [{ "sku": "MILK", "quantity": 4 }] }),
    );
    assert_eq!(code, 409, "received once");

    // HQ and the sender see the receipt and the discrepancy; stock adds up everywhere.
    let view = hq_transfer(&hq, "s1.lane1:T-1", "received");
    assert_eq!(view["lines"][0]["dispatched"], 5, "{view}");
    assert_eq!(view["lines"][0]["received"], 4, "{view}");
    assert_eq!(view["lines"][0]["discrepancy"], -1, "{view}");
    assert_eq!(view["decided_by"]["writer"], "s2.lane1", "{view}");
    let at_a = store_transfer(&a, "T-1", "received");
    assert_eq!(at_a["lines"][0]["received"], 4, "{at_a}");
    hq_on_hand_is(&hq, "s2", "MILK", 7);
    hq_on_hand_is(&hq, "s1", "MILK", 15);
    assert_eq!(hq_in_transit_out(&hq, "s1", "MILK"), 0);
    assert_eq!(a.on_hand("MILK"), 15, "booked out once");
    // 15 + 7 on hand, 0 in transit, 1 short on receipt: the 23 units of the start.
    assert_eq!(a.on_hand("MILK") + b.on_hand("MILK") + 1, 23);
    wait_for("outboxes drained", CONVERGE, || {
        (a.metric("storenode_sync_outbox_length") == Some(0)
            && b.metric("storenode_sync_outbox_length") == Some(0))
        .then_some(())
    });
}

#[test]
fn a_cancel_returns_the_units_and_a_cancel_crossing_a_receipt_is_overruled() {
    let Chain {
        _broker,
        hq,
        a,
        b,
        a_link,
        b_link: _b_link,
    } = chain();

    // Cancel before receipt: the units come back to s1, s2 can no longer receive.
    dispatch(&a, "tr-2", "T-2", 2);
    store_transfer(&b, "s1.lane1:T-2", "in_transit");
    let (code, body) = a.post_json("/v1/transfers/T-2/cancel", "cx-2", json!({}));
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(a.on_hand("MILK"), 20);
    store_transfer(&b, "s1.lane1:T-2", "cancelled");
    let (code, _) = b.post_json(
        "/v1/transfers/s1.lane1:T-2/receive",
        "rcv-2",
        json!({ "lines": [{ "sku": "MILK", "quantity": 2 }] }),
    );
    assert_eq!(code, 409);
    hq_transfer(&hq, "s1.lane1:T-2", "cancelled");
    hq_on_hand_is(&hq, "s1", "MILK", 20);

    // s1 is cut off and cancels T-3 while s2 (which cannot know) receives it: the goods
    // arrived, so the receipt wins and s1 books the units out again, exactly once.
    dispatch(&a, "tr-3", "T-3", 6);
    store_transfer(&b, "s1.lane1:T-3", "in_transit");
    a_link.cut();
    let (code, body) = a.post_json("/v1/transfers/T-3/cancel", "cx-3", json!({}));
    assert_eq!(code, 201, "{body}");
    assert_eq!(a.on_hand("MILK"), 20);
    let (code, body) = b.post_json(
        "/v1/transfers/s1.lane1:T-3/receive",
        "rcv-3",
        json!({ "lines": [{ "sku": "MILK", "quantity": 6 }] }),
    );
    assert_eq!(code, 201, "{body}");
    a_link.restore();
    // HQ shows both: the cancel in the history, the receipt as the status.
    let view = wait_for("HQ has the crossing cancel", CONVERGE, || {
        let view = hq_transfer(&hq, "s1.lane1:T-3", "received");
        let cancelled = view["history"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["status"] == "cancelled" && e["writer"] == "s1.lane1");
        cancelled.then_some(view)
    });
    assert_eq!(view["decided_by"]["writer"], "s2.lane1", "{view}");
    store_transfer(&a, "T-3", "received");
    assert_eq!(a.on_hand("MILK"), 14);
    assert_eq!(b.on_hand("MILK"), 9);
    hq_on_hand_is(&hq, "s1", "MILK", 14);
    hq_on_hand_is(&hq, "s2", "MILK", 9);
    assert_eq!(hq_in_transit_out(&hq, "s1", "MILK"), 0);
    // Replays of the cancel change nothing.
    let (_, again) = a.post_json("/v1/transfers/T-3/cancel", "cx-3", json!({}));
    assert_eq!(again["status"], "cancelled", "the first answer is replayed");
    assert_eq!(a.on_hand("MILK"), 14);
}
