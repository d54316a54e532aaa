//! HQ publishes a large catalog with one command, and the stores take it without stalling:
//! `storenode hq catalog import` sends the file in chunks (one POST of it was over HQ's body
//! limit: 413, and the CLI printed only "Broken pipe"), and a store projects only the items a
//! change touches. Real `storenode hq` and `storenode run` over a real Mosquitto.

mod common;
mod sync_util;

use std::process::Command;
use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::node::binary;
use sync_util::{BrokerAccess, HqNode, StoreNode, wait_for};

/// Enough items that the catalog as one JSON body is over HQ's 2 MB request limit.
const ITEMS: usize = 20_000;

fn catalog_csv(items: usize, price: impl Fn(usize) -> i64) -> String {
    let mut text = String::from("sku,name,price_minor,currency,tax_class,variable_measure,gtins\n");
    for i in 0..items {
        text.push_str(&format!(
            "BIG{i:06},Catalog item number {i} with a longish name,{},EUR,standard,false,\n",
            price(i)
        ));
    }
    text
}

fn hq_import(hq: &HqNode, file: &std::path::Path) -> std::process::Output {
    Command::new(binary())
        .args([
            "--config",
            hq.config.to_str().unwrap_or_default(),
            "hq",
            "catalog",
            "import",
        ])
        .arg(file)
        .output()
        .expect("run storenode hq catalog import")
}

fn price_at(node: &StoreNode, sku: &str) -> Option<i64> {
    let (status, body) = node.item(sku);
    (status == 200)
        .then(|| body["item"]["price_minor"].as_i64())
        .flatten()
}

#[test]
fn hq_publishes_a_large_catalog_in_one_command_and_a_price_change_reaches_the_store() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&access, "");
    let node = StoreNode::start("s1", "lane1", &access);

    let file = hq.dir.path().join("big.csv");
    std::fs::write(&file, catalog_csv(ITEMS, |_| 100)).expect("write catalog");
    let out = hq_import(&hq, &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed: {stderr}");
    assert!(
        stderr.contains(&format!("published {ITEMS}/{ITEMS} items")),
        "progress is shown: {stderr}"
    );
    let last = format!("BIG{:06}", ITEMS - 1);
    wait_for(
        "the store has the whole catalog",
        Duration::from_secs(120),
        || (price_at(&node, &last) == Some(100)).then_some(()),
    );
    assert_eq!(price_at(&node, "BIG000000"), Some(100));

    // A price change of one item: only it changes at the store.
    let one = hq.dir.path().join("one.csv");
    let mut text = catalog_csv(8, |_| 100);
    text = text.replace(
        "BIG000007,Catalog item number 7 with a longish name,100",
        "BIG000007,Catalog item number 7 with a longish name,125",
    );
    std::fs::write(&one, text).expect("write price change");
    let out = hq_import(&hq, &one);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the new price reaches the store",
        Duration::from_secs(60),
        || (price_at(&node, "BIG000007") == Some(125)).then_some(()),
    );
    assert_eq!(price_at(&node, "BIG000006"), Some(100));
    assert_eq!(price_at(&node, &last), Some(100));
}

/// A node killed (SIGKILL) while it writes the rows of HQ's republication of every item:
/// the restart writes what was not written (the stored catalog compared with SQLite) and
/// takes the rest from HQ, and every item ends at the new price.
#[test]
fn a_node_killed_while_it_writes_a_republication_ends_with_every_new_price() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&access, "");
    let mut node = StoreNode::start("s1", "lane1", &access);
    let items = 5_000;
    let file = hq.dir.path().join("first.csv");
    std::fs::write(&file, catalog_csv(items, |_| 100)).expect("write catalog");
    assert!(hq_import(&hq, &file).status.success());
    let last = format!("BIG{:06}", items - 1);
    wait_for(
        "the store has the catalog",
        Duration::from_secs(120),
        || (price_at(&node, &last) == Some(100)).then_some(()),
    );

    let file = hq.dir.path().join("again.csv");
    std::fs::write(&file, catalog_csv(items, |i| 200 + i as i64)).expect("write catalog");
    assert!(hq_import(&hq, &file).status.success());
    // Rows are written in SKU order: the first new price means the projection is under way.
    wait_for("the first new price", Duration::from_secs(60), || {
        (price_at(&node, "BIG000000") == Some(200)).then_some(())
    });
    node.kill_and_restart();
    wait_for("the last new price", Duration::from_secs(120), || {
        (price_at(&node, &last) == Some(200 + items as i64 - 1)).then_some(())
    });
    for i in (0..items).step_by(37).chain([items - 2]) {
        let sku = format!("BIG{i:06}");
        assert_eq!(price_at(&node, &sku), Some(200 + i as i64), "{sku}");
    }
}

/// Regression: a sale line with a GIAI tag was refused on every item, since nothing linked
/// such a tag to an item. HQ's catalog now says which GIAI or SSCC tags an item is sold
/// with (`epc_patterns`), and the store sells them on that item only, each once.
#[test]
fn an_item_of_hqs_catalog_sells_the_giai_tags_its_patterns_name_and_only_once() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&access, "");
    let node = StoreNode::start("s1", "lane1", &access);
    let status = hq.publish_catalog(serde_json::json!([
        { "sku": "BIKE-DAY", "name": "Bike rental, one day", "price_minor": 1500,
          "currency": "EUR", "tax_class": "standard", "gtins": [], "variable_measure": false,
          "epc_patterns": ["urn:epc:id:giai:0614141.12"] },
        { "sku": "MUG", "name": "Mug", "price_minor": 800, "currency": "EUR",
          "tax_class": "standard", "gtins": [], "variable_measure": false }
    ]));
    assert_eq!(status, 200);
    wait_for("the store has the catalog", Duration::from_secs(60), || {
        let (status, body) = node.item("BIKE-DAY");
        (status == 200 && body["item"]["epc_patterns"][0] == "urn:epc:id:giai:0614141.12")
            .then_some(())
    });
    let giai = |asset: &str| {
        let bytes = storenode::gs1::epc::encode_giai96(1, "0614141", asset).expect("GIAI-96");
        bytes.iter().map(|b| format!("{b:02X}")).collect::<String>()
    };
    let sell = |key: &str, sku: &str, epc: &str| {
        node.post_json(
            "/v1/sales",
            key,
            serde_json::json!({ "lines": [{ "sku": sku, "quantity": 1, "epc": epc }],
                                "payments": [{ "method": "cash", "amount_minor": 1500 }] }),
        )
    };
    assert_eq!(sell("mug", "MUG", &giai("12345")).0, 422);
    assert_eq!(sell("other-asset", "BIKE-DAY", &giai("99")).0, 422);
    let (status, body) = sell("bike", "BIKE-DAY", &giai("12345"));
    assert_eq!(status, 201, "{body}");
    assert_eq!(sell("bike-again", "BIKE-DAY", &giai("12345")).0, 409);
}
