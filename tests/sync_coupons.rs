//! Coupons end to end with real processes over a real Mosquitto: HQ issues a single-use web
//! coupon with its use granted to store s1; s1, cut off from HQ, redeems it in a sale (a
//! retry of the same sale redeems once, a second sale is refused as used up); store s2,
//! online, is refused (the use is held by another store: its ask to HQ gets nothing); HQ
//! learns the redemption when s1 is back; s2, refused a coupon whose uses are in HQ's pool,
//! asks HQ by itself and the same sale goes through once HQ's grant arrives; a use HQ moves
//! to s2 by hand is held there; a use s1 gives back reaches s2 through HQ's pool; a return
//! refunds what was paid. Every wait is bounded.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use serde_json::json;
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn sale(store: &StoreNode, key: &str, coupons: &[&str]) -> (u16, serde_json::Value) {
    store.post_json(
        "/v1/sales",
        key,
        json!({ "lines": [{ "sku": "MILK", "quantity": 3 }],
                "payments": [{ "method": "cash", "amount_minor": 500 }],
                "coupons": coupons }),
    )
}

/// Issues a coupon, retrying while HQ does not know a store's lane yet (nothing is
/// published until it does).
fn issue(hq: &HqNode, body: serde_json::Value) -> serde_json::Value {
    wait_for("HQ issues the coupon", CONVERGE, || {
        let (status, reply) = hq.post_json("/v1/coupons", body.clone());
        match status {
            201 => Some(reply),
            422 if reply.to_string().contains("lane") => None,
            _ => panic!("issuing {body}: {status} {reply}"),
        }
    })
}

fn held(store: &StoreNode, code: &str) -> Option<i64> {
    let (status, view) = store.get_json(&format!("/v1/coupons/{code}"));
    (status == 200).then(|| view["held"].as_i64()).flatten()
}

