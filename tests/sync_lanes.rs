//! Who may write as a lane: a lane whose database goes back in time (`diag restore` of an
//! earlier backup) sells before it has caught up with HQ, then syncs again; a lane that is
//! not provisioned is refused. Real Mosquitto, real binaries, a cuttable proxy for the
//! lane's network. Every wait is bounded; nothing asserts on timing.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn node_shows(node: &StoreNode, sku: &str, expected: i64) {
    wait_for(
        &format!("the lane shows {sku} = {expected}"),
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

/// Regression: the restored lane reused its automerge actor's sequence numbers with other
/// content, and HQ refused every later change of it for good ("duplicate seq").
#[test]
fn a_lane_restored_from_a_backup_that_sells_offline_syncs_again() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "");
    let proxy = Proxy::start(broker.port());
    let via_proxy = BrokerAccess::Plain { port: proxy.port };
    let mut lane = StoreNode::start("s1", "lane1", &via_proxy);
    lane.receive("r1", "MILK", 100);
    lane.sell("before-backup", "MILK", 3);
    hq_shows(&hq, "s1", "MILK", 97);

    let backup = lane.dir.path().join("backup.db");
    let backup_arg = backup.to_str().expect("utf-8 path");
    let (ok, out) = lane.diag(&["db", "backup", "--out", backup_arg]);
    assert!(ok, "{out}");
    // Sold after the backup: HQ has these, the restored database will not.
    lane.sell("after-backup", "MILK", 5);
    hq_shows(&hq, "s1", "MILK", 92);

    lane.stop();
    let (ok, out) = lane.diag(&["restore", backup_arg]);
    assert!(ok, "{out}");
    // The store reopens with the network down and sells before catching up.
    proxy.cut();
    lane.restart();
    node_shows(&lane, "MILK", 97);
    lane.sell("offline-after-restore", "MILK", 2);
    node_shows(&lane, "MILK", 95);

    proxy.restore();
    // Every sale counted once: the 5 only HQ had, and the 2 made after the restore.
    hq_shows(&hq, "s1", "MILK", 90);
    node_shows(&lane, "MILK", 90);
    wait_for("the lane's outbox drained", CONVERGE, || {
        (lane.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
    });
    // And it keeps syncing.
    lane.sell("later", "MILK", 1);
    hq_shows(&hq, "s1", "MILK", 89);
    assert!(
        !hq.log().contains("duplicate seq"),
        "HQ refused a change:\n{}",
        hq.log()
    );
}

/// Regression: a lane restored to a backup from before an epoch switch carried its restored,
/// stale totals into the new epoch (or, missing its own change named in HQ's cut, could
/// not move over at all), and what it sold after the restore never reached HQ.
#[test]
fn a_lane_restored_to_a_backup_from_before_an_epoch_switch_catches_up_in_the_new_epoch() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "");
    let proxy = Proxy::start(broker.port());
    let via_proxy = BrokerAccess::Plain { port: proxy.port };
    let mut lane = StoreNode::start("s1", "lane1", &via_proxy);
    lane.receive("r1", "MILK", 100);
    lane.sell("before-backup", "MILK", 3);
    hq_shows(&hq, "s1", "MILK", 97);

    let backup = lane.dir.path().join("backup.db");
    let backup_arg = backup.to_str().expect("utf-8 path");
    let (ok, out) = lane.diag(&["db", "backup", "--out", backup_arg]);
    assert!(ok, "{out}");
    // After the backup: a sale in epoch 0 (inside HQ's cut), the switch, a sale in epoch 1.
    lane.sell("after-backup", "MILK", 5);
    hq_shows(&hq, "s1", "MILK", 92);
    let (status, body) = hq.open_epoch("s1");
    assert_eq!(status, 200, "{body}");
    wait_for("the lane moved to epoch 1", CONVERGE, || {
        lane.log().contains("moved to stock epoch 1").then_some(())
    });
    lane.sell("in-epoch-1", "MILK", 4);
    hq_shows(&hq, "s1", "MILK", 88);

    lane.stop();
    let (ok, out) = lane.diag(&["restore", backup_arg]);
    assert!(ok, "{out}");
    // Back on epoch 0 with the network down; it sells before catching up.
    proxy.cut();
    lane.restart();
    node_shows(&lane, "MILK", 97);
    lane.sell("offline-after-restore", "MILK", 2);
    node_shows(&lane, "MILK", 95);

    proxy.restore();
    // Every sale counted once: the 9 only HQ had, and the 2 made after the restore.
    hq_shows(&hq, "s1", "MILK", 86);
    node_shows(&lane, "MILK", 86);
    wait_for("the lane's outbox drained", CONVERGE, || {
        (lane.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
    });
    lane.sell("later", "MILK", 1);
    hq_shows(&hq, "s1", "MILK", 85);
    node_shows(&lane, "MILK", 85);
}

/// Regression: HQ took a change about store s1 from any `s1.{node}` writer, so a made-up
/// lane (a box with s1's certificate and another node id) added 5,000 units.
#[test]
fn a_lane_that_is_not_provisioned_is_refused_by_hq_and_by_the_other_lanes() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "lanes = { s1 = [\"lane1\"] }\n");
    let lane = StoreNode::start_with("s1", "lane1", &direct, "lanes = [\"lane1\"]");
    let ghost = StoreNode::start("s1", "ghost", &direct);
    lane.receive("r1", "MILK", 100);
    hq_shows(&hq, "s1", "MILK", 100);

    ghost.receive("g1", "MILK", 5_000);
    wait_for("HQ refuses the ghost lane", CONVERGE, || {
        hq.log()
            .contains("writer s1.ghost may not write")
            .then_some(())
    });
    wait_for("the lane refuses the ghost lane", CONVERGE, || {
        lane.log()
            .contains("change by s1.ghost, which is not a provisioned lane")
            .then_some(())
    });
    lane.sell("s1", "MILK", 1);
    hq_shows(&hq, "s1", "MILK", 99);
    node_shows(&lane, "MILK", 99);
    assert!(lane.metric("storenode_sync_rejected_total").unwrap_or(0) > 0);
}

/// Regression: a second box with the same store and node id (a clone) synced as the same
/// writer, fighting the first over the MQTT client id.
#[test]
fn a_second_live_box_with_the_same_writer_id_is_refused_and_the_first_syncs_on() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "");
    let first = StoreNode::start("s1", "lane1", &direct);
    first.receive("r1", "MILK", 100);
    hq_shows(&hq, "s1", "MILK", 100);

    let clone = StoreNode::start("s1", "lane1", &direct);
    wait_for("the clone refuses to sync", CONVERGE, || {
        clone.log().contains("refuses to sync").then_some(())
    });
    wait_for("the clone's /readyz says why", CONVERGE, || {
        clone
            .readyz()
            .contains("another box is live as writer s1.lane1")
            .then_some(())
    });
    clone.sell("clone-sale", "MILK", 1);
    first.sell("first-sale", "MILK", 2);
    // The first box syncs on; the clone's sale never reaches HQ.
    hq_shows(&hq, "s1", "MILK", 98);
    node_shows(&first, "MILK", 98);
    first.sell("first-sale-2", "MILK", 1);
    hq_shows(&hq, "s1", "MILK", 97);
    node_shows(&first, "MILK", 97);
    assert!(!first.log().contains("refuses to sync"), "{}", first.log());
}
