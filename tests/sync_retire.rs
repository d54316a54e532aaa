//! A lane that went away for good: its peers back off their re-offers to it (one warning
//! with a count, not a line every interval), `storenode lane retire` stops them altogether,
//! the retired box, if it comes back, refuses to sync and says why, and HQ no longer waits
//! for it to move to a new epoch before it drops the closed one. Real Mosquitto, real
//! binaries; every wait is bounded and nothing asserts on timing.

mod common;
mod sync_util;

use std::process::Command;
use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use sync_util::{BrokerAccess, HqNode, StoreNode, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

/// `storenode --config … lane ARGS`: (success, stdout + stderr).
fn lane_cmd(node: &StoreNode, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_storenode"))
        .args(["--config", node.config.to_str().unwrap_or_default(), "lane"])
        .args(args)
        .output()
        .expect("run storenode lane");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The lane's re-offer entry for `peer` in `diag sync --json`, if any.
fn reoffer_to(node: &StoreNode, peer: &str) -> Option<serde_json::Value> {
    let (ok, out) = node.diag(&["sync", "--json"]);
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("diag sync JSON");
    report["details"]["reoffers"]
        .as_array()
        .expect("diag sync shows the re-offers")
        .iter()
        .find(|r| r["peer"] == peer)
        .cloned()
}

/// Regression: a lane that went away was re-offered changes every interval forever, and
/// "retire the lane" had no command.
#[test]
fn a_lane_gone_for_good_is_offered_less_and_less_then_retired_and_refused_if_it_returns() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let hq = HqNode::start(&direct, "");
    let lane1 = StoreNode::start("s1", "lane1", &direct);
    let mut lane2 = StoreNode::start("s1", "lane2", &direct);
    lane1.receive("r1", "MILK", 100);
    wait_for("lane 2 has the receipt", CONVERGE, || {
        (lane2.on_hand("MILK") == 100).then_some(())
    });
    // Lane 2 sells too: it is a writer HQ would wait for at an epoch switch.
    lane2.sell("s-0", "MILK", 1);
    wait_for("HQ has lane 2's sale", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(99)).then_some(())
    });

    // Lane 2 is unplugged for good; lane 1 sells on.
    lane2.stop();
    lane1.sell("s-1", "MILK", 2);
    wait_for("HQ has the sale", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(97)).then_some(())
    });
    // Lane 1 keeps offering the sale to lane 2, waiting longer each time (the resend
    // interval is 500 ms here).
    let backed_off = wait_for("lane 1 backs off its re-offers to lane 2", CONVERGE, || {
        reoffer_to(&lane1, "s1.lane2").filter(|r| r["reoffers"].as_u64() >= Some(4))
    });
    assert!(backed_off["lacking"].as_u64() >= Some(1), "{backed_off}");
    let warnings = lane1
        .log()
        .lines()
        .filter(|l| l.contains("a peer still lacks this lane's changes") && l.contains("s1.lane2"))
        .count();
    assert_eq!(
        warnings, 1,
        "one warning for the lane, not one per re-offer"
    );
    // HQ lacks nothing: no re-offers to it.
    assert!(reoffer_to(&lane1, "hq").is_none());

    let (ok, out) = lane_cmd(&lane1, &["list"]);
    assert!(ok, "{out}");
    assert!(out.contains("s1.lane2") && out.contains("offline"), "{out}");
    let (ok, out) = lane_cmd(&lane1, &["retire", "lane1"]);
    assert!(!ok, "a lane cannot retire itself: {out}");
    let (ok, out) = lane_cmd(&lane1, &["retire", "lane2"]);
    assert!(ok, "{out}");
    assert!(out.contains("s1.lane2") && out.contains("retired"), "{out}");
    wait_for("lane 1 stops offering to lane 2", CONVERGE, || {
        reoffer_to(&lane1, "s1.lane2").is_none().then_some(())
    });
    let (ok, out) = lane_cmd(&lane1, &["list", "--json"]);
    assert!(ok, "{out}");
    let lanes: serde_json::Value = serde_json::from_str(&out).expect("lane list JSON");
    assert!(
        lanes
            .as_array()
            .expect("a list")
            .iter()
            .any(|l| l["writer"] == "s1.lane2" && l["status"] == "retired"),
        "{lanes}"
    );

    // The retired box comes back: it refuses to sync, and says so.
    lane2.restart();
    wait_for("the retired lane says it was retired", CONVERGE, || {
        lane2.log().contains("was retired").then_some(())
    });
    wait_for("its /readyz shows sync down", CONVERGE, || {
        lane2.readyz().contains("was retired").then_some(())
    });
    lane1.sell("s-2", "MILK", 1);
    wait_for("HQ has the later sale", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(96)).then_some(())
    });
    assert!(reoffer_to(&lane1, "s1.lane2").is_none());

    // HQ honours the retirement: with lane 2 gone (not running), a new epoch's switch
    // completes when lane 1 alone moved over, and the closed epoch is dropped at HQ.
    wait_for("HQ stored the retirement", CONVERGE, || {
        hq.log()
            .contains("lane retired: HQ no longer waits")
            .then_some(())
    });
    lane2.stop();
    let (status, body) = hq.open_epoch("s1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["epoch"], 1, "{body}");
    wait_for("lane 1 moved to epoch 1", CONVERGE, || {
        lane1.log().contains("moved to stock epoch 1").then_some(())
    });
    wait_for("HQ drops epoch 0 without lane 2", CONVERGE, || {
        hq.log()
            .contains("every writer moved over; older epochs dropped")
            .then_some(())
    });
    // Before, a retired lane kept the switch pending for ever (409).
    wait_for("epoch 2 can open", CONVERGE, || {
        (hq.open_epoch("s1").0 == 200).then_some(())
    });
    lane1.sell("s-3", "MILK", 1);
    wait_for("HQ has a sale of the new epoch", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(95)).then_some(())
    });
}
