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
    // Sale lines and payments WITHOUT ROWID, sales without their `sale_no` index, the EPCIS
    // log without AUTOINCREMENT and its unread unique index, the node's sync log and outbox
    // without their indexes: fewer pages per sale (SD-card wear). Owned by `store::sales`, `epcis` and `sync::persist`.
    include_str!("write_path_append.sql"),
    // The catalog document's heads and change hashes, so a start need not build the
    // document to know them. Owned by `sync::local::catalog`.
    include_str!("../sync/doc_hashes.sql"),
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
    if found == SCHEMA_VERSION {
        return Ok(found);
    }
    // A migration that rebuilds a table (create the new one, copy, drop the old, rename)
    // must run with foreign keys off: dropping a parent table with them on deletes its rows
    // first, which the children's references refuse. The switch is a no-op inside a
    // transaction, so it is flipped around them, and every migration is checked with
    // `foreign_key_check` before it commits instead (SQLite's documented procedure).
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let applied = apply(conn, MIGRATIONS, found);
    conn.pragma_update(None, "foreign_keys", enforced)?;
    applied?;
    Ok(found)
}

fn apply(conn: &mut Connection, migrations: &[&str], found: u32) -> Result<(), StoreError> {
    // Rows that referred to nothing before (a database older than enforced keys) are not
    // this migration's doing and must not stop the node; only new ones refuse it.
    let mut dangling = dangling_references(conn)?;
    for (index, sql) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let after = dangling_references(&tx)?;
        if after > dangling {
            return Err(StoreError::Inconsistent(format!(
                "migration {} would leave {} rows referring to nothing; not applied",
                index + 1,
                after - dangling
            )));
        }
        dangling = after;
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn dangling_references(conn: &Connection) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
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

    /// A database made by the schema before `write_path_append.sql`, with a sale, its
    /// payment, a return and a discount (children of the rebuilt tables) and EPCIS events.
    fn database_before_append_path() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        let at = MIGRATIONS
            .iter()
            .position(|sql| sql.contains("sale_line_v2"))
            .unwrap();
        for sql in &MIGRATIONS[..at] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", at as u32).unwrap();
        conn.execute_batch(
            "INSERT INTO stock_movement (sku, kind, on_hand_delta, ref_id, at)
                 VALUES ('MUG', 'receipt', 5, 'GR1', '2026-01-01T11:00:00.000Z');
             INSERT INTO sale VALUES (1, 's.n-000001', 'pos1', '2026-01-01T12:00:00.000Z', 'EUR', 1000, 0, 1000, 0);
             INSERT INTO sale_line VALUES (1, 1, 'MUG', NULL, 'Mug', 1, 'piece', 500, 500, 'std', 0, 0, NULL);
             INSERT INTO sale_line VALUES (1, 2, 'MUG', '04012345000108', 'Mug', 1, 'piece', 600, 500, 'std', 0, 0, 'E1');
             INSERT INTO payment VALUES (1, 1, 'cash', 1000, NULL);
             INSERT INTO sale_line_discount VALUES (1, 2, 1, 'p1', 'Promo', 100);
             INSERT INTO sale_return VALUES (1, 's.n-R000001', 1, 'pos1', '2026-01-01T13:00:00.000Z', 500, 0, NULL);
             INSERT INTO return_line VALUES (1, 1, 2, 1, 500, 0);",
        )
        .unwrap();
        conn
    }

    fn dump(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            let mut row = Vec::new();
            for i in 0..n {
                row.push(format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?));
            }
            Ok(row.join("|"))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[test]
    fn the_append_path_migration_keeps_every_row_and_every_reference() {
        let mut conn = database_before_append_path();
        let tables = [
            "SELECT * FROM sale ORDER BY id",
            "SELECT * FROM sale_line ORDER BY sale_id, line_no",
            "SELECT * FROM payment ORDER BY sale_id, seq",
            "SELECT * FROM epcis_event ORDER BY seq",
            "SELECT * FROM return_line",
            "SELECT * FROM sale_line_discount",
        ];
        let before: Vec<Vec<String>> = tables.iter().map(|q| dump(&conn, q)).collect();
        assert_eq!(
            before[3].len(),
            2,
            "a receipt and a sale event: {:?}",
            before[3]
        );

        migrate(&mut conn).unwrap();

        let after: Vec<Vec<String>> = tables.iter().map(|q| dump(&conn, q)).collect();
        assert_eq!(before, after);
        let enforced: bool = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(
            enforced,
            "foreign keys are enforced again after the migration"
        );
        for table in ["sale_line", "payment"] {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        }
        let indexes = dump(
            &conn,
            "SELECT name FROM sqlite_schema WHERE type = 'index'
               AND tbl_name IN ('sale', 'sale_line', 'payment', 'epcis_event', 'sync_change', 'sync_outbox')
             ORDER BY name",
        );
        assert_eq!(indexes, vec!["Text(\"epcis_event_by_at\")".to_string()]);

        // The references still point at the rebuilt tables, and are enforced.
        let orphan = conn.execute("INSERT INTO return_line VALUES (1, 1, 9, 1, 1, 0)", []);
        assert!(orphan.is_err(), "a return of a line that does not exist");
        // The triggers are back, and the log continues after its highest number.
        conn.execute_batch(
            "INSERT INTO sale VALUES (2, 's.n-000002', 'pos1', '2026-01-01T14:00:00.000Z', 'EUR', 1, 0, 1, 0);
             INSERT INTO stock_movement (sku, kind, on_hand_delta, ref_id, at)
                 VALUES ('MUG', 'count', 0, 'CNT1', '2026-01-01T15:00:00.000Z');",
        )
        .unwrap();
        let log = dump(
            &conn,
            "SELECT seq, kind, source_id FROM epcis_event WHERE seq > 2 ORDER BY seq",
        );
        assert_eq!(
            log,
            vec![
                "Integer(3)|Text(\"sale\")|Integer(2)",
                "Integer(4)|Text(\"count\")|Integer(2)"
            ]
        );
        let sequences: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_sequence WHERE name = 'epcis_event'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sequences, 0, "no AUTOINCREMENT row to rewrite per event");
    }

    #[test]
    fn a_migration_that_would_orphan_rows_is_not_applied() {
        let migrations: &[&str] = &[
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (parent_id INTEGER REFERENCES parent(id));
             INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1);",
            // A rebuild that forgets to copy the rows.
            "CREATE TABLE parent_v2 (id INTEGER PRIMARY KEY);
             DROP TABLE parent;
             ALTER TABLE parent_v2 RENAME TO parent;",
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        // As `migrate` runs them (the bundled SQLite enforces keys by default).
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        apply(&mut conn, &migrations[..1], 0).unwrap();
        let err = apply(&mut conn, migrations, 1).unwrap_err();
        assert!(err.to_string().contains("referring to nothing"), "{err}");
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1, "nothing of the refused migration is kept");
        let parents: i64 = conn
            .query_row("SELECT count(*) FROM parent", [], |r| r.get(0))
            .unwrap();
        assert_eq!(parents, 1);
    }
}
