//! Two HQ instances over one real PostgreSQL (a scratch cluster started by the test), real
//! Mosquitto and three real store nodes: they share the ingest (MQTT shared
//! subscriptions), answer reads identically, take writes through either instance, lose an
//! instance to SIGKILL and the database to a crash without losing or doubling anything,
//! and cut each epoch once. Every wait is bounded.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use serde_json::json;
use storenode::hq::db::scratch::ScratchPostgres;
use sync_util::{BrokerAccess, HqNode, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(90);

fn postgres() -> (ScratchPostgres, String) {
    let pg = ScratchPostgres::start().expect("a scratch PostgreSQL (apt-get install postgresql)");
    let url = pg.create_database("hq").expect("HQ's database");
    (pg, url)
}

fn hq_shows(hq: &HqNode, store: &str, expected: i64) {
    wait_for(
        &format!("HQ at {} shows {store}/MILK = {expected}", hq.base),
        CONVERGE,
        || (hq.on_hand(store, "MILK") == Some(expected)).then_some(()),
    );
}

fn outbox_drained(node: &StoreNode) {
    wait_for("outbox drained", CONVERGE, || {
        (node.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
    });
}

#[test]
fn two_instances_share_ingest_and_survive_a_killed_instance_and_a_database_crash() {
    let (pg, url) = postgres();
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let extra = format!("database = \"{url}\"\n");
    let a = HqNode::start(&access, &extra);
    let b = HqNode::start(&access, &extra);
    let stores = [
        StoreNode::start("s1", "lane1", &access),
        StoreNode::start("s2", "lane1", &access),
        StoreNode::start("s3", "lane1", &access),
    ];
    let names = ["s1", "s2", "s3"];
    for node in &stores {
        node.receive("delivery", "MILK", 100);
    }
    for store in names {
        hq_shows(&a, store, 100);
        hq_shows(&b, store, 100);
        assert_eq!(
            a.stock(store, "MILK"),
            b.stock(store, "MILK"),
            "same answer"
        );
    }

    // An order placed through one instance is cancelled through the other.
    stores[0].grant_online("grant", "MILK", 5);
    let order = json!({ "order_id": "web-c1", "store": "s1", "node": "lane1",
                        "pickup_code": "4711", "lines": [{ "sku": "MILK", "quantity": 2 }] });
    wait_for(
        "A takes the order once the grant reached HQ",
        CONVERGE,
        || {
            let (status, body) = a.post_json("/v1/orders", order.clone());
            let waiting = body.to_string().contains("granted to the online channel");
            assert!(status == 201 || waiting, "{status} {body}");
            (status == 201).then_some(())
        },
    );
    let (status, body) = b.post_json("/v1/orders/web-c1/cancel", json!({}));
    assert_eq!(status, 200, "B cancels what A placed: {body}");
    let (_, seen_by_a) = a.get_json("/v1/orders/web-c1");
    assert_eq!(seen_by_a["status"], "cancelled", "{seen_by_a}");
    assert_eq!(
        a.post_json("/v1/orders", order).0,
        409,
        "the id stays taken"
    );

    // Sell everywhere while one instance dies.
    let selling = std::thread::scope(|scope| {
        let sellers: Vec<_> = stores
            .iter()
            .map(|node| {
                scope.spawn(move || {
                    for i in 0..30 {
                        node.sell(&format!("sale-{i}"), "MILK", 1);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let killed = a.kill();
        for seller in sellers {
            seller.join().expect("seller");
        }
        killed
    });
    drop(selling);
    for (node, store) in stores.iter().zip(names) {
        assert_eq!(node.on_hand("MILK"), 70);
        outbox_drained(node);
        hq_shows(&b, store, 70);
    }

    // The database crashes mid-ingest and comes back; HQ carries on without a restart.
    pg.stop_immediately().expect("stop PostgreSQL");
    for node in &stores {
        for i in 0..10 {
            node.sell(&format!("while-down-{i}"), "MILK", 1);
        }
    }
    pg.restart().expect("start PostgreSQL again");
    for (node, store) in stores.iter().zip(names) {
        outbox_drained(node);
        hq_shows(&b, store, 60);
    }
    assert!(
        !b.log().contains("panicked"),
        "HQ survived the database crash: {}",
        b.log()
    );
}

#[test]
fn the_epoch_timer_cuts_each_epoch_once_with_two_instances() {
    let (_pg, url) = postgres();
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let extra = format!("database = \"{url}\"\nepoch_interval_s = 1\n");
    let a = HqNode::start(&access, &extra);
    let b = HqNode::start(&access, &extra);
    let store = StoreNode::start("s1", "lane1", &access);
    store.receive("delivery", "MILK", 50);
    for i in 0..5 {
        store.sell(&format!("sale-{i}"), "MILK", 1);
        std::thread::sleep(Duration::from_millis(700));
    }
    hq_shows(&a, "s1", 45);
    hq_shows(&b, "s1", 45);
    let cuts = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|line| line.contains("opened a new stock epoch"))
            .filter_map(|line| {
                // Text (`epoch=2`) or JSON (`"epoch":2`) log lines.
                let at = line.find("epoch=").or_else(|| line.find("\"epoch\":"))?;
                let field = line[at..].split([' ', ',', '}']).next()?;
                Some(field.trim_start_matches('"').replace("\":", "="))
            })
            .collect()
    };
    let (by_a, by_b) = (cuts(&a.log()), cuts(&b.log()));
    assert!(
        !by_a.is_empty() || !by_b.is_empty(),
        "the leader cut epochs: {}\n{}",
        a.log(),
        b.log()
    );
    let mut all: Vec<String> = by_a.iter().chain(&by_b).cloned().collect();
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        count,
        "each epoch cut once: A {by_a:?}, B {by_b:?}"
    );
    assert!(
        by_a.is_empty() || by_b.is_empty(),
        "one instance leads: A {by_a:?}, B {by_b:?}"
    );
}
