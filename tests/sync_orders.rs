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

fn online_escrow_at_hq(hq: &HqNode, store: &str, sku: &str) -> Option<i64> {
    let (status, body) = hq.stock(store, sku);
    (status == 200)
        .then(|| body["online_escrow"].as_i64())
        .flatten()
}

/// Grants `quantity` to the online channel at the store and waits until HQ can promise it.
fn grant_and_wait(hq: &HqNode, store: &StoreNode, store_id: &str, sku: &str, quantity: i64) {
    store.grant_online(&format!("grant-{sku}-{quantity}"), sku, quantity);
    wait_for("HQ sees the grant", CONVERGE, || {
        (online_escrow_at_hq(hq, store_id, sku) == Some(quantity)).then_some(())
    });
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
    grant_and_wait(&hq, &store, "s1", "MILK", 3);

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
    store.receive("r1", "MILK", 5);
    grant_and_wait(&hq, &store, "s1", "MILK", 2);
    // A hold time the store does not accept (at most 30 days).
    let order = json!({ "order_id": "web-9", "store": "s1", "node": "lane1",
                        "pickup_code": "1234", "hold_hours": 9999,
                        "lines": [{ "sku": "MILK", "quantity": 1 }] });
    assert_eq!(hq.post_json("/v1/orders", order).0, 201);
    let view = hq_shows_status(&hq, "web-9", "cancelled");
    assert_eq!(view["decided_by"]["writer"], "s1.lane1", "{view}");
    assert_eq!(store.get_json("/v1/orders/web-9").0, 404);
    // HQ promises nothing that was not granted, and sends no malformed order.
    let unknown = json!({ "order_id": "web-10", "store": "s1", "node": "lane1",
                          "pickup_code": "1234", "lines": [{ "sku": "NOT-IN-CATALOG", "quantity": 1 }] });
    assert_eq!(hq.post_json("/v1/orders", unknown).0, 409);
    let bad = json!({ "order_id": "web 10", "store": "s1", "node": "lane1",
                      "pickup_code": "1234", "lines": [{ "sku": "MILK", "quantity": 1 }] });
    assert_eq!(hq.post_json("/v1/orders", bad).0, 422);
}

#[test]
fn the_web_shop_promises_only_the_escrow_while_a_store_is_cut_off() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let store = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: proxy.port });
    store.receive("r1", "MILK", 10);
    grant_and_wait(&hq, &store, "s1", "MILK", 5);
    // HQ gives one unit back; the store sees it free again.
    let (status, body) = hq.post_json("/v1/escrow/s1/MILK/return", json!({ "quantity": 1 }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["remaining"], 4);
    assert_eq!(
        hq.post_json("/v1/escrow/s1/MILK/return", json!({ "quantity": 9 }))
            .0,
        409
    );
    wait_for("store sees the return", CONVERGE, || {
        let (_, stock) = store.get_json("/v1/stock/MILK");
        (stock["online_escrow"] == 4 && stock["store_free"] == 6).then_some(())
    });

    // Partition. The store sells its share; the web shop sells the escrow; neither more.
    proxy.cut();
    for i in 0..6 {
        store.sell(&format!("sale-{i}"), "MILK", 1);
    }
    let (status, body) = store.post_json(
        "/v1/sales",
        "sale-7",
        json!({ "lines": [{ "sku": "MILK", "quantity": 1 }],
                "payments": [{ "method": "cash", "amount_minor": 1000 }] }),
    );
    assert_eq!(
        status, 409,
        "the till cannot sell units held for the web: {body}"
    );
    assert_eq!(
        store
            .post_json(
                "/v1/escrow/grants",
                "g-more",
                json!({ "sku": "MILK", "quantity": 1 })
            )
            .0,
        409,
        "nothing free to grant"
    );
    for (id, qty) in [("web-1", 3), ("web-2", 1)] {
        let order = json!({ "order_id": id, "store": "s1", "node": "lane1", "pickup_code": "4711",
                            "lines": [{ "sku": "MILK", "quantity": qty }] });
        let (status, body) = hq.post_json("/v1/orders", order);
        assert_eq!(status, 201, "{id}: {body}");
    }
    let one_more = json!({ "order_id": "web-3", "store": "s1", "node": "lane1", "pickup_code": "4711",
                           "lines": [{ "sku": "MILK", "quantity": 1 }] });
    let (status, body) = hq.post_json("/v1/orders", one_more);
    assert_eq!(status, 409, "HQ promises only the escrow: {body}");
    let (_, figure) = hq.stock("s1", "MILK");
    assert_eq!(figure["online_escrow"], 0, "{figure}");
    assert_eq!(
        figure["on_hand"], 10,
        "HQ has not heard of the offline sales: {figure}"
    );

    // Heal: every unit was promised once, and stock never went below zero.
    proxy.restore();
    store_shows_status(&store, "web-1", "reserved");
    store_shows_status(&store, "web-2", "reserved");
    wait_for("store and HQ converge", CONVERGE, || {
        let (_, stock) = store.get_json("/v1/stock/MILK");
        let converged = stock["on_hand"] == 4
            && stock["reserved"] == 4
            && stock["online_escrow"] == 0
            && stock["store_free"] == 0
            && hq.on_hand("s1", "MILK") == Some(4)
            && reserved_at_hq(&hq, "s1", "MILK") == Some(4);
        converged.then_some(())
    });
}

