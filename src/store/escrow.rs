//! The online channel's escrow at a store node (the rule is in [`crate::crdt::escrow`]):
//! staff grant units to the web shop, the tills may not sell granted units, and sync keeps
//! the totals other writers (HQ's consumption and returns) add.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::catalog;
use super::ledger::{self, StockLevel};
use super::sales::{WriteContext, positive};

/// `POST /v1/escrow/grants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub sku: Option<String>,
    pub gtin: Option<String>,
    pub quantity: i64,
}

/// The escrow of one SKU as this node sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EscrowLevel {
    pub granted: i64,
    pub consumed: i64,
    pub returned: i64,
}

impl EscrowLevel {
    /// Units still held for the online channel.
    pub fn remaining(&self) -> i64 {
        self.granted
            .saturating_sub(self.consumed)
            .saturating_sub(self.returned)
            .max(0)
    }
}

/// One SKU's escrow and what the store's tills may still sell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EscrowView {
    pub sku: String,
    #[serde(flatten)]
    pub level: EscrowLevel,
    /// Units the web shop may still promise.
    pub online_remaining: i64,
    /// Units the store may sell or grant: on hand − reserved − online remaining.
    pub store_free: i64,
}

pub fn level(conn: &Connection, sku: &str) -> Result<EscrowLevel, StoreError> {
    Ok(conn
        .prepare_cached("SELECT granted, consumed, returned FROM escrow_level WHERE sku = ?1")?
        .query_row([sku], |r| {
            Ok(EscrowLevel {
                granted: r.get(0)?,
                consumed: r.get(1)?,
                returned: r.get(2)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

fn view(conn: &Connection, sku: &str) -> Result<EscrowView, StoreError> {
    let escrow = level(conn, sku)?;
    Ok(EscrowView {
        sku: sku.to_owned(),
        level: escrow,
        online_remaining: escrow.remaining(),
        store_free: free_units(ledger::level(conn, sku)?, escrow),
    })
}

fn free_units(stock: StockLevel, escrow: EscrowLevel) -> i64 {
    stock.available().saturating_sub(escrow.remaining())
}

/// The escrow of `sku` (what the stock API shows beside the level).
pub fn get(conn: &Connection, sku: &str) -> Result<EscrowView, StoreError> {
    view(conn, sku)
}

/// Every SKU with an escrow, by SKU.
pub fn list(conn: &Connection) -> Result<Vec<EscrowView>, StoreError> {
    let skus: Vec<String> = conn
        .prepare_cached("SELECT sku FROM escrow_level ORDER BY sku")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    skus.iter().map(|sku| view(conn, sku)).collect()
}

/// Grants units the store has free to the online channel.
pub fn grant(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    request: &GrantRequest,
) -> Result<EscrowView, StoreError> {
    let item = catalog::resolve(
        conn,
        "item",
        request.sku.as_deref(),
        request.gtin.as_deref(),
    )?;
    let quantity = positive("quantity", request.quantity)?;
    let before = view(conn, &item.sku)?;
    if quantity > before.store_free {
        return Err(StoreError::Conflict(format!(
            "only {} of {} are free to grant",
            before.store_free.max(0),
            item.sku
        )));
    }
    grant_units(conn, ctx, &item.sku, quantity)?;
    view(conn, &item.sku)
}

/// Refuses a till sale that left `stock` (the level after the sale) short of the units held
/// for the online channel: they are promised to web customers.
pub fn check_sale(conn: &Connection, sku: &str, stock: StockLevel) -> Result<(), StoreError> {
    let escrow = level(conn, sku)?;
    if escrow.remaining() == 0 || free_units(stock, escrow) >= 0 {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "{} units of {sku} are held for online orders: this sale would take {} of them",
        escrow.remaining(),
        free_units(stock, escrow).saturating_neg()
    )))
}

/// SKUs granted per top-up at most: one top-up is one change, kept well under the sync
/// message cap; the rest follow at the next top-up.
const TOP_UP_BATCH: i64 = 500;

/// Grants free units so that up to `target` units of every SKU are held for the online
/// channel (the store's policy, `sync.online_escrow_units`). Returns the SKUs granted to.
pub fn top_up(conn: &Connection, ctx: &WriteContext<'_>, target: i64) -> Result<usize, StoreError> {
    if target <= 0 {
        return Ok(0);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT sku, free, held FROM (
             SELECT s.sku AS sku,
                    MAX(COALESCE(e.granted - e.consumed - e.returned, 0), 0) AS held,
                    s.on_hand - s.reserved
                      - MAX(COALESCE(e.granted - e.consumed - e.returned, 0), 0) AS free
             FROM stock_level s LEFT JOIN escrow_level e ON e.sku = s.sku)
         WHERE free > 0 AND held < ?1 ORDER BY sku LIMIT ?2",
    )?;
    let due: Vec<(String, i64, i64)> = stmt
        .query_map(params![target, TOP_UP_BATCH], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    for (sku, free, held) in &due {
        let quantity = (target - held).min(*free);
        grant_units(conn, ctx, sku, quantity)?;
    }
    Ok(due.len())
}

fn grant_units(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    sku: &str,
    quantity: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO escrow_grant (sku, quantity, terminal, at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![sku, quantity, ctx.terminal, ctx.now])?;
    conn.prepare_cached(
        "INSERT INTO escrow_level (sku, granted) VALUES (?1, ?2)
         ON CONFLICT(sku) DO UPDATE SET granted = granted + excluded.granted",
    )?
    .execute(params![sku, quantity])?;
    Ok(())
}

/// This node's grants with id above `mark`, as (id, sku, quantity).
pub fn grants_since(conn: &Connection, mark: i64) -> Result<Vec<(i64, String, i64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id, sku, quantity FROM escrow_grant WHERE id > ?1 ORDER BY id")?;
    let rows = stmt.query_map([mark], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces the totals with what sync knows (`levels` includes this node's recorded grants;
/// grants not recorded yet are added from `unrecorded`).
pub fn replace_levels(
    conn: &Connection,
    levels: &[(String, EscrowLevel)],
    unrecorded: &[(i64, String, i64)],
) -> Result<(), StoreError> {
    conn.execute("DELETE FROM escrow_level", [])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO escrow_level (sku, granted, consumed, returned) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(sku) DO UPDATE SET granted = granted + excluded.granted,
            consumed = consumed + excluded.consumed, returned = returned + excluded.returned",
    )?;
    for (sku, l) in levels {
        insert.execute(params![sku, l.granted, l.consumed, l.returned])?;
    }
    for (_, sku, quantity) in unrecorded {
        insert.execute(params![sku, quantity, 0, 0])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TaxConfig;
    use crate::store::catalog::Item;
    use crate::store::ledger::{Movement, MovementKind};
    use crate::store::testing::memory_db;

    const NOW: &str = "2026-11-23T10:00:00.000Z";

    fn with_milk(on_hand: i64) -> Connection {
        let conn = memory_db();
        let item = Item {
            sku: "MILK".into(),
            name: "Milk".into(),
            price_minor: 119,
            currency: "EUR".into(),
            tax_class: "reduced".into(),
            variable_measure: false,
            gtins: Vec::new(),
            epc_patterns: Vec::new(),
        };
        catalog::upsert(&conn, &item, NOW).unwrap();
        let receipt = Movement {
            sku: "MILK",
            kind: MovementKind::Receipt,
            on_hand_delta: on_hand,
            reserved_delta: 0,
            ref_type: "receipt",
            ref_id: "r1",
            terminal: "pos1",
        };
        ledger::record(&conn, &receipt, NOW).unwrap();
        conn
    }

    #[test]
    fn grants_come_from_free_units_and_block_till_sales_of_them() {
        let conn = with_milk(5);
        let tax = TaxConfig {
            prices_include_tax: true,
            classes: Vec::new(),
        };
        let ctx = WriteContext {
            terminal: "pos1",
            writer_id: "s1.n1",
            currency: "EUR",
            tax: &tax,
            now: NOW,
            pricing: None,
        };
        let grant = |q| GrantRequest {
            sku: Some("MILK".into()),
            gtin: None,
            quantity: q,
        };
        assert!(matches!(
            super::grant(&conn, &ctx, &grant(6)),
            Err(StoreError::Conflict(_))
        ));
        let view = super::grant(&conn, &ctx, &grant(2)).unwrap();
        assert_eq!((view.online_remaining, view.store_free), (2, 3));
        let after = |on_hand| StockLevel {
            on_hand,
            reserved: 0,
        };
        assert!(check_sale(&conn, "MILK", after(2)).is_ok());
        assert!(matches!(
            check_sale(&conn, "MILK", after(1)),
            Err(StoreError::Conflict(_))
        ));
        // HQ consumed one for an online order; the store learns it through sync.
        let synced = EscrowLevel {
            granted: 2,
            consumed: 1,
            returned: 0,
        };
        replace_levels(&conn, &[("MILK".into(), synced)], &[]).unwrap();
        assert_eq!(level(&conn, "MILK").unwrap().remaining(), 1);
        assert_eq!(
            grants_since(&conn, 0).unwrap(),
            vec![(1, "MILK".to_owned(), 2)]
        );
        assert_eq!(list(&conn).unwrap().len(), 1);
    }

    #[test]
    fn top_up_keeps_the_target_held_within_free_stock() {
        let conn = with_milk(3);
        let tax = TaxConfig {
            prices_include_tax: true,
            classes: Vec::new(),
        };
        let ctx = WriteContext {
            terminal: "escrow",
            writer_id: "s1.n1",
            currency: "EUR",
            tax: &tax,
            now: NOW,
            pricing: None,
        };
        assert_eq!(top_up(&conn, &ctx, 2).unwrap(), 1);
        assert_eq!(level(&conn, "MILK").unwrap().remaining(), 2);
        assert_eq!(top_up(&conn, &ctx, 2).unwrap(), 0, "already at target");
        // A larger target takes only what is still free.
        assert_eq!(top_up(&conn, &ctx, 10).unwrap(), 1);
        let view = get(&conn, "MILK").unwrap();
        assert_eq!((view.online_remaining, view.store_free), (3, 0));
        assert_eq!(top_up(&conn, &ctx, 10).unwrap(), 0, "nothing free");
    }
}
