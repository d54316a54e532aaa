//! Coupons between a store node's SQLite and the documents ([`crate::domain::coupons`] has the
//! rule, [`crate::crdt::coupons`] the layout): redemptions, releases and asks made at this
//! node are recorded in the orders document in the commit that made them, the node's view of
//! what it holds (`coupon_level`) follows the document after every change to it, and HQ's
//! definitions follow the catalog document (`catalog.rs`).

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::{LocalError, NodeDocs};
use crate::crdt::coupons::CouponEntry;
use crate::store::coupons::{self as store_coupons, UseKind};
use crate::sync::persist;

/// `sync_state` key of the highest `coupon_redemption.id` recorded in the orders document.
pub const KEY_COUPON_MARK: &str = "coupon_redemption_mark";

impl NodeDocs {
    /// Records this node's new redemptions as one change (logged and put in the outbox).
    /// Runs inside the group-commit transaction; returns whether a change was made.
    pub fn record_coupon_redemptions(
        &mut self,
        conn: &Connection,
        now: &str,
    ) -> Result<bool, LocalError> {
        let mark = persist::state_get(conn, KEY_COUPON_MARK)?.unwrap_or(0);
        let redemptions = store_coupons::redemptions_since(conn, mark)?;
        let Some(last) = redemptions.last().map(|(id, _, _, _)| *id) else {
            return Ok(false);
        };
        // code → (redeemed, released, wanted) since the mark.
        let mut per_code: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
        for (_, code, kind, uses) in redemptions {
            let (redeemed, released, wanted) = per_code.entry(code).or_default();
            let total = match kind {
                UseKind::Redeem => redeemed,
                UseKind::Release => released,
                UseKind::Want => wanted,
            };
            *total = total.saturating_add(uses);
        }
        let mut entries = Vec::new();
        for (code, (redeemed, released, wanted)) in per_code {
            if redeemed > 0 {
                entries.push((code.clone(), CouponEntry::Redeem { uses: redeemed }));
            }
            if released > 0 {
                entries.push((code.clone(), CouponEntry::Release { uses: released }));
            }
            if wanted > 0 {
                entries.push((code, CouponEntry::Want { uses: wanted }));
            }
        }
        let change = self.orders.add_coupons(&entries, crate::clock::now_ms())?;
        if let Some(change) = &change {
            let core = self.orders.core();
            persist::persist_change(conn, core, &change.bytes, false, now)?;
            persist::outbox_push(conn, core.id(), core.epoch(), &change.hash, now)?;
        }
        persist::state_set(conn, KEY_COUPON_MARK, last)?;
        self.refresh_coupons(conn)?;
        Ok(change.is_some())
    }

    /// Rewrites what this lane holds from the orders document (plus redemptions not
    /// recorded yet).
    pub(super) fn refresh_coupons(&self, conn: &Connection) -> Result<(), LocalError> {
        let writer = self.writer().clone();
        let levels = self
            .orders
            .coupon_totals()
            .into_iter()
            .map(|(code, per_lane)| {
                let store_redeemed = per_lane.values().map(|t| t.redeemed).sum::<i64>();
                let mine = per_lane.get(&writer).copied().unwrap_or_default();
                (code, (mine, store_redeemed))
            })
            .collect();
        let mark = persist::state_get(conn, KEY_COUPON_MARK)?.unwrap_or(0);
        let unrecorded = store_coupons::redemptions_since(conn, mark)?;
        store_coupons::replace_levels(conn, &levels, &unrecorded)?;
        Ok(())
    }
}
