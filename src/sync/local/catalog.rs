//! HQ's catalog projected into the store's SQLite `item` tables, incrementally and off the
//! writer thread.
//!
//! A catalog change from HQ used to be applied to the automerge document, diffed and
//! projected inside a write job: with 1,000-item changes every till waited behind it (a
//! 10,000-item republication held sales up to a second). Now the writer only writes:
//! - [`derive_change`] (on a thread of the sync service, never the writer) applies HQ's
//!   changes to the document, diffs the heads before and after, and turns every item the
//!   change touched into a plain, validated [`Item`] row; it also reads HQ's pricing,
//!   loyalty and coupon rules and, when the change log is due for compaction, the save.
//! - [`NodeDocs::commit_catalog_change`], one short write job, logs the change bytes,
//!   stores the rules, notes the new heads and sets the pending flag.
//! - [`write_items`] writes the rows in small jobs (at most [`CATALOG_BATCH`] rows or
//!   [`CATALOG_JOB_BUDGET`] of writer time each), so sales interleave with them.
//!
//! Crash safety: the `sync_state` flag [`KEY_CATALOG_PENDING`] is set in the transaction
//! that logs the change and cleared in the one that writes the last queued row. A node that
//! stops in between finds the flag at start, and [`unwritten_items`] compares every item of
//! the stored document (which holds every logged change) with SQLite's row: exactly the
//! rows not written, or written from an older change, are queued again. Rows are upserts,
//! so nothing is lost and nothing is applied twice.
//!
//! Memory: the document of a 50,000-item catalog holds tens of MiB of automerge op set, and
//! a node needs it only to apply HQ's changes. Between those, [`NodeDocs`] keeps
//! [`CatalogState`]: the heads and the hashes of the document's changes, which answer all
//! the sync service asks (which heads to publish, whether HQ's heads are news), kept in
//! SQLite's `sync_doc_hash` with each change so a start never builds the document. The service
//! keeps the document in its [`CatalogWork`] from a change of HQ until HQ has been quiet for
//! a while, then drops it and gives the freed heap back to the system.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use automerge::{ChangeHash, Patch, PatchAction, Prop};
use rusqlite::Connection;

use super::{LocalError, NodeDocs, RemoteChanges};
use crate::crdt::catalog::{CATALOG_STORE, CatalogDoc};
use crate::crdt::doc::{ApplyOutcome, DocId, DocKind, KEY_ITEMS, WriterId};
use crate::domain::coupons::Coupon;
use crate::domain::loyalty::LoyaltyRules;
use crate::domain::pricing::PricingRules;
use crate::store::catalog::{self, Item};
use crate::sync::persist;

/// `sync_state` key: 1 while catalog items may be missing from SQLite.
pub const KEY_CATALOG_PENDING: &str = "catalog_projection_pending";

/// Most rows one write job takes. A row is an item upsert and its GTIN and tag-pattern
/// rows: about 20–40 µs in a release build, so a sale queued behind a full job waits about
/// a millisecond more.
pub const CATALOG_BATCH: usize = 48;

/// Writer time after which a job stops taking rows (on a slow or loaded box 48 rows take
/// longer): what a sale queued behind it may wait, beyond its own commit.
pub const CATALOG_JOB_BUDGET: Duration = Duration::from_millis(1);

/// HQ's catalog as [`NodeDocs`] holds it: its heads and change hashes, not the document.
#[derive(Debug)]
pub(super) struct CatalogState {
    id: DocId,
    /// The document's heads, sorted (as `SyncDoc::heads`).
    heads: Vec<ChangeHash>,
    /// Every change the document holds (genesis included): HQ's heads are news when one
    /// of them is not here. A few hundred hashes for years of publications.
    known: HashSet<ChangeHash>,
    /// `sync_doc_hash` does not hold them yet (a database from before that table, or a
    /// node that never stored its genesis): [`NodeDocs::store_catalog_hashes`] writes them.
    unstored: bool,
}

impl CatalogState {
    /// Reads the heads and change hashes kept in `sync_doc_hash`. Only when none are kept
    /// is the document built (from its save and log, or the genesis) to learn them.
    pub(super) fn load(conn: &Connection, writer: WriterId) -> Result<Self, LocalError> {
        let id = catalog_id()?;
        let stored = persist::doc_hashes(conn, &id, 0)?;
        if stored.is_empty() {
            return Self::from_document(conn, writer);
        }
        let mut heads: Vec<ChangeHash> = stored
            .iter()
            .filter(|(_, head)| *head)
            .map(|(hash, _)| *hash)
            .collect();
        heads.sort_unstable();
        Ok(Self {
            id,
            heads,
            known: stored.into_iter().map(|(hash, _)| hash).collect(),
            unstored: false,
        })
    }

