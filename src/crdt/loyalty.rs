//! The loyalty ledger's layout (the rule is in `domain::loyalty`).
//!
//! In a store's orders document, each writer adds to its own totals per member:
//! ```text
//! writers/{lane}/loyalty/{member}/{earned|spent|reversed|released|owed|wanted|refunded} = total
//! writers/{hq}/loyalty/{member}/granted:{lane}  = points HQ granted to that lane
//! writers/{hq}/loyalty/{member}/served:{lane}   = the lane's `wanted` HQ has answered
//! ```
//! `{member}` is the card number ([`MemberId`]); nothing personal enters the document. Epoch
//! switches carry the totals like the escrow's (`crdt::epoch_orders`): base at the cut plus
//! what the writer added since.
//!
//! HQ's rules travel in the catalog document as one JSON entry `pricing/loyalty`, beside the
//! price lists (a node that predates loyalty skips the key).

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ChangeHash, ObjId};

use super::catalog::{CatalogDoc, CatalogError};
use super::doc::{
    KEY_WRITERS, LocalChange, SyncDoc, WriterId, child_map, int_at, int_entries, map_at,
    map_at_heads, map_keys, str_at,
};
use super::orders::{OrdersDoc, OrdersError};
pub use crate::domain::loyalty::{LaneTotals, LoyaltyRules, MemberId, MemberLedger};

pub(super) const KEY_LOYALTY: &str = "loyalty";
const GRANTED: &str = "granted:";
const SERVED: &str = "served:";
/// The pricing map of the catalog document (`crdt::pricing`) and the rules' key in it.
const KEY_PRICING: &str = "pricing";
const KEY_RULES: &str = "loyalty";

/// One total a writer adds to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoyaltyField {
    Earned,
    Spent,
    Reversed,
    Released,
    Owed,
    Wanted,
    /// Points a return gave back (the sale was paid in points): the lane's to spend again.
    Refunded,
    /// HQ only: points granted to the lane.
    Granted(WriterId),
    /// HQ only: the lane's wants answered.
    Served(WriterId),
}

impl LoyaltyField {
    fn key(&self) -> String {
        match self {
            Self::Earned => "earned".into(),
            Self::Spent => "spent".into(),
            Self::Reversed => "reversed".into(),
            Self::Released => "released".into(),
            Self::Owed => "owed".into(),
            Self::Wanted => "wanted".into(),
            Self::Refunded => "refunded".into(),
            Self::Granted(lane) => format!("{GRANTED}{lane}"),
            Self::Served(lane) => format!("{SERVED}{lane}"),
        }
    }
}

/// (member, field, points to add).
pub type LoyaltyEntry = (String, LoyaltyField, i64);

impl OrdersDoc {
    /// Adds to this writer's loyalty totals, one change for all entries.
    pub fn add_loyalty(
        &mut self,
        entries: &[LoyaltyEntry],
        at_ms: i64,
    ) -> Result<Option<LocalChange>, OrdersError> {
        let entries: Vec<(String, String, i64)> = entries
            .iter()
            .filter(|(_, _, n)| *n != 0)
            .map(|(m, f, n)| (m.clone(), f.key(), *n))
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        let writers = self.writers_map()?;
        let writer = self.core().writer().clone();
        self.core_mut().commit(at_ms, "loyalty", |tx| {
            put_loyalty(tx, &writers, &writer, &entries)
        })
    }

    /// Every member's ledger in this document (lanes' totals and HQ's grants to them; HQ's own
    /// web-shop totals are not in documents).
    pub fn loyalty_ledgers(&self) -> BTreeMap<String, MemberLedger> {
        let doc = self.core().automerge();
        let mut out: BTreeMap<String, MemberLedger> = BTreeMap::new();
        for (writer, own) in self.writer_maps() {
            let Some(section) = map_at(doc, &own, KEY_LOYALTY) else {
                continue;
            };
            for (member, fields) in entries_at(doc, &section, None) {
                let ledger = out.entry(member).or_default();
                for (key, value) in fields {
                    add_field(ledger, &writer, &key, value);
                }
            }
        }
        out
    }

