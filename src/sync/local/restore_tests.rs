//! A lane whose database was restored from an older backup: what its writer published
//! before (orders, transfers) comes back from the documents, so no id is used twice.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::orders::{OrderFacts, OrdersDoc};
use crate::domain::orders::OrderStatus;
use crate::store::ledger::{self, Movement, MovementKind};
use crate::store::orders::{self as store_orders, CancelRequest, NewOrder, OrderLineRequest};
use crate::store::sales::WriteContext;
use crate::store::transfers::{self as store_transfers, NewTransfer, TransferLineRequest};
use crate::store::{BatchHook, StoreError, TaxConfig};
use crate::sync::local::{self, NodeDocs, RemoteChanges, SharedDocs};
use crate::sync::node::hook::{DocsSlot, HookMetrics, SyncHook};

struct Lane {
    conn: Connection,
    hook: SyncHook,
    docs: SharedDocs,
    metrics: Arc<HookMetrics>,
}

/// A lane of store s1 on a database holding only the catalog (a backup taken before it
/// sold anything), as incarnation `writer`.
fn lane(writer: &WriterId) -> Lane {
    let conn = crate::store::testing::memory_db();
    conn.execute_batch(
        "INSERT INTO item (sku, name, price_minor, currency, tax_class, updated_at)
         VALUES ('MILK', 'Milk', 100, 'EUR', 'standard', 'x');",
    )
    .unwrap();
    lane_on(conn, writer)
}

fn lane_on(conn: Connection, writer: &WriterId) -> Lane {
    let docs = Arc::new(Mutex::new(
        NodeDocs::load(&conn, "s1", writer.clone()).unwrap(),
    ));
    let slot: DocsSlot = Arc::default();
    let _ = slot.set(docs.clone());
    let metrics = Arc::new(HookMetrics::default());
    let hook = SyncHook::new(slot, "s1", Arc::default(), metrics.clone());
    Lane {
        conn,
        hook,
        docs,
        metrics,
    }
}

fn now() -> String {
    crate::clock::now_utc()
}

fn tax() -> TaxConfig {
    crate::sync::local::orders::no_tax()
}

fn ctx(tax: &TaxConfig) -> WriteContext<'_> {
    WriteContext {
        terminal: "pos1",
        writer_id: "s1.lane1",
        currency: "EUR",
        tax,
        now: "2026-01-01T00:00:00.000Z",
        pricing: None,
    }
}

impl Lane {
    fn commit<T>(&mut self, writes: impl FnOnce(&Connection) -> T) -> T {
        self.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let out = writes(&self.conn);
        self.hook.before_commit(&self.conn).unwrap();
        self.conn.execute_batch("COMMIT").unwrap();
        self.hook.after_commit();
        out
    }

    fn order(&mut self, id: &str) -> Result<store_orders::OrderView, StoreError> {
        let tax = tax();
        let request = NewOrder {
            order_id: id.into(),
            channel: "store".into(),
            pickup_code: "4711".into(),
            hold_hours: None,
            delivery: Default::default(),
            customer: None,
            lines: vec![OrderLineRequest {
                sku: Some("MILK".into()),
                gtin: None,
                quantity: 2,
            }],
        };
        self.commit(|c| store_orders::create(c, &ctx(&tax), &request))
    }

    fn transfer(&mut self, id: &str) -> Result<store_transfers::TransferView, StoreError> {
        let tax = tax();
        let request = NewTransfer {
            transfer_id: id.into(),
            to_store: "s2".into(),
            lines: vec![TransferLineRequest {
                sku: Some("MILK".into()),
                gtin: None,
                quantity: 5,
            }],
        };
        self.commit(|c| store_transfers::create(c, &ctx(&tax), "s1", &request))
    }

