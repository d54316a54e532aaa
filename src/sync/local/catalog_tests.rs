//! Tests of `catalog.rs`: HQ's catalog document projected into the store's rows.

use super::*;
use crate::crdt::catalog::CatalogItem;

fn item(i: usize, price: i64) -> CatalogItem {
    CatalogItem {
        sku: format!("SKU{i:05}"),
        name: format!("Item {i}"),
        price_minor: price,
        currency: "EUR".to_owned(),
        tax_class: "standard".to_owned(),
        gtins: Vec::new(),
        epc_patterns: Vec::new(),
        variable_measure: false,
    }
}

fn lane() -> WriterId {
    WriterId::new("s1.lane1").unwrap()
}

/// HQ's catalog document, its genesis applied to `node` so later changes are deltas.
fn hq_and_node(conn: &Connection) -> (CatalogDoc, NodeDocs) {
    let hq = CatalogDoc::genesis(0, WriterId::hq()).unwrap();
    let mut node = NodeDocs::load(conn, "s1", lane()).unwrap();
    let genesis = hq.core().changes_since(&[]);
    node.apply_remote(
        conn,
        &catalog_id().unwrap(),
        0,
        &RemoteChanges::Changes(genesis),
        "t0",
    )
    .unwrap();
    (hq, node)
}

/// HQ publishes `items`; the change as the node receives it.
fn publish(hq: &mut CatalogDoc, node: &NodeDocs, items: &[CatalogItem]) -> RemoteChanges {
    let before = node.catalog_heads();
    hq.publish(items, &[], 1).unwrap();
    RemoteChanges::Changes(hq.core().changes_since(&before))
}

/// What the sync service does with a change: derive it off the writer, commit it, queue
/// its rows.
fn service_apply(
    conn: &Connection,
    node: &mut NodeDocs,
    work: &mut CatalogWork,
    changes: RemoteChanges,
    now: &str,
) -> ApplyOutcome {
    let mut doc = work
        .take_doc()
        .unwrap_or_else(|| read_catalog(conn, lane()).unwrap());
    let logged = persist::logged_changes(conn, &catalog_id().unwrap(), 0).unwrap();
    let mut delta = derive_change(&mut doc, changes, logged).unwrap();
    let rows = delta.take_rows();
    let follow = work.rows_follow(&rows);
    node.commit_catalog_change(conn, &delta, follow, now)
        .unwrap();
    work.queue(rows);
    work.keep(doc);
    delta.outcome
}

/// One projection job of the service; returns the rows still queued.
fn service_job(conn: &Connection, work: &mut CatalogWork, limit: usize, now: &str) -> usize {
    let (batch, last) = work.next_batch(limit);
    let written = write_items(conn, &batch, last, now, None).unwrap();
    work.written(&batch, written);
    work.pending()
}

fn rows_written_at(conn: &Connection, now: &str) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM item WHERE updated_at = ?1",
        [now],
        |r| r.get(0),
    )
    .unwrap()
}

fn price(conn: &Connection, sku: &str) -> Option<i64> {
    catalog::get(conn, sku).unwrap().map(|i| i.price_minor)
}

#[test]
fn a_price_change_writes_only_the_changed_item() {
    let conn = crate::store::testing::memory_db();
    let (mut hq, mut node) = hq_and_node(&conn);
    let all: Vec<_> = (0..40).map(|i| item(i, 100)).collect();
    let changes = publish(&mut hq, &node, &all);
    node.apply_remote(&conn, &catalog_id().unwrap(), 0, &changes, "t1")
        .unwrap();
    assert_eq!(rows_written_at(&conn, "t1"), 40);
    let mut work = CatalogWork::default();
    let changes = publish(&mut hq, &node, &[item(7, 120)]);
    service_apply(&conn, &mut node, &mut work, changes, "t2");
    assert_eq!(work.pending(), 1);
    assert_eq!(service_job(&conn, &mut work, CATALOG_BATCH, "t2"), 0);
    assert_eq!(
        rows_written_at(&conn, "t2"),
        1,
        "only SKU00007 is rewritten"
    );
    assert_eq!(price(&conn, "SKU00007"), Some(120));
    assert!(!projection_pending(&conn).unwrap());
}

