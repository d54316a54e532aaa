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
//!
//! Memory: the document of a 50,000-item catalog holds tens of MiB of automerge op set, and
//! a node needs it only to apply HQ's changes and to project them. Between those it keeps
//! [`CatalogState`]: the heads and the hashes of the document's changes, which answer all
//! the sync service asks (which heads to publish, whether HQ's heads are news). The
//! document is read from SQLite (its save and change log, as at start) when HQ sends a
//! change, and dropped once its items are projected and HQ has been quiet for a while
//! ([`NodeDocs::take_idle_catalog`]); then the freed heap goes back to the system.

use std::collections::{BTreeSet, HashSet};

use automerge::{ChangeHash, Patch, PatchAction, Prop};
use rusqlite::Connection;

use super::{LocalError, NodeDocs, RemoteChanges};
use crate::crdt::catalog::{CATALOG_STORE, CatalogDoc};
use crate::crdt::doc::{ApplyOutcome, DocId, DocKind, KEY_ITEMS, WriterId};
use crate::store::catalog::{self, Item};
use crate::sync::persist;

/// `sync_state` key: 1 while catalog items may be missing from SQLite.
pub const KEY_CATALOG_PENDING: &str = "catalog_projection_pending";

/// Items written per write job: small enough that a sale queued behind one waits a few
/// milliseconds, large enough that a 50,000-item catalog needs only a few hundred jobs.
pub const CATALOG_BATCH: usize = 250;

/// HQ's catalog on a node: what stays in memory, and the document while it is needed.
#[derive(Debug)]
pub(super) struct CatalogState {
    id: DocId,
    /// The document's heads, sorted (as `SyncDoc::heads`).
    heads: Vec<ChangeHash>,
    /// Every change the document holds (genesis included): HQ's heads are news when one
    /// of them is not here. A few hundred hashes for years of publications.
    known: HashSet<ChangeHash>,
    /// The document, from a change of HQ until its projection is done.
    doc: Option<CatalogDoc>,
}

impl CatalogState {
    /// Reads the document from SQLite (the genesis when HQ never sent one) and keeps what
    /// stays in memory, the document only when a projection was interrupted; returns the
    /// SKUs to project again then.
    pub(super) fn load(
        conn: &Connection,
        writer: WriterId,
    ) -> Result<(Self, Option<Vec<String>>), LocalError> {
        let doc = read_catalog(conn, writer)?;
        let pending = pending_at_load(conn, &doc)?;
        let mut state = Self {
            id: doc.core().id().clone(),
            heads: Vec::new(),
            known: HashSet::new(),
            doc: None,
        };
        remember(&mut state.heads, &mut state.known, &doc, &[]);
        // An interrupted projection needs the document until it is done.
        if pending.is_some() {
            state.doc = Some(doc);
        }
        Ok((state, pending))
    }

    pub(super) fn id(&self) -> &DocId {
        &self.id
    }

    pub(super) fn heads(&self) -> &[ChangeHash] {
        &self.heads
    }

    /// Whether every hash of `heads` is a change of the document.
    pub(super) fn knows_all(&self, heads: &[ChangeHash]) -> bool {
        heads.iter().all(|h| self.known.contains(h))
    }

    pub(super) fn is_loaded(&self) -> bool {
        self.doc.is_some()
    }
}

/// Notes the changes `doc` holds beyond `before` and its new heads.
fn remember(
    heads: &mut Vec<ChangeHash>,
    known: &mut HashSet<ChangeHash>,
    doc: &CatalogDoc,
    before: &[ChangeHash],
) {
    let core = doc.core();
    known.extend(
        core.automerge()
            .get_changes_meta(before)
            .into_iter()
            .map(|meta| meta.hash),
    );
    *heads = core.heads();
}

/// HQ's catalog document as stored in SQLite (its genesis when nothing is stored).
pub fn read_catalog(conn: &Connection, writer: WriterId) -> Result<CatalogDoc, LocalError> {
    let id = DocId::new(CATALOG_STORE, DocKind::Catalog)?;
    Ok(CatalogDoc::from_core(persist::load_or_genesis(
        conn, &id, 0, writer,
    )?)?)
}

impl NodeDocs {
    /// Applies HQ's changes of the catalog (loading the document first if it is not in
    /// memory), logs them and queues the items they touched.
    pub(super) fn apply_catalog(
        &mut self,
        conn: &Connection,
        changes: &RemoteChanges,
        now: &str,
    ) -> Result<ApplyOutcome, LocalError> {
        if self.catalog.doc.is_none() {
            // The service reads it on a reader connection beforehand
            // ([`Self::install_catalog`]); this is the fallback, on the writer.
            self.catalog.doc = Some(read_catalog(conn, self.writer.clone())?);
        }
        let Some(doc) = self.catalog.doc.as_mut() else {
            return Ok(ApplyOutcome::default());
        };
        let core = doc.core_mut();
        let before = core.heads();
        let (outcome, bytes, bundle): (ApplyOutcome, Vec<&[u8]>, bool) = match changes {
            RemoteChanges::Changes(list) => (
                core.apply_changes(list)?,
                list.iter().map(Vec::as_slice).collect(),
                false,
            ),
            RemoteChanges::Bundle(b) => (core.apply_bundle(b)?, vec![b.as_slice()], true),
        };
        if outcome.applied + outcome.queued > 0 {
            for b in bytes {
                persist::persist_change(conn, core, b, bundle, now)?;
            }
            self.queue_catalog_changes(conn, &before, now)?;
        }
        Ok(outcome)
    }