    /// What HQ would send this lane of `other`'s documents (its own earlier changes).
    fn receive_all_of(&mut self, other: &Lane) {
        for kind in [DocKind::Stock, DocKind::Orders] {
            let id = DocId::new("s1", kind).unwrap();
            let changes = {
                let theirs = local::lock(&other.docs);
                let mine = local::lock(&self.docs);
                let have = mine.doc(&id).unwrap().heads();
                theirs.doc(&id).unwrap().changes_since(&have)
            };
            let docs = self.docs.clone();
            self.commit(|c| {
                local::lock(&docs)
                    .apply_remote(c, &id, 0, &RemoteChanges::Changes(changes), &now())
                    .unwrap();
            });
        }
    }

    fn apply_orders_change(&mut self, change: &[u8]) {
        let id = DocId::new("s1", DocKind::Orders).unwrap();
        let docs = self.docs.clone();
        let change = RemoteChanges::Changes(vec![change.to_vec()]);
        self.commit(|c| {
            local::lock(&docs)
                .apply_remote(c, &id, 0, &change, &now())
                .unwrap();
        });
    }

    fn receive(&mut self, sku: &str, quantity: i64) {
        self.commit(|c| {
            let receipt = Movement {
                sku,
                kind: MovementKind::Receipt,
                on_hand_delta: quantity,
                reserved_delta: 0,
                ref_type: "receipt",
                ref_id: "r1",
                terminal: "pos1",
            };
            ledger::record(c, &receipt, "now").unwrap();
        });
    }

    /// Ends the wait, as the service does once it holds HQ's heads.
    fn finish_adoption(&mut self) {
        let docs = self.docs.clone();
        self.commit(|c| local::lock(&docs).finish_adoption(c, &now()).unwrap());
    }

    fn on_hand_and_reserved(&self) -> (i64, i64) {
        let level = ledger::level(&self.conn, "MILK").unwrap();
        (level.on_hand, level.reserved)
    }
}

/// Regression: the restored lane forgot the order and transfer ids it had published, so a
/// till could take them again (201): an order id taken twice broke the lane's sync for
/// good (the document refused to create it again, at every commit), a transfer id taken
/// twice was silently merged into the earlier transfer.
#[test]
fn a_restored_lane_takes_back_its_published_orders_and_transfers_and_refuses_their_ids() {
    let writer = WriterId::new("s1.lane1").unwrap();
    let mut before = lane(&writer.new_incarnation());
    before.receive("MILK", 20);
    before.order("o1").unwrap();
    before.order("o2").unwrap();
    before.transfer("t1").unwrap();
    before.transfer("t2").unwrap();
    assert_eq!(before.on_hand_and_reserved(), (10, 4));

    // Restored from the backup: a new incarnation that must catch up before it writes.
    let mut after = lane(&writer.new_incarnation());
    local::lock(&after.docs).require_adoption();
    // While it waits, a till takes o2 and t2 again (nobody here can know they are taken).
    after.receive("MILK", 3);
    after.order("o2").unwrap();
    after.transfer("t2").unwrap();
    after.receive_all_of(&before);
    after.finish_adoption();
    after.commit(|_| ());
    assert_eq!(after.metrics.failures.load(Ordering::Relaxed), 0);

    // The ids its writer published are taken again.
    assert!(matches!(after.order("o1"), Err(StoreError::Conflict(_))));
    assert!(matches!(after.transfer("t1"), Err(StoreError::Conflict(_))));
    // Its stock: the published work (20 − 2 × 5, o1 and o2 reserved), and since the
    // restore 3 received, the new o2 reserved and the new t2 dispatched.
    assert_eq!(after.on_hand_and_reserved(), (8, 6));
    // The new t2 is shared under a fresh id, the earlier one is back under its own.
    {
        let guard = local::lock(&after.docs);
        let ids = guard.orders().transfer_ids();
        assert_eq!(ids.len(), 3, "{ids:?}");
        let fresh = ids
            .iter()
            .find(|id| id.starts_with("s1.lane1:t2~"))
            .unwrap();
        assert_eq!(
            store_transfers::get(&after.conn, fresh)
                .unwrap()
                .unwrap()
                .local_id,
            "t2"
        );
    }
    assert!(
        store_transfers::get(&after.conn, "s1.lane1:t2")
            .unwrap()
            .is_some()
    );
    // The earlier o2 is back under its document id, the new one stays at this lane.
    assert!(
        store_orders::get(&after.conn, "s1.lane1:o2")
            .unwrap()
            .is_some()
    );
    // The restored order and transfer are handled here as before.
    let tax = tax();
    after.commit(|c| {
        store_orders::cancel(c, &ctx(&tax), "o1", &CancelRequest { reason: None }).unwrap();
        store_transfers::cancel(c, &ctx(&tax), "t1").unwrap();
    });
    assert_eq!(after.on_hand_and_reserved(), (13, 4));
    assert_eq!(after.metrics.failures.load(Ordering::Relaxed), 0);
    assert!(ledger::verify(&after.conn).unwrap().is_empty());
    let guard = local::lock(&after.docs);
    assert_eq!(guard.stock().stock("MILK"), 13);
    assert_eq!(guard.stock().stock(&local::reserved_key("MILK")), 4);
    assert_eq!(
        guard.orders().state("s1.lane1:o1").unwrap().status,
        OrderStatus::Cancelled
    );
    assert_eq!(
        guard.orders().transfer_state("s1.lane1:t1").unwrap().status,
        crate::domain::transfers::TransferStatus::Cancelled
    );
}

