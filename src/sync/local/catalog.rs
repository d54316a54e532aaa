//! HQ's catalog projected into the store's SQLite `item` tables, incrementally.
//!
//! A catalog change from HQ used to upsert every item inside the write transaction it arrived
//! in: with 50,000 items every till waited seconds behind it. Now only the SKUs the change
//! touched (an automerge diff of the heads before and after) are queued, and they are written
//! in small batches, each its own short write job, so sales interleave with a large
//! publication.
//!
//! Crash safety: the `sync_state` flag [`KEY_CATALOG_PENDING`] is set in the transaction
//! that logs the change and cleared in the one that writes the last queued item. A node
//! that stops in between finds the flag at load and projects every item again (upserts
//! are idempotent), so nothing HQ published is lost.

use std::collections::BTreeSet;

use automerge::{ChangeHash, Patch, PatchAction, Prop};
use rusqlite::Connection;

use super::{LocalError, NodeDocs};
use crate::crdt::catalog::CatalogDoc;
use crate::crdt::doc::KEY_ITEMS;
use crate::store::catalog::{self, Item};
use crate::sync::persist;

/// `sync_state` key: 1 while catalog items may be missing from SQLite.
pub const KEY_CATALOG_PENDING: &str = "catalog_projection_pending";

/// Items written per write job: small enough that a sale queued behind one waits a few
/// milliseconds, large enough that a 50,000-item catalog needs only a few hundred jobs.
pub const CATALOG_BATCH: usize = 250;

impl NodeDocs {
    /// Queues the SKUs that changed between `before` and the current heads, records that a
    /// projection is pending, and writes the first batch (all of a small change).
    pub(super) fn queue_catalog_changes(
        &mut self,
        conn: &Connection,
        before: &[ChangeHash],
        now: &str,
    ) -> Result<(), LocalError> {
        let after = self.catalog.core().heads();
        let doc = self.catalog.core().automerge();
        let changed = changed_skus(&doc.diff(before, &after));
        // Price lists and promotions: kept for the till, which prices offline with them
        // (one row, rewritten only when the rules differ).
        crate::store::pricing::save_rules(conn, &self.catalog.pricing_rules(), now)?;
        let loyalty = crate::crdt::loyalty::read_loyalty_rules(self.catalog.core());
        crate::store::loyalty::save_rules(conn, loyalty.as_ref(), now)?;
        self.save_coupon_definitions(conn, now)?;
        if changed.is_empty() {
            return Ok(());
        }
        self.catalog_pending.extend(changed);
        persist::state_set(conn, KEY_CATALOG_PENDING, 1)?;
        self.project_catalog_batch(conn, CATALOG_BATCH, now)?;
        Ok(())
    }

    /// Writes up to `limit` queued items into SQLite; clears the pending flag with the last
    /// one. Returns how many items are still queued.
    pub fn project_catalog_batch(
        &mut self,
        conn: &Connection,
        limit: usize,
        now: &str,
    ) -> Result<usize, LocalError> {
        if self.catalog_pending.is_empty() {
            return Ok(0);
        }
        let batch: Vec<String> = self
            .catalog_pending
            .iter()
            .take(limit.max(1))
            .cloned()
            .collect();
        for sku in &batch {
            write_item(conn, &self.catalog, sku, now)?;
        }
        // Removed from the queue only once written: a failed write leaves them queued, and
        // the rollback reload re-queues everything from the flag anyway.
        for sku in &batch {
            self.catalog_pending.remove(sku);
        }
        if self.catalog_pending.is_empty() {
            persist::state_set(conn, KEY_CATALOG_PENDING, 0)?;
        }
        Ok(self.catalog_pending.len())
    }

    /// Items of HQ's catalog not yet written to SQLite.
    pub fn catalog_pending(&self) -> usize {
        self.catalog_pending.len()
    }
}

/// At load: every SKU of the catalog when a projection was interrupted, else none.
pub(super) fn pending_at_load(
    conn: &Connection,
    catalog: &CatalogDoc,
) -> Result<BTreeSet<String>, LocalError> {
    if persist::state_get(conn, KEY_CATALOG_PENDING)?.unwrap_or(0) == 0 {
        return Ok(BTreeSet::new());
    }
    Ok(catalog.skus().into_iter().collect())
}

/// The SKUs a diff of the catalog document touches: a new or removed item (a key of the
/// items map) or a field of one (a patch whose path passes through `items/{sku}`).
fn changed_skus(patches: &[Patch]) -> BTreeSet<String> {
    let mut skus = BTreeSet::new();
    for patch in patches {
        let in_items = |(_, prop): &(automerge::ObjId, Prop)| matches!(prop, Prop::Map(key) if key == KEY_ITEMS);
        match patch.path.as_slice() {
            [first] if in_items(first) => match &patch.action {
                PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
                    skus.insert(key.clone());
                }
                _ => {}
            },
            [first, (_, Prop::Map(sku)), ..] if in_items(first) => {
                skus.insert(sku.clone());
            }
            _ => {}
        }
    }
    skus
}