/// The store's pickup-code hash: SHA-256 of `order_id`, a zero byte and the code.
fn pickup_hash_hex(order_id: &str, code: &str) -> String {
    storenode::store::orders::pickup_code_hash(order_id, code)
}

fn ok(what: &str, (status, body): (u16, Value)) -> Value {
    assert!((200..300).contains(&status), "{what}: {status} {body}");
    body
}

fn store_stock(node: &StoreNode, sku: &str) -> (i64, i64) {
    let (_, body) = node.get_json(&format!("/v1/stock/{sku}"));
    (
        body["on_hand"].as_i64().unwrap_or(i64::MIN),
        body["reserved"].as_i64().unwrap_or(i64::MIN),
    )
}

#[test]
fn a_store_taken_order_reaches_hq_and_any_lane_collects_it() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "");
    let lane1 = StoreNode::start("s1", "lane1", &direct);
    let lane2 = StoreNode::start("s1", "lane2", &direct);
    lane1.receive("r1", "MILK", 10);
    let order = json!({ "order_id": "pos-1", "pickup_code": "2468",
                        "customer": { "name": "Max Muster", "phone": "0170 1234567", "email": "max@example.com" },
                        "lines": [{ "sku": "MILK", "quantity": 3 }] });
    let taken = ok(
        "take order at lane1",
        lane1.post_json("/v1/orders", "o1", order),
    );
    assert!(!taken.to_string().contains("Max Muster"), "{taken}");
    // The customer travels beside the order (erasable), not in it.
    wait_for("HQ has the customer", CONVERGE, || {
        let (status, body) = hq.get_json("/v1/orders/pos-1/customer");
        (status == 200 && body.to_string().contains("max@example.com")).then_some(())
    });

    // HQ and the other lane see it under its shared id; lane2 holds no units for it.
    let shared = "s1.lane1:pos-1";
    let view = hq_shows_status(&hq, shared, "reserved");
    assert_eq!(view["fulfilment"], "s1.lane1", "{view}");
    let (_, listed) = hq.get_json("/v1/orders?store=s1");
    assert_eq!(listed["orders"][0]["order_id"], shared, "{listed}");
    let copy = store_shows_status(&lane2, shared, "reserved");
    assert_eq!(copy["fulfilment"], "s1.lane1", "{copy}");
    let (status, _) = lane2.post_json(
        &format!("/v1/orders/{shared}/pick"),
        "p2",
        json!({ "sku": "MILK", "quantity": 3 }),
    );
    assert_eq!(status, 409, "only the lane holding the units picks");

    ok(
        "pick at lane1",
        lane1.post_json(
            "/v1/orders/pos-1/pick",
            "p1",
            json!({ "sku": "MILK", "quantity": 3 }),
        ),
    );
    ok(
        "ready at lane1",
        lane1.post_json("/v1/orders/pos-1/ready", "ready1", json!({})),
    );
    store_shows_status(&lane2, shared, "ready");

    // The customer walks up to lane 2.
    let collect = format!("/v1/orders/{shared}/collect");
    let (status, _) = lane2.post_json(&collect, "c-bad", json!({ "pickup_code": "1111" }));
    assert_eq!(status, 422, "wrong pickup code");
    ok(
        "collect at lane2",
        lane2.post_json(&collect, "c2", json!({ "pickup_code": "2468" })),
    );

    // Lane 1 settles the units exactly once; HQ sees the hand-over and the stock.
    let settled = store_shows_status(&lane1, "pos-1", "collected");
    assert_eq!(
        history_statuses(&settled).last().map(String::as_str),
        Some("collected")
    );
    wait_for("lane1 sold the units once", CONVERGE, || {
        (store_stock(&lane1, "MILK") == (7, 0)).then_some(())
    });
    let at_hq = hq_shows_status(&hq, shared, "collected");
    assert_eq!(at_hq["decided_by"]["writer"], "s1.lane2", "{at_hq}");
    wait_for("HQ and lane2 show 7 on hand", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(7) && store_stock(&lane2, "MILK").0 == 7).then_some(())
    });
}

