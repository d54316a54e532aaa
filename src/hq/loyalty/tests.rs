//! Unit tests of HQ's loyalty ledger: grants answer wants through the real ingest, web earns
//! and spends happen once per reference and only from the pool, owed points are settled.

use super::*;
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::loyalty::{LoyaltyEntry, LoyaltyField};
use crate::crdt::orders::OrdersDoc;
use crate::domain::loyalty::LoyaltyRules;
use crate::hq::db::testing::TestDb;
use crate::hq::state::HqState;
use crate::sync::payload::SyncMessage;

const CARD: &str = "CLUB-9";

/// A lane of `store` adds `entries` in its own copy; HQ receives the change as over MQTT.
fn from_lane(hq: &mut HqState, lane: &mut OrdersDoc, entries: &[LoyaltyEntry]) -> usize {
    let change = lane.add_loyalty(entries, 1).unwrap().unwrap();
    let store = lane.core().id().store.clone();
    let topic = format!(
        "storenode/v1/t/{store}/changes/orders/{}",
        lane.core().writer()
    );
    let message = SyncMessage::Changes {
        doc: DocId::new(&store, DocKind::Orders).unwrap(),
        epoch: 0,
        changes: vec![change.bytes],
    }
    .encode()
    .unwrap();
    hq.handle(&topic, &message).unwrap().len()
}

fn lane(store: &str) -> OrdersDoc {
    OrdersDoc::genesis(store, 0, WriterId::new(&format!("{store}.n1")).unwrap()).unwrap()
}

#[test]
fn wants_are_answered_with_the_pool_and_web_earns_and_spends_count_once() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let member = crate::domain::loyalty::MemberId::parse(CARD).unwrap();
    assert!(matches!(
        hq.earn_online(&member, "w1", 1_000),
        Err(LoyaltyRefused::NoRules)
    ));
    let rules = LoyaltyRules {
        points_per_unit: 1,
        point_value_minor: 1,
    };
    assert!(!hq.put_loyalty_rules(rules).unwrap().is_empty());
    hq.create_member(&member).unwrap();
    assert!(matches!(
        hq.create_member(&member),
        Err(LoyaltyRefused::Exists(_))
    ));

    let mut s1 = lane("s1");
    from_lane(
        &mut hq,
        &mut s1,
        &[(CARD.into(), LoyaltyField::Earned, 100)],
    );
    let b = hq.member_balance(CARD).unwrap();
    assert_eq!((b.balance, b.pool, b.registered), (100, 100, true));

    // Identified at store 2's till: HQ grants the pool to that lane, in s2's document.
    let mut s2 = lane("s2");
    let sent = from_lane(&mut hq, &mut s2, &[(CARD.into(), LoyaltyField::Wanted, 1)]);
    assert!(sent >= 2, "HQ's grant change besides its heads");
    let b = hq.member_balance(CARD).unwrap();
    assert_eq!((b.balance, b.pool), (100, 0));
    assert_eq!(b.lanes["s2.n1"].allowance(), 100);
    let doc =
        OrdersDoc::from_core(hq.docs[&DocId::new("s2", DocKind::Orders).unwrap()].clone()).unwrap();
    assert_eq!(doc.loyalty_of(CARD).lanes["s2.n1"].granted, 100);

    // A web order earns once however often it is sent.
    assert_eq!(hq.earn_online(&member, "w1", 1_050).unwrap(), 10);
    assert_eq!(hq.earn_online(&member, "w1", 1_050).unwrap(), 10);
    assert_eq!(hq.member_balance(CARD).unwrap().balance, 110);
    // The web shop spends only what HQ holds, once per reference.
    assert!(matches!(
        hq.spend_online(&member, "p1", 11),
        Err(LoyaltyRefused::NotEnough { available: 10, .. })
    ));
    hq.spend_online(&member, "p1", 10).unwrap();
    hq.spend_online(&member, "p1", 10).unwrap();
    assert_eq!(hq.member_balance(CARD).unwrap().balance, 100);

    // A return at store 1 could not take its points back: HQ settles from new points first.
    from_lane(&mut hq, &mut s1, &[(CARD.into(), LoyaltyField::Owed, 8)]);
    assert_eq!(hq.member_balance(CARD).unwrap().owed, 8);
    hq.earn_online(&member, "w2", 500).unwrap();
    from_lane(&mut hq, &mut s1, &[(CARD.into(), LoyaltyField::Earned, 5)]);
    let b = hq.member_balance(CARD).unwrap();
    assert_eq!((b.owed, b.hq.settled, b.pool, b.balance), (0, 8, 2, 102));
    let kinds: Vec<String> = hq
        .member_history(CARD)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}:{}", e.kind, e.points))
        .collect();
    assert_eq!(
        kinds,
        [
            "granted:100",
            "earned:10",
            "spent:10",
            "earned:5",
            "settled:8"
        ]
    );
}

#[test]
fn points_a_return_gives_back_count_in_the_balance_at_hq() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let rules = LoyaltyRules {
        points_per_unit: 0,
        point_value_minor: 1,
    };
    hq.put_loyalty_rules(rules).unwrap();
    let mut s1 = lane("s1");
    from_lane(
        &mut hq,
        &mut s1,
        &[
            (CARD.into(), LoyaltyField::Earned, 100),
            (CARD.into(), LoyaltyField::Wanted, 1),
        ],
    );
    assert_eq!(hq.member_balance(CARD).unwrap().lanes["s1.n1"].granted, 100);
    // A sale at the till is paid with 60 points; its return gives them back.
    from_lane(&mut hq, &mut s1, &[(CARD.into(), LoyaltyField::Spent, 60)]);
    assert_eq!(hq.member_balance(CARD).unwrap().balance, 40);
    from_lane(
        &mut hq,
        &mut s1,
        &[(CARD.into(), LoyaltyField::Refunded, 60)],
    );
    let b = hq.member_balance(CARD).unwrap();
    assert_eq!((b.balance, b.pool, b.refunded), (100, 0, 60));
    let l = b.lanes["s1.n1"];
    assert_eq!((l.spent, l.refunded, l.allowance()), (60, 60, 100));
}
