//! Unit tests of HQ's orders: pickup codes, placing, epochs.

use std::collections::BTreeMap;

use super::place::pickup_hash;
use super::*;
use crate::crdt::doc::WriterId;
use crate::crdt::escrow::EscrowField;
use crate::hq::db::testing::TestDb;
use crate::store::orders as store_orders;

fn request(code: Option<&str>, hash: Option<&str>) -> NewHqOrder {
    NewHqOrder {
        order_id: "web-1".into(),
        store: "s1".into(),
        lines: vec![OrderLine {
            sku: "MILK".into(),
            quantity: 2,
        }],
        pickup_code: code.map(str::to_owned),
        pickup_code_hash: hash.map(str::to_owned),
        hold_hours: None,
        delivery: Delivery::Collect,
        channel: web(),
        node: Some("lane1".into()),
        customer: None,
    }
}

#[test]
fn the_pickup_code_is_hashed_as_the_store_hashes_it() {
    let hashed = pickup_hash(&request(Some(" 4711 "), None)).unwrap();
    assert_eq!(
        hex::encode(hashed),
        store_orders::pickup_code_hash("web-1", "4711")
    );
    let given = store_orders::pickup_code_hash("web-1", "4711");
    assert_eq!(pickup_hash(&request(None, Some(&given))).unwrap(), hashed);
    assert!(pickup_hash(&request(None, None)).is_err());
    assert!(pickup_hash(&request(Some("4711"), Some(&given))).is_err());
    assert!(pickup_hash(&request(None, Some("abc"))).is_err());
}

/// Lane 1 of store s1 grants `units` MILK to the online channel; HQ receives it.
fn grant(hq: &mut HqState, units: i64) {
    let id = DocId::new("s1", DocKind::Orders).unwrap();
    let mut lane = OrdersDoc::genesis("s1", 0, WriterId::new("s1.lane1").unwrap()).unwrap();
    let entries = [("MILK".to_owned(), EscrowField::Granted, units)];
    let change = lane.add_escrow(&entries, 1).unwrap().unwrap();
    let mut doc = OrdersDoc::genesis("s1", 0, WriterId::hq()).unwrap();
    doc.core_mut().apply_changes(&[&change.bytes]).unwrap();
    hq.docs.insert(id.clone(), doc.core().clone());
    hq.persist_order_change(&id, &change.bytes).unwrap();
}

/// HQ reads and writes a store's orders document where it keeps it, with no typed copy per
/// change: after a lane's change (ingest), an order placed and cancelled at HQ and the
/// views, the one copy in memory holds every change as stored, and nothing was reloaded.
#[test]
fn orders_work_is_done_on_the_document_in_memory() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let id = DocId::new("s1", DocKind::Orders).unwrap();
    let mut lane = OrdersDoc::genesis("s1", 0, WriterId::new("s1.lane1").unwrap()).unwrap();
    let entries = [("MILK".to_owned(), EscrowField::Granted, 3)];
    let change = lane.add_escrow(&entries, 1).unwrap().unwrap();
    let message = SyncMessage::Changes {
        doc: id.clone(),
        epoch: 0,
        changes: vec![change.bytes],
    }
    .encode()
    .unwrap();
    hq.handle("storenode/v1/t/s1/changes/orders/s1.lane1", &message)
        .unwrap();
    hq.create_order(&request(Some("4711"), None)).unwrap();
    assert_eq!(hq.store_escrow("s1")["MILK"].remaining(), 1);
    hq.cancel_order("web-1").unwrap();
    let view = hq.order_view("web-1").unwrap();
    assert_eq!(view.status, Some(OrderStatus::Cancelled));
    assert_eq!(hq.store_orders("s1", None), vec![view]);
    assert_eq!(hq.stock("s1", "MILK").unwrap(), None, "no stock rows yet");
    assert_eq!(hq.reloads, 0);
    let stored = docs::load_doc(&hq.db, &id, 0, WriterId::hq())
        .unwrap()
        .unwrap();
    assert_eq!(hq.docs[&id].heads(), stored.heads());
    assert_eq!(hq.documents_in_memory(), 1);
}

// Failed before: a web order could be sent to a lane retired for good.
#[test]
fn an_order_for_a_retired_lane_is_refused() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    grant(&mut hq, 3);
    hq.handle(
        "storenode/v1/t/s1/retired/s1.lane1",
        b"retired 1 by s1.lane2",
    )
    .unwrap();
    let refused = hq.create_order(&request(Some("4711"), None)).unwrap_err();
    assert!(
        matches!(&refused, OrderRefused::Invalid { .. }) && refused.to_string().contains("retired"),
        "{refused}"
    );
    hq.handle("storenode/v1/t/s1/retired/s1.lane1", b"")
        .unwrap();
    assert!(hq.create_order(&request(Some("4711"), None)).is_ok());
}