    /// [`Self::loyalty_ledgers`] of the members `members` only (a member the document never
    /// named is left out): reads those members' entries, not every member's.
    pub fn loyalty_ledgers_of(
        &self,
        members: &std::collections::BTreeSet<String>,
    ) -> BTreeMap<String, MemberLedger> {
        let doc = self.core().automerge();
        let mut out: BTreeMap<String, MemberLedger> = BTreeMap::new();
        for (writer, own) in self.writer_maps() {
            let Some(section) = map_at(doc, &own, KEY_LOYALTY) else {
                continue;
            };
            for member in members {
                let Some(entry) = map_at(doc, &section, member) else {
                    continue;
                };
                let ledger = out.entry(member.clone()).or_default();
                for (key, value) in int_entries(doc, &entry, None) {
                    add_field(ledger, &writer, &key, value);
                }
            }
        }
        out
    }

    /// One member's ledger (empty if the document never named the member).
    pub fn loyalty_of(&self, member: &str) -> MemberLedger {
        self.loyalty_ledgers_of(&[member.to_owned()].into())
            .remove(member)
            .unwrap_or_default()
    }

    /// `writer`'s own loyalty entries of this epoch (not the base) as of `heads`.
    pub(super) fn own_loyalty_at(
        &self,
        writer: &WriterId,
        heads: Option<&[ChangeHash]>,
    ) -> BTreeMap<String, BTreeMap<String, i64>> {
        let doc = self.core().automerge();
        self.core()
            .root_map(KEY_WRITERS)
            .and_then(|w| map_at_heads(doc, &w, writer.as_str(), heads))
            .and_then(|own| map_at_heads(doc, &own, KEY_LOYALTY, heads))
            .map(|section| entries_at(doc, &section, heads))
            .unwrap_or_default()
    }

    /// Per writer, every loyalty total it has (own entries plus its base): for HQ's base at
    /// an epoch cut.
    pub(super) fn loyalty_by_writer(
        &self,
    ) -> BTreeMap<WriterId, BTreeMap<String, BTreeMap<String, i64>>> {
        let doc = self.core().automerge();
        let mut out: BTreeMap<WriterId, BTreeMap<String, BTreeMap<String, i64>>> = BTreeMap::new();
        for (writer, own) in self.writer_maps() {
            let Some(section) = map_at(doc, &own, KEY_LOYALTY) else {
                continue;
            };
            let per_member = out.entry(writer).or_default();
            for (member, fields) in entries_at(doc, &section, None) {
                let slot = per_member.entry(member).or_default();
                for (key, value) in fields {
                    let total = slot.entry(key).or_default();
                    *total = total.saturating_add(value);
                }
            }
        }
        out
    }

    /// What `writer` added after `cut` (`None`: everything), as entries to carry over.
    pub(super) fn loyalty_post_cut(
        &self,
        writer: &WriterId,
        cut: Option<&[ChangeHash]>,
    ) -> Vec<(String, String, i64)> {
        let now = self.own_loyalty_at(writer, None);
        let before = cut
            .map(|h| self.own_loyalty_at(writer, Some(h)))
            .unwrap_or_default();
        let mut out = Vec::new();
        for (member, fields) in now {
            for (key, value) in fields {
                let was = before
                    .get(&member)
                    .and_then(|f| f.get(&key))
                    .copied()
                    .unwrap_or(0);
                let delta = value.saturating_sub(was);
                if delta != 0 {
                    out.push((member.clone(), key, delta));
                }
            }
        }
        out
    }
}