    fn from_document(conn: &Connection, writer: WriterId) -> Result<Self, LocalError> {
        let doc = read_catalog(conn, writer)?;
        let core = doc.core();
        Ok(Self {
            id: core.id().clone(),
            heads: core.heads(),
            known: changes_since(&doc, &[]).into_iter().collect(),
            unstored: true,
        })
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
}

/// Hashes of the changes `doc` holds beyond `before`.
fn changes_since(doc: &CatalogDoc, before: &[ChangeHash]) -> Vec<ChangeHash> {
    doc.core()
        .automerge()
        .get_changes_meta(before)
        .into_iter()
        .map(|meta| meta.hash)
        .collect()
}

/// HQ's catalog document as stored in SQLite (its genesis when nothing is stored).
pub fn read_catalog(conn: &Connection, writer: WriterId) -> Result<CatalogDoc, LocalError> {
    Ok(CatalogDoc::from_core(persist::load_or_genesis(
        conn,
        &catalog_id()?,
        0,
        writer,
    )?)?)
}

fn catalog_id() -> Result<DocId, LocalError> {
    Ok(DocId::new(CATALOG_STORE, DocKind::Catalog)?)
}

/// What one message of HQ's catalog changes means for this store, worked out off the
/// writer by [`derive_change`]: everything the writer then has to write, as plain data.
#[derive(Debug)]
pub struct CatalogDelta {
    pub outcome: ApplyOutcome,
    /// The message's changes (or bundle) to log, as received.
    log: Vec<(Vec<u8>, bool)>,
    /// The document's save, when the log is due for compaction: replaces the log.
    saved: Option<Vec<u8>>,
    heads: Vec<ChangeHash>,
    new_hashes: Vec<ChangeHash>,
    pricing: PricingRules,
    loyalty: Option<LoyaltyRules>,
    coupons: BTreeMap<String, Coupon>,
    /// Per SKU the change touched, sorted: the row to write, or `None` (HQ removed the
    /// item, or this store cannot take it): nothing to write, and an older queued row of
    /// it must not be written either.
    rows: Vec<(String, Option<Item>)>,
}

impl CatalogDelta {
    /// Whether the document changed (anything to log); a message of duplicates does not.
    pub fn changed(&self) -> bool {
        !self.log.is_empty()
    }

    /// Takes the item rows out, for [`CatalogWork::queue`] once the change is committed.
    pub fn take_rows(&mut self) -> Vec<(String, Option<Item>)> {
        std::mem::take(&mut self.rows)
    }

