//! SQLite follows the stock document: other writers' changes become `peer` movements, so
//! every lane's ledger sums to the store-wide levels.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::{LocalError, NodeDocs, levels_by_sku};
use crate::store::ledger::{self, MovementKind};

impl NodeDocs {
    /// Writes `peer` movements so SQLite's levels equal the document's store-wide levels.
    /// Call after [`Self::record_local_movements`] in the same transaction.
    pub fn reconcile_stock(&mut self, conn: &Connection, now: &str) -> Result<usize, LocalError> {
        if !self.stock_needs_reconcile {
            return Ok(0);
        }
        let target = levels_by_sku(&self.stock.stock_levels());
        let current = sqlite_levels(conn)?;
        let mut written = 0;
        let ref_id = self.epoch.to_string();
        for (sku, (on_hand, reserved)) in &target {
            let (have_on, have_res) = current.get(sku).copied().unwrap_or((0, 0));
            written += usize::from(record_peer(
                conn,
                sku,
                on_hand - have_on,
                reserved - have_res,
                &ref_id,
                now,
            )?);
        }
        for (sku, (have_on, have_res)) in &current {
            if !target.contains_key(sku) {
                written += usize::from(record_peer(conn, sku, -have_on, -have_res, &ref_id, now)?);
            }
        }
        // Our own peer rows must not come back as own movements.
        let last: i64 =
            conn.query_row("SELECT COALESCE(max(id), 0) FROM stock_movement", [], |r| {
                r.get(0)
            })?;
        self.set_mark(conn, last)?;
        self.stock_needs_reconcile = false;
        Ok(written)
    }
}

fn sqlite_levels(conn: &Connection) -> Result<BTreeMap<String, (i64, i64)>, LocalError> {
    let mut stmt = conn.prepare_cached("SELECT sku, on_hand, reserved FROM stock_level")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, (row.get(1)?, row.get(2)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn record_peer(
    conn: &Connection,
    sku: &str,
    on_hand_delta: i64,
    reserved_delta: i64,
    epoch: &str,
    now: &str,
) -> Result<bool, LocalError> {
    if on_hand_delta == 0 && reserved_delta == 0 {
        return Ok(false);
    }
    let movement = ledger::Movement {
        sku,
        kind: MovementKind::Peer,
        on_hand_delta,
        reserved_delta,
        ref_type: "sync-epoch",
        ref_id: epoch,
        terminal: "sync",
    };
    ledger::record(conn, &movement, now)?;
    Ok(true)
}

/// Count of SQLite `peer` rows, for tests and diagnostics.
pub fn peer_movement_count(conn: &Connection) -> Result<i64, LocalError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM stock_movement WHERE kind = ?1",
        params![MovementKind::Peer.as_str()],
        |r| r.get(0),
    )?)
}