#[test]
fn deriving_a_change_leaves_sqlite_alone_until_it_is_committed() {
    let conn = crate::store::testing::memory_db();
    let (mut hq, node) = hq_and_node(&conn);
    let changes = publish(&mut hq, &node, &[item(1, 100), item(2, 100)]);
    let mut doc = read_catalog(&conn, lane()).unwrap();
    let mut delta = derive_change(&mut doc, changes.clone(), 0).unwrap();
    assert!(delta.changed());
    assert_eq!(delta.rows(), 2);
    let rows = delta.take_rows();
    assert_eq!(rows[0].1.as_ref().map(|i| i.price_minor), Some(100));
    // Nothing reached SQLite: the stored document and the heads are as before.
    assert_eq!(price(&conn, "SKU00001"), None);
    assert_eq!(
        read_catalog(&conn, lane()).unwrap().core().heads(),
        node.catalog_heads()
    );
    // The same message again is news for nothing: no log entry, no row.
    let again = derive_change(&mut doc, changes, 0).unwrap();
    assert!(!again.changed());
    assert_eq!((again.outcome.duplicates, again.rows()), (1, 0));
}

/// A stop (crash, kill) between the job that logged a large change and the jobs that
/// write its rows: the restart writes exactly the rows that were not written, and a
/// row of a newer change that superseded a queued one is the one that ends up there.
#[test]
fn a_restart_mid_projection_writes_only_what_was_not_written() {
    let conn = crate::store::testing::memory_db();
    let (mut hq, mut node) = hq_and_node(&conn);
    let count = CATALOG_BATCH * 4 + 10;
    let mut work = CatalogWork::default();
    let all: Vec<_> = (0..count).map(|i| item(i, 100)).collect();
    let changes = publish(&mut hq, &node, &all);
    service_apply(&conn, &mut node, &mut work, changes, "t1");
    assert_eq!(
        rows_written_at(&conn, "t1"),
        0,
        "rows come in their own jobs"
    );
    assert!(projection_pending(&conn).unwrap());
    service_job(&conn, &mut work, CATALOG_BATCH, "t1");
    service_job(&conn, &mut work, CATALOG_BATCH, "t1");
    assert_eq!(rows_written_at(&conn, "t1"), 2 * CATALOG_BATCH as i64);
    // HQ changes an item already written and one still queued before the stop.
    let changes = publish(&mut hq, &node, &[item(0, 105), item(count - 1, 107)]);
    service_apply(&conn, &mut node, &mut work, changes, "t2");
    service_job(&conn, &mut work, 1, "t2");
    assert_eq!(price(&conn, "SKU00000"), Some(105));
    let left = work.pending();
    assert_eq!(left, count - 2 * CATALOG_BATCH);
    drop(work);
    drop(node);

    // The restart: the flag says a projection was interrupted.
    let mut node = NodeDocs::load(&conn, "s1", lane()).unwrap();
    assert_eq!(node.catalog_heads(), hq.core().heads());
    assert!(projection_pending(&conn).unwrap());
    let doc = read_catalog(&conn, lane()).unwrap();
    let rows = unwritten_items(&conn, &doc).unwrap();
    assert_eq!(rows.len(), left, "exactly the rows not written");
    let mut work = CatalogWork::default();
    work.queue(rows);
    let mut jobs = 0;
    while service_job(&conn, &mut work, CATALOG_BATCH, "t3") > 0 {
        jobs += 1;
        assert!(jobs < 20, "the projection must finish");
    }
    assert_eq!(rows_written_at(&conn, "t3"), left as i64);
    assert!(!projection_pending(&conn).unwrap());
    for (i, want) in [(0, 105), (1, 100), (count / 2, 100), (count - 1, 107)] {
        assert_eq!(price(&conn, &format!("SKU{i:05}")), Some(want), "item {i}");
    }
    assert_eq!(catalog::count(&conn).unwrap(), count as u64);
    // Once done, a further restart finds nothing to write.
    assert!(unwritten_items(&conn, &doc).unwrap().is_empty());
    let changes = publish(&mut hq, &node, &[item(3, 130)]);
    let mut work = CatalogWork::default();
    service_apply(&conn, &mut node, &mut work, changes, "t4");
    assert_eq!(service_job(&conn, &mut work, CATALOG_BATCH, "t4"), 0);
    assert_eq!(rows_written_at(&conn, "t4"), 1);
}

