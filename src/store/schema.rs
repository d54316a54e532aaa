//! Versioned migrations, applied in order at start inside one transaction each.
//!
//! The version lives in `PRAGMA user_version`. A database written by a newer binary is refused:
//! an older binary cannot know what the newer tables mean, and guessing could lose data.

use rusqlite::Connection;

use super::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`. Append only; never edit.
const MIGRATIONS: &[&str] = &[
    // 1: catalog, ledger, sales, returns, click-and-collect orders, idempotency.
    r#"
    CREATE TABLE item (
        sku              TEXT PRIMARY KEY,
        name             TEXT NOT NULL,
        price_minor      INTEGER NOT NULL CHECK (price_minor >= 0),
        currency         TEXT NOT NULL,
        tax_class        TEXT NOT NULL,
        variable_measure INTEGER NOT NULL DEFAULT 0 CHECK (variable_measure IN (0, 1)),
        updated_at       TEXT NOT NULL
    ) STRICT;

    CREATE TABLE item_gtin (
        gtin14 TEXT PRIMARY KEY CHECK (length(gtin14) = 14),
        sku    TEXT NOT NULL REFERENCES item(sku) ON DELETE CASCADE
    ) STRICT;
    CREATE INDEX item_gtin_by_sku ON item_gtin(sku);

    -- Append-only. Stock is derived from it; stock_level is its indexed running sum.
    CREATE TABLE stock_movement (
        id        INTEGER PRIMARY KEY,
        sku       TEXT NOT NULL,
        kind      TEXT NOT NULL CHECK (kind IN
                   ('sale','return','receipt','adjustment','count','transfer','reservation','peer')),
        on_hand_delta  INTEGER NOT NULL,
        reserved_delta INTEGER NOT NULL DEFAULT 0,
        ref_type  TEXT,
        ref_id    TEXT,
        terminal  TEXT,
        at        TEXT NOT NULL
    ) STRICT;
    CREATE INDEX stock_movement_by_sku ON stock_movement(sku, id);

    CREATE TABLE stock_level (
        sku        TEXT PRIMARY KEY,
        on_hand    INTEGER NOT NULL DEFAULT 0,
        reserved   INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX stock_level_negative ON stock_level(on_hand) WHERE on_hand < 0;

    CREATE TABLE sale (
        id          INTEGER PRIMARY KEY,
        sale_no     TEXT NOT NULL UNIQUE,
        terminal    TEXT NOT NULL,
        at          TEXT NOT NULL,
        currency    TEXT NOT NULL,
        total_minor INTEGER NOT NULL,
        tax_minor   INTEGER NOT NULL,
        paid_minor  INTEGER NOT NULL,
        change_minor INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE sale_line (
        sale_id          INTEGER NOT NULL REFERENCES sale(id),
        line_no          INTEGER NOT NULL,
        sku              TEXT NOT NULL,
        gtin14           TEXT,
        name             TEXT NOT NULL,
        quantity         INTEGER NOT NULL CHECK (quantity > 0),
        unit             TEXT NOT NULL CHECK (unit IN ('piece', 'gram')),
        unit_price_minor INTEGER NOT NULL,
        amount_minor     INTEGER NOT NULL,
        tax_class        TEXT NOT NULL,
        tax_rate_bp      INTEGER NOT NULL,
        tax_minor        INTEGER NOT NULL,
        epc              TEXT,
        PRIMARY KEY (sale_id, line_no)
    ) STRICT;

    CREATE TABLE payment (
        sale_id      INTEGER NOT NULL REFERENCES sale(id),
        seq          INTEGER NOT NULL,
        method       TEXT NOT NULL,
        amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
        reference    TEXT,
        PRIMARY KEY (sale_id, seq)
    ) STRICT;

    CREATE TABLE sale_return (
        id           INTEGER PRIMARY KEY,
        return_no    TEXT NOT NULL UNIQUE,
        sale_id      INTEGER NOT NULL REFERENCES sale(id),
        terminal     TEXT NOT NULL,
        at           TEXT NOT NULL,
        refund_minor INTEGER NOT NULL,
        tax_minor    INTEGER NOT NULL,
        reason       TEXT
    ) STRICT;

    CREATE TABLE return_line (
        return_id    INTEGER NOT NULL REFERENCES sale_return(id),
        sale_id      INTEGER NOT NULL,
        line_no      INTEGER NOT NULL,
        quantity     INTEGER NOT NULL CHECK (quantity > 0),
        refund_minor INTEGER NOT NULL,
        tax_minor    INTEGER NOT NULL,
        PRIMARY KEY (return_id, line_no),
        FOREIGN KEY (sale_id, line_no) REFERENCES sale_line(sale_id, line_no)
    ) STRICT;
    CREATE INDEX return_line_by_sale ON return_line(sale_id, line_no);

    CREATE TABLE cc_order (
        id               TEXT PRIMARY KEY,
        status           TEXT NOT NULL,
        channel          TEXT NOT NULL,
        pickup_code_hash TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        hold_until       TEXT NOT NULL,
        updated_at       TEXT NOT NULL
    ) STRICT;
    CREATE INDEX cc_order_by_status ON cc_order(status, created_at);

    CREATE TABLE cc_order_line (
        order_id   TEXT NOT NULL REFERENCES cc_order(id),
        line_no    INTEGER NOT NULL,
        sku        TEXT NOT NULL,
        quantity   INTEGER NOT NULL CHECK (quantity > 0),
        picked     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (order_id, line_no)
    ) STRICT;

    CREATE TABLE cc_order_event (
        id       INTEGER PRIMARY KEY,
        order_id TEXT NOT NULL REFERENCES cc_order(id),
        status   TEXT NOT NULL,
        at       TEXT NOT NULL,
        actor    TEXT NOT NULL,
        note     TEXT
    ) STRICT;
    CREATE INDEX cc_order_event_by_order ON cc_order_event(order_id, id);

    -- The first result of every write, so a replayed request returns it and changes nothing.
    CREATE TABLE idempotency (
        terminal     TEXT NOT NULL,
        key          TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status       INTEGER NOT NULL,
        response     TEXT NOT NULL,
        at           TEXT NOT NULL,
        PRIMARY KEY (terminal, key)
    ) STRICT;
    "#,
    // 2: device events (scans, tag reads, item-level RFID inventory). Owned by `devices`.
    include_str!("devices.sql"),
    // 3: sync state (CRDT documents, outbox, peers' heads). Owned by `sync`.
    include_str!("../sync/schema.sql"),
    // 4: orders shared with HQ and the store's other lanes. Owned by `store::orders`.
    include_str!("orders_shared.sql"),
    // EPCIS event log (triggers on receipts, counts, sales, tag reads). Owned by `epcis`.
    include_str!("../epcis/schema.sql"),
    // Store-to-store transfers. Owned by `store::transfers`.
    include_str!("transfers.sql"),
    // Customer personal data of orders, outside CRDT history; erasable. Owned by `privacy`.
    include_str!("customers.sql"),
    // Escrow of the online channel (grants, and the totals sync learns). Owned by `store::escrow`.
    include_str!("escrow.sql"),
    // Pricing rules from HQ and the promotions applied to sale lines. Owned by `store::pricing`.
    include_str!("pricing.sql"),
    // The GIAI/SSCC tags an item accepts on its sale line. Owned by `store::catalog`.
    include_str!("item_epc.sql"),
    // Fewer, smaller pages per sale (SD-card wear). Owned by `store::ledger` and
    // `store::idempotency`.
    include_str!("write_path.sql"),
    // The loyalty ledger's lane entries, HQ's grants and rules. Owned by `store::loyalty`.
    include_str!("loyalty.sql"),
    // Coupons: HQ's definitions, the uses this lane holds, its redemptions. Owned by `store::coupons`.
    include_str!("coupons.sql"),
    // A version ahead of the pricing rules, so a sale parses them only after they changed.
    // Owned by `store::pricing`.
    include_str!("pricing_version.sql"),
    // Points a return gives back; a lane's ask to HQ for a coupon's use. Owned by
    // `store::loyalty` and `store::coupons`.
    include_str!("points_refund_coupon_want.sql"),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`SCHEMA_VERSION`]; returns the version it found.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_empty_database_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn pricing_rules_keep_their_content_when_they_get_a_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let versioned = MIGRATIONS
            .iter()
            .position(|sql| sql.contains("pricing_rules_versioned"))
            .unwrap();
        for sql in &MIGRATIONS[..versioned] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", versioned as u32)
            .unwrap();
        conn.execute(
            "INSERT INTO pricing_rules (id, rules, updated_at) VALUES (1, '{\"x\":1}', 't')",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (i64, String, String) = conn
            .query_row(
                "SELECT version, rules, updated_at FROM pricing_rules",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, (1, "{\"x\":1}".to_owned(), "t".to_owned()));
    }
}
