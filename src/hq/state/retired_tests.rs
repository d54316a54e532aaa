//! Unit tests of lane retirements at HQ (`retired.rs`), on the test backend
//! (`STORENODE_HQ_TEST_DB=postgres` for PostgreSQL).

use super::*;
use crate::crdt::epoch::carry_over;
use crate::crdt::stock::StockDoc;
use crate::domain::stock::Movement;
use crate::hq::db::testing::TestDb;
use crate::sync::payload::SyncMessage;

fn hq() -> (TestDb, HqState) {
    let dir = TestDb::new();
    let state = HqState::open_target(&dir.target, "t", 0).unwrap();
    (dir, state)
}

fn w(writer: &str) -> WriterId {
    WriterId::new(writer).unwrap()
}

/// A lane's stock document and what it sends HQ.
struct Lane {
    doc: StockDoc,
}

impl Lane {
    fn new(writer: &str) -> Self {
        Self {
            doc: StockDoc::genesis("s1", 0, w(writer)).unwrap(),
        }
    }

    /// One movement made at `at_ms` (the lane's clock), as HQ receives it.
    fn sell(&mut self, delta: i64, at_ms: i64) -> (String, Vec<u8>) {
        let m = [Movement {
            sku: "A".into(),
            delta,
        }];
        let change = self.doc.apply_movements(&m, at_ms).unwrap().unwrap().bytes;
        self.message(vec![change])
    }

    fn message(&self, changes: Vec<Vec<u8>>) -> (String, Vec<u8>) {
        let writer = self.doc.core().writer().as_str().to_owned();
        let payload = SyncMessage::Changes {
            doc: DocId::new("s1", DocKind::Stock).unwrap(),
            epoch: self.doc.core().epoch(),
            changes,
        }
        .encode()
        .unwrap();
        (format!("storenode/v1/t/s1/changes/stock/{writer}"), payload)
    }

    /// Moves this lane into HQ's new epoch, as a lane does on the announcement.
    fn move_over(&mut self, hq: &mut HqState) -> (String, Vec<u8>) {
        let hq_new = hq.stock_doc("s1").unwrap();
        let writer = self.doc.core().writer().clone();
        let mut new = StockDoc::genesis("s1", hq_new.core().epoch(), writer).unwrap();
        let base = hq_new.core().changes_since(&[]);
        new.core_mut().apply_changes(&base).unwrap();
        let carried = carry_over(&self.doc, &mut new, crate::clock::now_ms())
            .unwrap()
            .unwrap();
        self.doc = new;
        self.message(vec![carried.bytes])
    }
}

fn send(hq: &mut HqState, (topic, payload): &(String, Vec<u8>)) -> Result<Vec<Outgoing>, Rejected> {
    hq.handle(topic, payload)
}

fn retire(hq: &mut HqState, writer: &str, record: &[u8]) -> Result<Vec<Outgoing>, Rejected> {
    hq.handle(&format!("storenode/v1/t/s1/retired/{writer}"), record)
}

/// Stored changes and snapshots of the store's stock document in epochs before `epoch`.
fn stored_before(hq: &HqState, epoch: u32) -> i64 {
    let key = crate::sync::persist::doc_key(&DocId::new("s1", DocKind::Stock).unwrap());
    let count = |table: &str| -> i64 {
        hq.db
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE doc_key = ?1 AND epoch < ?2"),
                &[&key, &epoch],
                |r| r.get(0),
            )
            .unwrap()
    };
    count("sync_change") + count("sync_doc")
}

fn on_hand(hq: &mut HqState) -> i64 {
    hq.stock("s1", "A").unwrap().map_or(0, |row| row.on_hand)
}

// Failed before: a dead lane kept HQ from dropping the closed epoch for ever.
#[test]
fn a_retired_lane_is_not_waited_for_before_the_closed_epoch_is_dropped() {
    let (_dir, mut hq) = hq();
    let (mut lane1, mut lane2) = (Lane::new("s1.lane1"), Lane::new("s1.lane2"));
    send(&mut hq, &lane1.sell(10, 1)).unwrap();
    send(&mut hq, &lane2.sell(-2, 2)).unwrap();
    assert_eq!(hq.open_epoch("s1").unwrap().0, 1);
    let carried = lane1.move_over(&mut hq);
    send(&mut hq, &carried).unwrap();
    assert!(stored_before(&hq, 1) > 0, "lane 2 has not moved over");
    assert!(matches!(hq.open_epoch("s1"), Err(HqError::EpochPending(_))));

    retire(&mut hq, "s1.lane2", b"retired 5 by s1.lane1").unwrap();
    assert_eq!(stored_before(&hq, 1), 0, "epoch 0 dropped at once");
    assert_eq!(on_hand(&mut hq), 8, "lane 2's sale is in the base");
    assert_eq!(hq.open_epoch("s1").unwrap().0, 2, "the next epoch may open");
}

