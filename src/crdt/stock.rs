//! Stock of one store as a CRDT: per-writer totals summed on read.
//!
//! Layout (root maps are made by genesis, see [`super::doc`]):
//! ```text
//! base/{sku}                        = i64   HQ, once per epoch: the stock at the cut
//! cut/{writer}                      = hex   HQ: the writer's last change in the cut
//! writers/{w}/stock/{sku}           = i64   writer w's net total of movements
//! writers/{w}/order_effects/{order} = str   the stock effect w applied for an order
//! writers/{w}/carried_from          = i64   epoch w carried its post-cut work from
//! ```
//! `stock(sku) = base(sku) + Σ_w writers/{w}/stock/{sku}`. A writer only ever writes under
//! its own `writers/{w}`, which it creates itself, so concurrent writers never conflict and
//! all movements commute (a PN-counter with one plain register per writer). A put of the
//! new total, not an automerge `Counter`: increments on one counter get slower with every
//! increment, a put of a total does not (see the `perf` test).

use super::doc::child_map;
use std::collections::BTreeMap;

use automerge::transaction::{Transactable, Transaction};
use automerge::{ChangeHash, ObjId, ROOT};

use super::doc::{
    DocError, DocId, DocKind, KEY_BASE, KEY_CUT, KEY_WRITERS, LocalChange, SyncDoc, WriterId,
    hash_from_hex, int_at, int_entries, map_at, map_at_heads, map_keys, str_at,
};
use crate::domain::orders::StockEffect;
pub use crate::domain::stock::Movement;

/// Longest SKU accepted (bytes).
pub const MAX_SKU_LEN: usize = 128;
const KEY_STOCK: &str = "stock";
const KEY_ORDER_EFFECTS: &str = "order_effects";
const KEY_CARRIED_FROM: &str = "carried_from";

/// Errors of the stock document.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("invalid sku {0:?}: 1-{MAX_SKU_LEN} bytes without control characters")]
    InvalidSku(String),
    #[error("stock total of {sku} would overflow")]
    Overflow { sku: String },
}

super::doc::doc_error!(StockError);

/// The stock document of one store and epoch.
#[derive(Debug, Clone)]
pub struct StockDoc {
    core: SyncDoc,
}

impl StockDoc {
    /// The genesis stock document of `store`, epoch `epoch`, owned by `writer`.
    pub fn genesis(store: &str, epoch: u32, writer: WriterId) -> Result<Self, StockError> {
        let id = DocId::new(store, DocKind::Stock)?;
        Ok(Self {
            core: SyncDoc::genesis(&id, epoch, writer)?,
        })
    }

    /// Loads a saved stock document (saved by any writer) and continues it as `writer`.
    pub fn load(bytes: &[u8], writer: WriterId) -> Result<Self, StockError> {
        Self::from_core(SyncDoc::load(bytes, writer)?)
    }

    pub fn from_core(core: SyncDoc) -> Result<Self, StockError> {
        core.expect_kind(DocKind::Stock)?;
        Ok(Self { core })
    }

