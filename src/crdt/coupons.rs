//! Coupons in the shared documents (the rule is in `domain::coupons`).
//!
//! Definitions: HQ's catalog document, one JSON string per coupon in the `pricing` map
//! (`coupon/{CODE}`), beside the promotions: every store learns every coupon, so a store that
//! holds no use can still say why it refuses. A node that predates coupons skips the key.
//!
//! Counters: the orders document of the store holding the uses, per writer like the online
//! escrow, each writer adding only to its own entries:
//! ```text
//! writers/{hq}/coupons/{CODE}/granted/{lane} = total   uses HQ granted to that lane
//! writers/{lane}/coupons/{CODE}/redeemed     = total   uses the lane redeemed
//! writers/{lane}/coupons/{CODE}/released     = total   uses it gave back to HQ
//! writers/{lane}/coupons/{CODE}/wanted       = total   uses it asked HQ for
//! writers/{hq}/coupons/{CODE}/served/{lane}  = total   that lane's asks HQ answered
//! ```
//! (HQ's keys are `granted/{lane}` and `served/{lane}`, flat, so the section has the same
//! two-level shape as the escrow's and rolls into the next epoch the same way: HQ's base
//! holds every writer's totals at the cut, a lane carries `now − at cut`; see
//! [`super::epoch_orders`].)

use std::collections::BTreeMap;

use automerge::ReadDoc;
use automerge::transaction::Transactable;

use super::catalog::{CatalogDoc, CatalogError};
use super::doc::{
    LocalChange, SyncDoc, WriterId, child_map, int_at, int_entries, map_at, map_at_heads, map_keys,
    str_at,
};
use super::orders::{OrdersDoc, OrdersError};
pub use crate::domain::coupons::{Coupon, CouponField, CouponTotals};

/// The catalog's pricing map (see `crdt::pricing`), where definitions sit beside promotions.
const KEY_PRICING: &str = "pricing";
const COUPON: &str = "coupon/";
/// The per-writer section in the orders document.
pub(super) const KEY_COUPONS: &str = "coupons";
const GRANTED_TO: &str = "granted/";
const SERVED_TO: &str = "served/";

impl CatalogDoc {
    /// HQ publishes (or replaces: a revocation) a coupon's definition; one change.
    pub fn put_coupon(
        &mut self,
        coupon: &Coupon,
        at_ms: i64,
    ) -> Result<Option<LocalChange>, CatalogError> {
        if !self.core().writer().is_hq() {
            return Err(CatalogError::NotHq(self.core().writer().to_string()));
        }
        let json = serde_json::to_string(coupon)
            .map_err(|e| CatalogError::InvalidPricing(e.to_string()))?;
        let key = format!("{COUPON}{}", coupon.code);
        self.core_mut().commit(at_ms, "coupon", |tx| {
            let root = child_map(tx, &automerge::ROOT, KEY_PRICING)?;
            tx.put(&root, key.as_str(), json.as_str())?;
            Ok(())
        })
    }
}

/// Every coupon a catalog document defines, by code. An entry that does not parse (a newer
/// HQ's) is skipped with a warning.
pub fn read_coupons(core: &SyncDoc) -> BTreeMap<String, Coupon> {
    let doc = core.automerge();
    let Some(root) = map_at(doc, &automerge::ROOT, KEY_PRICING) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for key in doc.keys(&root) {
        let Some(code) = key.strip_prefix(COUPON) else {
            continue;
        };
        let Some(json) = str_at(doc, &root, &key) else {
            continue;
        };
        match serde_json::from_str::<Coupon>(&json) {
            Ok(coupon) => {
                out.insert(code.to_owned(), coupon);
            }
            Err(error) => tracing::warn!(key = %key, %error, "coupon from HQ skipped"),
        }
    }
    out
}

