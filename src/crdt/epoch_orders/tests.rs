use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::crdt::escrow::EscrowTotals;
use crate::domain::orders::Delivery;
use crate::domain::transfers::TransferStatus;

fn w(id: &str) -> WriterId {
    WriterId::new(id).unwrap()
}

fn facts(order_id: &str, fulfilment: &str) -> OrderFacts {
    OrderFacts {
        order_id: order_id.to_owned(),
        channel: "web".to_owned(),
        created_at_ms: 100,
        pickup_code_hash: [7; 32],
        fulfilment: w(fulfilment),
        lines: BTreeMap::from([("MILK".to_owned(), 2)]),
        hold_hours: Some(24),
        delivery: Delivery::Collect,
    }
}

/// Applies to `to` every change of `from` it lacks.
fn sync(from: &OrdersDoc, to: &mut OrdersDoc) {
    let changes = from.core().changes_since(&to.core().heads());
    to.core_mut().apply_changes(&changes).unwrap();
}

/// A writer's copy of HQ's new epoch (what it fetches with `Need` from the genesis).
fn fetch(hq_new: &OrdersDoc, writer: &str) -> OrdersDoc {
    let mut doc =
        OrdersDoc::genesis(&hq_new.core().id().store, hq_new.core().epoch(), w(writer)).unwrap();
    sync(hq_new, &mut doc);
    doc
}

fn grant(doc: &mut OrdersDoc, n: i64) {
    doc.add_escrow(&[("MILK".to_owned(), EscrowField::Granted, n)], 1)
        .unwrap()
        .unwrap();
}

fn hq_accepts(hq: &OrdersDoc, change: &[u8]) -> bool {
    let allowed: BTreeSet<WriterId> = [w("hq"), w("s1.lane1"), w("s1.lane2")].into();
    hq.core().check_change(change, &allowed).is_ok()
}

#[test]
fn escrow_is_exact_across_the_switch_with_a_lane_granting_offline() {
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane1 = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    let mut lane2 = OrdersDoc::genesis("s1", 0, w("s1.lane2")).unwrap();
    grant(&mut lane1, 5);
    grant(&mut lane2, 4);
    sync(&lane1, &mut hq);
    sync(&lane2, &mut hq);
    hq.create_order_consuming_escrow(&facts("hq:1", "s1.lane1"))
        .unwrap();
    sync(&hq, &mut lane1);
    // lane1 is cut off: these grants are after HQ's cut.
    grant(&mut lane1, 3);
    let (hq_new, cut) = open_next_orders_epoch(&hq, w("hq"), 500).unwrap();
    assert_eq!(cut.epoch, 1);
    assert_eq!(
        cut.writer_cut.keys().cloned().collect::<Vec<_>>(),
        vec![w("s1.lane1"), w("s1.lane2")]
    );
    let at_cut = EscrowTotals {
        granted: 9,
        consumed: 2,
        returned: 0,
    };
    assert_eq!(hq_new.escrow_of("MILK"), at_cut);
    assert_eq!(hq.escrow_of("MILK"), at_cut);

    let mut hq_new = hq_new;
    for (old, name) in [(&lane1, "s1.lane1"), (&lane2, "s1.lane2")] {
        let mut new = fetch(&hq_new, name);
        let carried = carry_over_orders(old, &mut new, 600).unwrap().unwrap();
        assert!(hq_accepts(&hq_new, &carried.bytes));
        hq_new.core_mut().apply_changes(&[&carried.bytes]).unwrap();
        // A repeated switch carries nothing.
        assert!(carry_over_orders(old, &mut new, 700).unwrap().is_none());
    }
    let now = EscrowTotals {
        granted: 12,
        consumed: 2,
        returned: 0,
    };
    assert_eq!(hq_new.escrow_of("MILK"), now);
    assert!(orders_all_moved_over(&hq_new));
    // The writers' own totals: base + carry = now, so the next carry starts from there.
    let by_writer = hq_new.escrow_by_writer();
    assert_eq!(by_writer[&w("s1.lane1")]["MILK"].granted, 8);
    assert_eq!(by_writer[&w("hq")]["MILK"].consumed, 2);
}

