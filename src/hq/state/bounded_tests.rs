//! Tests of HQ with a bound on the documents in memory (`lru.rs`): it answers as an HQ
//! that keeps every document, reloads a dropped document whole, and finds an order by id
//! without its document in memory.

use std::collections::BTreeMap;

use super::*;
use crate::crdt::escrow::EscrowField;
use crate::crdt::orders::{OrderFacts, OrdersDoc};
use crate::crdt::stock::StockDoc;
use crate::domain::stock::Movement;
use crate::hq::db::testing::TestDb;
use crate::hq::orders::{HqOrderView, NewHqOrder, OrderLine};
use crate::store::orders::Delivery;
use crate::sync::payload::SyncMessage;

const STORES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];

fn lane(store: &str) -> WriterId {
    WriterId::new(&format!("{store}.lane1")).unwrap()
}

fn message(store: &str, kind: DocKind, epoch: u32, change: Vec<u8>) -> (String, Vec<u8>) {
    let kind_name = if kind == DocKind::Stock {
        "stock"
    } else {
        "orders"
    };
    let topic = format!("storenode/v1/t/{store}/changes/{kind_name}/{store}.lane1");
    let payload = SyncMessage::Changes {
        doc: DocId::new(store, kind).unwrap(),
        epoch,
        changes: vec![change],
    }
    .encode()
    .unwrap();
    (topic, payload)
}

/// One store's lane: its stock and orders documents, making the changes it publishes.
struct Lane {
    store: &'static str,
    stock: StockDoc,
    orders: OrdersDoc,
}

impl Lane {
    fn new(store: &'static str) -> Self {
        Self {
            store,
            stock: StockDoc::genesis(store, 0, lane(store)).unwrap(),
            orders: OrdersDoc::genesis(store, 0, lane(store)).unwrap(),
        }
    }

    fn sale(&mut self, sku: &str, delta: i64) -> (String, Vec<u8>) {
        let moved = [Movement {
            sku: sku.into(),
            delta,
        }];
        let change = self.stock.apply_movements(&moved, 1).unwrap().unwrap();
        message(self.store, DocKind::Stock, 0, change.bytes)
    }

    fn grant(&mut self, units: i64) -> (String, Vec<u8>) {
        let entries = [("A".to_owned(), EscrowField::Granted, units)];
        let change = self.orders.add_escrow(&entries, 1).unwrap().unwrap();
        message(self.store, DocKind::Orders, 0, change.bytes)
    }

    /// An order the store took itself (`{lane}:{id}`).
    fn order(&mut self, id: &str) -> (String, Vec<u8>) {
        let facts = OrderFacts {
            order_id: format!("{}:{id}", lane(self.store)),
            channel: "phone".into(),
            created_at_ms: 7,
            pickup_code_hash: [1; 32],
            fulfilment: lane(self.store),
            lines: BTreeMap::from([("A".to_owned(), 1)]),
            hold_hours: None,
            delivery: Delivery::Collect,
        };
        let change = self.orders.create_order(&facts).unwrap().unwrap();
        message(self.store, DocKind::Orders, 0, change.bytes)
    }
}

fn web_order(store: &str) -> NewHqOrder {
    NewHqOrder {
        order_id: format!("web-{store}"),
        store: store.into(),
        lines: vec![OrderLine {
            sku: "A".into(),
            quantity: 1,
        }],
        pickup_code: Some("4711".into()),
        pickup_code_hash: None,
        hold_hours: None,
        delivery: Delivery::Collect,
        channel: "web".into(),
        node: Some("lane1".into()),
        customer: None,
    }
}

/// What an answer says, without what differs between two HQs by the clock alone (HQ's
/// changes carry their time, so their bytes and the heads after them differ).
fn shape<E: std::fmt::Display>(
    answer: &Result<Vec<Outgoing>, E>,
) -> Result<Vec<(String, bool)>, String> {
    match answer {
        Ok(out) => Ok(out.iter().map(|o| (o.topic.clone(), o.retain)).collect()),
        Err(e) => Err(e.to_string()),
    }
}

fn timeless(view: Option<HqOrderView>) -> Option<HqOrderView> {
    view.map(|mut v| {
        v.created_at_ms = 0;
        v.history.iter_mut().for_each(|e| e.at_ms = 0);
        v.decided_by = v.decided_by.map(|mut e| {
            e.at_ms = 0;
            e
        });
        v
    })
}

