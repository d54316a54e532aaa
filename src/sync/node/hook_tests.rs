use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Notify;

use super::*;
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::stock::{Movement, StockDoc};
use crate::store::ledger::{self, MovementKind};
use crate::sync::local::{self, NodeDocs, RemoteChanges, reserved_key};
use crate::sync::persist;

fn db() -> Connection {
    crate::store::testing::memory_db()
}

fn writer(name: &str) -> WriterId {
    WriterId::new(name).unwrap()
}

fn hook(conn: &Connection, name: &str) -> (SyncHook, SharedDocs) {
    let docs = Arc::new(Mutex::new(
        NodeDocs::load(conn, "s1", writer(name)).unwrap(),
    ));
    let slot: DocsSlot = Arc::default();
    let _ = slot.set(docs.clone());
    let hook = SyncHook::new(slot, "s1", Arc::new(Notify::new()), Arc::default());
    (hook, docs)
}

fn sell(conn: &Connection, sku: &str, on_hand: i64, reserved: i64) {
    let m = ledger::Movement {
        sku,
        kind: MovementKind::Sale,
        on_hand_delta: on_hand,
        reserved_delta: reserved,
        ref_type: "t",
        ref_id: "1",
        terminal: "pos1",
    };
    ledger::record(conn, &m, "now").unwrap();
}

/// One group commit: the writes, then the hook, then COMMIT (or ROLLBACK).
fn commit(conn: &Connection, hook: &mut SyncHook, writes: impl FnOnce(&Connection), ok: bool) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    writes(conn);
    hook.before_commit(conn).unwrap();
    if ok {
        conn.execute_batch("COMMIT").unwrap();
        hook.after_commit();
    } else {
        conn.execute_batch("ROLLBACK").unwrap();
        hook.after_rollback(conn);
    }
}

fn stock_id() -> DocId {
    DocId::new("s1", DocKind::Stock).unwrap()
}

#[test]
fn one_change_per_commit_with_outbox_row_and_reserved_key() {
    let conn = db();
    let (mut hook, docs) = hook(&conn, "s1.lane1");
    commit(
        &conn,
        &mut hook,
        |c| {
            sell(c, "A", 10, 0);
            sell(c, "A", -1, 0);
            sell(c, "B", 0, 2);
        },
        true,
    );
    let guard = local::lock(&docs);
    assert_eq!(guard.stock().stock("A"), 9);
    assert_eq!(guard.stock().stock(&reserved_key("B")), 2);
    let outbox = persist::outbox(&conn, &stock_id(), 0).unwrap();
    assert_eq!(outbox.len(), 1, "one change for the whole group commit");
    assert!(guard.stock().core().has_change(&outbox[0].hash));
}

#[test]
fn rolled_back_commit_leaves_no_change_anywhere() {
    let conn = db();
    let (mut hook, docs) = hook(&conn, "s1.lane1");
    commit(&conn, &mut hook, |c| sell(c, "A", 5, 0), true);
    let heads_before = local::lock(&docs).stock().core().heads();
    commit(&conn, &mut hook, |c| sell(c, "A", -2, 0), false);
    let guard = local::lock(&docs);
    assert_eq!(
        guard.stock().core().heads(),
        heads_before,
        "in-memory doc rebuilt"
    );
    assert_eq!(guard.stock().stock("A"), 5);
    assert_eq!(persist::outbox(&conn, &stock_id(), 0).unwrap().len(), 1);
}

