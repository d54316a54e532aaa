//! The loyalty ledger between a lane's SQLite and its store's orders document
//! ([`crate::domain::loyalty`] has the rule, [`crate::crdt::loyalty`] the layout): the lane's
//! entries (earned, spent, reversed, owed, wanted, refunded) are added to its totals in the
//! commit that wrote them, and HQ's grants to this lane follow the document after every
//! change to it.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::{LocalError, NodeDocs};
use crate::crdt::loyalty::LoyaltyField;
use crate::store::loyalty as store_loyalty;
use crate::sync::persist;

/// `sync_state` key of the highest `loyalty_entry.id` recorded in the orders document.
pub const KEY_LOYALTY_MARK: &str = "loyalty_entry_mark";

fn field(kind: &str) -> Option<LoyaltyField> {
    Some(match kind {
        "earned" => LoyaltyField::Earned,
        "spent" => LoyaltyField::Spent,
        "reversed" => LoyaltyField::Reversed,
        "released" => LoyaltyField::Released,
        "owed" => LoyaltyField::Owed,
        "wanted" => LoyaltyField::Wanted,
        "refunded" => LoyaltyField::Refunded,
        _ => return None,
    })
}

impl NodeDocs {
    /// Records this lane's new loyalty entries as one change (logged and put in the outbox).
    /// Runs inside the group-commit transaction; returns whether a change was made. Each
    /// entry is added once: the mark moves past it in the same transaction.
    pub fn record_loyalty(&mut self, conn: &Connection, now: &str) -> Result<bool, LocalError> {
        let mark = persist::state_get(conn, KEY_LOYALTY_MARK)?.unwrap_or(0);
        let entries = store_loyalty::entries_since(conn, mark)?;
        let Some(last) = entries.last().map(|(id, ..)| *id) else {
            return Ok(false);
        };
        let mut totals: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (_, member, kind, points) in entries {
            let total = totals.entry((member, kind)).or_default();
            *total = total.saturating_add(points);
        }
        let entries: Vec<_> = totals
            .into_iter()
            .filter_map(|((member, kind), points)| Some((member, field(&kind)?, points)))
            .collect();
        let change = self.orders.add_loyalty(&entries, crate::clock::now_ms())?;
        if let Some(change) = &change {
            let core = self.orders.core();
            persist::persist_change(conn, core, &change.bytes, false, now)?;
            persist::outbox_push(conn, core.id(), core.epoch(), &change.hash, now)?;
        }
        persist::state_set(conn, KEY_LOYALTY_MARK, last)?;
        Ok(change.is_some())
    }

    /// Rewrites HQ's grants to this lane from the document.
    pub(super) fn refresh_loyalty(&self, conn: &Connection) -> Result<(), LocalError> {
        let me = self.writer.as_str();
        let grants: Vec<(String, i64)> = self
            .orders
            .loyalty_ledgers()
            .into_iter()
            .filter_map(|(member, ledger)| {
                let granted = ledger.lanes.get(me)?.granted;
                (granted != 0).then_some((member, granted))
            })
            .collect();
        store_loyalty::replace_grants(conn, &grants)?;
        Ok(())
    }
}
