//! The online escrow between a store node's SQLite and its orders document
//! ([`crate::domain::escrow`] has the rule, [`crate::crdt::escrow`] the layout): grants made at
//! this node are recorded in the document in the commit that made them, and the node's view of the
//! totals (`escrow_level`) follows the document after every change to it.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::{LocalError, NodeDocs};
use crate::crdt::escrow::EscrowField;
use crate::store::escrow::{self as store_escrow, EscrowLevel};
use crate::sync::persist;

/// `sync_state` key of the highest `escrow_grant.id` recorded in the orders document.
pub const KEY_ESCROW_GRANT_MARK: &str = "escrow_grant_mark";

impl NodeDocs {
    /// Records this node's new grants as one change (logged and put in the outbox). Runs
    /// inside the group-commit transaction; returns whether a change was made.
    pub fn record_escrow_grants(
        &mut self,
        conn: &Connection,
        now: &str,
    ) -> Result<bool, LocalError> {
        let mark = persist::state_get(conn, KEY_ESCROW_GRANT_MARK)?.unwrap_or(0);
        let grants = store_escrow::grants_since(conn, mark)?;
        let Some(last) = grants.last().map(|(id, _, _)| *id) else {
            return Ok(false);
        };
        let mut per_sku: BTreeMap<String, i64> = BTreeMap::new();
        for (_, sku, quantity) in grants {
            let total = per_sku.entry(sku).or_default();
            *total = total.saturating_add(quantity);
        }
        let entries: Vec<_> = per_sku
            .into_iter()
            .map(|(sku, quantity)| (sku, EscrowField::Granted, quantity))
            .collect();
        let change = self.orders.add_escrow(&entries, crate::clock::now_ms())?;
        if let Some(change) = &change {
            let core = self.orders.core();
            persist::persist_change(conn, core, &change.bytes, false, now)?;
            persist::outbox_push(conn, core.id(), core.epoch(), &change.hash, now)?;
        }
        persist::state_set(conn, KEY_ESCROW_GRANT_MARK, last)?;
        self.refresh_escrow(conn)?;
        Ok(change.is_some())
    }

    /// Rewrites the node's escrow totals from the document (plus grants not recorded yet).
    pub(super) fn refresh_escrow(&self, conn: &Connection) -> Result<(), LocalError> {
        let levels: Vec<(String, EscrowLevel)> = self
            .orders
            .escrow_totals()
            .into_iter()
            .map(|(sku, t)| {
                let level = EscrowLevel {
                    granted: t.granted,
                    consumed: t.consumed,
                    returned: t.returned,
                };
                (sku, level)
            })
            .collect();
        let mark = persist::state_get(conn, KEY_ESCROW_GRANT_MARK)?.unwrap_or(0);
        let unrecorded = store_escrow::grants_since(conn, mark)?;
        store_escrow::replace_levels(conn, &levels, &unrecorded)?;
        // Coupon counters live in the same document and follow it at the same moments.
        self.refresh_coupons(conn)?;
        Ok(())
    }
}