/// Every read HQ's API makes, per store, with the clock's figures left out.
fn reads(hq: &mut HqState) -> Vec<String> {
    let mut out = Vec::new();
    for store in STORES {
        let stock: Vec<_> = hq
            .store_stock(store)
            .unwrap()
            .into_iter()
            .map(|mut row| {
                row.as_of = None;
                row
            })
            .collect();
        out.push(format!("{stock:?}"));
        out.push(format!(
            "{:?}",
            hq.stock(store, "A").unwrap().map(|r| r.on_hand)
        ));
        out.push(format!("{:?}", hq.store_escrow(store)));
        out.push(format!("{:?}", hq.escrow_of(store, "A")));
        let orders: Vec<_> = hq
            .store_orders(store, None)
            .into_iter()
            .map(|v| timeless(Some(v)))
            .collect();
        out.push(format!("{orders:?}"));
        out.push(format!(
            "{:?}",
            timeless(hq.order_view(&format!("web-{store}")))
        ));
        let taken = format!("{}:o1", lane(store));
        out.push(format!("{:?}", timeless(hq.order_view(&taken))));
        out.push(format!(
            "{:?}",
            hq.stock_doc(store).map(|d| d.stock_levels())
        ));
    }
    out.push(format!("{:?}", hq.catalog().map(|c| c.epoch())));
    out
}

// An HQ holding 2 documents, with 5 stores' stock and orders documents (10) going through
// it interleaved, answers every ingest, write and read as an HQ holding all of them.
#[test]
fn a_bounded_hq_answers_as_an_unbounded_one() {
    let (dir_all, dir_two) = (TestDb::new(), TestDb::new());
    let mut all = HqState::open_target(&dir_all.target, "t", 1)
        .unwrap()
        .with_documents_in_memory(None);
    let mut two = HqState::open_target(&dir_two.target, "t", 1)
        .unwrap()
        .with_documents_in_memory(Some(2));
    // One actor for both: their answers name HQ's writer in their topics.
    two.writer = all.writer.clone();
    let mut lanes: Vec<Lane> = STORES.into_iter().map(Lane::new).collect();
    for round in 0..4 {
        let mut messages = Vec::new();
        for lane in &mut lanes {
            messages.push(lane.sale("A", if round == 0 { 20 } else { -1 }));
            match round {
                0 => messages.push(lane.grant(3)),
                1 => messages.push(lane.order("o1")),
                _ => {}
            }
        }
        for (topic, payload) in &messages {
            let a = all.handle(topic, payload);
            let b = two.handle(topic, payload);
            assert_eq!(shape(&a), shape(&b), "round {round}, {topic}");
            assert!(two.documents_in_memory() <= 2);
        }
        // The same messages again, as one queue: replays, answered alike.
        let a: Vec<_> = all.handle_many(&messages).iter().map(shape).collect();
        let b: Vec<_> = two.handle_many(&messages).iter().map(shape).collect();
        assert_eq!(a, b, "round {round}, batched");
        assert!(two.documents_in_memory() <= 2);
        if round == 1 {
            for store in STORES {
                let order = web_order(store);
                assert_eq!(
                    shape(&all.create_order(&order)),
                    shape(&two.create_order(&order)),
                    "placing at {store}"
                );
            }
            assert_eq!(
                shape(&all.cancel_order("web-s3")),
                shape(&two.cancel_order("web-s3"))
            );
            assert_eq!(
                shape(&all.return_escrow("s4", "A", 1)),
                shape(&two.return_escrow("s4", "A", 1))
            );
            assert_eq!(
                shape(&all.open_epoch("s2").map(|(_, m)| m)),
                shape(&two.open_epoch("s2").map(|(_, m)| m))
            );
            assert!(two.documents_in_memory() <= 2);
        }
        assert_eq!(
            reads(&mut all),
            reads(&mut two),
            "reads after round {round}"
        );
        // Direct reads leave memory to the caller: HQ's API cuts it back after each.
        two.trim();
        assert!(two.documents_in_memory() <= 2);
    }
    let loads = two.reloads;
    let (mut heads_all, mut heads_two) = (all.all_heads().unwrap(), two.all_heads().unwrap());
    assert_eq!(two.reloads, loads, "announcing heads loads no document");
    heads_all.sort_by(|x, y| x.topic.cmp(&y.topic));
    heads_two.sort_by(|x, y| x.topic.cmp(&y.topic));
    // The heads as stored are the documents' own: the same messages as from each document
    // in memory (epoch included).
    // (HQ's catalog here was never written, so it has no stored heads, as before.)
    let mut from_docs: Vec<Outgoing> = all
        .docs
        .ids()
        .into_iter()
        .filter(|id| id.kind != DocKind::Catalog)
        .map(|id| all.heads_outgoing(&id).unwrap())
        .collect();
    from_docs.sort_by(|x, y| x.topic.cmp(&y.topic));
    let messages = |out: &[Outgoing]| -> Vec<(String, Vec<u8>)> {
        out.iter()
            .map(|o| (o.topic.clone(), o.payload.clone()))
            .collect()
    };
    assert_eq!(messages(&heads_all), messages(&from_docs));
    assert_eq!(
        shape::<HqError>(&Ok(heads_all)),
        shape::<HqError>(&Ok(heads_two))
    );
    assert!(two.documents_in_memory() <= 2);
    assert!(
        two.evictions > 10,
        "documents were dropped: {}",
        two.evictions
    );
    assert_eq!(all.evictions, 0);
}

