//! Sync under faults, with real processes: the broker restarts while stores sell, HQ is
//! down while two lanes of one store sell, and a run against HQ's embedded broker. In each
//! case every node and HQ end on the same stock, the sum of all movements. Every wait is
//! bounded; nothing asserts on timing.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::node::free_port;
use sync_util::{BrokerAccess, HqNode, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn node_shows(node: &StoreNode, what: &str, sku: &str, expected: i64) {
    wait_for(
        &format!("{what} shows {sku} = {expected}"),
        CONVERGE,
        || (node.on_hand(sku) == expected).then_some(()),
    );
}

fn hq_shows(hq: &HqNode, store: &str, sku: &str, expected: i64) {
    wait_for(
        &format!("HQ shows {store}/{sku} = {expected}"),
        CONVERGE,
        || (hq.on_hand(store, sku) == Some(expected)).then_some(()),
    );
}

fn outbox_drained(nodes: &[&StoreNode]) {
    for node in nodes {
        wait_for("outbox drained", CONVERGE, || {
            (node.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
        });
    }
}

/// Sells one unit of `sku` `count` times with keys `{prefix}-{i}`.
fn sell_units(node: &StoreNode, prefix: &str, sku: &str, count: usize) {
    for i in 0..count {
        node.sell(&format!("{prefix}-{i}"), sku, 1);
    }
}

#[test]
fn a_broker_restart_mid_sync_loses_and_doubles_nothing() {
    let mut broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "");
    let s1a = StoreNode::start("s1", "lane1", &direct);
    let s1b = StoreNode::start("s1", "lane2", &direct);
    let s2 = StoreNode::start("s2", "lane1", &direct);
    s1a.receive("r1", "MILK", 100);
    s2.receive("r2", "MILK", 80);
    for node in [&s1a, &s1b] {
        node_shows(node, "s1", "MILK", 100);
    }
    hq_shows(&hq, "s1", "MILK", 100);
    hq_shows(&hq, "s2", "MILK", 80);

    // Sales keep going on every lane while the broker goes down and comes back; some of
    // them are published just before the stop and never acknowledged by HQ.
    std::thread::scope(|scope| {
        let sellers = [
            scope.spawn(|| sell_units(&s1a, "s1a", "MILK", 12)),
            scope.spawn(|| sell_units(&s1b, "s1b", "MILK", 8)),
            scope.spawn(|| sell_units(&s2, "s2", "MILK", 10)),
        ];
        s1a.sell("s1a-before-stop", "MILK", 2);
        broker.stop();
        s2.sell("s2-while-down", "MILK", 3);
        s1b.sell("s1b-while-down", "MILK", 1);
        broker.restart();
        for seller in sellers {
            seller.join().expect("seller thread");
        }
    });
    s1a.sell("s1a-after-restart", "MILK", 1);

    let s1_expected = 100 - 12 - 8 - 2 - 1 - 1;
    let s2_expected = 80 - 10 - 3;
    for node in [&s1a, &s1b] {
        node_shows(node, "s1", "MILK", s1_expected);
    }
    node_shows(&s2, "s2", "MILK", s2_expected);
    hq_shows(&hq, "s1", "MILK", s1_expected);
    hq_shows(&hq, "s2", "MILK", s2_expected);
    outbox_drained(&[&s1a, &s1b, &s2]);
    // Converged and acknowledged: nothing moves any more.
    assert_eq!(hq.on_hand("s1", "MILK"), Some(s1_expected));
    assert_eq!(hq.on_hand("s2", "MILK"), Some(s2_expected));
}

#[test]
fn two_lanes_converge_while_hq_is_down_and_hq_catches_up() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "");
    let lane1 = StoreNode::start("s1", "lane1", &direct);
    let lane2 = StoreNode::start("s1", "lane2", &direct);
    lane1.receive("r1", "MILK", 60);
    lane2.receive("r2", "SHIRT", 20);
    for lane in [&lane1, &lane2] {
        node_shows(lane, "lane", "MILK", 60);
        node_shows(lane, "lane", "SHIRT", 20);
    }
    hq_shows(&hq, "s1", "MILK", 60);
    outbox_drained(&[&lane1, &lane2]);

    let hq_dir = hq.stop();
    sell_units(&lane1, "l1", "MILK", 4);
    sell_units(&lane2, "l2", "MILK", 3);
    lane2.sell("l2-shirt", "SHIRT", 2);
    lane1.receive("r3", "SHIRT", 5);
    // Store-wide stock on both lanes, with no HQ to relay anything.
    for lane in [&lane1, &lane2] {
        node_shows(lane, "lane", "MILK", 53);
        node_shows(lane, "lane", "SHIRT", 23);
    }
    // Nothing can be acknowledged while HQ is down.
    wait_for("lane 1 holds unacknowledged changes", CONVERGE, || {
        (lane1.metric("storenode_sync_outbox_length").unwrap_or(0) > 0).then_some(())
    });

    let hq = HqNode::start_in(hq_dir, &direct, "");
    hq_shows(&hq, "s1", "MILK", 53);
    hq_shows(&hq, "s1", "SHIRT", 23);
    outbox_drained(&[&lane1, &lane2]);
    for lane in [&lane1, &lane2] {
        assert_eq!(lane.on_hand("MILK"), 53);
    }
}

#[test]
fn two_stores_converge_through_the_embedded_broker() {
    let port = free_port();
    let access = BrokerAccess::Plain { port };
    let hq = HqNode::start(
        &access,
        &format!("embedded_broker = \"127.0.0.1:{port}\"\n"),
    );
    let s1 = StoreNode::start("s1", "lane1", &access);
    let s2 = StoreNode::start("s2", "lane1", &access);
    s1.receive("r1", "MILK", 30);
    s2.receive("r2", "MILK", 40);
    sell_units(&s1, "s1", "MILK", 3);
    sell_units(&s2, "s2", "MILK", 5);
    node_shows(&s1, "s1", "MILK", 27);
    node_shows(&s2, "s2", "MILK", 35);
    hq_shows(&hq, "s1", "MILK", 27);
    hq_shows(&hq, "s2", "MILK", 35);
    outbox_drained(&[&s1, &s2]);
}