/// One writer's addition to a coupon's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponEntry {
    /// HQ grants `uses` to `lane`.
    Grant { lane: WriterId, uses: i64 },
    /// The writing lane redeemed `uses`.
    Redeem { uses: i64 },
    /// The writing lane gives `uses` back to HQ.
    Release { uses: i64 },
    /// The writing lane asks HQ for `uses`.
    Want { uses: i64 },
    /// HQ answered `uses` asks of `lane` (whatever it granted with them).
    Serve { lane: WriterId, uses: i64 },
}

impl OrdersDoc {
    /// Adds to this writer's coupon totals, one change for all entries. Grants and answers
    /// only from HQ, redemptions, releases and asks only from a lane (each total has one kind
    /// of writer).
    pub fn add_coupons(
        &mut self,
        entries: &[(String, CouponEntry)],
        at_ms: i64,
    ) -> Result<Option<LocalChange>, OrdersError> {
        if entries.is_empty() {
            return Ok(None);
        }
        let writer = self.core().writer().clone();
        let mut keyed = Vec::with_capacity(entries.len());
        for (code, entry) in entries {
            let (key, uses) = match entry {
                CouponEntry::Grant { lane, uses } if writer.is_hq() => {
                    (format!("{GRANTED_TO}{lane}"), *uses)
                }
                CouponEntry::Redeem { uses } if !writer.is_hq() => {
                    (CouponField::Redeemed.as_str().to_owned(), *uses)
                }
                CouponEntry::Release { uses } if !writer.is_hq() => {
                    (CouponField::Released.as_str().to_owned(), *uses)
                }
                CouponEntry::Want { uses } if !writer.is_hq() => {
                    (CouponField::Wanted.as_str().to_owned(), *uses)
                }
                CouponEntry::Serve { lane, uses } if writer.is_hq() => {
                    (format!("{SERVED_TO}{lane}"), *uses)
                }
                other => {
                    return Err(OrdersError::InvalidLine {
                        order: format!("coupon {code}"),
                        reason: format!("{writer} may not write {other:?}"),
                    });
                }
            };
            if uses <= 0 {
                return Err(OrdersError::InvalidLine {
                    order: format!("coupon {code}"),
                    reason: "uses must be positive".to_owned(),
                });
            }
            keyed.push((code.clone(), key, uses));
        }
        let writers = self.writers_map()?;
        self.core_mut().commit(at_ms, "coupons", |tx| {
            let own = child_map(tx, &writers, writer.as_str())?;
            let section = child_map(tx, &own, KEY_COUPONS)?;
            for (code, key, uses) in &keyed {
                let entry = child_map(tx, &section, code)?;
                let total = int_at(tx, &entry, key).unwrap_or(0).saturating_add(*uses);
                tx.put(&entry, key.as_str(), total)?;
            }
            Ok(())
        })
    }

    /// Per coupon and holding lane: its totals, over every writer's entries (this epoch's
    /// and HQ's base).
    pub fn coupon_totals(&self) -> BTreeMap<String, BTreeMap<WriterId, CouponTotals>> {
        let doc = self.core().automerge();
        let mut out: BTreeMap<String, BTreeMap<WriterId, CouponTotals>> = BTreeMap::new();
        for (writer, own) in self.writer_maps() {
            let Some(section) = map_at(doc, &own, KEY_COUPONS) else {
                continue;
            };
            for (code, values) in section_entries(doc, &section, None) {
                add_values(out.entry(code).or_default(), &writer, values);
            }
        }
        out
    }

    /// [`Self::coupon_totals`] of the coupons `codes` only (a code the document never named
    /// is left out): reads those codes' entries, not every coupon's.
    pub fn coupon_totals_of(
        &self,
        codes: &std::collections::BTreeSet<String>,
    ) -> BTreeMap<String, BTreeMap<WriterId, CouponTotals>> {
        let doc = self.core().automerge();
        let mut out: BTreeMap<String, BTreeMap<WriterId, CouponTotals>> = BTreeMap::new();
        for (writer, own) in self.writer_maps() {
            let Some(section) = map_at(doc, &own, KEY_COUPONS) else {
                continue;
            };
            for code in codes {
                let Some(entry) = map_at(doc, &section, code) else {
                    continue;
                };
                let values = int_entries(doc, &entry, None).into_iter().collect();
                add_values(out.entry(code.clone()).or_default(), &writer, values);
            }
        }
        out
    }