#[test]
fn reload_after_restart_equals_memory_across_saves() {
    let conn = db();
    let (mut hook, docs) = hook(&conn, "s1.lane1");
    // More commits than SAVE_EVERY_CHANGES, so the rebuild is save + log.
    let commits = persist::SAVE_EVERY_CHANGES + 20;
    for i in 0..commits {
        commit(
            &conn,
            &mut hook,
            |c| sell(c, &format!("S{}", i % 7), -1, 0),
            true,
        );
    }
    let memory = local::lock(&docs).stock().stock_levels();
    let reloaded = NodeDocs::load(&conn, "s1", writer("s1.lane1")).unwrap();
    assert_eq!(reloaded.stock().stock_levels(), memory);
    assert_eq!(
        reloaded.stock().core().heads(),
        local::lock(&docs).stock().core().heads()
    );
    let logged: i64 = conn
        .query_row("SELECT count(*) FROM sync_change", [], |r| r.get(0))
        .unwrap();
    assert!(
        logged < i64::try_from(commits).unwrap(),
        "the log was compacted by a save"
    );
}

#[test]
fn a_failing_sync_step_does_not_block_sales() {
    let conn = db();
    let (mut hook, docs) = hook(&conn, "s1.lane1");
    // Break the sync tables: the hook's step fails, the sale still commits.
    conn.execute_batch("DROP TABLE sync_outbox").unwrap();
    commit(&conn, &mut hook, |c| sell(c, "A", 3, 0), true);
    assert_eq!(ledger::level(&conn, "A").unwrap().on_hand, 3);
    assert_eq!(
        local::lock(&docs).stock().stock("A"),
        0,
        "doc reloaded without it"
    );
    assert_eq!(hook.metrics.failures.load(Ordering::Relaxed), 1);
}

#[test]
fn peer_changes_become_peer_movements_and_are_not_sent_back() {
    let conn = db();
    let (mut hook, docs) = hook(&conn, "s1.lane1");
    commit(&conn, &mut hook, |c| sell(c, "A", 10, 0), true);
    // Lane 2 sells 3 of A and reserves 1 B on its own document.
    let mut lane2 = StockDoc::genesis("s1", 0, writer("s1.lane2")).unwrap();
    let change = lane2
        .apply_movements(
            &[
                Movement {
                    sku: "A".into(),
                    delta: -3,
                },
                Movement {
                    sku: reserved_key("B"),
                    delta: 1,
                },
            ],
            1,
        )
        .unwrap()
        .unwrap();
    let remote = RemoteChanges::Changes(vec![change.bytes.clone()]);
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    local::lock(&docs)
        .apply_remote(&conn, &stock_id(), 0, &remote, "now")
        .unwrap();
    hook.before_commit(&conn).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(ledger::level(&conn, "A").unwrap().on_hand, 7);
    assert_eq!(ledger::level(&conn, "B").unwrap().reserved, 1);
    assert!(ledger::verify(&conn).unwrap().is_empty());
    // Replaying the same change is harmless and writes nothing.
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let outcome = local::lock(&docs)
        .apply_remote(&conn, &stock_id(), 0, &remote, "now")
        .unwrap();
    hook.before_commit(&conn).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(outcome.duplicates, 1);
    assert_eq!(local::peer_movement_count(&conn).unwrap(), 2);
    // The peer rows did not become an own change: still one outbox row, own total 10.
    assert_eq!(persist::outbox(&conn, &stock_id(), 0).unwrap().len(), 1);
    assert_eq!(
        local::lock(&docs)
            .stock()
            .writer_totals(&writer("s1.lane1"))
            .get("A"),
        Some(&10)
    );
}

#[test]
fn malformed_remote_input_changes_nothing() {
    let conn = db();
    let (_hook, docs) = hook(&conn, "s1.lane1");
    let heads = local::lock(&docs).stock().core().heads();
    let bad = RemoteChanges::Changes(vec![vec![1, 2, 3]]);
    assert!(
        local::lock(&docs)
            .apply_remote(&conn, &stock_id(), 0, &bad, "now")
            .is_err()
    );
    let bad_bundle = RemoteChanges::Bundle(vec![0x85, 0x6f, 0x4a, 0x83, 9, 9]);
    assert!(
        local::lock(&docs)
            .apply_remote(&conn, &stock_id(), 0, &bad_bundle, "now")
            .is_err()
    );
    assert_eq!(local::lock(&docs).stock().core().heads(), heads);
    let logged: i64 = conn
        .query_row("SELECT count(*) FROM sync_change", [], |r| r.get(0))
        .unwrap();
    assert_eq!(logged, 0);
}