#[test]
fn a_failed_commit_of_a_change_queues_nothing_and_the_next_one_reads_the_stored_document() {
    let conn = crate::store::testing::memory_db();
    let (mut hq, mut node) = hq_and_node(&conn);
    let first = publish(&mut hq, &node, &[item(1, 100)]);
    // Derived, but its commit never happens (the write job failed): the service drops
    // the document and the rows.
    let mut doc = read_catalog(&conn, lane()).unwrap();
    let mut delta = derive_change(&mut doc, first.clone(), 0).unwrap();
    assert_eq!(delta.take_rows().len(), 1);
    drop(doc);
    assert_eq!(
        node.catalog_heads(),
        read_catalog(&conn, lane()).unwrap().core().heads()
    );
    // HQ re-sends it (the node's heads still lack it) with the next change.
    let before = node.catalog_heads();
    hq.publish(&[item(2, 100)], &[], 2).unwrap();
    let both = RemoteChanges::Changes(hq.core().changes_since(&before));
    let mut work = CatalogWork::default();
    let outcome = service_apply(&conn, &mut node, &mut work, both, "t1");
    assert_eq!(outcome.applied, 2);
    assert_eq!(service_job(&conn, &mut work, CATALOG_BATCH, "t1"), 0);
    assert_eq!(
        (price(&conn, "SKU00001"), price(&conn, "SKU00002")),
        (Some(100), Some(100))
    );
    assert_eq!(node.catalog_heads(), hq.core().heads());
}

#[test]
fn a_newer_row_replaces_a_queued_one_and_a_withdrawn_item_is_not_written() {
    let mut work = CatalogWork::default();
    let row = |sku: &str, price: i64| {
        let mut i = crate::store::catalog::Item {
            sku: sku.into(),
            name: "n".into(),
            price_minor: price,
            currency: "EUR".into(),
            tax_class: "standard".into(),
            variable_measure: false,
            gtins: Vec::new(),
            epc_patterns: Vec::new(),
        };
        i = i.validated(|_| true).unwrap();
        (sku.to_owned(), Some(i))
    };
    work.queue(vec![row("A", 1), row("B", 1)]);
    assert!(work.rows_follow(&[("A".into(), None)]), "B still follows");
    assert!(!work.rows_follow(&[("A".into(), None), ("B".into(), None)]));
    work.queue(vec![row("A", 2), ("B".into(), None)]);
    let (batch, last) = work.next_batch(10);
    assert!(last);
    assert_eq!(batch.len(), 1);
    assert_eq!((batch[0].sku.as_str(), batch[0].price_minor), ("A", 2));
}

#[test]
fn the_heads_answer_without_the_document_and_survive_a_restart() {
    let conn = crate::store::testing::memory_db();
    let (mut hq, mut node) = hq_and_node(&conn);
    let mut work = CatalogWork::default();
    let all: Vec<_> = (0..40).map(|i| item(i, 100)).collect();
    let changes = publish(&mut hq, &node, &all);
    service_apply(&conn, &mut node, &mut work, changes, "t1");
    assert!(work.take_idle().is_none(), "rows still queued");
    while service_job(&conn, &mut work, CATALOG_BATCH, "t1") > 0 {}
    assert!(work.take_idle().is_some(), "projected: nothing needs it");
    assert!(!work.is_loaded());
    let id = catalog_id().unwrap();
    assert_eq!(node.heads_of(&id), Some(hq.core().heads()));
    assert_eq!(node.epoch_of(&id), Some(0));
    assert!(!node.lacks_any(&id, &hq.core().heads()));
    let older = hq.core().heads();
    hq.publish(&[item(3, 130)], &[], 2).unwrap();
    assert!(
        node.lacks_any(&id, &hq.core().heads()),
        "HQ's new heads are news"
    );
    assert!(!node.lacks_any(&id, &older));
    let changes = RemoteChanges::Changes(hq.core().changes_since(&older));
    service_apply(&conn, &mut node, &mut work, changes.clone(), "t2");
    while service_job(&conn, &mut work, CATALOG_BATCH, "t2") > 0 {}
    assert_eq!(rows_written_at(&conn, "t2"), 1);
    assert_eq!(node.heads_of(&id), Some(hq.core().heads()));
    let again = service_apply(&conn, &mut node, &mut work, changes, "t3");
    assert_eq!((again.applied, again.duplicates), (0, 1));
    assert_eq!(work.pending(), 0);
    let node = NodeDocs::load(&conn, "s1", lane()).unwrap();
    assert_eq!(node.heads_of(&id), Some(hq.core().heads()));
}

