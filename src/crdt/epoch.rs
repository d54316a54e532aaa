//! Bounded history: stock documents roll over into epochs.
//!
//! automerge history cannot be truncated, so HQ periodically opens epoch E+1:
//! 1. HQ picks a cut: heads of epoch E it has ([`EpochPlan::at_cut`]). For every writer the
//!    plan records its *last change inside the cut*, so a writer can later read its own
//!    totals at the cut from its own change alone, without first fetching everybody's.
//! 2. The E+1 document is the deterministic genesis plus one HQ change holding the base
//!    (per SKU: the stock at the cut) and the per-writer cut ([`open_next_epoch`]).
//! 3. Each writer moves over once ([`carry_over`]): in E+1 it adds
//!    `own total now in E − own total at the cut` per SKU (its post-cut work, maybe done
//!    offline) and marks that it carried from E, so a repeat carries nothing.
//!
//! Then `stock_{E+1} = base + Σ carry + new work = Σ_w at_cut + Σ_w (now − at_cut) + new`
//! = every movement ever made, exactly once (model-tested below).
//!
//! After moving over, a writer makes no more changes in E (the caller switches its writes,
//! in the same SQLite transaction that stores the carry-over change). A node still on E
//! when it reconnects first syncs E (so HQ has its history), then moves over. E is dropped
//! once every writer named in the cut has `carried_from == E` in E+1.
//!
//! Not handled here: a writer that never comes back keeps its post-cut work in E only;
//! HQ could carry it over on its behalf, but then must be sure the writer never does.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;

use super::doc::{SyncDoc, WriterId};
use super::stock::{StockDoc, StockError};

/// Errors of an epoch switch.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error(transparent)]
    Stock(#[from] StockError),
    #[error("the cut names change {0} that this document does not have")]
    UnknownCutHead(String),
    #[error("epoch {new} does not follow epoch {old}")]
    NotNextEpoch { old: u32, new: u32 },
    #[error("documents belong to different stores ({old} vs {new})")]
    OtherStore { old: String, new: String },
    #[error("the cut names writer {writer}'s change {hash}, which it does not have")]
    OwnCutChangeMissing { writer: String, hash: String },
    #[error("epoch number overflow")]
    EpochOverflow,
}

/// HQ's plan for the next epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochPlan {
    /// The new epoch number (E+1).
    pub epoch: u32,
    /// HQ's heads of E at the cut.
    pub cut_heads: Vec<ChangeHash>,
    /// Per writer: its last change inside the cut.
    pub writer_cut: BTreeMap<WriterId, ChangeHash>,
    /// Stock per SKU at the cut; SKUs at zero are left out.
    pub base: BTreeMap<String, i64>,
}

impl EpochPlan {
    /// The plan for E+1 from HQ's epoch-E document `old`, cut at `cut_heads`.
    pub fn at_cut(old: &StockDoc, cut_heads: &[ChangeHash]) -> Result<Self, EpochError> {
        if let Some(unknown) = cut_heads.iter().find(|h| !old.core().has_change(h)) {
            return Err(EpochError::UnknownCutHead(unknown.to_string()));
        }
        let epoch = old
            .core()
            .epoch()
            .checked_add(1)
            .ok_or(EpochError::EpochOverflow)?;
        let mut base = old.stock_levels_at(cut_heads);
        base.retain(|_, qty| *qty != 0);
        Ok(Self {
            epoch,
            cut_heads: cut_heads.to_vec(),
            writer_cut: last_change_per_writer(old, cut_heads),
            base,
        })
    }
}

/// Each writer's latest change (any incarnation) inside the causal past of `heads`.
fn last_change_per_writer(doc: &StockDoc, heads: &[ChangeHash]) -> BTreeMap<WriterId, ChangeHash> {
    let automerge = doc.core().automerge();
    let after_cut: BTreeSet<ChangeHash> = automerge
        .get_changes_meta(heads)
        .into_iter()
        .map(|meta| meta.hash)
        .collect();
    let mut last: BTreeMap<WriterId, (u64, ChangeHash)> = BTreeMap::new();
    for meta in automerge.get_changes_meta(&[]) {
        if after_cut.contains(&meta.hash) {
            continue;
        }
        // The genesis actor is not a writer and is skipped here.
        let Ok(writer) = WriterId::from_actor(meta.actor.as_ref()) else {
            continue;
        };
        // By op counter, not sequence number: a writer's incarnations are distinct actors,
        // each with its own sequence, and a later one's changes follow the earlier ones'
        // (it catches up before it writes), so their ops count higher.
        let entry = last.entry(writer).or_insert((meta.max_op, meta.hash));
        if meta.max_op > entry.0 {
            *entry = (meta.max_op, meta.hash);
        }
    }
    last.into_iter().map(|(w, (_, hash))| (w, hash)).collect()
}