// A document dropped from memory comes back with every change it had.
#[test]
fn an_evicted_document_reloads_with_all_its_changes() {
    let dir = TestDb::new();
    let gauges = std::sync::Arc::new(crate::hq::ops::DocumentGauges::default());
    let mut hq = HqState::open_target(&dir.target, "t", 1)
        .unwrap()
        .with_documents_in_memory(Some(1))
        .with_gauges(gauges.clone());
    let (mut s1, mut s2) = (Lane::new("s1"), Lane::new("s2"));
    for i in 0..10 {
        let (topic, payload) = s1.sale("A", if i == 0 { 50 } else { -2 });
        hq.handle(&topic, &payload).unwrap();
        // s2's change pushes s1's document out.
        let (topic, payload) = s2.sale("B", 1);
        hq.handle(&topic, &payload).unwrap();
        let s1_id = DocId::new("s1", DocKind::Stock).unwrap();
        assert!(!hq.docs.contains_key(&s1_id), "s1 was dropped");
    }
    let evicted = hq.evictions;
    // What /metrics shows: the bound held, each eviction and load counted.
    let figure = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(figure(&gauges.in_memory), 1);
    assert_eq!(figure(&gauges.evictions), evicted);
    assert!(figure(&gauges.reloads) >= 10, "{gauges:?}");
    let doc = hq.stock_doc("s1").unwrap();
    assert_eq!(
        doc.core().heads(),
        s1.stock.core().heads(),
        "every change back"
    );
    assert_eq!(doc.stock_levels(), s1.stock.stock_levels());
    assert_eq!(hq.stock("s1", "A").unwrap().map(|r| r.on_hand), Some(32));
    assert!(evicted >= 10, "{evicted}");
}

// Failed before: an order a store took was looked for in the documents this instance had
// in memory, so an instance that had not loaded that store's orders document (another
// instance ingested it, or it was dropped) answered 404 for it.
#[test]
fn an_order_is_found_by_id_without_its_document_in_memory() {
    let dir = TestDb::new();
    let mut a = HqState::open_target(&dir.target, "t", 1).unwrap();
    let mut b = HqState::open_target(&dir.target, "t", 1)
        .unwrap()
        .with_documents_in_memory(Some(1));
    let mut s1 = Lane::new("s1");
    let (topic, payload) = s1.order("o1");
    a.handle(&topic, &payload).unwrap();
    let id = format!("{}:o1", lane("s1"));
    let orders = DocId::new("s1", DocKind::Orders).unwrap();
    assert!(!b.docs.contains_key(&orders));
    let view = b.order_view(&id).expect("found through the index");
    assert_eq!(view.store, "s1");
    assert_eq!(Some(view), a.order_view(&id));
    // And cancelled through b, which loads only that document.
    b.cancel_order(&id).unwrap();
    let (topic, payload) = Lane::new("s2").sale("A", 1);
    b.handle(&topic, &payload).unwrap();
    assert!(!b.docs.contains_key(&orders), "dropped again");
    assert_eq!(
        b.order_view(&id).and_then(|v| v.status),
        Some(crate::domain::orders::OrderStatus::Cancelled)
    );
    assert!(b.order_view("s1.lane1:nope").is_none());
}
