//! Unit tests of HQ's state: ingest, batching, epochs, restart.

use super::*;
use crate::crdt::stock::StockDoc;
use crate::domain::stock::Movement;
use crate::hq::db::testing::TestDb;
use crate::sync::payload::SyncMessage;

fn hq() -> (TestDb, HqState) {
    let dir = TestDb::new();
    let state = HqState::open_target(&dir.target, "t", 1).unwrap();
    (dir, state)
}

fn change(writer: &str, store: &str, sku: &str, deltas: &[i64]) -> Vec<Vec<u8>> {
    let mut doc = StockDoc::genesis(store, 0, WriterId::new(writer).unwrap()).unwrap();
    deltas
        .iter()
        .map(|d| {
            let m = [Movement {
                sku: sku.into(),
                delta: *d,
            }];
            doc.apply_movements(&m, 1).unwrap().unwrap().bytes
        })
        .collect()
}

fn message(store: &str, changes: Vec<Vec<u8>>) -> Vec<u8> {
    SyncMessage::Changes {
        doc: DocId::new(store, DocKind::Stock).unwrap(),
        epoch: 0,
        changes,
    }
    .encode()
    .unwrap()
}

const S1_TOPIC: &str = "storenode/v1/t/s1/changes/stock/s1.lane1";

#[test]
fn a_change_forged_by_another_stores_writer_is_rejected() {
    let (_dir, mut hq) = hq();
    let forged = message("s1", change("s2.lane1", "s1", "A", &[-5]));
    let err = hq.handle(S1_TOPIC, &forged).unwrap_err();
    assert!(matches!(err, Rejected::Unauthorised(_)), "{err}");
    assert_eq!(hq.stock("s1", "A").unwrap(), None, "nothing applied");
    // A store publishing about another store's document is refused too.
    let other = message("s2", change("s2.lane1", "s2", "A", &[1]));
    assert!(matches!(
        hq.handle(S1_TOPIC, &other),
        Err(Rejected::WrongStore { .. })
    ));
}

#[test]
fn queued_messages_apply_as_one_batch_and_a_bad_one_costs_only_itself() {
    let (_dir, mut hq) = hq();
    let good = change("s1.lane1", "s1", "A", &[5, -1, -1]);
    let forged = message("s1", change("s2.lane1", "s1", "A", &[-50]));
    let messages: Vec<(String, Vec<u8>)> = vec![
        (S1_TOPIC.into(), message("s1", vec![good[0].clone()])),
        (S1_TOPIC.into(), message("s1", vec![good[1].clone()])),
        (S1_TOPIC.into(), forged),
        (S1_TOPIC.into(), message("s1", vec![good[2].clone()])),
        (S1_TOPIC.into(), message("s1", vec![good[2].clone()])),
    ];
    let results = hq.handle_many(&messages);
    assert_eq!(results.len(), 5);
    assert!(
        matches!(results[2], Err(Rejected::Unauthorised(_))),
        "{:?}",
        results[2].as_ref().err()
    );
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 4, "the others are applied");
    assert_eq!(hq.stock("s1", "A").unwrap().map(|s| s.on_hand), Some(3));
    // A clean batch: one answer set (HQ's heads) for all of it.
    let more = change("s1.lane2", "s1", "A", &[1, 1]);
    let clean: Vec<(String, Vec<u8>)> = more
        .into_iter()
        .map(|c| (S1_TOPIC.replace("lane1", "lane2"), message("s1", vec![c])))
        .collect();
    let results = hq.handle_many(&clean);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(results[1].as_ref().map(Vec::len).ok(), Some(0));
    assert_eq!(hq.stock("s1", "A").unwrap().map(|s| s.on_hand), Some(5));
}