#[test]
fn a_long_log_is_replaced_by_the_save_made_off_the_writer() {
    let conn = crate::store::testing::memory_db();
    let (mut hq, mut node) = hq_and_node(&conn);
    let id = catalog_id().unwrap();
    let mut work = CatalogWork::default();
    let changes = publish(&mut hq, &node, &[item(1, 100)]);
    let mut doc = read_catalog(&conn, lane()).unwrap();
    let delta = derive_change(&mut doc, changes, persist::SAVE_EVERY_CHANGES - 1).unwrap();
    node.commit_catalog_change(&conn, &delta, false, "t1")
        .unwrap();
    assert_eq!(persist::logged_changes(&conn, &id, 0).unwrap(), 0);
    assert_eq!(
        read_catalog(&conn, lane()).unwrap().core().heads(),
        hq.core().heads()
    );
    work.keep(doc);
    let changes = publish(&mut hq, &node, &[item(2, 100)]);
    service_apply(&conn, &mut node, &mut work, changes, "t2");
    assert_eq!(persist::logged_changes(&conn, &id, 0).unwrap(), 1);
    assert_eq!(
        read_catalog(&conn, lane()).unwrap().core().heads(),
        hq.core().heads()
    );
}

/// Removes the catalog document's save and log, leaving only what `sync_doc_hash` keeps: a
/// load that still knows HQ's heads did not build the document.
fn forget_catalog_document(conn: &Connection) {
    let key = persist::doc_key(&catalog_id().unwrap());
    conn.execute("DELETE FROM sync_change WHERE doc_key = ?1", [&key])
        .unwrap();
    conn.execute("DELETE FROM sync_doc WHERE doc_key = ?1", [&key])
        .unwrap();
}

#[test]
fn a_start_reads_the_kept_heads_and_hashes_not_the_document() {
    let conn = crate::store::testing::memory_db();
    let (mut hq, mut node) = hq_and_node(&conn);
    let mut work = CatalogWork::default();
    let all: Vec<_> = (0..40).map(|i| item(i, 100)).collect();
    let first = publish(&mut hq, &node, &all);
    service_apply(&conn, &mut node, &mut work, first, "t1");
    let older = hq.core().heads();
    let second = publish(&mut hq, &node, &[item(3, 130)]);
    service_apply(&conn, &mut node, &mut work, second, "t2");
    forget_catalog_document(&conn);
    let id = catalog_id().unwrap();
    let node = NodeDocs::load(&conn, "s1", lane()).unwrap();
    assert_eq!(node.heads_of(&id), Some(hq.core().heads()));
    assert!(!node.lacks_any(&id, &older), "an older head is known");
    assert!(!node.lacks_any(&id, &hq.core().heads()));
    hq.publish(&[item(4, 140)], &[], 3).unwrap();
    assert!(node.lacks_any(&id, &hq.core().heads()), "news is news");
}

#[test]
fn a_database_from_before_the_kept_hashes_gets_them_from_the_document_once() {
    let conn = crate::store::testing::memory_db();
    let (mut hq, mut node) = hq_and_node(&conn);
    let mut work = CatalogWork::default();
    let changes = publish(&mut hq, &node, &[item(1, 100), item(2, 200)]);
    service_apply(&conn, &mut node, &mut work, changes, "t1");
    conn.execute("DELETE FROM sync_doc_hash", []).unwrap();
    let id = catalog_id().unwrap();
    let mut node = NodeDocs::load(&conn, "s1", lane()).unwrap();
    assert_eq!(
        node.heads_of(&id),
        Some(hq.core().heads()),
        "from the document"
    );
    node.store_catalog_hashes(&conn).unwrap();
    forget_catalog_document(&conn);
    let node = NodeDocs::load(&conn, "s1", lane()).unwrap();
    assert_eq!(
        node.heads_of(&id),
        Some(hq.core().heads()),
        "from the table"
    );
    let genesis = CatalogDoc::genesis(0, WriterId::hq()).unwrap();
    assert!(!node.lacks_any(&id, &genesis.core().heads()));
}