    /// Takes a catalog document the service read on a reader connection, unless one is
    /// loaded already or the stored document moved on meanwhile (its heads differ from the
    /// ones in memory). A refused document comes back, for the caller to drop outside the
    /// lock.
    pub fn install_catalog(&mut self, doc: CatalogDoc) -> Option<CatalogDoc> {
        if self.catalog.doc.is_some() || doc.core().heads() != self.catalog.heads {
            return Some(doc);
        }
        self.catalog.doc = Some(doc);
        None
    }

    /// Whether the catalog document is in memory.
    pub fn catalog_loaded(&self) -> bool {
        self.catalog.is_loaded()
    }

    /// Takes the catalog document out once nothing waits for it (every queued item
    /// projected), for the caller to drop outside the lock and give the freed heap back
    /// ([`crate::memory::release_freed`]). The next change of HQ reads it again.
    pub fn take_idle_catalog(&mut self) -> Option<CatalogDoc> {
        if !self.catalog_pending.is_empty() {
            return None;
        }
        self.catalog.doc.take()
    }

    /// The catalog's heads (the document need not be in memory).
    pub fn catalog_heads(&self) -> Vec<ChangeHash> {
        self.catalog.heads.clone()
    }

    /// Queues the SKUs that changed between `before` and the current heads, records that a
    /// projection is pending, and writes the first batch (all of a small change).
    fn queue_catalog_changes(
        &mut self,
        conn: &Connection,
        before: &[ChangeHash],
        now: &str,
    ) -> Result<(), LocalError> {
        let changed = {
            let CatalogState {
                heads, known, doc, ..
            } = &mut self.catalog;
            let Some(catalog) = doc.as_ref() else {
                return Ok(());
            };
            let core = catalog.core();
            let after = core.heads();
            let changed = changed_skus(&core.automerge().diff(before, &after));
            // Price lists and promotions: kept for the till, which prices offline with them
            // (one row, rewritten only when the rules differ).
            crate::store::pricing::save_rules(conn, &catalog.pricing_rules(), now)?;
            let loyalty = crate::crdt::loyalty::read_loyalty_rules(core);
            crate::store::loyalty::save_rules(conn, loyalty.as_ref(), now)?;
            super::coupons::save_coupon_definitions(conn, core, now)?;
            remember(heads, known, catalog, before);
            changed
        };
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
        if self.catalog.doc.is_none() {
            self.catalog.doc = Some(read_catalog(conn, self.writer.clone())?);
        }
        let Some(doc) = self.catalog.doc.as_ref() else {
            return Ok(self.catalog_pending.len());
        };
        let batch: Vec<String> = self
            .catalog_pending
            .iter()
            .take(limit.max(1))
            .cloned()
            .collect();
        for sku in &batch {
            write_item(conn, doc, sku, now)?;
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

/// At load: every SKU of the catalog when a projection was interrupted, else `None`.
fn pending_at_load(
    conn: &Connection,
    catalog: &CatalogDoc,
) -> Result<Option<Vec<String>>, LocalError> {
    if persist::state_get(conn, KEY_CATALOG_PENDING)?.unwrap_or(0) == 0 {
        return Ok(None);
    }
    Ok(Some(catalog.skus()))
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
        let before = node.catalog_heads();
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

    #[test]
    fn the_document_leaves_memory_after_its_projection_and_comes_back_for_the_next_change() {
        let conn = crate::store::testing::memory_db();
        let (mut hq, mut node) = hq_and_node(&conn);
        let all: Vec<_> = (0..40).map(|i| item(i, 100)).collect();
        publish(&mut hq, &mut node, &conn, &all, "t1");
        assert!(node.catalog_loaded());
        assert!(
            node.take_idle_catalog().is_some(),
            "projected: nothing needs it"
        );
        assert!(!node.catalog_loaded());
        // What the service asks between HQ's changes is answered without the document.
        let id = catalog_id();
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
        // HQ's next change reads the document from SQLite: applied once, only its item written.
        let changes = hq.core().changes_since(&older);
        node.apply_remote(
            &conn,
            &id,
            0,
            &RemoteChanges::Changes(changes.clone()),
            "t2",
        )
        .unwrap();
        assert_eq!(rows_written_at(&conn, "t2"), 1);
        assert_eq!(node.heads_of(&id), Some(hq.core().heads()));
        let again = node
            .apply_remote(&conn, &id, 0, &RemoteChanges::Changes(changes), "t3")
            .unwrap();
        assert_eq!((again.applied, again.duplicates), (0, 1));
        assert_eq!(rows_written_at(&conn, "t3"), 0);
        // And after a restart (the heads come from the stored document).
        drop(node.take_idle_catalog());
        let node = NodeDocs::load(&conn, "s1", WriterId::new("s1.lane1").unwrap()).unwrap();
        assert!(!node.catalog_loaded());
        assert_eq!(node.heads_of(&id), Some(hq.core().heads()));
    }

    #[test]
    fn a_catalog_read_ahead_is_taken_only_when_it_is_the_stored_one() {
        let conn = crate::store::testing::memory_db();
        let (mut hq, mut node) = hq_and_node(&conn);
        publish(&mut hq, &mut node, &conn, &[item(1, 100)], "t1");
        drop(node.take_idle_catalog());
        let writer = WriterId::new("s1.lane1").unwrap();
        let stale = CatalogDoc::genesis(0, writer.clone()).unwrap();
        assert!(
            node.install_catalog(stale).is_some(),
            "older than the node's heads"
        );
        let current = read_catalog(&conn, writer).unwrap();
        assert!(node.install_catalog(current).is_none());
        assert!(node.catalog_loaded());
    }
}