#[test]
fn duplicated_and_reordered_delivery_converges() {
    let (_dir, mut hq) = hq();
    let changes = change("s1.lane1", "s1", "A", &[10, -1, -2]);
    // Last first (queued until its dependencies arrive), then everything twice.
    hq.handle(S1_TOPIC, &message("s1", vec![changes[2].clone()]))
        .unwrap();
    for _ in 0..2 {
        for c in changes.iter().rev() {
            hq.handle(S1_TOPIC, &message("s1", vec![c.clone()]))
                .unwrap();
        }
    }
    let row = hq.stock("s1", "A").unwrap().unwrap();
    assert_eq!(row.on_hand, 7);
    assert_eq!(row.available_to_sell, 6, "safety stock 1");
    // Garbage is rejected, never applied half-way.
    assert!(hq.handle(S1_TOPIC, &[1, 1, 0]).is_err());
    assert_eq!(hq.stock("s1", "A").unwrap().unwrap().on_hand, 7);
}

#[test]
fn an_epoch_keeps_the_stock_and_ignores_late_changes_of_the_old_one() {
    let (_dir, mut hq) = hq();
    assert!(matches!(hq.open_epoch("s1"), Err(HqError::UnknownStore(_))));
    let changes = change("s1.lane1", "s1", "A", &[10, -3]);
    hq.handle(S1_TOPIC, &message("s1", vec![changes[0].clone()]))
        .unwrap();
    let (epoch, announce) = hq.open_epoch("s1").unwrap();
    assert_eq!(epoch, 1);
    assert_eq!(
        announce.len(),
        4,
        "EpochAnnounce and retained heads, of the stock and of the orders document"
    );
    assert_eq!(hq.stock("s1", "A").unwrap().unwrap().on_hand, 10, "base");
    // The writer's post-cut change of epoch 0 is dropped: it carries it over itself.
    let late = hq
        .handle(S1_TOPIC, &message("s1", vec![changes[1].clone()]))
        .unwrap();
    assert!(late.is_empty());
    assert_eq!(hq.stock("s1", "A").unwrap().unwrap().on_hand, 10);
    // lane1 has not moved over yet: no epoch 2.
    assert!(matches!(hq.open_epoch("s1"), Err(HqError::EpochPending(_))));
}

#[test]
fn state_survives_a_restart() {
    let (dir, mut hq) = hq();
    hq.handle(
        S1_TOPIC,
        &message("s1", change("s1.lane1", "s1", "A", &[4])),
    )
    .unwrap();
    let heads = hq.stock_doc("s1").unwrap().core().heads();
    drop(hq);
    let mut again = HqState::open_target(&dir.target, "t", 1).unwrap();
    assert_eq!(again.stock_doc("s1").unwrap().core().heads(), heads);
    assert_eq!(again.stock("s1", "A").unwrap().unwrap().on_hand, 4);
}

fn lane_online(hq: &HqState, writer: &str) -> Option<bool> {
    hq.db
        .query_opt(
            "SELECT online FROM hq_writer_status WHERE writer = ?1",
            &[&writer],
            |r| r.get::<i64>(0),
        )
        .ok()
        .flatten()
        .map(|online| online != 0)
}

// Failed before the fix: garbage was recorded as `offline`, a made-up lane as a lane.
#[test]
fn a_garbage_status_or_one_of_another_stores_writer_is_refused_and_changes_nothing() {
    let (_dir, mut hq) = hq();
    let status = "storenode/v1/t/s1/status/s1.lane1";
    hq.handle(status, b"online 00ff 1700000000000").unwrap();
    assert_eq!(lane_online(&hq, "s1.lane1"), Some(true));
    for garbage in [
        &b"\xff\xfe"[..],
        b"",
        b"online",
        b"onlinex",
        b"online a b c",
        b"offline ",
    ] {
        let result = hq.handle(status, garbage);
        if garbage == b"online" {
            assert!(result.is_ok(), "a plain `online` is a status");
            continue;
        }
        assert!(matches!(result, Err(Rejected::Status)), "{garbage:?}");
        assert_eq!(lane_online(&hq, "s1.lane1"), Some(true), "{garbage:?}");
    }
    let foreign = hq.handle("storenode/v1/t/s1/status/s2.lane1", b"online");
    assert!(matches!(foreign, Err(Rejected::StatusWriter { .. })));
    assert_eq!(lane_online(&hq, "s2.lane1"), None);
    hq.handle(status, b"offline").unwrap();
    assert_eq!(lane_online(&hq, "s1.lane1"), Some(false));

    // With provisioned lanes, an unlisted lane of the store is refused too.
    let lanes = BTreeMap::from([(
        "s1".to_owned(),
        BTreeSet::from([WriterId::new("s1.lane1").unwrap()]),
    )]);
    let mut hq = hq.with_lanes(lanes);
    let ghost = hq.handle("storenode/v1/t/s1/status/s1.ghost", b"online g 1");
    assert!(matches!(ghost, Err(Rejected::StatusWriter { .. })));
    assert_eq!(lane_online(&hq, "s1.ghost"), None);
}

