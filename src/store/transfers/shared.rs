//! What the sync hook needs: own events not yet in the orders document, a transfer's record, the reconciliation mark.

#[allow(unused_imports)] // the parent's imports, shared by its parts
use super::*;

/// An own event not yet written into the orders document.
#[derive(Debug, Clone)]
pub struct UnsharedEvent {
    pub event_id: i64,
    pub transfer_id: String,
    pub status: TransferStatus,
    pub at: String,
}

/// Own events not yet in the orders document, oldest first.
pub fn unshared_events(conn: &Connection) -> Result<Vec<UnsharedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, transfer_id, status, at FROM transfer_event WHERE shared = 0 ORDER BY id",
    )?;
    let raw: Vec<(i64, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    raw.into_iter()
        .map(|(event_id, transfer_id, status, at)| {
            Ok(UnsharedEvent {
                event_id,
                transfer_id,
                status: parse_status(&status)?,
                at,
            })
        })
        .collect()
}

pub fn mark_shared(conn: &Connection, event_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE transfer_event SET shared = 1 WHERE id = ?1")?
        .execute([event_id])?;
    Ok(())
}

/// `(from_store, to_store, created_at, dispatched lines, received lines)` of a transfer.
pub type TransferRecord = (
    String,
    String,
    String,
    BTreeMap<String, i64>,
    BTreeMap<String, i64>,
);

pub fn record_of(conn: &Connection, id: &str) -> Result<Option<TransferRecord>, StoreError> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached("SELECT from_store, to_store, created_at FROM transfer WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((from, to, created)) = row else {
        return Ok(None);
    };
    let dispatched = line_quantities(conn, id, "dispatched")?
        .into_iter()
        .filter(|(_, q)| *q > 0)
        .collect();
    Ok(Some((
        from,
        to,
        created,
        dispatched,
        line_quantities(conn, id, "received")?,
    )))
}

/// Status of a transfer this node has, if any.
pub fn status(conn: &Connection, id: &str) -> Result<Option<TransferStatus>, StoreError> {
    status_of(conn, id)
}

/// The orders-document heads the transfers were last reconciled at.
pub fn doc_mark(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT heads FROM transfer_doc_mark WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

pub fn set_doc_mark(conn: &Connection, heads: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO transfer_doc_mark (id, heads) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET heads = excluded.heads",
    )?
    .execute([heads])?;
    Ok(())
}