#[test]
fn a_cancel_at_hq_releases_the_units_and_a_concurrent_collect_wins() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let store = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: proxy.port });
    store.receive("r1", "MILK", 10);
    grant_and_wait(&hq, &store, "s1", "MILK", 4);
    for id in ["web-a", "web-b"] {
        let order = json!({ "order_id": id, "store": "s1", "node": "lane1", "pickup_code": "4711",
                            "lines": [{ "sku": "MILK", "quantity": 2 }] });
        assert_eq!(hq.post_json("/v1/orders", order).0, 201);
        store_shows_status(&store, id, "reserved");
    }
    assert_eq!(store_stock(&store, "MILK"), (10, 4));
    for step in ["pick", "ready"] {
        let body = if step == "pick" {
            json!({ "sku": "MILK", "quantity": 2 })
        } else {
            json!({})
        };
        ok(
            step,
            store.post_json(
                &format!("/v1/orders/web-b/{step}"),
                &format!("{step}-b"),
                body,
            ),
        );
    }
    hq_shows_status(&hq, "web-b", "ready");

    // Cut off: the web shop cancels both; meanwhile the customer collects web-b in store.
    proxy.cut();
    let cancelled = hq.post_json("/v1/orders/web-a/cancel", json!({}));
    assert_eq!(cancelled.0, 200, "{}", cancelled.1);
    assert_eq!(cancelled.1["status"], "cancelled");
    assert_eq!(hq.post_json("/v1/orders/web-b/cancel", json!({})).0, 200);
    assert_eq!(hq.post_json("/v1/orders/nope/cancel", json!({})).0, 404);
    ok(
        "collect web-b offline",
        store.post_json(
            "/v1/orders/web-b/collect",
            "c-b",
            json!({ "pickup_code": "4711" }),
        ),
    );
    assert_eq!(
        store_stock(&store, "MILK"),
        (8, 2),
        "web-a still held while cut off"
    );

    // Reconnect: web-a's units are released; web-b stays collected (collected wins).
    proxy.restore();
    store_shows_status(&store, "web-a", "cancelled");
    wait_for("units released once", CONVERGE, || {
        (store_stock(&store, "MILK") == (8, 0)).then_some(())
    });
    let b = hq_shows_status(&hq, "web-b", "collected");
    assert_eq!(b["decided_by"]["writer"], "s1.lane1", "{b}");
    assert_eq!(
        hq.post_json("/v1/orders/web-b/cancel", json!({})).0,
        409,
        "a collected order cannot be cancelled"
    );
    wait_for("HQ stock", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(8) && reserved_at_hq(&hq, "s1", "MILK") == Some(0))
            .then_some(())
    });
    let (_, a) = store.get_json("/v1/orders/web-a");
    assert_eq!(history_statuses(&a), ["reserved", "cancelled"], "{a}");
}

#[test]
fn ship_from_store_fulfils_a_web_order_from_store_stock() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let store = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: proxy.port });
    store.receive("r1", "MILK", 5);
    grant_and_wait(&hq, &store, "s1", "MILK", 2);
    let customer = json!({ "name": "Erika Mustermann", "phone": "+49 30 1234567",
                           "email": "erika@example.com", "address": "Heidestrasse 17, 51147 Koeln" });
    let order = json!({ "order_id": "ship-1", "store": "s1", "node": "lane1", "pickup_code": "0000",
                        "delivery": "ship", "customer": customer,
                        "lines": [{ "sku": "MILK", "quantity": 2 }] });
    let (status, placed) = hq.post_json("/v1/orders", order);
    assert_eq!(status, 201, "{placed}");
    let view = store_shows_status(&store, "ship-1", "reserved");
    assert_eq!(view["delivery"], "ship", "{view}");
    // The address reaches the store beside the order, never inside it.
    let address = wait_for("store has the delivery address", CONVERGE, || {
        let (status, body) = store.get_json("/v1/orders/ship-1/customer");
        (status == 200).then_some(body)
    });
    assert!(address.to_string().contains("Heidestrasse 17"), "{address}");
    assert!(!view.to_string().contains("Erika"), "{view}");
    assert!(!placed.to_string().contains("Erika"), "{placed}");
    // HQ has heard of the reservation (the store's status change travels on its own, after
    // the store shows it) before the store's link fails while staff pick, pack and ship.
    hq_shows_status(&hq, "ship-1", "reserved");
    proxy.cut();
    ok(
        "pick",
        store.post_json(
            "/v1/orders/ship-1/pick",
            "p",
            json!({ "sku": "MILK", "quantity": 2 }),
        ),
    );
    ok(
        "ready",
        store.post_json("/v1/orders/ship-1/ready", "r", json!({})),
    );
    let (status, _) = store.post_json(
        "/v1/orders/ship-1/collect",
        "c",
        json!({ "pickup_code": "0000" }),
    );
    assert_eq!(status, 409, "a ship order is not collected");
    let (status, _) = store.post_json("/v1/orders/ship-1/ship", "s0", json!({ "carrier": "" }));
    assert_eq!(status, 422, "carrier named");
    ok(
        "ship",
        store.post_json(
            "/v1/orders/ship-1/ship",
            "s1",
            json!({ "carrier": "DHL", "tracking": "JJD0001" }),
        ),
    );
    assert_eq!(store_stock(&store, "MILK"), (3, 0));
    assert_eq!(hq_status(&hq, "ship-1").as_deref(), Some("reserved"));
    proxy.restore();
    let at_hq = hq_shows_status(&hq, "ship-1", "shipped");
    assert_eq!(at_hq["delivery"], "ship", "{at_hq}");
    wait_for("HQ stock after shipping", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(3)).then_some(())
    });
    for log in [store.log(), hq.log()] {
        assert!(
            !log.contains("Erika") && !log.contains("erika@"),
            "personal data in a log"
        );
    }
}
