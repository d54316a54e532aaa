//! Unit tests of HQ's transfer relay and views.

use super::*;
use crate::crdt::doc::WriterId;
use crate::hq::db::testing::TestDb;
use crate::hq::state::Outgoing;
use crate::sync::payload::SyncMessage;
use crate::sync::service::ONLINE;

fn w(id: &str) -> WriterId {
    WriterId::new(id).unwrap()
}

fn message(store: &str, changes: Vec<Vec<u8>>) -> Vec<u8> {
    SyncMessage::Changes {
        doc: DocId::new(store, DocKind::Orders).unwrap(),
        epoch: 0,
        changes,
    }
    .encode()
    .unwrap()
}

/// The changes HQ published for `store`'s orders document.
fn published_for(out: &[Outgoing], store: &str) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match SyncMessage::decode(&o.payload) {
            Ok(SyncMessage::Changes { doc, changes, .. }) if doc.store == store => Some(changes),
            _ => None,
        })
        .flatten()
        .collect()
}

fn facts() -> TransferFacts {
    TransferFacts {
        transfer_id: "s1.lane1:t1".into(),
        from_store: "s1".into(),
        to_store: "s2".into(),
        created_at_ms: 10,
        receiver: None,
        lines: BTreeMap::from([("MILK".to_owned(), 5)]),
    }
}

#[test]
fn hq_relays_a_transfer_both_ways_and_shows_the_discrepancy() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let mut a = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    let mut b = OrdersDoc::genesis("s2", 0, w("s2.lane1")).unwrap();
    let a_topic = "storenode/v1/t/s1/changes/orders/s1.lane1";
    let b_topic = "storenode/v1/t/s2/changes/orders/s2.lane1";
    let sent = vec![
        a.put_transfer(&facts()).unwrap().unwrap().bytes,
        a.record_transfer_status("s1.lane1:t1", TransferStatus::InTransit, 10)
            .unwrap()
            .unwrap()
            .bytes,
    ];
    // No lane of s2 known yet: the relay waits.
    let out = hq.handle(a_topic, &message("s1", sent.clone())).unwrap();
    assert!(published_for(&out, "s2").is_empty());
    let view = hq.transfer_view("s1.lane1:t1").unwrap().unwrap();
    assert_eq!(view.status, TransferStatus::InTransit);
    assert!(!view.synced);
    // s2's lane comes online: the transfer goes to s2, naming it as receiver.
    let out = hq
        .handle("storenode/v1/t/s2/status/s2.lane1", ONLINE)
        .unwrap();
    let to_b = published_for(&out, "s2");
    assert!(!to_b.is_empty());
    b.core_mut().apply_changes(&to_b).unwrap();
    assert_eq!(
        b.transfer_facts("s1.lane1:t1").unwrap().receiver,
        Some(w("s2.lane1"))
    );
    assert_eq!(hq.in_transit("s2").unwrap()[0].inbound, 5);
    assert_eq!(hq.in_transit("s1").unwrap()[0].outbound, 5);
    // A replay changes nothing and relays nothing.
    let out = hq.handle(a_topic, &message("s1", sent)).unwrap();
    assert!(out.is_empty());
    // s2 receives 4: HQ records the receipt in s1's document.
    let got = BTreeMap::from([("MILK".to_owned(), 4)]);
    let receipt = b
        .record_transfer_received("s1.lane1:t1", &got, 50)
        .unwrap()
        .unwrap();
    let out = hq
        .handle(b_topic, &message("s2", vec![receipt.bytes]))
        .unwrap();
    a.core_mut()
        .apply_changes(&published_for(&out, "s1"))
        .unwrap();
    assert_eq!(
        a.transfer_state("s1.lane1:t1").unwrap().status,
        TransferStatus::Received
    );
    assert_eq!(a.transfer_received("s1.lane1:t1"), Some(got));
    let view = hq.transfer_view("s1.lane1:t1").unwrap().unwrap();
    assert_eq!(view.status, TransferStatus::Received);
    assert!(view.synced);
    assert_eq!(view.lines[0].discrepancy, Some(-1));
    assert!(hq.in_transit("s1").unwrap().is_empty());
    assert_eq!(hq.transfers_of("s2", None).unwrap().len(), 1);
    // A cancel at the sender that crossed the receipt does not undo it.
    let cancel = a
        .record_transfer_status("s1.lane1:t1", TransferStatus::Cancelled, 40)
        .unwrap()
        .unwrap();
    hq.handle(a_topic, &message("s1", vec![cancel.bytes]))
        .unwrap();
    let view = hq.transfer_view("s1.lane1:t1").unwrap().unwrap();
    assert_eq!(view.status, TransferStatus::Received);
    assert_eq!(
        view.history.len(),
        3 + 2,
        "in_transit, cancelled, received + HQ copies"
    );
}