    pub fn rows(&self) -> usize {
        self.rows.len()
    }
}

/// Applies HQ's changes to `doc` and works out what SQLite must get: the log entries, the
/// rules and one row per item the change touched (an automerge diff of the heads before and
/// after). `logged`: entries in the stored change log now; past
/// [`persist::SAVE_EVERY_CHANGES`] the document's save comes along to replace the log. The
/// document is left unchanged when the changes are malformed. CPU-heavy for a large change:
/// call it on a thread of its own or the blocking pool, never on the writer.
pub fn derive_change(
    doc: &mut CatalogDoc,
    changes: RemoteChanges,
    logged: u64,
) -> Result<CatalogDelta, LocalError> {
    let before = doc.core().heads();
    let core = doc.core_mut();
    let (outcome, log) = match changes {
        RemoteChanges::Changes(list) => {
            let outcome = core.apply_changes(&list)?;
            (outcome, list.into_iter().map(|c| (c, false)).collect())
        }
        RemoteChanges::Bundle(bundle) => (core.apply_bundle(&bundle)?, vec![(bundle, true)]),
    };
    let log: Vec<(Vec<u8>, bool)> = if outcome.applied + outcome.queued > 0 {
        log
    } else {
        Vec::new()
    };
    let saved = (!log.is_empty()
        && logged.saturating_add(log.len() as u64) >= persist::SAVE_EVERY_CHANGES)
        .then(|| doc.core().save());
    let core = doc.core();
    let heads = core.heads();
    let rows = if heads == before {
        Vec::new()
    } else {
        changed_skus(&core.automerge().diff(&before, &heads))
            .into_iter()
            .map(|sku| {
                let row = item_row(doc, &sku);
                (sku, row)
            })
            .collect()
    };
    Ok(CatalogDelta {
        outcome,
        log,
        saved,
        new_hashes: changes_since(doc, &before),
        heads,
        // Price lists and promotions: kept for the till, which prices offline with them
        // (one row, rewritten only when the rules differ).
        pricing: doc.pricing_rules(),
        loyalty: crate::crdt::loyalty::read_loyalty_rules(core),
        coupons: crate::crdt::coupons::read_coupons(core),
        rows,
    })
}

impl NodeDocs {
    /// On the writer: logs a change [`derive_change`] worked out, keeps HQ's rules, and
    /// notes the new heads. `rows_follow`: item rows are queued for [`write_items`] (this
    /// change's or an earlier one's), so the pending flag is set in the same transaction.
    pub fn commit_catalog_change(
        &mut self,
        conn: &Connection,
        delta: &CatalogDelta,
        rows_follow: bool,
        now: &str,
    ) -> Result<(), LocalError> {
        if !delta.changed() {
            return Ok(());
        }
        let id = self.catalog.id.clone();
        match &delta.saved {
            Some(saved) => persist::store_saved(conn, &id, 0, saved, now)?,
            None => {
                for (bytes, bundle) in &delta.log {
                    persist::log_change(conn, &id, 0, bytes, *bundle)?;
                }
            }
        }
        crate::store::pricing::save_rules(conn, &delta.pricing, now)?;
        crate::store::loyalty::save_rules(conn, delta.loyalty.as_ref(), now)?;
        crate::store::coupons::save_definitions(conn, &delta.coupons, now)?;
        if rows_follow {
            persist::state_set(conn, KEY_CATALOG_PENDING, 1)?;
        }
        self.store_catalog_hashes(conn)?;
        persist::note_doc_hashes(conn, &id, 0, &delta.heads, &delta.new_hashes)?;
        // In memory last: a failed write above leaves the heads as they were (and a failed
        // commit reloads them from SQLite).
        self.catalog.heads.clone_from(&delta.heads);
        self.catalog.known.extend(delta.new_hashes.iter().copied());
        Ok(())
    }

    /// Writes the catalog's heads and change hashes to `sync_doc_hash` when the documents
    /// were loaded without them (see [`CatalogState::load`]), so the next start need not
    /// build the document. Call inside a store write.
    pub fn store_catalog_hashes(&mut self, conn: &Connection) -> Result<(), LocalError> {
        if !self.catalog.unstored {
            return Ok(());
        }
        let known: Vec<ChangeHash> = self.catalog.known.iter().copied().collect();
        persist::note_doc_hashes(conn, &self.catalog.id, 0, &self.catalog.heads, &known)?;
        self.catalog.unstored = false;
        Ok(())
    }

    /// Applies HQ's changes of the catalog and writes every row they touch, all on `conn`
    /// (tests, and any caller without a [`CatalogWork`]; the sync service splits this up).
    pub(super) fn apply_catalog(
        &mut self,
        conn: &Connection,
        changes: &RemoteChanges,
        now: &str,
    ) -> Result<ApplyOutcome, LocalError> {
        let mut doc = read_catalog(conn, self.writer.clone())?;
        let logged = persist::logged_changes(conn, &self.catalog.id, 0)?;
        let mut delta = derive_change(&mut doc, changes.clone(), logged)?;
        self.commit_catalog_change(conn, &delta, false, now)?;
        let rows: Vec<Item> = delta
            .take_rows()
            .into_iter()
            .filter_map(|(_, r)| r)
            .collect();
        write_items(conn, &rows, false, now, None)?;
        Ok(delta.outcome)
    }