#[test]
fn a_coupon_held_by_a_store_cut_off_from_hq_is_redeemed_there_once_and_refused_elsewhere() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(
        &BrokerAccess::Plain {
            port: broker.port(),
        },
        "",
    );
    let s1 = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: proxy.port });
    let s2 = StoreNode::start(
        "s2",
        "lane1",
        &BrokerAccess::Plain {
            port: broker.port(),
        },
    );

    let issued = issue(
        &hq,
        json!({ "code": "web-save-50", "name": "Web coupon: 0.50 off", "uses": 1,
                "channel": "sms", "expires_at": "2099-01-01T00:00:00Z",
                "discount": { "kind": "basket_amount_off", "min_total_minor": 0, "amount_minor": 50 },
                "grants": { "s1": 1 } }),
    );
    assert_eq!(issued["coupon"]["code"], "WEB-SAVE-50", "{issued}");
    assert_eq!(issued["pool"], 0, "{issued}");
    assert_eq!(issued["holders"][0]["lane"], "s1.lane1", "{issued}");
    wait_for("s1 holds the use", CONVERGE, || {
        (held(&s1, "WEB-SAVE-50") == Some(1)).then_some(())
    });
    wait_for("s2 knows the coupon", CONVERGE, || {
        (held(&s2, "WEB-SAVE-50") == Some(0)).then_some(())
    });

    // s1 is cut off from HQ: it redeems the use it holds.
    proxy.cut();
    let (status, receipt) = sale(&s1, "coupon-sale-1", &["web-save-50"]);
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["total_minor"], 3 * 119 - 50, "{receipt}");
    assert_eq!(receipt["coupons"][0]["code"], "WEB-SAVE-50", "{receipt}");
    assert_eq!(receipt["coupons"][0]["amount_minor"], 50, "{receipt}");
    // The till retries (same key): the same receipt, the use taken once.
    let (status, retried) = sale(&s1, "coupon-sale-1", &["web-save-50"]);
    assert!(status == 201 || status == 200, "{status} {retried}");
    assert_eq!(retried["sale_id"], receipt["sale_id"]);
    let (_, view) = s1.get_json("/v1/coupons/WEB-SAVE-50");
    assert_eq!(
        (view["held"].as_i64(), view["store_redeemed"].as_i64()),
        (Some(0), Some(1)),
        "{view}"
    );
    let (status, again) = sale(&s1, "coupon-sale-2", &["WEB-SAVE-50"]);
    assert_eq!(status, 409, "{again}");
    assert!(again.to_string().contains("used up"), "{again}");

    // s2 is online, but the only use is held by s1: s2 asks HQ, whose pool is empty.
    let (status, refused) = sale(&s2, "coupon-sale-s2", &["WEB-SAVE-50"]);
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.to_string().contains("asked HQ for a use"),
        "{refused}"
    );
    let (status, unknown) = sale(&s2, "coupon-sale-s2b", &["NO-SUCH-1"]);
    assert_eq!(status, 422, "{unknown}");
    assert!(unknown.to_string().contains("unknown"), "{unknown}");

    // Back online: HQ learns the redemption; nothing is left anywhere.
    proxy.restore();
    let view = wait_for("HQ sees the redemption", CONVERGE, || {
        let (_, view) = hq.get_json("/v1/coupons/WEB-SAVE-50");
        (view["redeemed"] == 1).then_some(view)
    });
    assert_eq!(
        (view["pool"].as_i64(), view["holders"][0]["held"].as_i64()),
        (Some(0), Some(0)),
        "{view}"
    );

    // A coupon with two uses, none granted: s2 is refused until HQ moves one to it.
    let two = issue(
        &hq,
        json!({ "code": "APP-TWO", "name": "App: 10 % off", "uses": 2, "channel": "app",
                "discount": { "kind": "basket_percent_off", "min_total_minor": 0, "percent_bp": 1000 } }),
    );
    assert_eq!(two["pool"], 2, "{two}");
    wait_for("s2 knows APP-TWO", CONVERGE, || {
        (held(&s2, "APP-TWO") == Some(0)).then_some(())
    });
    // s2, online, holds none: the till is refused, the lane asks HQ for a use by itself,
    // and the same sale (same key) goes through once HQ's grant has arrived.
    let (status, refused) = sale(&s2, "two-1", &["APP-TWO"]);
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("asked HQ for a use: try again in a moment"),
        "{refused}"
    );
    wait_for("HQ grants s2 a use of APP-TWO", CONVERGE, || {
        (held(&s2, "APP-TWO") == Some(1)).then_some(())
    });
    let (status, paid) = sale(&s2, "two-1", &["APP-TWO"]);
    assert_eq!(status, 201, "{paid}");
    let (_, view) = hq.get_json("/v1/coupons/APP-TWO");
    assert_eq!(view["pool"], 1, "{view}");
    // HQ moves the other use by hand; then none is left to grant.
    let (status, moved) = hq.post_json(
        "/v1/coupons/APP-TWO/grant",
        json!({ "holder": "s2", "uses": 1 }),
    );
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["pool"], 0, "{moved}");
    let (status, short) = hq.post_json(
        "/v1/coupons/APP-TWO/grant",
        json!({ "holder": "s2", "uses": 1 }),
    );
    assert_eq!(status, 409, "{short}");
    wait_for("s2 holds the other use of APP-TWO", CONVERGE, || {
        (held(&s2, "APP-TWO") == Some(1)).then_some(())
    });
    // 3.57 − 10 % (0.36) = 3.21; all three back refund 3.21, not 3.57.
    assert_eq!(paid["total_minor"], 357 - 36, "{paid}");
    let (status, refund) = s2.post_json(
        "/v1/returns",
        "two-return",
        json!({ "sale_id": paid["sale_id"], "lines": [{ "line_no": 1, "quantity": 3 }] }),
    );
    assert_eq!(status, 201, "{refund}");
    assert_eq!(refund["refund_minor"], 357 - 36, "{refund}");

    // A use s1 holds and gives back goes to HQ's pool, and from there to s2.
    issue(
        &hq,
        json!({ "code": "BACK-1", "name": "0.10 off", "uses": 1,
                "discount": { "kind": "basket_amount_off", "min_total_minor": 0, "amount_minor": 10 },
                "grants": { "s1.lane1": 1 } }),
    );
    wait_for("s1 holds BACK-1", CONVERGE, || {
        (held(&s1, "BACK-1") == Some(1)).then_some(())
    });
    let (status, released) =
        s1.post_json("/v1/coupons/BACK-1/release", "back-1", json!({ "uses": 1 }));
    assert_eq!(status, 201, "{released}");
    assert_eq!(released["held"], 0, "{released}");
    wait_for("HQ has BACK-1 back in its pool", CONVERGE, || {
        let (_, view) = hq.get_json("/v1/coupons/BACK-1");
        (view["pool"] == 1).then_some(())
    });
    let (status, moved) = hq.post_json(
        "/v1/coupons/BACK-1/grant",
        json!({ "holder": "s2", "uses": 1 }),
    );
    assert_eq!(status, 200, "{moved}");
    wait_for("s2 holds BACK-1", CONVERGE, || {
        (held(&s2, "BACK-1") == Some(1)).then_some(())
    });
    let (status, refused) = sale(&s1, "back-s1", &["BACK-1"]);
    assert_eq!(status, 409, "{refused}");
    let (status, paid) = sale(&s2, "back-s2", &["BACK-1"]);
    assert_eq!(status, 201, "{paid}");

    // Revoked: refused at the store once it knows.
    let (status, _) = hq.post_json("/v1/coupons/APP-TWO/revoke", json!({}));
    assert_eq!(status, 200);
    wait_for("s2 learns the revocation", CONVERGE, || {
        let (_, view) = s2.get_json("/v1/coupons/APP-TWO");
        (view["revoked"] == true).then_some(())
    });
    let (status, revoked) = sale(&s2, "two-3", &["APP-TWO"]);
    assert_eq!(status, 422, "{revoked}");

    // The web shop redeems from HQ's pool, once per payment; then a store asking for a use
    // gets none, as the pool is empty.
    issue(
        &hq,
        json!({ "code": "WEB-ONE", "name": "2 EUR off", "uses": 1,
                "discount": { "kind": "basket_amount_off", "min_total_minor": 0, "amount_minor": 200 } }),
    );
    let (status, web) = hq.post_json(
        "/v1/coupons/WEB-ONE/redeem",
        json!({ "reference": "web-77" }),
    );
    assert_eq!(status, 200, "{web}");
    assert_eq!(
        (web["replayed"].as_bool(), web["pool"].as_i64()),
        (Some(false), Some(0)),
        "{web}"
    );
    let (status, retry) = hq.post_json(
        "/v1/coupons/WEB-ONE/redeem",
        json!({ "reference": "web-77" }),
    );
    assert_eq!(
        (status, retry["replayed"].as_bool()),
        (200, Some(true)),
        "{retry}"
    );
    let (status, second) = hq.post_json(
        "/v1/coupons/WEB-ONE/redeem",
        json!({ "reference": "web-78" }),
    );
    assert_eq!(status, 409, "{second}");
    wait_for("s2 knows WEB-ONE", CONVERGE, || {
        (s2.get_json("/v1/coupons/WEB-ONE").0 == 200).then_some(())
    });
    let (status, refused) = sale(&s2, "web-one-s2", &["WEB-ONE"]);
    assert_eq!(status, 409, "{refused}");
    let (_, view) = hq.get_json("/v1/coupons/WEB-ONE");
    assert_eq!(
        (view["redeemed"].as_i64(), view["redeemed_online"].as_i64()),
        (Some(1), Some(1)),
        "{view}"
    );

    let (_, listed) = hq.get_json("/v1/coupons");
    assert_eq!(
        listed["coupons"].as_array().map(Vec::len),
        Some(4),
        "{listed}"
    );
}