#[test]
fn a_store_is_online_by_a_valid_status_or_a_recent_change() {
    use super::stock::{ONLINE_AFTER_CHANGE_MS, store_online};
    let now = 10_000_000;
    assert!(store_online(true, None, now));
    assert!(!store_online(false, None, now));
    assert!(
        store_online(false, Some(now - 1_000), now),
        "a change just now"
    );
    assert!(
        !store_online(false, Some(now - ONLINE_AFTER_CHANGE_MS), now),
        "stale"
    );
    assert!(
        store_online(true, Some(0), now),
        "a quiet store that says online"
    );
}

/// What `hq_doc_version` counts for s1's stock document, and what the tables hold.
fn log_counts(hq: &HqState) -> (i64, i64, i64, i64) {
    let counted: (i64, i64) = hq
        .db
        .query_one(
            "SELECT log_bytes, saved_bytes FROM hq_doc_version WHERE doc_key = 's1/stock'",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let logged: i64 = hq
        .db
        .query_one(
            "SELECT coalesce(sum(length(bytes)), 0) FROM sync_change WHERE doc_key = 's1/stock'",
            &[],
            |r| r.get(0),
        )
        .unwrap();
    let saved: i64 = hq
        .db
        .query_one(
            "SELECT coalesce(max(length(saved)), 0) FROM sync_doc WHERE doc_key = 's1/stock'",
            &[],
            |r| r.get(0),
        )
        .unwrap();
    (counted.0, counted.1, logged, saved)
}

/// HQ saves a document whole once its log holds as many bytes as its last save (at least
/// `MIN_LOG_BYTES_BEFORE_SAVE`), counting the bytes as it logs them rather than counting
/// the log at every change; a restart rebuilds the same document from the save and log.
#[test]
fn a_document_is_saved_whole_once_its_log_outgrows_its_save() {
    let (dir, mut hq) = hq();
    let mut lane = StockDoc::genesis("s1", 0, WriterId::new("s1.lane1").unwrap()).unwrap();
    let mut saves = Vec::new();
    for i in 0..300 {
        let movements: Vec<Movement> = (0..100)
            .map(|j| Movement {
                sku: format!("SKU-{:04}", (i * 37 + j * 101) % 3000),
                delta: 1,
            })
            .collect();
        let change = lane.apply_movements(&movements, 1).unwrap().unwrap();
        hq.handle(S1_TOPIC, &message("s1", vec![change.bytes]))
            .unwrap();
        let (log_bytes, saved_bytes, logged, saved) = log_counts(&hq);
        assert_eq!((log_bytes, saved_bytes), (logged, saved), "change {i}");
        assert!(!crate::hq::db::docs::save_due(log_bytes, saved_bytes));
        if saves.last() != Some(&saved) && saved > 0 {
            saves.push(saved);
        }
    }
    assert!(saves.len() >= 2, "saves of {saves:?} bytes");
    let heads = lane.core().heads();
    assert_eq!(hq.stock_doc("s1").unwrap().core().heads(), heads);
    drop(hq);
    let mut again = HqState::open_target(&dir.target, "t", 1).unwrap();
    assert_eq!(again.stock_doc("s1").unwrap().core().heads(), heads);
    assert_eq!(
        again.stock("s1", "SKU-0000").unwrap().unwrap().on_hand,
        lane.stock("SKU-0000")
    );
}