#[test]
fn an_order_is_placed_once_and_shows_placed() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let order = request(Some("4711"), None);
    assert!(
        matches!(
            hq.create_order(&order),
            Err(OrderRefused::NotGranted { available: 0, .. })
        ),
        "nothing granted to the online channel yet"
    );
    grant(&mut hq, 3);
    let messages = hq.create_order(&order).unwrap();
    assert_eq!(messages.len(), 2, "the change and HQ's retained heads");
    assert!(matches!(
        hq.create_order(&order),
        Err(OrderRefused::Exists(_))
    ));
    let view = hq.order_view("web-1").unwrap();
    assert_eq!(view.status, Some(OrderStatus::Placed));
    assert_eq!(view.fulfilment, "s1.lane1");
    assert_eq!(view.lines, BTreeMap::from([("MILK".to_owned(), 2)]));
    drop(hq);
    let mut again = HqState::open_target(&dir.target, "t", 1).unwrap();
    assert_eq!(again.order_view("web-1"), Some(view), "survives a restart");
    assert_eq!(
        again.escrow_of("s1", "MILK").remaining(),
        1,
        "2 of 3 consumed"
    );
}

#[test]
fn a_malformed_store_is_the_callers_error_not_hqs() {
    // Found by Schemathesis: `"store": ""` answered 500 once HQ locked the store's document
    // before validating the order.
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let mut order = request(Some("4711"), None);
    order.store = String::new();
    assert!(
        matches!(
            hq.create_order(&order),
            Err(OrderRefused::Invalid { field: "store", .. })
        ),
        "a 422 naming the store"
    );
    assert!(matches!(
        hq.return_escrow("", "MILK", 1),
        Err(OrderRefused::Invalid { field: "store", .. })
    ));
}

fn orders_message(epoch: u32, changes: Vec<Vec<u8>>) -> Vec<u8> {
    SyncMessage::Changes {
        doc: DocId::new("s1", DocKind::Orders).unwrap(),
        epoch,
        changes,
    }
    .encode()
    .unwrap()
}

#[test]
fn an_epoch_switch_archives_closed_orders_and_keeps_open_ones_and_the_escrow() {
    const ORDERS_TOPIC: &str = "storenode/v1/t/s1/changes/orders/s1.lane1";
    const STOCK_TOPIC: &str = "storenode/v1/t/s1/changes/stock/s1.lane1";
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let lane1 = WriterId::new("s1.lane1").unwrap();
    let orders_id = DocId::new("s1", DocKind::Orders).unwrap();
    grant(&mut hq, 5);
    for id in ["web-1", "web-2"] {
        let mut order = request(Some("4711"), None);
        order.order_id = id.into();
        hq.create_order(&order).unwrap();
    }
    // Lane 1 collects web-1 and HQ learns it; it also has a stock document.
    let mut lane = OrdersDoc::genesis("s1", 0, lane1.clone()).unwrap();
    let hq_changes = hq.docs[&orders_id].changes_since(&[]);
    lane.core_mut().apply_changes(&hq_changes).unwrap();
    let collected = lane
        .record_status("hq:web-1", OrderStatus::Collected, 5)
        .unwrap()
        .unwrap();
    hq.handle(ORDERS_TOPIC, &orders_message(0, vec![collected.bytes]))
        .unwrap();
    let mut stock = crate::crdt::stock::StockDoc::genesis("s1", 0, lane1.clone()).unwrap();
    let moved = stock
        .apply_movements(
            &[crate::domain::stock::Movement {
                sku: "MILK".into(),
                delta: 9,
            }],
            1,
        )
        .unwrap()
        .unwrap();
    let stock_message = SyncMessage::Changes {
        doc: DocId::new("s1", DocKind::Stock).unwrap(),
        epoch: 0,
        changes: vec![moved.bytes],
    };
    hq.handle(STOCK_TOPIC, &stock_message.encode().unwrap())
        .unwrap();

    let (epoch, out) = hq.open_epoch("s1").unwrap();
    assert_eq!(epoch, 1);
    assert!(out.iter().any(|o| o.retain && o.topic.contains("/orders/")));
    let live = OrdersDoc::from_core(hq.docs[&orders_id].clone()).unwrap();
    assert_eq!(live.core().epoch(), 1);
    assert_eq!(live.order_ids(), vec!["hq:web-2".to_owned()]);
    let collected_view = hq.order_view("web-1").unwrap();
    assert_eq!(collected_view.status, Some(OrderStatus::Collected));
    assert_eq!(
        hq.order_view("web-2").unwrap().status,
        Some(OrderStatus::Placed)
    );
    assert_eq!(hq.store_orders("s1", None).len(), 2);
    assert_eq!(hq.store_orders("s1", Some(OrderStatus::Collected)).len(), 1);
    assert_eq!(
        hq.escrow_of("s1", "MILK").remaining(),
        1,
        "5 granted, 4 consumed"
    );

    // A late epoch-0 change is ignored; lane 1 carries its post-cut work itself.
    let late = lane
        .record_status("hq:web-2", OrderStatus::Reserved, 7)
        .unwrap()
        .unwrap();
    assert!(
        hq.handle(ORDERS_TOPIC, &orders_message(0, vec![late.bytes]))
            .unwrap()
            .is_empty()
    );
    assert!(matches!(hq.open_epoch("s1"), Err(HqError::EpochPending(_))));
    let mut next = OrdersDoc::genesis("s1", 1, lane1).unwrap();
    next.core_mut()
        .apply_changes(&hq.docs[&orders_id].changes_since(&[]))
        .unwrap();
    let carried = crate::crdt::epoch_orders::carry_over_orders(&lane, &mut next, 9)
        .unwrap()
        .unwrap();
    assert!(
        !hq.handle(ORDERS_TOPIC, &orders_message(1, vec![carried.bytes]))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        hq.order_view("web-2").unwrap().status,
        Some(OrderStatus::Reserved)
    );
    assert!(hq.orders_moved_over("s1"));

    drop(hq);
    let mut again = HqState::open_target(&dir.target, "t", 1).unwrap();
    assert_eq!(
        again.order_view("web-1"),
        Some(collected_view),
        "survives a restart"
    );
    assert_eq!(
        again.order_view("web-2").unwrap().status,
        Some(OrderStatus::Reserved)
    );
    assert_eq!(again.escrow_of("s1", "MILK").remaining(), 1);
    let old_rows: i64 = again
        .db
        .query_one(
            "SELECT count(*) FROM sync_change WHERE doc_key = 's1/orders' AND epoch = 0",
            &[],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_rows, 0, "epoch 0 of the orders document is dropped");
}