#[test]
fn acknowledged_changes_leave_the_outbox() {
    let conn = db();
    let (mut hook, docs) = hook(&conn, "s1.lane1");
    commit(&conn, &mut hook, |c| sell(c, "A", 1, 0), true);
    let first_heads = local::lock(&docs).stock().core().heads();
    commit(&conn, &mut hook, |c| sell(c, "A", 1, 0), true);
    let guard = local::lock(&docs);
    assert_eq!(
        local::acknowledge(&conn, guard.stock().core(), &first_heads).unwrap(),
        1
    );
    assert_eq!(persist::outbox(&conn, &stock_id(), 0).unwrap().len(), 1);
    let all = guard.stock().core().heads();
    assert_eq!(
        local::acknowledge(&conn, guard.stock().core(), &all).unwrap(),
        1
    );
    assert!(persist::outbox(&conn, &stock_id(), 0).unwrap().is_empty());
}

fn deferring_hook(conn: &Connection, name: &str) -> (SyncHook, SharedDocs) {
    let (hook, docs) = hook(conn, name);
    (hook.deferring(), docs)
}

/// The publisher's step, in its own transaction (as `service::outbound::record_backlog`).
fn record_backlog_tx(conn: &Connection, docs: &SharedDocs, ok: bool) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    record_backlog(conn, docs).unwrap();
    conn.execute_batch(if ok { "COMMIT" } else { "ROLLBACK" })
        .unwrap();
}

/// The node's hook makes no change per commit: sales wait in the ledger above the mark and
/// become ONE change when the publisher records them, whatever the number of commits.
#[test]
fn a_deferring_hook_leaves_sales_to_one_change_per_publish() {
    let conn = db();
    let (mut hook, docs) = deferring_hook(&conn, "s1.lane1");
    for i in 0..30 {
        commit(
            &conn,
            &mut hook,
            |c| sell(c, &format!("S{}", i % 4), -1, 0),
            true,
        );
    }
    assert!(persist::outbox(&conn, &stock_id(), 0).unwrap().is_empty());
    assert_eq!(
        persist::pending_len(&conn).unwrap(),
        1,
        "the backlog counts as pending"
    );
    assert!(local::lock(&docs).stock().stock_levels().is_empty());
    record_backlog_tx(&conn, &docs, true);
    let outbox = persist::outbox(&conn, &stock_id(), 0).unwrap();
    assert_eq!(outbox.len(), 1, "one change for 30 commits");
    assert_eq!(persist::pending_len(&conn).unwrap(), 1, "the change itself");
    let guard = local::lock(&docs);
    for s in 0..4 {
        let sku = format!("S{s}");
        assert_eq!(
            guard.stock().stock(&sku),
            ledger::level(&conn, &sku).unwrap().on_hand
        );
    }
}

/// A crash between the sales' commits and the publisher's record, or during the record
/// (its transaction rolled back), loses nothing; a record that committed is not repeated.
#[test]
fn deferred_sales_survive_a_crash_before_or_during_their_record_and_count_once() {
    let conn = db();
    {
        let (mut hook, docs) = deferring_hook(&conn, "s1.lane1");
        commit(&conn, &mut hook, |c| sell(c, "A", 10, 0), true);
        commit(&conn, &mut hook, |c| sell(c, "A", -3, 0), true);
        // The publisher's transaction dies before its commit.
        record_backlog_tx(&conn, &docs, false);
    } // crash: the in-memory documents are gone
    let docs: SharedDocs = Arc::new(Mutex::new(
        NodeDocs::load(&conn, "s1", writer("s1.lane1")).unwrap(),
    ));
    assert_eq!(
        local::lock(&docs).stock().stock("A"),
        0,
        "nothing recorded yet"
    );
    record_backlog_tx(&conn, &docs, true);
    assert_eq!(local::lock(&docs).stock().stock("A"), 7);
    // After a restart the recorded sales are in the document once, and nothing is left.
    let reloaded = NodeDocs::load(&conn, "s1", writer("s1.lane1")).unwrap();
    assert_eq!(reloaded.stock().stock("A"), 7);
    assert!(!reloaded.has_unrecorded_movements(&conn).unwrap());
    let docs = Arc::new(Mutex::new(reloaded));
    record_backlog_tx(&conn, &docs, true);
    assert_eq!(
        local::lock(&docs).stock().stock("A"),
        7,
        "not recorded twice"
    );
    assert_eq!(persist::outbox(&conn, &stock_id(), 0).unwrap().len(), 1);
}

