//! Bounded history: HQ opens a new stock epoch for both stores while store 2 is partitioned
//! and both keep selling. Store 1 moves over at once; store 2 finds the announcement (HQ's
//! retained heads of the new epoch) when it reconnects and carries its offline work over
//! exactly once. Every node and HQ end on the same stock, the sum of all movements.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
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