/// A lane-1 stock change of store s1, so HQ knows the store and can cut its epochs.
fn stock_message() -> Vec<u8> {
    let lane1 = WriterId::new("s1.lane1").unwrap();
    let mut stock = crate::crdt::stock::StockDoc::genesis("s1", 0, lane1).unwrap();
    let moved = stock
        .apply_movements(
            &[crate::domain::stock::Movement {
                sku: "MILK".into(),
                delta: 9,
            }],
            1,
        )
        .unwrap()
        .unwrap();
    SyncMessage::Changes {
        doc: DocId::new("s1", DocKind::Stock).unwrap(),
        epoch: 0,
        changes: vec![moved.bytes],
    }
    .encode()
    .unwrap()
}

// Failed before the fix: the second `web-1` was placed (Ok), consumed escrow and was listed
// beside the archived one.
#[test]
fn an_order_id_archived_at_an_epoch_cut_is_refused_and_consumes_nothing() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let orders_id = DocId::new("s1", DocKind::Orders).unwrap();
    grant(&mut hq, 5);
    let order = request(Some("4711"), None);
    hq.create_order(&order).unwrap();
    // Lane 1 collects web-1; the next epoch leaves it out and archives it.
    let mut lane = OrdersDoc::genesis("s1", 0, WriterId::new("s1.lane1").unwrap()).unwrap();
    lane.core_mut()
        .apply_changes(&hq.docs[&orders_id].changes_since(&[]))
        .unwrap();
    let collected = lane
        .record_status("hq:web-1", OrderStatus::Collected, 5)
        .unwrap()
        .unwrap();
    hq.handle(
        "storenode/v1/t/s1/changes/orders/s1.lane1",
        &orders_message(0, vec![collected.bytes]),
    )
    .unwrap();
    hq.handle("storenode/v1/t/s1/changes/stock/s1.lane1", &stock_message())
        .unwrap();
    hq.open_epoch("s1").unwrap();
    let live = OrdersDoc::from_core(hq.docs[&orders_id].clone()).unwrap();
    assert!(live.order_ids().is_empty(), "web-1 is archived");
    let remaining = hq.escrow_of("s1", "MILK").remaining();
    assert_eq!(remaining, 3);

    let refused = hq.create_order(&order).unwrap_err();
    assert!(matches!(refused, OrderRefused::Archived(_)), "{refused}");
    assert!(refused.to_string().contains("never reused"), "{refused}");
    let problem = crate::hq::http::Problem::from(refused);
    assert_eq!(problem.status(), axum::http::StatusCode::CONFLICT);
    assert_eq!(hq.escrow_of("s1", "MILK").remaining(), remaining);
    let listed = hq.store_orders("s1", None);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].status, Some(OrderStatus::Collected));
    // After a restart too.
    drop(hq);
    let mut again = HqState::open_target(&dir.target, "t", 1).unwrap();
    assert!(matches!(
        again.create_order(&order),
        Err(OrderRefused::Archived(_))
    ));
}