/// Another writer's change to reconcile makes the deferring hook record its own sales
/// first: the reconciliation moves the mark past them, and they must not be skipped.
#[test]
fn a_deferring_hook_records_own_sales_before_reconciling_a_peer_change() {
    let conn = db();
    let (mut hook, docs) = deferring_hook(&conn, "s1.lane1");
    commit(&conn, &mut hook, |c| sell(c, "A", 10, 0), true);
    let mut lane2 = StockDoc::genesis("s1", 0, writer("s1.lane2")).unwrap();
    let change = lane2
        .apply_movements(
            &[Movement {
                sku: "A".into(),
                delta: -4,
            }],
            1,
        )
        .unwrap()
        .unwrap();
    let remote = RemoteChanges::Changes(vec![change.bytes]);
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    local::lock(&docs)
        .apply_remote(&conn, &stock_id(), 0, &remote, "now")
        .unwrap();
    hook.before_commit(&conn).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(
        ledger::level(&conn, "A").unwrap().on_hand,
        6,
        "own 10, peer -4"
    );
    assert!(ledger::verify(&conn).unwrap().is_empty());
    let guard = local::lock(&docs);
    assert_eq!(guard.stock().stock("A"), 6);
    assert_eq!(
        guard.stock().writer_totals(&writer("s1.lane1")).get("A"),
        Some(&10)
    );
    assert!(!guard.has_unrecorded_movements(&conn).unwrap());
}

/// A long backlog is split into changes of at most `MAX_KEYS_PER_CHANGE` keys each.
#[test]
fn a_long_backlog_becomes_a_few_changes_each_under_the_key_cap() {
    let conn = db();
    let (mut hook, docs) = deferring_hook(&conn, "s1.lane1");
    let skus = local::MAX_KEYS_PER_CHANGE * 2 + 5;
    commit(
        &conn,
        &mut hook,
        |c| {
            for i in 0..skus {
                sell(c, &format!("K{i}"), -1, 0);
            }
        },
        true,
    );
    record_backlog_tx(&conn, &docs, true);
    assert_eq!(persist::outbox(&conn, &stock_id(), 0).unwrap().len(), 3);
    assert_eq!(local::lock(&docs).stock().stock_levels().len(), skus);
    // Many movements over few keys: netted per key first, so one change.
    for _ in 0..3 {
        commit(
            &conn,
            &mut hook,
            |c| {
                for i in 0..local::MAX_KEYS_PER_CHANGE {
                    sell(c, &format!("K{}", i % 10), -1, 0);
                }
            },
            true,
        );
    }
    record_backlog_tx(&conn, &docs, true);
    assert_eq!(persist::outbox(&conn, &stock_id(), 0).unwrap().len(), 4);
    let guard = local::lock(&docs);
    for i in 0..10 {
        let sku = format!("K{i}");
        assert_eq!(
            guard.stock().stock(&sku),
            ledger::level(&conn, &sku).unwrap().on_hand
        );
    }
}