fn add_field(ledger: &mut MemberLedger, writer: &WriterId, key: &str, value: i64) {
    let lane_of = |rest: &str| WriterId::new(rest).ok().map(|w| w.to_string());
    if writer.is_hq() {
        // Only HQ's grants count: a lane cannot grant itself points.
        if let Some(lane) = key.strip_prefix(GRANTED).and_then(lane_of) {
            let l = ledger.lanes.entry(lane).or_default();
            l.granted = l.granted.saturating_add(value);
        } else if let Some(lane) = key.strip_prefix(SERVED).and_then(lane_of) {
            let l = ledger.lanes.entry(lane).or_default();
            l.served = l.served.saturating_add(value);
        }
        return;
    }
    let l = ledger.lanes.entry(writer.to_string()).or_default();
    let slot = match key {
        "earned" => &mut l.earned,
        "spent" => &mut l.spent,
        "reversed" => &mut l.reversed,
        "released" => &mut l.released,
        "owed" => &mut l.owed,
        "wanted" => &mut l.wanted,
        "refunded" => &mut l.refunded,
        _ => return,
    };
    *slot = slot.saturating_add(value);
}

/// member → field → total of a `loyalty` map as of `heads`.
fn entries_at(
    doc: &automerge::Automerge,
    section: &ObjId,
    heads: Option<&[ChangeHash]>,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    map_keys(doc, section, heads)
        .into_iter()
        .filter_map(|member| {
            let entry = map_at_heads(doc, section, &member, heads)?;
            Some((
                member,
                int_entries(doc, &entry, heads).into_iter().collect(),
            ))
        })
        .collect()
}

/// Adds `entries` (member, field key, delta) to `writer`'s own totals inside a transaction.
pub(super) fn put_loyalty(
    tx: &mut automerge::transaction::Transaction<'_>,
    writers: &ObjId,
    writer: &WriterId,
    entries: &[(String, String, i64)],
) -> Result<(), OrdersError> {
    if entries.is_empty() {
        return Ok(());
    }
    let own = child_map(tx, writers, writer.as_str())?;
    let section = child_map(tx, &own, KEY_LOYALTY)?;
    for (member, key, delta) in entries {
        let entry = child_map(tx, &section, member)?;
        let total = int_at(tx, &entry, key).unwrap_or(0).saturating_add(*delta);
        tx.put(&entry, key.as_str(), total)?;
    }
    Ok(())
}

impl CatalogDoc {
    /// HQ: publishes the loyalty rules (one change; `None` if they are already these).
    pub fn put_loyalty_rules(
        &mut self,
        rules: &LoyaltyRules,
        at_ms: i64,
    ) -> Result<Option<LocalChange>, CatalogError> {
        if !self.core().writer().is_hq() {
            return Err(CatalogError::NotHq(self.core().writer().to_string()));
        }
        rules
            .validate()
            .map_err(|e| CatalogError::InvalidPricing(e.to_string()))?;
        let json = serde_json::to_string(rules)
            .map_err(|e| CatalogError::InvalidPricing(e.to_string()))?;
        if read_loyalty_rules(self.core()).as_ref() == Some(rules) {
            return Ok(None);
        }
        self.core_mut().commit(at_ms, "loyalty-rules", |tx| {
            let root = child_map(tx, &automerge::ROOT, KEY_PRICING)?;
            tx.put(&root, KEY_RULES, json.as_str())?;
            Ok::<(), CatalogError>(())
        })
    }
}

/// The loyalty rules a catalog document holds (`None`: HQ runs no loyalty scheme, or wrote
/// rules this node cannot read).
pub fn read_loyalty_rules(core: &SyncDoc) -> Option<LoyaltyRules> {
    let doc = core.automerge();
    let json = str_at(doc, &map_at(doc, &automerge::ROOT, KEY_PRICING)?, KEY_RULES)?;
    match serde_json::from_str(&json) {
        Ok(rules) => Some(rules),
        Err(error) => {
            tracing::warn!(%error, "loyalty rules from HQ skipped");
            None
        }
    }
}

#[cfg(test)]
#[path = "loyalty_tests.rs"]
mod tests;