#[test]
fn an_order_collected_offline_after_the_cut_ends_collected_in_the_new_epoch() {
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane1 = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    hq.create_order(&facts("hq:1", "s1.lane1")).unwrap();
    sync(&hq, &mut lane1);
    lane1
        .record_status("hq:1", OrderStatus::Reserved, 150)
        .unwrap();
    sync(&lane1, &mut hq);
    // Cut off: the collect happens after HQ's cut.
    lane1
        .record_status("hq:1", OrderStatus::Collected, 300)
        .unwrap();
    let (mut hq_new, cut) = open_next_orders_epoch(&hq, w("hq"), 200).unwrap();
    assert!(cut.dropped.is_empty());
    assert_eq!(hq_new.state("hq:1").unwrap().status, OrderStatus::Reserved);
    assert_eq!(hq_new.facts("hq:1"), Some(facts("hq:1", "s1.lane1")));
    // The base keeps each event under its writer's id.
    assert!(
        hq_new
            .events("hq:1")
            .iter()
            .any(|e| e.writer == "s1.lane1" && e.status == OrderStatus::Reserved)
    );
    let mut new = fetch(&hq_new, "s1.lane1");
    let carried = carry_over_orders(&lane1, &mut new, 400).unwrap().unwrap();
    assert_eq!(new.state("hq:1").unwrap().status, OrderStatus::Collected);
    hq_new.core_mut().apply_changes(&[&carried.bytes]).unwrap();
    assert_eq!(hq_new.state("hq:1").unwrap().status, OrderStatus::Collected);
}

#[test]
fn closed_orders_leave_the_document_and_a_withdrawal_stays_one_epoch() {
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane1 = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    hq.create_order(&facts("hq:done", "s1.lane1")).unwrap();
    hq.create_order(&facts("hq:gone", "s1.lane1")).unwrap();
    hq.create_order(&facts("hq:open", "s1.lane1")).unwrap();
    sync(&hq, &mut lane1);
    lane1
        .record_status("hq:done", OrderStatus::Collected, 200)
        .unwrap();
    sync(&lane1, &mut hq);
    hq.record_status("hq:gone", OrderStatus::Cancelled, 210)
        .unwrap();
    sync(&hq, &mut lane1);
    let (hq1, cut) = open_next_orders_epoch(&hq, w("hq"), 300).unwrap();
    assert_eq!(cut.dropped, vec!["hq:done".to_owned()]);
    // Its decision stays, so a lane that missed it can still settle its copy.
    let closed = hq1.closed_at_cut();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].0, "hq:done");
    assert_eq!(closed[0].1.status, OrderStatus::Collected);
    assert_eq!(closed[0].1.decided_by.writer, "s1.lane1");
    assert_eq!(
        hq1.order_ids(),
        vec!["hq:gone".to_owned(), "hq:open".to_owned()]
    );
    assert!(hq1.facts("hq:done").is_none());
    let mut hq1 = hq1;
    let mut lane1_new = fetch(&hq1, "s1.lane1");
    let carried = carry_over_orders(&lane1, &mut lane1_new, 400)
        .unwrap()
        .unwrap();
    hq1.core_mut().apply_changes(&[&carried.bytes]).unwrap();
    // A late event for the dropped order is not an error for the lane's document: the
    // order is simply unknown there (the node skips it).
    assert!(matches!(
        lane1_new.record_status("hq:done", OrderStatus::Collected, 500),
        Err(OrdersError::Unknown(_))
    ));
    // At the next cut the withdrawal, already in the base, goes too.
    let (hq2, cut2) = open_next_orders_epoch(&hq1, w("hq"), 600).unwrap();
    assert_eq!(cut2.epoch, 2);
    assert_eq!(cut2.dropped, vec!["hq:gone".to_owned()]);
    assert_eq!(hq2.order_ids(), vec!["hq:open".to_owned()]);
    assert_eq!(hq2.state("hq:open").unwrap().status, OrderStatus::Placed);
}

