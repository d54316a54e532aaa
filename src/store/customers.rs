//! The node's side of customer data: the `order_customer` table and erasure tombstones.
//!
//! Functions take the writer's connection and return [`StoreError`], so they run inside
//! the store's group commit (e.g. `POST /v1/orders` stores the customer in the same write
//! as the order). A tombstone always wins: customer data for an erased order is refused
//! or ignored, wherever it comes from.

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::customer::{Customer, PiiPayload};
use crate::store::StoreError;

/// What the node knows about an order's customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Customer),
    Erased { erased_at: String },
    Unknown,
}

/// Stores (or replaces) the customer of an order taken at this lane; the lane publishes it
/// to HQ. Refused with 409 once the order's customer data was erased.
pub fn put(conn: &Connection, order_id: &str, customer: &Customer) -> Result<(), StoreError> {
    if erased_at(conn, order_id)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "the customer data of order {order_id:?} was erased; it cannot be stored again"
        )));
    }
    upsert(conn, order_id, customer, "store", &crate::clock::now_utc())
}

fn upsert(
    conn: &Connection,
    order_id: &str,
    customer: &Customer,
    origin: &str,
    now: &str,
) -> Result<(), StoreError> {
    let published = i64::from(origin == "hq");
    conn.prepare_cached(
        "INSERT INTO order_customer (order_id, name, phone, email, address, origin, published, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(order_id) DO UPDATE SET name = excluded.name, phone = excluded.phone,
             email = excluded.email, address = excluded.address, origin = excluded.origin,
             published = excluded.published, updated_at = excluded.updated_at",
    )?
    .execute(params![
        order_id,
        customer.name(),
        customer.phone(),
        customer.email(),
        customer.address(),
        origin,
        published,
        now
    ])?;
    Ok(())
}

/// The customer of an order, or when it was erased.
pub fn get(conn: &Connection, order_id: &str) -> Result<Lookup, StoreError> {
    if let Some(erased_at) = erased_at(conn, order_id)? {
        return Ok(Lookup::Erased { erased_at });
    }
    let row = conn
        .prepare_cached(
            "SELECT name, phone, email, address FROM order_customer WHERE order_id = ?1",
        )?
        .query_row([order_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok(Lookup::Unknown),
        Some((name, phone, email, address)) => Customer::new(name, phone, email, address)
            .map(Lookup::Found)
            .map_err(|e| StoreError::Inconsistent(e.to_string())),
    }
}

fn erased_at(conn: &Connection, order_id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT erased_at FROM order_customer_erased WHERE order_id = ?1")?
        .query_row([order_id], |r| r.get(0))
        .optional()?)
}

/// Erases an order's customer data here: deletes the row (its bytes are overwritten, see
/// `secure_delete` in `store::open_connection`) and records a tombstone that this lane
/// publishes. Idempotent: a second call returns the first erasure time. `None`: nothing
/// was ever known about this order's customer.
pub fn erase(conn: &Connection, order_id: &str, now: &str) -> Result<Option<String>, StoreError> {
    if let Some(at) = erased_at(conn, order_id)? {
        return Ok(Some(at));
    }
    let deleted = conn.execute("DELETE FROM order_customer WHERE order_id = ?1", [order_id])?;
    if deleted == 0 {
        return Ok(None);
    }
    record_tombstone(conn, order_id, now)?;
    Ok(Some(now.to_owned()))
}

fn record_tombstone(conn: &Connection, order_id: &str, erased_at: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO order_customer_erased (order_id, erased_at, published) VALUES (?1, ?2, 0)
         ON CONFLICT(order_id) DO NOTHING",
        params![order_id, erased_at],
    )?;
    Ok(())
}

/// What applying a message from HQ did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Stored,
    Erased,
    /// Already known, tombstoned, or an empty (cleared) retained message.
    Ignored,
}

/// Whether [`apply_from_hq`] would change anything: checked on a reader first, because every
/// retained message comes again at each reconnect and a write costs an fsync.
pub fn would_apply(
    conn: &Connection,
    order_id: &str,
    payload: &PiiPayload,
) -> Result<bool, StoreError> {
    Ok(match payload {
        PiiPayload::Cleared => false,
        PiiPayload::Erased { .. } => erased_at(conn, order_id)?.is_none(),
        PiiPayload::Customer(customer) => match get(conn, order_id)? {
            Lookup::Erased { .. } => false,
            Lookup::Found(known) => known != *customer,
            Lookup::Unknown => true,
        },
    })
}

/// Applies HQ's retained message about an order of this store.
pub fn apply_from_hq(
    conn: &Connection,
    order_id: &str,
    payload: &PiiPayload,
    now: &str,
) -> Result<Applied, StoreError> {
    match payload {
        PiiPayload::Cleared => Ok(Applied::Ignored),
        PiiPayload::Customer(customer) => {
            if erased_at(conn, order_id)?.is_some() {
                return Ok(Applied::Ignored);
            }
            if get(conn, order_id)? == Lookup::Found(customer.clone()) {
                return Ok(Applied::Ignored); // redelivered at every reconnect
            }
            upsert(conn, order_id, customer, "hq", now)?;
            Ok(Applied::Stored)
        }
        PiiPayload::Erased { erased_at: at, .. } => {
            if erased_at(conn, order_id)?.is_some() {
                return Ok(Applied::Ignored);
            }
            conn.execute("DELETE FROM order_customer WHERE order_id = ?1", [order_id])?;
            // Recorded even when this lane never had the row: its tombstone is the store's
            // confirmation to HQ, and it keeps a late customer message from coming back.
            record_tombstone(conn, order_id, at)?;
            Ok(Applied::Erased)
        }
    }
}