    /// What `lane` holds of `code`, as this replica sees it.
    pub fn coupon_of(&self, code: &str, lane: &WriterId) -> CouponTotals {
        self.coupon_totals()
            .get(code)
            .and_then(|per_lane| per_lane.get(lane).copied())
            .unwrap_or_default()
    }

    /// `writer`'s own coupon entries of this epoch (not the base) as of `heads` (`None`:
    /// now): code → key → total. Used to carry post-cut redemptions into the next epoch.
    pub fn own_coupons_at(
        &self,
        writer: &WriterId,
        heads: Option<&[automerge::ChangeHash]>,
    ) -> BTreeMap<String, BTreeMap<String, i64>> {
        let doc = self.core().automerge();
        let Some(writers) = self.core().root_map(super::doc::KEY_WRITERS) else {
            return BTreeMap::new();
        };
        map_at_heads(doc, &writers, writer.as_str(), heads)
            .and_then(|own| map_at_heads(doc, &own, KEY_COUPONS, heads))
            .map(|section| section_entries(doc, &section, heads))
            .unwrap_or_default()
    }

    /// Per writer, its coupon entries over this epoch and the base (for HQ's next base).
    pub(super) fn coupons_by_writer(
        &self,
    ) -> BTreeMap<WriterId, BTreeMap<String, BTreeMap<String, i64>>> {
        let doc = self.core().automerge();
        let mut out: BTreeMap<WriterId, BTreeMap<String, BTreeMap<String, i64>>> = BTreeMap::new();
        for (writer, own) in self.writer_maps() {
            let Some(section) = map_at(doc, &own, KEY_COUPONS) else {
                continue;
            };
            let mine = out.entry(writer).or_default();
            for (code, values) in section_entries(doc, &section, None) {
                let slot = mine.entry(code).or_default();
                for (key, value) in values {
                    let total = slot.entry(key).or_default();
                    *total = total.saturating_add(value);
                }
            }
        }
        out
    }
}

/// Adds `writer`'s entries of one coupon (key → total) to its holders' totals.
fn add_values(
    per_lane: &mut BTreeMap<WriterId, CouponTotals>,
    writer: &WriterId,
    values: BTreeMap<String, i64>,
) {
    for (key, value) in values {
        if let Some((field, lane)) = hq_key(&key) {
            // Only HQ's grants and answers count: a lane cannot grant itself uses.
            if writer.is_hq() {
                per_lane.entry(lane).or_default().add(field, value);
            }
        } else if let (false, Some(field)) = (writer.is_hq(), CouponField::parse(&key))
            && !field.by_hq()
        {
            per_lane
                .entry(writer.clone())
                .or_default()
                .add(field, value);
        }
    }
}

/// HQ's per-lane keys: `granted/{lane}`, `served/{lane}`.
fn hq_key(key: &str) -> Option<(CouponField, WriterId)> {
    let (field, lane) = if let Some(lane) = key.strip_prefix(GRANTED_TO) {
        (CouponField::Granted, lane)
    } else {
        (CouponField::Served, key.strip_prefix(SERVED_TO)?)
    };
    Some((field, WriterId::new(lane).ok()?))
}

/// code → key → total of a `coupons` map as of `heads` (`None`: now).
fn section_entries(
    doc: &automerge::Automerge,
    section: &automerge::ObjId,
    heads: Option<&[automerge::ChangeHash]>,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    map_keys(doc, section, heads)
        .into_iter()
        .filter_map(|code| {
            let entry = map_at_heads(doc, section, &code, heads)?;
            Some((code, int_entries(doc, &entry, heads).into_iter().collect()))
        })
        .collect()
}

#[cfg(test)]
#[path = "coupons_tests.rs"]
mod tests;
