//! Reading transfers: one with its lines and history, or a page of them.

#[allow(unused_imports)] // the parent's imports, shared by its parts
use super::*;

/// One transfer with lines and history, by chain-wide or unambiguous local id.
pub fn get(conn: &Connection, lookup: &str) -> Result<Option<TransferView>, StoreError> {
    let Some(id) = resolve_id(conn, lookup)? else {
        return Ok(None);
    };
    let row = conn
        .prepare_cached(
            "SELECT local_id, direction, from_store, to_store, status, created_at FROM transfer WHERE id = ?1",
        )?
        .query_row([&id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
    let (local_id, direction, from_store, to_store, status, created_at) = row;
    let mut stmt = conn.prepare_cached(
        "SELECT sku, dispatched, received FROM transfer_line WHERE transfer_id = ?1 ORDER BY sku",
    )?;
    let lines = stmt
        .query_map([&id], |r| {
            let dispatched: i64 = r.get(1)?;
            let received: Option<i64> = r.get(2)?;
            Ok(TransferLineView {
                sku: r.get(0)?,
                dispatched,
                received,
                discrepancy: received.map(|q| q - dispatched),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT status, at, actor FROM transfer_event WHERE transfer_id = ?1 ORDER BY id",
    )?;
    let raw: Vec<(String, String, String)> = stmt
        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let history = raw
        .into_iter()
        .map(|(s, at, actor)| {
            Ok(TransferEventView {
                status: parse_status(&s)?,
                at,
                actor,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(TransferView {
        transfer_id: id,
        local_id,
        direction: parse_direction(&direction)?,
        from_store,
        to_store,
        status: parse_status(&status)?,
        created_at,
        lines,
        history,
    }))
}

/// Transfers, newest first, optionally by direction and status.
pub fn list(
    conn: &Connection,
    direction: Option<Direction>,
    status: Option<TransferStatus>,
    limit: u32,
) -> Result<Vec<TransferView>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM transfer WHERE (?1 IS NULL OR direction = ?1) AND (?2 IS NULL OR status = ?2)
         ORDER BY created_at DESC, id LIMIT ?3",
    )?;
    let ids: Vec<String> = stmt
        .query_map(
            params![
                direction.map(Direction::as_str),
                status.map(TransferStatus::as_str),
                limit
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(view) = get(conn, &id)? {
            out.push(view);
        }
    }
    Ok(out)
}