    /// The catalog's heads (the document need not be in memory).
    pub fn catalog_heads(&self) -> Vec<ChangeHash> {
        self.catalog.heads.clone()
    }
}

/// Writes item rows (validated already) in order, until `budget` of time is used (at
/// least one row); clears the pending flag when `last` (nothing else is queued) and every
/// row was written. Returns how many rows were written.
pub fn write_items(
    conn: &Connection,
    rows: &[Item],
    last: bool,
    now: &str,
    budget: Option<Duration>,
) -> Result<usize, LocalError> {
    let began = Instant::now();
    let mut written = 0;
    for item in rows {
        catalog::upsert(conn, item, now)?;
        written += 1;
        if budget.is_some_and(|b| began.elapsed() >= b) {
            break;
        }
    }
    if last && written == rows.len() {
        persist::state_set(conn, KEY_CATALOG_PENDING, 0)?;
    }
    Ok(written)
}

/// Whether a projection was left unfinished (the pending flag is set).
pub fn projection_pending(conn: &Connection) -> Result<bool, LocalError> {
    Ok(persist::state_get(conn, KEY_CATALOG_PENDING)?.unwrap_or(0) != 0)
}

/// After an interrupted projection: the rows of `doc` (the stored document, every logged
/// change in it) that SQLite does not hold as published, read on any connection. What was
/// written before the stop is not written again.
pub fn unwritten_items(
    conn: &Connection,
    doc: &CatalogDoc,
) -> Result<Vec<(String, Option<Item>)>, LocalError> {
    let mut rows = Vec::new();
    for sku in doc.skus() {
        let Some(row) = item_row(doc, &sku) else {
            continue;
        };
        if catalog::get(conn, &sku)?.as_ref() != Some(&row) {
            rows.push((sku, Some(row)));
        }
    }
    Ok(rows)
}

/// The service's side of HQ's catalog: the document while HQ's changes come in, and the
/// rows derived from them that are not written yet. Owned by the receiving task.
#[derive(Debug, Default)]
pub struct CatalogWork {
    doc: Option<CatalogDoc>,
    /// Rows to write, by SKU: the newest derived row of each.
    pending: BTreeMap<String, Item>,
}

impl CatalogWork {
    pub fn is_loaded(&self) -> bool {
        self.doc.is_some()
    }

    /// The document, for [`derive_change`] on another thread; give it back with
    /// [`Self::keep`] (or drop it when its change could not be committed: the next change
    /// reads the stored one).
    pub fn take_doc(&mut self) -> Option<CatalogDoc> {
        self.doc.take()
    }

    pub fn keep(&mut self, doc: CatalogDoc) {
        self.doc = Some(doc);
    }

    /// The document once nothing waits for it, for the caller to drop outside any lock and
    /// give the freed heap back ([`crate::memory::release_freed`]).
    pub fn take_idle(&mut self) -> Option<CatalogDoc> {
        if self.pending.is_empty() {
            self.doc.take()
        } else {
            None
        }
    }

    /// Rows not written yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Queues derived rows of a committed change; a newer row of a SKU replaces an older
    /// one, and `None` withdraws it.
    pub fn queue(&mut self, rows: Vec<(String, Option<Item>)>) {
        for (sku, row) in rows {
            match row {
                Some(item) => {
                    self.pending.insert(sku, item);
                }
                None => {
                    self.pending.remove(&sku);
                }
            }
        }
    }

    /// Whether rows would still be queued after queueing `rows`: what the pending flag must
    /// say once their change is committed.
    pub fn rows_follow(&self, rows: &[(String, Option<Item>)]) -> bool {
        if rows.iter().any(|(_, r)| r.is_some()) {
            return true;
        }
        let withdrawn: HashSet<&str> = rows.iter().map(|(sku, _)| sku.as_str()).collect();
        self.pending
            .keys()
            .any(|sku| !withdrawn.contains(sku.as_str()))
    }

    /// The next rows to write (a copy: they leave the queue only once committed).
    pub fn next_batch(&self, limit: usize) -> (Vec<Item>, bool) {
        let batch: Vec<Item> = self.pending.values().take(limit.max(1)).cloned().collect();
        let last = batch.len() == self.pending.len();
        (batch, last)
    }

    /// The first `count` rows of `batch` are committed.
    pub fn written(&mut self, batch: &[Item], count: usize) {
        for item in batch.iter().take(count) {
            self.pending.remove(&item.sku);
        }
    }
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

/// The row of one published item, validated. HQ's catalog is authoritative; an item this
/// store cannot take (bad GTIN) or one HQ removed is `None`, skipped rather than blocking
/// the rest (removals were never projected: sales history refers to the item).
fn item_row(doc: &CatalogDoc, sku: &str) -> Option<Item> {
    let published = doc.item(sku)?;
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
        Ok(item) => Some(item),
        Err(e) => {
            tracing::warn!(error = %e, sku, "catalog item from HQ skipped");
            None
        }
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