    /// Sync helpers (heads, changes, save…).
    pub fn core(&self) -> &SyncDoc {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut SyncDoc {
        &mut self.core
    }

    /// Applies the movements of one SQLite transaction as ONE automerge change: per SKU the
    /// writer's total is read, the batch's net delta added, and the new total put. `None`
    /// when the batch nets to zero everywhere (nothing to sync).
    pub fn apply_movements(
        &mut self,
        batch: &[Movement],
        at_ms: i64,
    ) -> Result<Option<LocalChange>, StockError> {
        let net = net_deltas(batch)?;
        let writer = self.core.writer().clone();
        self.core.commit(at_ms, "movements", |tx| {
            add_to_own_totals(tx, &writer, &net)
        })
    }

    /// The delta that makes this node's view of `sku` equal `counted`. A count is applied
    /// as this delta, never as an absolute value, so sales made concurrently elsewhere are
    /// kept: they are added on top when they arrive.
    pub fn count_delta(&self, sku: &str, counted: i64) -> i64 {
        counted.saturating_sub(self.stock(sku))
    }

    /// Current stock of `sku` in this node's view.
    pub fn stock(&self, sku: &str) -> i64 {
        let doc = self.core.automerge();
        let base = self
            .core
            .root_map(KEY_BASE)
            .and_then(|b| int_at(doc, &b, sku))
            .unwrap_or(0);
        self.writer_ids(None).iter().fold(base, |sum, writer| {
            let own = self
                .stock_map(writer, None)
                .and_then(|m| int_at(doc, &m, sku))
                .unwrap_or(0);
            sum.saturating_add(own)
        })
    }

    /// Stock of every SKU that has a base or a movement.
    pub fn stock_levels(&self) -> BTreeMap<String, i64> {
        self.levels(None)
    }

    /// [`Self::stock_levels`] of a borrowed stock document (HQ recomputes every level after a
    /// catch-up bundle: a typed copy would clone the document's whole history).
    pub fn stock_levels_of(core: &SyncDoc) -> BTreeMap<String, i64> {
        let doc = core.automerge();
        let mut maps: Vec<ObjId> = core.root_map(KEY_BASE).into_iter().collect();
        if let Some(writers) = core.root_map(KEY_WRITERS) {
            for writer in map_keys(doc, &writers, None) {
                maps.extend(
                    map_at(doc, &writers, &writer).and_then(|own| map_at(doc, &own, KEY_STOCK)),
                );
            }
        }
        let keys = maps
            .iter()
            .flat_map(|map| map_keys(doc, map, None))
            .collect();
        Self::levels_of_keys(core, &keys)
    }

    /// The levels of just `keys` (base plus every writer's total), read from a borrowed
    /// stock document: what a reader recomputes after a change touched those keys. Keys no
    /// writer holds are left out.
    pub fn levels_of_keys(
        core: &SyncDoc,
        keys: &std::collections::BTreeSet<String>,
    ) -> BTreeMap<String, i64> {
        let doc = core.automerge();
        let mut maps: Vec<ObjId> = core.root_map(KEY_BASE).into_iter().collect();
        if let Some(writers) = core.root_map(KEY_WRITERS) {
            for writer in map_keys(doc, &writers, None) {
                if let Some(stock) =
                    map_at(doc, &writers, &writer).and_then(|own| map_at(doc, &own, KEY_STOCK))
                {
                    maps.push(stock);
                }
            }
        }
        let mut levels = BTreeMap::new();
        for key in keys {
            let mut found = None;
            for map in &maps {
                if let Some(qty) = int_at(doc, map, key) {
                    found = Some(found.unwrap_or(0_i64).saturating_add(qty));
                }
            }
            if let Some(level) = found {
                levels.insert(key.clone(), level);
            }
        }
        levels
    }

    /// Stock of every SKU as of `heads` (historical read; used to compute an epoch's base).
    pub fn stock_levels_at(&self, heads: &[ChangeHash]) -> BTreeMap<String, i64> {
        self.levels(Some(heads))
    }

    /// `writer`'s net totals per SKU.
    pub fn writer_totals(&self, writer: &WriterId) -> BTreeMap<String, i64> {
        self.totals_of(writer, None)
    }

    /// `writer`'s net totals per SKU as of `heads`.
    pub fn writer_totals_at(
        &self,
        writer: &WriterId,
        heads: &[ChangeHash],
    ) -> BTreeMap<String, i64> {
        self.totals_of(writer, Some(heads))
    }

    /// The epoch's base (HQ's sum at the cut).
    pub fn base(&self) -> BTreeMap<String, i64> {
        let doc = self.core.automerge();
        self.core
            .root_map(KEY_BASE)
            .map(|b| int_entries(doc, &b, None).into_iter().collect())
            .unwrap_or_default()
    }

    /// The epoch's cut: each writer's last change included in the base.
    pub fn cut(&self) -> BTreeMap<WriterId, ChangeHash> {
        Self::cut_of(&self.core)
    }

    /// [`Self::cut`] of a borrowed stock document (HQ reads it after every change: a
    /// typed copy would clone the document's whole history each time).
    pub fn cut_of(core: &SyncDoc) -> BTreeMap<WriterId, ChangeHash> {
        let doc = core.automerge();
        let Some(cut) = core.root_map(KEY_CUT) else {
            return BTreeMap::new();
        };
        map_keys(doc, &cut, None)
            .into_iter()
            .filter_map(|key| {
                let writer = WriterId::new(&key).ok()?;
                let hash = hash_from_hex(&str_at(doc, &cut, &key)?)?;
                Some((writer, hash))
            })
            .collect()
    }

    /// Writers that have written stock or order effects.
    pub fn writers(&self) -> Vec<WriterId> {
        self.writer_ids(None)
    }

    /// The epoch `writer` carried its post-cut work from, if it has.
    pub fn carried_from(&self, writer: &WriterId) -> Option<u32> {
        Self::carried_from_of(&self.core, writer)
    }

    /// [`Self::carried_from`] of a borrowed stock document.
    pub fn carried_from_of(core: &SyncDoc, writer: &WriterId) -> Option<u32> {
        let map = core.writer_map(writer)?;
        int_at(core.automerge(), &map, KEY_CARRIED_FROM).and_then(|e| u32::try_from(e).ok())
    }

    /// The stock effect this writer has applied for `order_id` (`None` effect if never).
    pub fn applied_order_effect(&self, order_id: &str) -> StockEffect {
        let doc = self.core.automerge();
        self.core
            .writer_map(self.core.writer())
            .and_then(|w| map_at(doc, &w, KEY_ORDER_EFFECTS))
            .and_then(|m| str_at(doc, &m, order_id))
            .and_then(|s| StockEffect::parse(&s))
            .unwrap_or(StockEffect::None)
    }

    /// Brings an order's stock effect to `target` in one change: the movements from
    /// [`crate::domain::orders::settle_movements`] plus the record of the effect now applied, so a
    /// repeated call moves nothing. Only the order's fulfilment writer calls this.
    pub fn settle_order(
        &mut self,
        order_id: &str,
        target: StockEffect,
        lines: &BTreeMap<String, i64>,
        at_ms: i64,
    ) -> Result<Option<LocalChange>, StockError> {
        let applied = self.applied_order_effect(order_id);
        if applied == target {
            return Ok(None);
        }
        let movements = crate::domain::orders::settle_movements(applied, target, lines);
        let net = net_deltas(&movements)?;
        let writer = self.core.writer().clone();
        self.core.commit(at_ms, "order", |tx| {
            add_to_own_totals(tx, &writer, &net)?;
            let own = own_map(tx, &writer)?;
            let effects = child_map(tx, &own, KEY_ORDER_EFFECTS)?;
            tx.put(&effects, order_id, target.as_str())?;
            Ok(())
        })
    }

    /// Writes this writer's carry-over into this (new epoch's) document: per SKU `carry`
    /// added to its totals, and the marker that it carried from `from_epoch`. Returns
    /// `Ok(None)` if the marker is already there (carrying twice would double the work).
    pub fn write_carry_over(
        &mut self,
        from_epoch: u32,
        carry: &BTreeMap<String, i64>,
        at_ms: i64,
    ) -> Result<Option<LocalChange>, StockError> {
        if self.carried_from(self.core.writer()).is_some() {
            return Ok(None);
        }
        for sku in carry.keys() {
            validate_sku(sku)?;
        }
        let writer = self.core.writer().clone();
        self.core.commit(at_ms, "carry-over", |tx| {
            add_to_own_totals(tx, &writer, carry)?;
            let own = own_map(tx, &writer)?;
            tx.put(&own, KEY_CARRIED_FROM, i64::from(from_epoch))?;
            Ok(())
        })
    }

    /// HQ: writes the epoch's base and cut (one change, right after genesis).
    pub fn write_base(
        &mut self,
        base: &BTreeMap<String, i64>,
        cut: &BTreeMap<WriterId, ChangeHash>,
        at_ms: i64,
    ) -> Result<Option<LocalChange>, StockError> {
        for sku in base.keys() {
            validate_sku(sku)?;
        }
        let base_map = self.core.root_map(KEY_BASE);
        let cut_map = self.core.root_map(KEY_CUT);
        let (Some(base_map), Some(cut_map)) = (base_map, cut_map) else {
            return Err(DocError::NotOurDocument("stock genesis maps missing".to_owned()).into());
        };
        self.core.commit(at_ms, "epoch-base", |tx| {
            for (sku, qty) in base {
                tx.put(&base_map, sku.as_str(), *qty)?;
            }
            for (writer, hash) in cut {
                tx.put(&cut_map, writer.as_str(), super::doc::hash_to_hex(hash))?;
            }
            Ok::<(), StockError>(())
        })
    }

    fn levels(&self, heads: Option<&[ChangeHash]>) -> BTreeMap<String, i64> {
        let doc = self.core.automerge();
        let mut levels: BTreeMap<String, i64> = self
            .core
            .root_map(KEY_BASE)
            .map(|b| int_entries(doc, &b, heads).into_iter().collect())
            .unwrap_or_default();
        for writer in self.writer_ids(heads) {
            for (sku, qty) in self.totals_of(&writer, heads) {
                let level = levels.entry(sku).or_insert(0);
                *level = level.saturating_add(qty);
            }
        }
        levels
    }

    fn totals_of(&self, writer: &WriterId, heads: Option<&[ChangeHash]>) -> BTreeMap<String, i64> {
        self.stock_map(writer, heads)
            .map(|m| {
                int_entries(self.core.automerge(), &m, heads)
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stock_map(&self, writer: &WriterId, heads: Option<&[ChangeHash]>) -> Option<ObjId> {
        let doc = self.core.automerge();
        let writers = self.core.root_map(KEY_WRITERS)?;
        let own = map_at_heads(doc, &writers, writer.as_str(), heads)?;
        map_at_heads(doc, &own, KEY_STOCK, heads)
    }

    fn writer_ids(&self, heads: Option<&[ChangeHash]>) -> Vec<WriterId> {
        let Some(writers) = self.core.root_map(KEY_WRITERS) else {
            return Vec::new();
        };
        map_keys(self.core.automerge(), &writers, heads)
            .into_iter()
            .filter_map(|key| WriterId::new(&key).ok())
            .collect()
    }
}

fn validate_sku(sku: &str) -> Result<(), StockError> {
    if sku.is_empty() || sku.len() > MAX_SKU_LEN || sku.chars().any(char::is_control) {
        return Err(StockError::InvalidSku(sku.to_owned()));
    }
    Ok(())
}

/// Net delta per SKU of a batch, zero nets dropped.
fn net_deltas(batch: &[Movement]) -> Result<BTreeMap<String, i64>, StockError> {
    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    for movement in batch {
        validate_sku(&movement.sku)?;
        let entry = net.entry(movement.sku.clone()).or_insert(0);
        *entry = entry
            .checked_add(movement.delta)
            .ok_or_else(|| StockError::Overflow {
                sku: movement.sku.clone(),
            })?;
    }
    net.retain(|_, delta| *delta != 0);
    Ok(net)
}

fn add_to_own_totals(
    tx: &mut Transaction<'_>,
    writer: &WriterId,
    net: &BTreeMap<String, i64>,
) -> Result<(), StockError> {
    if net.is_empty() {
        return Ok(());
    }
    let own = own_map(tx, writer)?;
    let stock = child_map(tx, &own, KEY_STOCK)?;
    for (sku, delta) in net {
        let current = int_at(tx, &stock, sku).unwrap_or(0);
        let total = current
            .checked_add(*delta)
            .ok_or_else(|| StockError::Overflow { sku: sku.clone() })?;
        tx.put(&stock, sku.as_str(), total)?;
    }
    Ok(())
}

/// `writers/{writer}`, created by the writer itself on first use.
fn own_map(tx: &mut Transaction<'_>, writer: &WriterId) -> Result<ObjId, StockError> {
    let writers = map_at(tx, &ROOT, KEY_WRITERS)
        .ok_or_else(|| DocError::NotOurDocument("no writers map".to_owned()))?;
    Ok(child_map(tx, &writers, writer.as_str())?)
}
#[cfg(test)]
#[path = "stock_tests.rs"]
mod tests;