/// A message this lane still has to put on its own retained `pii` topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub order_id: String,
    pub payload: PiiPayload,
    /// The row version published, so a newer one is not marked published by mistake.
    pub version: String,
}

/// Store-taken customers and tombstones not yet on the broker.
pub fn pending(conn: &Connection) -> Result<Vec<Pending>, StoreError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, name, phone, email, address, updated_at FROM order_customer
         WHERE origin = 'store' AND published = 0 ORDER BY order_id LIMIT 100",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (order_id, name, phone, email, address, version) = row?;
        let customer = Customer::new(name, phone, email, address)
            .map_err(|e| StoreError::Inconsistent(e.to_string()))?;
        out.push(Pending {
            order_id,
            payload: PiiPayload::Customer(customer),
            version,
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, erased_at FROM order_customer_erased WHERE published = 0
         ORDER BY order_id LIMIT 100",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (order_id, erased_at) = row?;
        out.push(Pending {
            order_id,
            payload: PiiPayload::Erased {
                erased_at: erased_at.clone(),
                by: None,
            },
            version: erased_at,
        });
    }
    Ok(out)
}

/// Marks a pending message as on the broker (only the version that was published).
pub fn mark_published(conn: &Connection, pending: &Pending) -> Result<(), StoreError> {
    match pending.payload {
        PiiPayload::Erased { .. } => conn.execute(
            "UPDATE order_customer_erased SET published = 1 WHERE order_id = ?1",
            [&pending.order_id],
        )?,
        _ => conn.execute(
            "UPDATE order_customer SET published = 1 WHERE order_id = ?1 AND updated_at = ?2",
            params![pending.order_id, pending.version],
        )?,
    };
    Ok(())
}

/// Moves the WAL's content into the database file and truncates the WAL, so the erased
/// rows' old page images are gone from the WAL too. Best effort (a busy database keeps the
/// old frames until the next checkpoint): opens its own connection, never the writer's.
pub fn checkpoint(path: &std::path::Path) -> Result<(i64, i64, i64), StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::memory_db;

    fn alice() -> Customer {
        Customer::new(
            "Alice Example",
            "+46 70 123 45 67",
            "alice@example.com",
            None,
        )
        .unwrap()
    }

    #[test]
    fn put_get_erase_and_the_tombstone_wins() {
        let conn = memory_db();
        assert_eq!(get(&conn, "o1").unwrap(), Lookup::Unknown);
        put(&conn, "o1", &alice()).unwrap();
        assert_eq!(get(&conn, "o1").unwrap(), Lookup::Found(alice()));
        assert_eq!(pending(&conn).unwrap().len(), 1, "store-taken: to publish");
        let at = erase(&conn, "o1", "2026-01-01T00:00:00.000Z").unwrap();
        assert_eq!(at.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(
            erase(&conn, "o1", "2027-01-01T00:00:00.000Z").unwrap(),
            at,
            "idempotent"
        );
        assert!(matches!(get(&conn, "o1").unwrap(), Lookup::Erased { .. }));
        assert!(matches!(
            put(&conn, "o1", &alice()),
            Err(StoreError::Conflict(_))
        ));
        let from_hq = PiiPayload::Customer(alice());
        assert_eq!(
            apply_from_hq(&conn, "o1", &from_hq, "now").unwrap(),
            Applied::Ignored
        );
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM order_customer", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        let left = pending(&conn).unwrap();
        assert_eq!(left.len(), 1);
        assert!(matches!(left[0].payload, PiiPayload::Erased { .. }));
        mark_published(&conn, &left[0]).unwrap();
        assert!(pending(&conn).unwrap().is_empty());
        assert_eq!(erase(&conn, "nobody", "now").unwrap(), None);
    }

    #[test]
    fn hq_customers_are_stored_once_and_a_hq_tombstone_erases_them() {
        let conn = memory_db();
        let from_hq = PiiPayload::Customer(alice());
        assert_eq!(
            apply_from_hq(&conn, "w1", &from_hq, "t1").unwrap(),
            Applied::Stored
        );
        assert_eq!(
            apply_from_hq(&conn, "w1", &from_hq, "t2").unwrap(),
            Applied::Ignored
        );
        assert!(
            pending(&conn).unwrap().is_empty(),
            "HQ's own: not republished"
        );
        assert!(!would_apply(&conn, "w1", &from_hq).unwrap(), "a redelivery");
        let tomb = PiiPayload::Erased {
            erased_at: "2026-01-01T00:00:00Z".into(),
            by: None,
        };
        assert!(would_apply(&conn, "w1", &tomb).unwrap());
        assert_eq!(
            apply_from_hq(&conn, "w1", &tomb, "t3").unwrap(),
            Applied::Erased
        );
        assert!(!would_apply(&conn, "w1", &tomb).unwrap());
        assert!(!would_apply(&conn, "w1", &from_hq).unwrap());
        assert_eq!(
            get(&conn, "w1").unwrap(),
            Lookup::Erased {
                erased_at: "2026-01-01T00:00:00Z".into()
            }
        );
        // The confirmation goes out; a tombstone for an order never seen is kept too.
        assert_eq!(
            apply_from_hq(&conn, "w2", &tomb, "t4").unwrap(),
            Applied::Erased
        );
        assert_eq!(pending(&conn).unwrap().len(), 2);
    }

    #[test]
    fn a_newer_version_is_not_marked_published_by_an_older_publish() {
        let conn = memory_db();
        put(&conn, "o1", &alice()).unwrap();
        let first = pending(&conn).unwrap().remove(0);
        conn.execute(
            "UPDATE order_customer SET updated_at = 'later' WHERE order_id = 'o1'",
            [],
        )
        .unwrap();
        mark_published(&conn, &first).unwrap();
        assert_eq!(pending(&conn).unwrap().len(), 1);
    }
}
