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
