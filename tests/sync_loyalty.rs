//! The loyalty ledger end to end with real processes (HQ, two stores, Mosquitto): points a
//! member earns at store 1 while it is cut off from HQ reach HQ when it reconnects, and are
//! spendable at store 2 once HQ has granted them there; a retried sale (same idempotency
//! key) earns once; a till cannot spend more than it holds. Every wait is bounded.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use serde_json::{Value, json};
use sync_util::{BrokerAccess, HQ_TOKEN, HqNode, Proxy, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);
const MEMBER: &str = "CLUB-42";

/// HQ's view of a member's balance and its lanes' totals.
fn hq_member(hq: &HqNode, card: &str) -> Value {
    let (status, body) = hq.get_json(&format!("/v1/loyalty/members/{card}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn sale_with_member(store: &StoreNode, key: &str, lines: Value, payments: Value) -> (u16, Value) {
    store.post_json(
        "/v1/sales",
        key,
        json!({ "lines": lines, "payments": payments, "member": MEMBER }),
    )
}

#[test]
fn points_earned_offline_at_one_store_are_spendable_at_another_and_a_retry_earns_once() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let store1 = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: proxy.port });
    let store2 = StoreNode::start("s2", "lane1", &direct);

    // HQ's rules: 10 points per whole euro paid, a point pays one cent.
    let rules = json!({ "points_per_unit": 10, "point_value_minor": 1 });
    let (status, body) = hq.call_as(HQ_TOKEN, "PUT", "/v1/loyalty/rules", Some(rules.clone()));
    assert_eq!(status, 200, "{body}");
    let (status, body) = hq.post_json(
        "/v1/loyalty/members",
        json!({ "card": MEMBER, "customer": { "name": "Ada Example",
                "phone": "+49 30 1234567", "email": "ada@example.com" } }),
    );
    assert_eq!(status, 201, "{body}");
    for store in [&store1, &store2] {
        wait_for("the store has HQ's loyalty rules", CONVERGE, || {
            let (status, body) = store.get_json(&format!("/v1/loyalty/members/{MEMBER}"));
            (status == 200 && body["rules"] == rules).then_some(())
        });
    }

    // Store 1 is cut off from HQ; the member buys two shirts (25.98 €): 250 points.
    proxy.cut();
    let lines = json!([{ "sku": "SHIRT", "quantity": 2 }]);
    let cash = json!([{ "method": "cash", "amount_minor": 3000 }]);
    let (status, first) = sale_with_member(&store1, "loyalty-sale-1", lines.clone(), cash.clone());
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["loyalty"]["points_earned"], 250, "{first}");
    // The till did not hear the answer and sends the sale again: the same sale, once.
    let (status, again) = sale_with_member(&store1, "loyalty-sale-1", lines, cash);
    assert_eq!(status, 201, "{again}");
    assert_eq!(again, first);
    assert_eq!(hq_member(&hq, MEMBER)["earned"], 0, "HQ cannot know yet");

    // Reconnected, HQ sees the points, once.
    proxy.restore();
    wait_for("HQ sees the points earned offline", CONVERGE, || {
        (hq_member(&hq, MEMBER)["balance"] == 250).then_some(())
    });
    // A later sale of another member at store 1 reaches HQ after any change the retry could
    // have made: by then the member still has 250.
    let (status, body) = store1.post_json(
        "/v1/sales",
        "loyalty-sale-2",
        json!({ "lines": [{ "sku": "MILK", "quantity": 1 }],
                "payments": [{ "method": "cash", "amount_minor": 200 }], "member": "CLUB-43" }),
    );
    assert_eq!(status, 201, "{body}");
    wait_for("HQ sees the other member's sale", CONVERGE, || {
        (hq_member(&hq, "CLUB-43")["earned"] == 10).then_some(())
    });
    let at_hq = hq_member(&hq, MEMBER);
    assert_eq!(
        (at_hq["earned"].as_i64(), at_hq["balance"].as_i64()),
        (Some(250), Some(250)),
        "{at_hq}"
    );
    assert_eq!(at_hq["lanes"]["s1.lane1"]["earned"], 250, "{at_hq}");

    // At store 2's till: identifying the member asks HQ for the points; they arrive.
    let (status, view) =
        store2.post_json("/v1/loyalty/lookup", "lookup-1", json!({ "card": MEMBER }));
    assert_eq!(status, 201, "{view}");
    wait_for("store 2 may spend the points", CONVERGE, || {
        let (_, view) = store2.get_json(&format!("/v1/loyalty/members/{MEMBER}"));
        (view["spendable_points"] == 250).then_some(())
    });
    // Milk (1.19 €) paid with 119 points; more than the till holds is refused.
    let (status, paid) = sale_with_member(
        &store2,
        "loyalty-sale-3",
        json!([{ "sku": "MILK", "quantity": 1 }]),
        json!([{ "method": "points", "amount_minor": 119 }]),
    );
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["loyalty"]["points_spent"], 119, "{paid}");
    assert_eq!(paid["loyalty"]["points_earned"], 0, "{paid}");
    assert_eq!(paid["loyalty"]["spendable_points"], 131, "{paid}");
    let (status, refused) = sale_with_member(
        &store2,
        "loyalty-sale-4",
        json!([{ "sku": "SHIRT", "quantity": 1 }]),
        json!([{ "method": "points", "amount_minor": 1299 }]),
    );
    assert_eq!(status, 409, "{refused}");

    wait_for("HQ sees the points spent at store 2", CONVERGE, || {
        let member = hq_member(&hq, MEMBER);
        (member["balance"] == 131 && member["lanes"]["s2.lane1"]["spent"] == 119).then_some(())
    });
    let (status, history) = hq.get_json(&format!("/v1/loyalty/members/{MEMBER}/history"));
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["entries"][0]["kind"], "granted", "{history}");
    assert_eq!(history["entries"][0]["lane"], "s2.lane1", "{history}");
    assert_eq!(history["entries"][0]["points"], 250, "{history}");
}
