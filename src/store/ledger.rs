//! The append-only stock movement ledger and the stock levels derived from it.
//!
//! Every change of stock is a row in `stock_movement`; `stock_level` is its running sum per
//! SKU, updated in the same transaction, so "stock on hand" is one indexed read and
//! [`verify`] can prove at any time that it equals the sum of the ledger.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MovementKind {
    Sale,
    Return,
    Receipt,
    Adjustment,
    Count,
    Transfer,
    Reservation,
    /// Net movements of another writer of the same store (another lane), replicated by sync;
    /// never replicated back.
    Peer,
}

impl MovementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sale => "sale",
            Self::Return => "return",
            Self::Receipt => "receipt",
            Self::Adjustment => "adjustment",
            Self::Count => "count",
            Self::Transfer => "transfer",
            Self::Reservation => "reservation",
            Self::Peer => "peer",
        }
    }
}

/// One movement. `on_hand_delta` is in pieces, or grams for variable-measure items;
/// `reserved_delta` holds units for click-and-collect orders without moving them.
#[derive(Debug, Clone)]
pub struct Movement<'a> {
    pub sku: &'a str,
    pub kind: MovementKind,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub ref_type: &'a str,
    pub ref_id: &'a str,
    pub terminal: &'a str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StockLevel {
    pub on_hand: i64,
    pub reserved: i64,
}

impl StockLevel {
    /// What can still be sold to walk-in customers: on hand minus reserved.
    pub fn available(self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Appends a movement and updates the SKU's level; returns the new level.
pub fn record(conn: &Connection, m: &Movement<'_>, at: &str) -> Result<StockLevel, StoreError> {
    check_fits(conn, m)?;
    conn.prepare_cached(
        "INSERT INTO stock_movement (sku, kind, on_hand_delta, reserved_delta, ref_type, ref_id, terminal, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        m.sku,
        m.kind.as_str(),
        m.on_hand_delta,
        m.reserved_delta,
        m.ref_type,
        m.ref_id,
        m.terminal,
        at
    ])?;
    let level = conn
        .prepare_cached(
            "INSERT INTO stock_level (sku, on_hand, reserved, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(sku) DO UPDATE SET on_hand = on_hand + excluded.on_hand,
               reserved = reserved + excluded.reserved, updated_at = excluded.updated_at
             RETURNING on_hand, reserved",
        )?
        .query_row(
            params![m.sku, m.on_hand_delta, m.reserved_delta, at],
            |row| {
                Ok(StockLevel {
                    on_hand: row.get(0)?,
                    reserved: row.get(1)?,
                })
            },
        )?;
    Ok(level)
}

/// Refuses (422) a movement that would overflow the SKU's level. SQLite turns an
/// overflowing integer sum into a float, which could no longer be read back as a level.
fn check_fits(conn: &Connection, m: &Movement<'_>) -> Result<(), StoreError> {
    let (on_hand, reserved): (i64, i64) = conn
        .prepare_cached("SELECT on_hand, reserved FROM stock_level WHERE sku = ?1")?
        .query_row([m.sku], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    let fits = on_hand.checked_add(m.on_hand_delta).is_some()
        && reserved.checked_add(m.reserved_delta).is_some();
    if fits {
        return Ok(());
    }
    Err(StoreError::unprocessable(
        "quantity",
        format!(
            "stock of {} would overflow: {on_hand} on hand, {} more",
            m.sku, m.on_hand_delta
        ),
    ))
}

pub fn level(conn: &Connection, sku: &str) -> Result<StockLevel, StoreError> {
    Ok(conn
        .prepare_cached("SELECT on_hand, reserved FROM stock_level WHERE sku = ?1")?
        .query_row([sku], |row| {
            Ok(StockLevel {
                on_hand: row.get(0)?,
                reserved: row.get(1)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SkuStock {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

/// A page of all catalog items' stock, ordered by SKU, starting after `after`.
pub fn page(conn: &Connection, after: &str, limit: u32) -> Result<Vec<SkuStock>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.sku, COALESCE(l.on_hand, 0), COALESCE(l.reserved, 0)
         FROM item i LEFT JOIN stock_level l ON l.sku = i.sku
         WHERE i.sku > ?1 ORDER BY i.sku LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit], |row| {
        let on_hand: i64 = row.get(1)?;
        let reserved: i64 = row.get(2)?;
        Ok(SkuStock {
            sku: row.get(0)?,
            on_hand,
            reserved,
            available: on_hand - reserved,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Number of SKUs whose stock on hand is below zero (sold more than the system knew of).
pub fn negative_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM stock_level WHERE on_hand < 0",
        [],
        |row| row.get(0),
    )?;
    Ok(n.unsigned_abs())
}

/// SKUs whose stored level differs from the sum of their ledger. Empty when consistent.
pub fn verify(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT l.sku FROM stock_level l
         LEFT JOIN (SELECT sku, sum(on_hand_delta) AS oh, sum(reserved_delta) AS rs
                    FROM stock_movement GROUP BY sku) m ON m.sku = l.sku
         WHERE l.on_hand != COALESCE(m.oh, 0) OR l.reserved != COALESCE(m.rs, 0)",
    )?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::memory_db;

    fn movement(sku: &str, kind: MovementKind, delta: i64) -> Movement<'_> {
        Movement {
            sku,
            kind,
            on_hand_delta: delta,
            reserved_delta: 0,
            ref_type: "test",
            ref_id: "1",
            terminal: "t1",
        }
    }

    #[test]
    fn a_movement_that_would_overflow_the_level_is_refused_and_not_recorded() {
        // Regression (tests/api.rs hostile bodies): this was a 500 with a float in SQLite.
        let conn = memory_db();
        record(&conn, &movement("A", MovementKind::Receipt, 10), "t").unwrap();
        let err = record(&conn, &movement("A", MovementKind::Receipt, i64::MAX), "t").unwrap_err();
        assert!(
            matches!(&err, StoreError::Unprocessable { reason, .. } if reason.contains("overflow")),
            "{err}"
        );
        assert_eq!(level(&conn, "A").unwrap().on_hand, 10);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM stock_movement", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "the refused movement is not in the ledger");
    }

    #[test]
    fn levels_are_the_running_sum() {
        let conn = memory_db();
        record(&conn, &movement("A", MovementKind::Receipt, 10), "t").unwrap();
        let after = record(&conn, &movement("A", MovementKind::Sale, -3), "t").unwrap();
        assert_eq!(after.on_hand, 7);
        let reserved = Movement {
            reserved_delta: 2,
            on_hand_delta: 0,
            ..movement("A", MovementKind::Reservation, 0)
        };
        let level = record(&conn, &reserved, "t").unwrap();
        assert_eq!(level.available(), 5);
        assert!(verify(&conn).unwrap().is_empty());
    }

    #[test]
    fn verify_finds_a_tampered_level() {
        let conn = memory_db();
        record(&conn, &movement("A", MovementKind::Receipt, 10), "t").unwrap();
        conn.execute("UPDATE stock_level SET on_hand = 11", [])
            .unwrap();
        assert_eq!(verify(&conn).unwrap(), vec!["A".to_string()]);
    }
}
