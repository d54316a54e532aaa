//! Promotions end to end with real processes over a real Mosquitto: HQ publishes a "3 for 2"
//! and a basket discount, the store (cut off from the broker) prices a sale with them, HQ's
//! `POST /v1/quote` for the same basket at the same instant gives the same total and lines,
//! and a return refunds the returned unit's share of what was paid. Every wait is bounded.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use serde_json::json;
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

#[test]
fn store_prices_offline_with_hqs_promotions_and_matches_hqs_quote() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(
        &BrokerAccess::Plain {
            port: broker.port(),
        },
        "",
    );
    let store = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: proxy.port });
    let item = |sku: &str, name: &str, price: i64| {
        json!({ "sku": sku, "name": name, "price_minor": price, "currency": "EUR",
                "tax_class": "reduced", "gtins": [], "variable_measure": false })
    };
    assert_eq!(
        hq.publish_catalog(json!([
            item("MILK", "Whole milk 1 l", 119),
            json!({ "sku": "SHIRT", "name": "T-shirt", "price_minor": 1299, "currency": "EUR",
                    "tax_class": "standard", "gtins": [], "variable_measure": false })
        ])),
        200
    );
    let (status, body) = hq.post_json(
        "/v1/pricing",
        json!({ "time_zones": { "*": "Europe/Berlin" }, "categories": { "dairy": ["MILK"] } }),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = hq.post_json(
        "/v1/promotions",
        json!({ "id": "milk-3for2", "name": "Milk 3 for 2",
                "rule": { "kind": "multi_buy", "target": { "categories": ["dairy"] },
                          "group": 3, "percent_bp": 10000 } }),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = hq.post_json(
        "/v1/promotions",
        json!({ "id": "basket10", "name": "10 % off from 15 EUR",
                "rule": { "kind": "basket_percent_off", "min_total_minor": 1500, "percent_bp": 1000 } }),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = hq.post_json("/v1/promotions/nope/end", json!({}));
    assert_eq!(status, 404, "{body}");
    // A catalog change after the promotions: once the store has it, it has them (causal order).
    assert_eq!(
        hq.publish_catalog(json!([item("MARKER", "Marker", 1)])),
        200
    );
    wait_for("store has HQ's pricing", CONVERGE, || {
        (store.get_json("/v1/items/MARKER").0 == 200).then_some(())
    });
    let (_, listed) = hq.get_json("/v1/promotions");
    assert_eq!(
        listed["promotions"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );

    // HQ is out of reach: the till prices with the last rules it has.
    proxy.cut();
    // The item lookup names the dairy "3 for 2" on the milk (not the basket promotion).
    let (status, milk) = store.get_json("/v1/items/MILK");
    assert_eq!(status, 200, "{milk}");
    assert_eq!(milk["pricing"]["unit_price_minor"], 119, "{milk}");
    assert_eq!(
        milk["pricing"]["promotions"][0]["id"], "milk-3for2",
        "{milk}"
    );
    assert_eq!(
        milk["pricing"]["promotions"][0]["rule"]["group"], 3,
        "{milk}"
    );
    assert_eq!(
        milk["pricing"]["promotions"].as_array().map(Vec::len),
        Some(1),
        "{milk}"
    );
    let basket = json!([{ "sku": "MILK", "quantity": 4 }, { "sku": "SHIRT", "quantity": 1 }]);
    let (status, sale) = store.post_json(
        "/v1/sales",
        "promo-sale-1",
        json!({ "lines": basket, "payments": [{ "method": "cash", "amount_minor": 5000 }] }),
    );
    assert_eq!(status, 201, "{sale}");
    // 4 × 1.19 = 4.76, one free: 3.57; + 12.99 = 16.56 ≥ 15: 10 % off, 1.66.
    assert_eq!(sale["total_minor"], 357 + 1299 - 166, "{sale}");
    let names: Vec<&str> = sale["promotions"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|x| x["promotion_id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, vec!["milk-3for2", "basket10"], "{sale}");
    assert_eq!(
        sale["lines"][0]["discounts"][0]["amount_minor"], 119,
        "{sale}"
    );

    let (status, quote) = hq.post_json(
        "/v1/quote",
        json!({ "store": "s1", "at": sale["at"], "lines": basket }),
    );
    assert_eq!(status, 200, "{quote}");
    assert_eq!(
        quote["total_minor"], sale["total_minor"],
        "{quote} vs {sale}"
    );
    for i in 0..2 {
        assert_eq!(
            quote["lines"][i]["net_minor"], sale["lines"][i]["amount_minor"],
            "line {i}: {quote} vs {sale}"
        );
    }

    // One milk back: its share of what the milk line cost (3.57 less its basket share).
    let milk_paid = sale["lines"][0]["amount_minor"].as_i64().unwrap_or(0);
    let (status, refund) = store.post_json(
        "/v1/returns",
        "promo-return-1",
        json!({ "sale_id": sale["sale_id"], "lines": [{ "line_no": 1, "quantity": 1 }] }),
    );
    assert_eq!(status, 201, "{refund}");
    assert_eq!(
        refund["refund_minor"].as_i64(),
        Some((milk_paid * 2 + 4) / 8),
        "{refund}"
    );
    // Reading the sale back names the same promotions.
    let (_, stored) = store.get_json(&format!(
        "/v1/sales/{}",
        sale["sale_id"].as_str().unwrap_or_default()
    ));
    assert_eq!(stored["promotions"], sale["promotions"], "{stored}");
    proxy.restore();
}
