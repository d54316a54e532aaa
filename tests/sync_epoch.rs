//! Bounded history: HQ opens a new stock epoch for both stores while store 2 is partitioned
//! and both keep selling. Store 1 moves over at once; store 2 finds the announcement (HQ's
//! retained heads of the new epoch) when it reconnects and carries its offline work over
//! exactly once. Every node and HQ end on the same stock, the sum of all movements.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use serde_json::json;
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn converged(node: &StoreNode, hq: &HqNode, store: &str, sku: &str, expected: i64) {
    wait_for(
        &format!("{store} shows {sku} = {expected}"),
        CONVERGE,
        || (node.on_hand(sku) == expected).then_some(()),
    );
    wait_for(
        &format!("HQ shows {store}/{sku} = {expected}"),
        CONVERGE,
        || (hq.on_hand(store, sku) == Some(expected)).then_some(()),
    );
}

fn moved_to_epoch(node: &StoreNode, epoch: u32) {
    wait_for(&format!("node moved to epoch {epoch}"), CONVERGE, || {
        node.log()
            .contains(&format!("moved to stock epoch {epoch}"))
            .then_some(())
    });
}

#[test]
fn an_epoch_switch_while_a_store_is_offline_loses_and_doubles_nothing() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let s1 = StoreNode::start("s1", "lane1", &direct);
    let s2 = StoreNode::start("s2", "lane1", &BrokerAccess::Plain { port: proxy.port });
    s1.receive("r1", "MILK", 100);
    s2.receive("r2", "MILK", 50);
    converged(&s1, &hq, "s1", "MILK", 100);
    converged(&s2, &hq, "s2", "MILK", 50);

    proxy.cut();
    s2.sell("s2-before-cut-1", "MILK", 3);
    s1.sell("s1-before-cut-1", "MILK", 2);
    converged(&s1, &hq, "s1", "MILK", 98);

    for store in ["s1", "s2"] {
        let (status, body) = hq.open_epoch(store);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["epoch"], 1, "{body}");
    }
    // A second switch must wait until every writer of store 2 moved over.
    assert_eq!(hq.open_epoch("s2").0, 409);
    moved_to_epoch(&s1, 1);

    // Both sides sell on across the switch; store 2 still offline, on epoch 0.
    s1.sell("s1-after-epoch", "MILK", 5);
    s2.sell("s2-after-epoch", "MILK", 4);
    converged(&s1, &hq, "s1", "MILK", 93);
    assert_eq!(
        hq.on_hand("s2", "MILK"),
        Some(50),
        "HQ cannot know store 2's sales yet"
    );

    proxy.restore();
    moved_to_epoch(&s2, 1);
    converged(&s2, &hq, "s2", "MILK", 43);
    // After the switch, new sales sync in the new epoch.
    s2.sell("s2-after-reconnect", "MILK", 1);
    converged(&s2, &hq, "s2", "MILK", 42);
    converged(&s1, &hq, "s1", "MILK", 93);
    for node in [&s1, &s2] {
        wait_for("outbox drained", CONVERGE, || {
            (node.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
        });
    }
    // Every writer moved over: a next epoch may be opened.
    wait_for("epoch 2 can open", CONVERGE, || {
        (hq.open_epoch("s2").0 == 200).then_some(())
    });
    moved_to_epoch(&s2, 2);
    s2.sell("s2-epoch-2", "MILK", 2);
    converged(&s2, &hq, "s2", "MILK", 40);
}

fn order_status(node_or_hq: (u16, serde_json::Value)) -> Option<String> {
    let (status, body) = node_or_hq;
    (status == 200)
        .then(|| body["status"].as_str().map(str::to_owned))
        .flatten()
}

/// One step (`pick`, `ready`, `collect`) of an order of 2 MILK at `node`.
fn order_step(node: &StoreNode, id: &str, step: &str, code: &str) {
    let body = match step {
        "pick" => json!({ "sku": "MILK", "quantity": 2 }),
        "collect" => json!({ "pickup_code": code }),
        _ => json!({}),
    };
    let (status, reply) = node.post_json(
        &format!("/v1/orders/{id}/{step}"),
        &format!("{step}-{id}"),
        body,
    );
    assert!(
        (200..300).contains(&status),
        "{step} {id}: {status} {reply}"
    );
}

/// Picks, readies and hands over an order of 2 MILK at `node`.
fn hand_over(node: &StoreNode, id: &str, code: &str) {
    for step in ["pick", "ready", "collect"] {
        order_step(node, id, step, code);
    }
}

fn all_show(what: &str, check: impl Fn() -> bool) {
    wait_for(what, CONVERGE, || check().then_some(()));
}

/// (on hand, reserved, online escrow) of MILK at a node.
fn node_stock(node: &StoreNode) -> (i64, i64, i64) {
    let (_, body) = node.get_json("/v1/stock/MILK");
    (
        body["on_hand"].as_i64().unwrap_or(i64::MIN),
        body["reserved"].as_i64().unwrap_or(i64::MIN),
        body["online_escrow"].as_i64().unwrap_or(i64::MIN),
    )
}

fn hq_stock(hq: &HqNode) -> (i64, i64, i64) {
    let (_, body) = hq.stock("s1", "MILK");
    (
        body["on_hand"].as_i64().unwrap_or(i64::MIN),
        body["reserved"].as_i64().unwrap_or(i64::MIN),
        body["online_escrow"].as_i64().unwrap_or(i64::MIN),
    )
}