/// HQ: the E+1 document for `store` (genesis + one change with base and cut), as `hq`.
pub fn open_next_epoch(
    store: &str,
    plan: &EpochPlan,
    hq: WriterId,
    at_ms: i64,
) -> Result<StockDoc, EpochError> {
    let mut doc = StockDoc::genesis(store, plan.epoch, hq)?;
    doc.write_base(&plan.base, &plan.writer_cut, at_ms)?;
    Ok(doc)
}

/// Per SKU `now − at_cut`, zeros left out: the work a writer did after the cut.
pub fn carry_amounts(
    now: &BTreeMap<String, i64>,
    at_cut: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let skus: BTreeSet<&String> = now.keys().chain(at_cut.keys()).collect();
    skus.into_iter()
        .filter_map(|sku| {
            let before = at_cut.get(sku).copied().unwrap_or(0);
            let after = now.get(sku).copied().unwrap_or(0);
            let carry = after.saturating_sub(before);
            (carry != 0).then(|| (sku.clone(), carry))
        })
        .collect()
}

/// A writer moves over from `old` (E, its own document) into `new` (E+1, which must hold
/// HQ's base change). Writes the carry-over once; `Ok(None)` if already moved or if there
/// is nothing to carry and the marker is already set.
pub fn carry_over(
    old: &StockDoc,
    new: &mut StockDoc,
    at_ms: i64,
) -> Result<Option<super::doc::LocalChange>, EpochError> {
    check_succession(old, new)?;
    let writer = new.core().writer().clone();
    if new.carried_from(&writer).is_some() {
        // Already moved over (maybe by an earlier incarnation, whose database was then
        // restored from an older backup): `old` may be stale, and is not read.
        return Ok(None);
    }
    let at_cut = match new.cut().get(&writer) {
        Some(hash) if !old.core().has_change(hash) => {
            return Err(EpochError::OwnCutChangeMissing {
                writer: writer.to_string(),
                hash: hash.to_string(),
            });
        }
        // The writer's own values change only in its own changes, so reading at its last
        // change in the cut gives exactly its totals at the cut.
        Some(hash) => old.writer_totals_at(&writer, &[*hash]),
        None => BTreeMap::new(),
    };
    let carry = carry_amounts(&old.writer_totals(&writer), &at_cut);
    Ok(new.write_carry_over(old.core().epoch(), &carry, at_ms)?)
}

fn check_succession(old: &StockDoc, new: &StockDoc) -> Result<(), EpochError> {
    let (old_id, new_id) = (old.core().id(), new.core().id());
    if old_id != new_id {
        return Err(EpochError::OtherStore {
            old: old_id.store.clone(),
            new: new_id.store.clone(),
        });
    }
    let (old_epoch, new_epoch) = (old.core().epoch(), new.core().epoch());
    if old_epoch.checked_add(1) != Some(new_epoch) {
        return Err(EpochError::NotNextEpoch {
            old: old_epoch,
            new: new_epoch,
        });
    }
    Ok(())
}

/// Whether every writer named in the cut has moved over, so E may be dropped.
pub fn all_moved_over(new: &StockDoc) -> bool {
    all_moved_over_but(new, &BTreeSet::new())
}

/// [`all_moved_over`], not waiting for the writers in `gone` (lanes retired for good: they
/// will never carry over).
pub fn all_moved_over_but(new: &StockDoc, gone: &BTreeSet<WriterId>) -> bool {
    all_moved_over_in(new.core(), gone)
}

/// [`all_moved_over_but`] of a borrowed stock document (no typed copy of its history).
pub fn all_moved_over_in(new: &SyncDoc, gone: &BTreeSet<WriterId>) -> bool {
    let Some(old_epoch) = new.epoch().checked_sub(1) else {
        return true;
    };
    StockDoc::cut_of(new)
        .keys()
        .filter(|writer| !gone.contains(*writer))
        .all(|writer| StockDoc::carried_from_of(new, writer) == Some(old_epoch))
}

#[cfg(test)]
#[path = "epoch_tests.rs"]
mod tests;