/// Upserts one published item. HQ's catalog is authoritative; an item this store cannot
/// take (bad GTIN) or one HQ removed is skipped rather than blocking the rest (removals were
/// never projected: sales history refers to the item).
fn write_item(conn: &Connection, doc: &CatalogDoc, sku: &str, now: &str) -> Result<(), LocalError> {
    let Some(published) = doc.item(sku) else {
        return Ok(());
    };
    let item = Item {
        sku: published.sku,
        name: published.name,
        price_minor: published.price_minor,
        currency: published.currency,
        tax_class: published.tax_class,
        variable_measure: published.variable_measure,
        gtins: published.gtins,
        epc_patterns: published.epc_patterns,
    };
    match item.validated(|_| true) {
        Ok(item) => catalog::upsert(conn, &item, now)?,
        Err(e) => tracing::warn!(error = %e, sku, "catalog item from HQ skipped"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::catalog::{CATALOG_STORE, CatalogItem};
    use crate::crdt::doc::{DocId, DocKind, WriterId};
    use crate::sync::local::RemoteChanges;

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

    fn catalog_id() -> DocId {
        DocId::new(CATALOG_STORE, DocKind::Catalog).unwrap()
    }

    /// HQ's catalog document, its genesis applied to `node` so later changes are deltas.
    fn hq_and_node(conn: &Connection) -> (CatalogDoc, NodeDocs) {
        let hq = CatalogDoc::genesis(0, WriterId::hq()).unwrap();
        let mut node = NodeDocs::load(conn, "s1", WriterId::new("s1.lane1").unwrap()).unwrap();
        let genesis = hq.core().changes_since(&[]);
        node.apply_remote(
            conn,
            &catalog_id(),
            0,
            &RemoteChanges::Changes(genesis),
            "t0",
        )
        .unwrap();
        (hq, node)
    }

    fn publish(
        hq: &mut CatalogDoc,
        node: &mut NodeDocs,
        conn: &Connection,
        items: &[CatalogItem],
        now: &str,
    ) {
        let before = node.catalog().core().heads();
        hq.publish(items, &[], 1).unwrap();
        let changes = hq.core().changes_since(&before);
        node.apply_remote(
            conn,
            &catalog_id(),
            0,
            &RemoteChanges::Changes(changes),
            now,
        )
        .unwrap();
    }

    fn rows_written_at(conn: &Connection, now: &str) -> i64 {
        conn.query_row(
            "SELECT count(*) FROM item WHERE updated_at = ?1",
            [now],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_price_change_writes_only_the_changed_item() {
        let conn = crate::store::testing::memory_db();
        let (mut hq, mut node) = hq_and_node(&conn);
        let all: Vec<_> = (0..40).map(|i| item(i, 100)).collect();
        publish(&mut hq, &mut node, &conn, &all, "t1");
        assert_eq!(rows_written_at(&conn, "t1"), 40);
        publish(&mut hq, &mut node, &conn, &[item(7, 120)], "t2");
        assert_eq!(
            rows_written_at(&conn, "t2"),
            1,
            "only SKU00007 is rewritten"
        );
        let price: i64 = conn
            .query_row(
                "SELECT price_minor FROM item WHERE sku = 'SKU00007'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(price, 120);
        assert_eq!(node.catalog_pending(), 0);
        assert_eq!(
            persist::state_get(&conn, KEY_CATALOG_PENDING).unwrap(),
            Some(0)
        );
    }

    #[test]
    fn a_large_change_is_written_in_batches_and_survives_a_restart() {
        let conn = crate::store::testing::memory_db();
        let (mut hq, mut node) = hq_and_node(&conn);
        let count = CATALOG_BATCH * 2 + 10;
        let all: Vec<_> = (0..count).map(|i| item(i, 100)).collect();
        publish(&mut hq, &mut node, &conn, &all, "t1");
        // The arriving transaction writes one batch only; the rest waits for its own jobs.
        assert_eq!(rows_written_at(&conn, "t1"), CATALOG_BATCH as i64);
        assert_eq!(node.catalog_pending(), count - CATALOG_BATCH);
        // A restart here (the queue is memory) re-queues the whole catalog from the flag.
        let mut node = NodeDocs::load(&conn, "s1", WriterId::new("s1.lane1").unwrap()).unwrap();
        assert_eq!(node.catalog_pending(), count);
        let mut rounds = 0;
        while node
            .project_catalog_batch(&conn, CATALOG_BATCH, "t2")
            .unwrap()
            > 0
        {
            rounds += 1;
            assert!(rounds < 10, "the projection must finish");
        }
        let items: i64 = conn
            .query_row("SELECT count(*) FROM item", [], |r| r.get(0))
            .unwrap();
        assert_eq!(items, count as i64);
        assert_eq!(
            persist::state_get(&conn, KEY_CATALOG_PENDING).unwrap(),
            Some(0)
        );
    }
}