/// The orders document rolls with the stock: HQ cuts it while lane 2 is offline and collects
/// an order and grants escrow there. After reconnecting, every node and HQ agree on every
/// order's status, the stock and the escrow; an order closed before the cut is gone from
/// the document but HQ still shows it.
#[test]
fn orders_roll_into_the_new_epoch_with_an_offline_lane_losing_nothing() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let lane1 = StoreNode::start("s1", "lane1", &direct);
    let lane2 = StoreNode::start("s1", "lane2", &BrokerAccess::Plain { port: proxy.port });
    lane1.receive("r1", "MILK", 20);
    for node in [&lane1, &lane2] {
        converged(node, &hq, "s1", "MILK", 20);
    }
    lane1.grant_online("g1", "MILK", 7);
    all_show("HQ sees the grant", || hq_stock(&hq).2 == 7);

    // HQ orders at each lane and an order taken at lane 1's POS.
    let orders = [
        ("web-1", "lane1", "4711"),
        ("web-2", "lane2", "0815"),
        ("web-3", "lane2", "1234"),
    ];
    for (id, node, code) in orders {
        let order = json!({ "order_id": id, "store": "s1", "node": node, "pickup_code": code,
                            "lines": [{ "sku": "MILK", "quantity": 2 }] });
        let (status, body) = hq.post_json("/v1/orders", order);
        assert_eq!(status, 201, "{body}");
    }
    let pos = json!({ "order_id": "pos-1", "pickup_code": "2468",
                      "lines": [{ "sku": "MILK", "quantity": 3 }] });
    let (status, body) = lane1.post_json("/v1/orders", "o1", pos);
    assert!((200..300).contains(&status), "{status} {body}");
    all_show("every order reserved everywhere", || {
        [
            ("web-1", &lane1),
            ("web-2", &lane2),
            ("web-3", &lane2),
            ("pos-1", &lane1),
        ]
        .iter()
        .all(|(id, node)| {
            order_status(node.get_json(&format!("/v1/orders/{id}"))).as_deref() == Some("reserved")
        }) && order_status(hq.get_json("/v1/orders/s1.lane1:pos-1")).as_deref() == Some("reserved")
            && order_status(hq.get_json("/v1/orders/web-2")).as_deref() == Some("reserved")
    });
    // web-1 is collected before the cut: closed, it leaves the orders document.
    hand_over(&lane1, "web-1", "4711");
    all_show("HQ sees web-1 collected", || {
        order_status(hq.get_json("/v1/orders/web-1")).as_deref() == Some("collected")
    });
    wait_for("lane1 outbox drained", CONVERGE, || {
        (lane1.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
    });

    // Lane 2 readies web-3; then it is cut off, and the customer collects web-3 at lane 1,
    // while lane 2 (holding its units) collects web-2 and grants one more unit.
    order_step(&lane2, "web-3", "pick", "");
    order_step(&lane2, "web-3", "ready", "");
    all_show("lane1 sees web-3 ready", || {
        order_status(lane1.get_json("/v1/orders/web-3")).as_deref() == Some("ready")
    });
    proxy.cut();
    hand_over(&lane2, "web-2", "0815");
    lane2.grant_online("g2", "MILK", 1);
    order_step(&lane1, "web-3", "collect", "1234");
    all_show("HQ sees web-3 collected before the cut", || {
        order_status(hq.get_json("/v1/orders/web-3")).as_deref() == Some("collected")
    });

    let (status, body) = hq.open_epoch("s1");
    assert_eq!(status, 200, "{body}");
    wait_for("lane1 moved its orders", CONVERGE, || {
        lane1
            .log()
            .contains("moved to orders epoch 1")
            .then_some(())
    });
    let archived = hq.get_json("/v1/orders/web-1");
    assert_eq!(
        order_status(archived.clone()).as_deref(),
        Some("collected"),
        "{archived:?}"
    );
    assert_eq!(
        order_status(hq.get_json("/v1/orders/web-2")).as_deref(),
        Some("reserved"),
        "HQ cannot know lane 2's collect yet"
    );

    proxy.restore();
    wait_for("lane2 moved its orders", CONVERGE, || {
        lane2
            .log()
            .contains("moved to orders epoch 1")
            .then_some(())
    });
    all_show("every node and HQ agree on the statuses", || {
        let expected = [
            ("web-1", "collected"),
            ("web-2", "collected"),
            ("web-3", "collected"),
            ("s1.lane1:pos-1", "reserved"),
        ];
        expected.iter().all(|(id, want)| {
            // Lane 1 knows the order it took by its local id.
            let at_lane1 = id.strip_prefix("s1.lane1:").unwrap_or(id);
            [
                hq.get_json(&format!("/v1/orders/{id}")),
                lane1.get_json(&format!("/v1/orders/{at_lane1}")),
                lane2.get_json(&format!("/v1/orders/{id}")),
            ]
            .into_iter()
            .all(|reply| order_status(reply).as_deref() == Some(*want))
        })
    });
    // 20 received, 3 × 2 collected (lane 2 settles web-3, decided while it was away, when
    // it moves over); 3 reserved for pos-1; escrow 7 + 1 granted, 6 consumed.
    all_show("stock and escrow agree everywhere", || {
        let want = (14, 3, 2);
        hq_stock(&hq) == want && node_stock(&lane1) == want && node_stock(&lane2) == want
    });
    let (_, listed) = hq.get_json("/v1/orders?store=s1");
    assert_eq!(
        listed["orders"].as_array().map(Vec::len),
        Some(4),
        "{listed}"
    );
    for node in [&lane1, &lane2] {
        wait_for("outbox drained", CONVERGE, || {
            (node.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
        });
    }
}