/// Online (the service connected and recorded the backlog), a sale's own commit records
/// its movements: one change in that commit and nothing left for the publisher, so no
/// second commit per sale. A sale rolled back leaves no change, and the reload turns the
/// in-commit recording off (deferring is the safe default). Offline again, sales wait for
/// the publish and are netted per SKU there.
#[test]
fn a_deferring_hook_records_in_the_sales_own_commit_while_online() {
    let conn = db();
    let (mut hook, docs) = deferring_hook(&conn, "s1.lane1");
    let outbox = |conn: &Connection| persist::outbox(conn, &stock_id(), 0).unwrap().len();
    local::lock(&docs).set_recording_in_commit(true);
    commit(&conn, &mut hook, |c| sell(c, "A", -1, 0), true);
    assert_eq!(outbox(&conn), 1, "the sale's commit made the change");
    assert!(!local::lock(&docs).has_unrecorded_movements(&conn).unwrap());
    assert_eq!(local::lock(&docs).stock().stock("A"), -1);

    commit(&conn, &mut hook, |c| sell(c, "C", -1, 0), false);
    assert_eq!(outbox(&conn), 1, "a rolled-back sale makes no change");
    assert_eq!(local::lock(&docs).stock().stock("C"), 0);
    assert!(!local::lock(&docs).is_recording_in_commit());

    for _ in 0..3 {
        commit(&conn, &mut hook, |c| sell(c, "B", -1, 0), true);
    }
    assert_eq!(outbox(&conn), 1, "offline: the sales wait for the publish");
    assert!(local::lock(&docs).has_unrecorded_movements(&conn).unwrap());
    record_backlog_tx(&conn, &docs, true);
    assert_eq!(outbox(&conn), 2, "one change for the three offline sales");
    assert_eq!(local::lock(&docs).stock().stock("B"), -3);
    assert_eq!(local::lock(&docs).stock().stock("A"), -1);
}

/// A backlog over `skus` SKUs of the deferring hook, several movements each (one reserved).
fn offline_backlog(conn: &Connection, hook: &mut SyncHook, skus: usize) {
    for round in 0..3 {
        commit(
            conn,
            hook,
            |c| {
                for i in 0..skus {
                    sell(c, &format!("K{i:05}"), if round == 0 { 5 } else { -1 }, 0);
                }
                sell(c, "K00003", 0, 2);
            },
            true,
        );
    }
}

/// The publisher's step for one chunk, in its own transaction; `ok: false` is a crash
/// before the commit.
fn record_chunk_tx(
    conn: &Connection,
    docs: &SharedDocs,
    pass: &local::Pass,
    chunk: &local::Chunk,
    last: bool,
    ok: bool,
) -> local::ChunkOutcome {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let outcome = record_backlog_chunk(conn, docs, pass, chunk, last).unwrap();
    conn.execute_batch(if ok { "COMMIT" } else { "ROLLBACK" })
        .unwrap();
    outcome
}

/// Every SKU's level in the document equals the ledger's: a chunk lost would leave its
/// SKUs short, a chunk recorded twice would count their movements twice.
fn assert_every_sku_once(conn: &Connection, docs: &NodeDocs, skus: usize) {
    for i in 0..skus {
        let sku = format!("K{i:05}");
        let level = ledger::level(conn, &sku).unwrap();
        assert_eq!(docs.stock().stock(&sku), level.on_hand, "{sku} on hand");
        assert_eq!(
            docs.stock().stock(&reserved_key(&sku)),
            level.reserved,
            "{sku} reserved"
        );
    }
    assert!(!docs.has_unrecorded_movements(conn).unwrap());
}