#[test]
fn orders_and_transfers_made_after_the_cut_are_carried_once() {
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane1 = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    let transfer = |id: &str| crate::crdt::transfers::TransferFacts {
        transfer_id: id.to_owned(),
        from_store: "s1".to_owned(),
        to_store: "s2".to_owned(),
        created_at_ms: 10,
        receiver: None,
        lines: BTreeMap::from([("MILK".to_owned(), 5)]),
    };
    lane1.put_transfer(&transfer("s1.lane1:t1")).unwrap();
    lane1
        .record_transfer_status("s1.lane1:t1", TransferStatus::InTransit, 10)
        .unwrap();
    lane1
        .create_order(&facts("s1.lane1:o1", "s1.lane1"))
        .unwrap();
    sync(&lane1, &mut hq);
    // After the cut, offline: a new order with a status, a new transfer, a cancel of t1.
    lane1
        .create_order(&facts("s1.lane1:o2", "s1.lane1"))
        .unwrap();
    lane1
        .record_status("s1.lane1:o2", OrderStatus::Ready, 320)
        .unwrap();
    lane1.put_transfer(&transfer("s1.lane1:t2")).unwrap();
    lane1
        .record_transfer_status("s1.lane1:t1", TransferStatus::Cancelled, 330)
        .unwrap();
    let (mut hq_new, _) = open_next_orders_epoch(&hq, w("hq"), 300).unwrap();
    assert_eq!(hq_new.order_ids(), vec!["s1.lane1:o1".to_owned()]);
    assert_eq!(
        hq_new.transfer_state("s1.lane1:t1").unwrap().status,
        TransferStatus::InTransit
    );
    let mut new = fetch(&hq_new, "s1.lane1");
    let carried = carry_over_orders(&lane1, &mut new, 400).unwrap().unwrap();
    assert!(hq_accepts(&hq_new, &carried.bytes));
    hq_new.core_mut().apply_changes(&[&carried.bytes]).unwrap();
    for doc in [&new, &hq_new] {
        assert_eq!(
            doc.order_ids(),
            vec!["s1.lane1:o1".to_owned(), "s1.lane1:o2".to_owned()]
        );
        assert_eq!(doc.state("s1.lane1:o2").unwrap().status, OrderStatus::Ready);
        assert_eq!(
            doc.transfer_ids(),
            vec!["s1.lane1:t1".to_owned(), "s1.lane1:t2".to_owned()]
        );
        assert_eq!(
            doc.transfer_state("s1.lane1:t1").unwrap().status,
            TransferStatus::Cancelled
        );
        // o1's facts come from the base only; nothing was written twice.
        assert_eq!(
            doc.facts("s1.lane1:o1"),
            Some(facts("s1.lane1:o1", "s1.lane1"))
        );
    }
    // Only the pre-cut statuses are in the base and only post-cut ones were carried.
    assert_eq!(
        new.own_transfer_statuses("s1.lane1:t1"),
        vec![TransferStatus::Cancelled, TransferStatus::InTransit]
    );
}

#[test]
fn only_hq_writes_the_base_and_a_lane_with_its_cut_change_missing_is_refused() {
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane1 = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    grant(&mut lane1, 2);
    sync(&lane1, &mut hq);
    let (hq_new, _) = open_next_orders_epoch(&hq, w("hq"), 300).unwrap();
    // A lane trying to write into HQ's base is refused by HQ's check.
    let mut forger = fetch(&hq_new, "s1.lane2");
    let base = forger.base_child(KEY_BASE_WRITERS).unwrap();
    let forged = forger
        .core_mut()
        .commit::<OrdersError, _>(1, "forge", |tx| {
            tx.put_object(&base, "s1.lane2", ObjType::Map)?;
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert!(!hq_accepts(&hq_new, &forged.bytes));
    // A writer whose cut change is not in its old document cannot carry over.
    let stranger = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    let mut new = fetch(&hq_new, "s1.lane1");
    assert!(matches!(
        carry_over_orders(&stranger, &mut new, 400),
        Err(OrdersEpochError::OwnCutChangeMissing { .. })
    ));
    // Epoch 0 has no base; the new one has.
    assert!(!hq.has_base());
    assert!(hq_new.has_base());
}

#[test]
fn the_new_epoch_is_as_small_as_its_open_orders_not_its_history() {
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane1 = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    grant(&mut lane1, 1000);
    for i in 0..300 {
        let id = format!("hq:{i}");
        hq.create_order_consuming_escrow(&facts(&id, "s1.lane1"))
            .unwrap();
        sync(&hq, &mut lane1);
        // All but the last three are handed over.
        let steps: &[OrderStatus] = if i < 297 {
            &[
                OrderStatus::Reserved,
                OrderStatus::Picking,
                OrderStatus::Ready,
                OrderStatus::Collected,
            ]
        } else {
            &[OrderStatus::Reserved]
        };
        for (n, status) in steps.iter().enumerate() {
            let at = 1000 + i * 10 + i64::try_from(n).unwrap();
            lane1.record_status(&id, *status, at).unwrap();
        }
        sync(&lane1, &mut hq);
    }
    let (new, cut) = open_next_orders_epoch(&hq, w("hq"), 9_000).unwrap();
    assert_eq!(cut.dropped.len(), 297);
    assert_eq!(new.order_ids().len(), 3);
    assert_eq!(new.escrow_of("MILK"), hq.escrow_of("MILK"));
    let (old_bytes, new_bytes) = (hq.core().save().len(), new.core().save().len());
    eprintln!(
        "orders document: {} changes, {old_bytes} bytes saved; next epoch: {new_bytes} bytes",
        hq.core().automerge().get_changes(&[]).len()
    );
    // The closed orders leave only their decision (id, status, time, writer) behind.
    assert!(new_bytes * 3 < old_bytes, "{new_bytes} vs {old_bytes}");
}