/// Regression: an online order this lane holds, collected at another lane while the
/// restored lane waited to catch up, was settled at once against the restored state: its
/// units were sold a second time on top of the earlier incarnation's settlement.
#[test]
fn a_collect_decided_elsewhere_during_the_wait_is_settled_once_after_it() {
    let writer = WriterId::new("s1.lane1").unwrap();
    let mut before = lane(&writer.new_incarnation());
    before.receive("MILK", 10);
    let mut hq = OrdersDoc::genesis("s1", 0, WriterId::hq()).unwrap();
    let facts = OrderFacts {
        order_id: "hq:w1".into(),
        channel: "web".into(),
        created_at_ms: crate::clock::now_ms(),
        pickup_code_hash: [7; 32],
        fulfilment: writer.clone(),
        lines: BTreeMap::from([("MILK".to_owned(), 2)]),
        hold_hours: None,
        delivery: Default::default(),
    };
    let placed = hq.create_order(&facts).unwrap().unwrap();
    before.apply_orders_change(&placed.bytes);
    assert_eq!(before.on_hand_and_reserved(), (10, 2), "reserved here");

    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");
    before
        .conn
        .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
        .unwrap();

    // Collected at lane 2; this lane, holding the units, sells them.
    let mut lane2 = OrdersDoc::genesis("s1", 0, WriterId::new("s1.lane2").unwrap()).unwrap();
    lane2
        .core_mut()
        .apply_changes(std::slice::from_ref(&placed.bytes))
        .unwrap();
    let collected = lane2
        .record_status("hq:w1", OrderStatus::Collected, crate::clock::now_ms())
        .unwrap()
        .unwrap();
    before.apply_orders_change(&collected.bytes);
    assert_eq!(before.on_hand_and_reserved(), (8, 0), "sold here");

    // Restored from the backup: lane 2's collect arrives first, then what HQ has of the
    // earlier incarnation (its settlement included).
    let conn = Connection::open(&backup).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    let mut after = lane_on(conn, &writer.new_incarnation());
    local::lock(&after.docs).require_adoption();
    after.apply_orders_change(&collected.bytes);
    after.receive_all_of(&before);
    after.finish_adoption();
    after.commit(|_| ());

    assert_eq!(after.on_hand_and_reserved(), (8, 0), "settled once");
    assert!(ledger::verify(&after.conn).unwrap().is_empty());
    let view = store_orders::get(&after.conn, "w1").unwrap().unwrap();
    assert_eq!(view.status, store_orders::OrderStatus::Collected);
    let guard = local::lock(&after.docs);
    assert_eq!(guard.stock().stock("MILK"), 8);
    assert_eq!(guard.stock().stock(&local::reserved_key("MILK")), 0);
}
