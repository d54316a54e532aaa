//! Sync end to end with real processes: two stores (one with two lanes) and HQ over a real
//! Mosquitto; one store is partitioned through a TCP proxy, both sides keep selling, and
//! after reconnecting every node and HQ show the same stock, equal to the sum of all
//! movements. Every wait is bounded.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn converged(nodes: &[&StoreNode], hq: &HqNode, store: &str, sku: &str, expected: i64) {
    for node in nodes {
        wait_for(
            &format!("{store} lane shows {sku} = {expected}"),
            CONVERGE,
            || (node.on_hand(sku) == expected).then_some(()),
        );
    }
    wait_for(
        &format!("HQ shows {store}/{sku} = {expected}"),
        CONVERGE,
        || (hq.on_hand(store, sku) == Some(expected)).then_some(()),
    );
}

#[test]
fn two_stores_and_hq_converge_after_a_partition() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let via_proxy = BrokerAccess::Plain { port: proxy.port };

    let hq = HqNode::start(&direct, "");
    let s1a = StoreNode::start("s1", "lane1", &direct);
    let s1b = StoreNode::start("s1", "lane2", &direct);
    let s2 = StoreNode::start("s2", "lane1", &via_proxy);

    s1a.receive("r1", "MILK", 100);
    s2.receive("r2", "MILK", 50);
    converged(&[&s1a, &s1b], &hq, "s1", "MILK", 100);
    converged(&[&s2], &hq, "s2", "MILK", 50);

    // Partition store 2; both sides keep selling.
    proxy.cut();
    for i in 0..5 {
        s2.sell(&format!("s2-sale-{i}"), "MILK", 1);
        s1a.sell(&format!("s1a-sale-{i}"), "MILK", 1);
    }
    s1b.sell("s1b-sale", "MILK", 2);
    assert_eq!(s2.on_hand("MILK"), 45, "the partitioned store sells on");
    converged(&[&s1a, &s1b], &hq, "s1", "MILK", 93);
    assert_eq!(hq.on_hand("s2", "MILK"), Some(50), "HQ cannot know yet");

    proxy.restore();
    converged(&[&s2], &hq, "s2", "MILK", 45);
    converged(&[&s1a, &s1b], &hq, "s1", "MILK", 93);

    // Nothing left waiting for HQ: every change was acknowledged end to end.
    for node in [&s1a, &s1b, &s2] {
        wait_for("outbox drained", CONVERGE, || {
            (node.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
        });
    }
    let (status, body) = hq.stock("s2", "MILK");
    assert_eq!(status, 200);
    assert_eq!(
        body["available_to_sell"], 44,
        "45 on hand − 1 safety stock: {body}"
    );
    assert!(body["as_of"].is_string(), "{body}");
    assert_eq!(body["online"], true, "{body}");
}