// Failed before: a box that came back without being provisioned anew still counted.
#[test]
fn a_retired_lanes_later_changes_are_refused_its_earlier_kept_and_unretire_undoes_it() {
    let (dir, mut hq) = hq();
    let (mut lane1, mut lane2) = (Lane::new("s1.lane1"), Lane::new("s1.lane2"));
    send(&mut hq, &lane1.sell(10, 1)).unwrap();
    // Made before the retirement, published after it (the box was offline): a real sale.
    let earlier = lane2.sell(-1, 2);
    retire(&mut hq, "s1.lane2", b"retired 3 by s1.lane1").unwrap();
    send(&mut hq, &earlier).unwrap();
    assert_eq!(on_hand(&mut hq), 9);
    // The box comes back and sells on: refused, counted as `retired`.
    let later = lane2.sell(-4, crate::clock::now_ms() + 3_600_000);
    let refused = send(&mut hq, &later).unwrap_err();
    assert_eq!(refused.reason(), "retired", "{refused}");
    assert_eq!(on_hand(&mut hq), 9, "nothing applied");
    send(&mut hq, &lane1.sell(-1, 4)).unwrap();
    assert_eq!(on_hand(&mut hq), 8, "the other lane syncs on");
    // The retained record heard again (a reconnect) keeps the first time.
    retire(&mut hq, "s1.lane2", b"retired 3 by s1.lane1").unwrap();
    assert!(send(&mut hq, &earlier).is_ok());

    // Stored: a restart still refuses it.
    drop(hq);
    let mut hq = HqState::open_target(&dir.target, "t", 0).unwrap();
    assert!(matches!(
        send(&mut hq, &later),
        Err(Rejected::Retired { .. })
    ));
    // `storenode lane unretire`: an empty record; the lane counts again.
    retire(&mut hq, "s1.lane2", b"").unwrap();
    send(&mut hq, &later).unwrap();
    assert_eq!(on_hand(&mut hq), 4);
}

#[test]
fn a_retired_lane_is_no_lane_of_the_store_for_grants_and_figures() {
    let (_dir, mut hq) = hq();
    hq.handle("storenode/v1/t/s1/status/s1.lane1", b"offline")
        .unwrap();
    hq.handle("storenode/v1/t/s1/status/s1.lane2", b"online")
        .unwrap();
    assert_eq!(hq.coupon_lane("s1").unwrap(), w("s1.lane2"), "online first");
    assert!(hq.store_meta("s1").unwrap().1, "a lane is online");

    retire(&mut hq, "s1.lane2", b"retired 1 by s1.lane1").unwrap();
    assert_eq!(hq.coupon_lane("s1").unwrap(), w("s1.lane1"));
    assert!(hq.coupon_lane("s1.lane2").is_err(), "named outright");
    assert!(
        !hq.store_meta("s1").unwrap().1,
        "the only online lane is retired"
    );
    // Its status, heard again, changes nothing.
    hq.handle("storenode/v1/t/s1/status/s1.lane2", b"online")
        .unwrap();
    assert_eq!(hq.coupon_lane("s1").unwrap(), w("s1.lane1"));

    retire(&mut hq, "s1.lane2", b"").unwrap();
    assert_eq!(hq.coupon_lane("s1").unwrap(), w("s1.lane2"));
}

#[test]
fn a_retirement_of_another_stores_writer_is_refused() {
    let (_dir, mut hq) = hq();
    let refused = retire(&mut hq, "s2.lane1", b"retired 1 by s1.lane1").unwrap_err();
    assert!(
        matches!(refused, Rejected::StatusWriter { .. }),
        "{refused}"
    );
    assert!(hq.retired_writers("s1").unwrap().is_empty());
    assert!(hq.retired_writers("s2").unwrap().is_empty());
}
