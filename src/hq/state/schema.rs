//! HQ's SQLite schema: one migration list for `hq.db`, each step owned by the module that
//! uses its tables.

use rusqlite::Connection;

use super::HqError;

/// HQ's schema steps: entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: sync state (documents, outbox) and the chain-wide stock.
    concat!(
        include_str!("../../sync/schema.sql"),
        include_str!("schema.sql")
    ),
    // Customer personal data of orders and erasure tombstones. Owned by `hq::privacy`.
    include_str!("../privacy/schema.sql"),
    // Store-to-store transfers. Owned by `hq::transfers`.
    include_str!("../transfers/schema.sql"),
    // EPCIS events of every store writer. Owned by `hq::epcis`.
    include_str!("../../epcis/hq_schema.sql"),
    // Orders closed at an orders epoch cut. Owned by `hq::orders`.
    include_str!("../orders/schema.sql"),
];

pub(super) fn migrate(conn: &Connection) -> Result<(), HqError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let done = usize::try_from(version).unwrap_or(usize::MAX);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}