#[test]
fn a_transfer_claiming_another_stores_sender_is_not_relayed() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    hq.handle("storenode/v1/t/s2/status/s2.lane1", ONLINE)
        .unwrap();
    let mut a = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
    let forged = TransferFacts {
        from_store: "s3".into(),
        ..facts()
    };
    let change = a.put_transfer(&forged).unwrap().unwrap();
    let out = hq
        .handle(
            "storenode/v1/t/s1/changes/orders/s1.lane1",
            &message("s1", vec![change.bytes]),
        )
        .unwrap();
    assert!(published_for(&out, "s2").is_empty());
    assert_eq!(hq.transfer_view("s1.lane1:t1").unwrap(), None);
}

/// Store `from`'s lane dispatches transfer `n` to store `to` (facts and in transit).
fn dispatch(lane: &mut OrdersDoc, from: &str, to: &str, n: usize) -> (String, Vec<Vec<u8>>) {
    let id = format!("{from}.lane1:t{n}");
    let facts = TransferFacts {
        transfer_id: id.clone(),
        from_store: from.into(),
        to_store: to.into(),
        created_at_ms: 10,
        receiver: None,
        lines: BTreeMap::from([("MILK".to_owned(), 1)]),
    };
    let changes = vec![
        lane.put_transfer(&facts).unwrap().unwrap().bytes,
        lane.record_transfer_status(&id, TransferStatus::InTransit, 10)
            .unwrap()
            .unwrap()
            .bytes,
    ];
    (id, changes)
}

// Failed before on PostgreSQL: ingesting s1's change held s1's lock and its relay then took
// s2's, while the other instance did the same from s2 to s1; PostgreSQL found the deadlock
// and aborted one side, whose store change was refused. Two instances relay in opposite
// directions at once here; every change must be taken and every transfer relayed.
#[test]
fn relays_in_opposite_directions_at_once_never_deadlock() {
    const ROUNDS: usize = 15;
    let dir = TestDb::new();
    let mut a = HqState::open_target(&dir.target, "t", 1).unwrap();
    let mut b = HqState::open_target(&dir.target, "t", 1).unwrap();
    for store in ["s1", "s2"] {
        let status = format!("storenode/v1/t/{store}/status/{store}.lane1");
        a.handle(&status, ONLINE).unwrap();
    }
    let run = |hq: &mut HqState, from: &str, to: &str| -> Vec<String> {
        let mut lane = OrdersDoc::genesis(from, 0, w(&format!("{from}.lane1"))).unwrap();
        let topic = format!("storenode/v1/t/{from}/changes/orders/{from}.lane1");
        (0..ROUNDS)
            .map(|n| {
                let (id, changes) = dispatch(&mut lane, from, to, n);
                let taken = hq.handle(&topic, &message(from, changes));
                assert!(taken.is_ok(), "{from} round {n}: {taken:?}");
                id
            })
            .collect()
    };
    let (ids_a, ids_b) = std::thread::scope(|s| {
        let one = s.spawn(|| run(&mut a, "s1", "s2"));
        let two = s.spawn(|| run(&mut b, "s2", "s1"));
        (one.join().unwrap(), two.join().unwrap())
    });
    for id in ids_a.iter().chain(&ids_b) {
        let view = a.transfer_view(id).unwrap().unwrap();
        assert!(view.synced, "{id} was not relayed");
        assert_eq!(view.status, TransferStatus::InTransit);
    }
}