/// The publisher records a long backlog chunk by chunk (each chunk's change, outbox row and
/// progress in one commit, so it can publish one while it records the next). A crash after
/// the first chunk committed and during the second: after the restart the pass resumes at
/// the second chunk, the first is not recorded again (replaying the old plan is refused as
/// stale), and every SKU ends up in the document exactly once.
#[test]
fn a_backlog_recorded_in_chunks_loses_no_chunk_and_records_none_twice_across_crashes() {
    let conn = db();
    let skus = local::MAX_KEYS_PER_CHANGE * 2 + 5;
    let (mut hook, docs) = deferring_hook(&conn, "s1.lane1");
    offline_backlog(&conn, &mut hook, skus);
    let plan = local::plan_backlog(&conn, local::MAX_KEYS_PER_CHANGE)
        .unwrap()
        .unwrap();
    assert_eq!(plan.chunks.len(), 3);
    assert!(
        plan.chunks
            .iter()
            .all(|c| c.movements.len() <= local::MAX_KEYS_PER_CHANGE)
    );
    let mut pass = plan.pass;
    let first = record_chunk_tx(&conn, &docs, &pass, &plan.chunks[0], false, true);
    assert!(matches!(first, local::ChunkOutcome::Recorded(Some(_))));
    pass.done += plan.chunks[0].skus;
    // The second chunk's transaction dies before its commit, then the process.
    record_chunk_tx(&conn, &docs, &pass, &plan.chunks[1], false, false);
    drop(docs);

    let docs: SharedDocs = Arc::new(Mutex::new(
        NodeDocs::load(&conn, "s1", writer("s1.lane1")).unwrap(),
    ));
    assert_eq!(persist::outbox(&conn, &stock_id(), 0).unwrap().len(), 1);
    assert_eq!(
        record_chunk_tx(&conn, &docs, &plan.pass, &plan.chunks[0], false, true),
        local::ChunkOutcome::Stale,
        "the first chunk is not recorded again"
    );
    let resumed = local::plan_backlog(&conn, local::MAX_KEYS_PER_CHANGE)
        .unwrap()
        .unwrap();
    assert_eq!(resumed.pass, pass, "the pass resumes after the first chunk");
    assert_eq!(resumed.chunks.len(), 2);
    let mut at = resumed.pass;
    for (i, chunk) in resumed.chunks.iter().enumerate() {
        let outcome = record_chunk_tx(&conn, &docs, &at, chunk, i == 1, true);
        assert!(matches!(outcome, local::ChunkOutcome::Recorded(Some(_))));
        at.done += chunk.skus;
    }
    assert_eq!(persist::outbox(&conn, &stock_id(), 0).unwrap().len(), 3);
    assert!(local::plan_backlog(&conn, 8).unwrap().is_none());
    assert_every_sku_once(&conn, &local::lock(&docs), skus);
    let reloaded = NodeDocs::load(&conn, "s1", writer("s1.lane1")).unwrap();
    assert_every_sku_once(&conn, &reloaded, skus);
}

/// A sale's commit that must record own movements (another writer's change to reconcile)
/// while the publisher is between two chunks finishes the pass itself; the publisher's next
/// chunk is then refused as stale, so no SKU is counted twice, and sales made after the
/// plan are recorded too.
#[test]
fn a_commit_that_records_between_two_chunks_finishes_the_pass_and_the_publisher_stops() {
    let conn = db();
    let skus = local::MAX_KEYS_PER_CHANGE + 7;
    let (mut hook, docs) = deferring_hook(&conn, "s1.lane1");
    offline_backlog(&conn, &mut hook, skus);
    let plan = local::plan_backlog(&conn, local::MAX_KEYS_PER_CHANGE)
        .unwrap()
        .unwrap();
    assert_eq!(plan.chunks.len(), 2);
    record_chunk_tx(&conn, &docs, &plan.pass, &plan.chunks[0], false, true);
    local::lock(&docs).set_recording_in_commit(true);
    commit(&conn, &mut hook, |c| sell(c, "K00001", -1, 0), true);
    let mut pass = plan.pass;
    pass.done += plan.chunks[0].skus;
    assert_eq!(
        record_chunk_tx(&conn, &docs, &pass, &plan.chunks[1], true, true),
        local::ChunkOutcome::Stale
    );
    assert_every_sku_once(&conn, &local::lock(&docs), skus);
    assert!(local::plan_backlog(&conn, 8).unwrap().is_none());
}
