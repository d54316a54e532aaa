//! HQ's versioned migrations, one list per backend with the same steps in the same order;
//! each step is owned by the module that uses its tables. Append only.
//!
//! SQLite records the version in `user_version`; PostgreSQL in `hq_schema_version`, with the
//! steps run under an advisory lock so that HQ instances starting together migrate once.

use super::{Db, DbError};

/// SQLite steps: entry `i` moves the schema from version `i` to `i + 1`.
const SQLITE: &[&str] = &[
    // 1: sync state (documents, outbox) and the chain-wide stock.
    concat!(
        include_str!("../../sync/schema.sql"),
        include_str!("../state/schema.sql")
    ),
    // Customer personal data of orders and erasure tombstones. Owned by `hq::privacy`.
    include_str!("../privacy/schema.sql"),
    // Store-to-store transfers. Owned by `hq::transfers`.
    include_str!("../transfers/schema.sql"),
    // EPCIS events of every store writer. Owned by `hq::epcis`.
    include_str!("../../epcis/hq_schema.sql"),
    // Orders closed at an orders epoch cut. Owned by `hq::orders`.
    include_str!("../orders/schema.sql"),
    // Document versions, for several HQ instances over one database. Owned by `hq::state`.
    include_str!("../state/versions.sql"),
    // The loyalty ledger: members and HQ's own entries. Owned by `hq::loyalty`.
    include_str!("../loyalty/schema.sql"),
    // Which store's orders document holds each order. Owned by `hq::orders`.
    include_str!("../orders/index.sql"),
    // Coupons redeemed by the web shop and the app. Owned by `hq::coupons`.
    include_str!("../coupons/schema.sql"),
    // Lanes retired for good. Owned by `hq::state::retired`.
    include_str!("../state/retired.sql"),
    // Coupon holders and members' lanes, read from rows. Owned by `hq::state::figures`.
    include_str!("../state/figures.sql"),
    // Bytes logged per document since its last save. Owned by `hq::db::docs`.
    include_str!("log_size.sql"),
    // The open lanes of members and coupons, by index. Owned by `hq::state::figures`.
    include_str!("../state/figures_open.sql"),
];

/// PostgreSQL steps, the same as [`SQLITE`] one for one.
const POSTGRES: &[&str] = &[
    include_str!("../state/schema.pg.sql"),
    include_str!("../privacy/schema.pg.sql"),
    include_str!("../transfers/schema.pg.sql"),
    include_str!("../../epcis/hq_schema.pg.sql"),
    include_str!("../orders/schema.pg.sql"),
    include_str!("../state/versions.sql"),
    include_str!("../loyalty/schema.pg.sql"),
    include_str!("../orders/index.sql"),
    include_str!("../coupons/schema.pg.sql"),
    include_str!("../state/retired.sql"),
    include_str!("../state/figures.pg.sql"),
    include_str!("log_size.sql"),
    include_str!("../state/figures_open.sql"),
];

/// Key of the advisory lock the PostgreSQL migration runs under ("hq-migr" in ASCII).
const MIGRATION_LOCK: i64 = 0x0068_712d_6d69_6772;

pub(super) fn migrate(db: &Db) -> Result<(), DbError> {
    if db.is_postgres() {
        migrate_postgres(db)
    } else {
        migrate_sqlite(db)
    }
}

fn migrate_sqlite(db: &Db) -> Result<(), DbError> {
    let version: i64 = db.query_one("PRAGMA user_version", &[], |r| r.get(0))?;
    let done = usize::try_from(version).unwrap_or(usize::MAX);
    refuse_newer(done, SQLITE.len())?;
    for (index, sql) in SQLITE.iter().enumerate().skip(done) {
        let tx = db.begin()?;
        tx.batch(sql).map_err(|e| failed(index, &e))?;
        tx.batch(&format!("PRAGMA user_version = {}", index + 1))?;
        tx.commit()?;
    }
    Ok(())
}

fn migrate_postgres(db: &Db) -> Result<(), DbError> {
    let tx = db.begin()?;
    tx.execute("SELECT pg_advisory_xact_lock(?1)", &[&MIGRATION_LOCK])?;
    tx.batch("CREATE TABLE IF NOT EXISTS hq_schema_version (version BIGINT NOT NULL)")?;
    let version: Option<i64> =
        tx.query_one("SELECT max(version) FROM hq_schema_version", &[], |r| {
            r.get(0)
        })?;
    let done = usize::try_from(version.unwrap_or(0)).unwrap_or(usize::MAX);
    refuse_newer(done, POSTGRES.len())?;
    for (index, sql) in POSTGRES.iter().enumerate().skip(done) {
        tx.batch(sql).map_err(|e| failed(index, &e))?;
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO hq_schema_version (version) VALUES (?1)",
            &[&version],
        )?;
        tracing::info!(version, "HQ's PostgreSQL schema migrated");
    }
    tx.commit()
}

/// A database a newer HQ migrated is refused, as the store refuses a newer `store.db`: this
/// HQ would not know what the newer tables mean (roll back by restoring the dump taken
/// before the upgrade).
fn refuse_newer(done: usize, known: usize) -> Result<(), DbError> {
    if done > known {
        return Err(DbError::NewerSchema { found: done, known });
    }
    Ok(())
}

fn failed(index: usize, e: &DbError) -> DbError {
    DbError::Migration {
        version: index + 1,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_steps() {
        assert_eq!(SQLITE.len(), POSTGRES.len());
    }

    // Failed before: an older HQ started on a schema a newer one had migrated.
    #[test]
    fn a_schema_from_a_newer_hq_is_refused() {
        let dir = crate::hq::db::testing::TestDb::new();
        drop(Db::open(&dir.target).unwrap());
        let db = Db::open(&dir.target).unwrap();
        let newer = i64::try_from(SQLITE.len() + 1).unwrap();
        if db.is_postgres() {
            db.execute(
                "INSERT INTO hq_schema_version (version) VALUES (?1)",
                &[&newer],
            )
            .unwrap();
        } else {
            db.batch(&format!("PRAGMA user_version = {newer}")).unwrap();
        }
        drop(db);
        let refused = Db::open(&dir.target).err().map(|e| e.to_string());
        assert!(
            refused.as_deref().is_some_and(|e| e.contains("newer")),
            "{refused:?}"
        );
    }
}
