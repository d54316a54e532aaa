//! Store-to-store transfers at one node: dispatch (units out), receipt at the other store
//! (units in, short or over recorded as a discrepancy), cancel before receipt (units back).
//!
//! The status's stock effect ([`crate::domain::transfers`]) is booked as `transfer` ledger
//! movements by difference to what this node already booked for the line
//! (`transfer_line.booked`), so however often a status is applied (replays, a cancel
//! overruled by a concurrent receipt) every unit moves exactly once. Every status change is
//! a `transfer_event` row; the sync hook writes own events into the orders document in the
//! same commit ([`crate::sync::local`]).

mod shared;
mod view;
pub use shared::*;
pub use view::*;

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::catalog;
use super::ledger::{self, Movement, MovementKind};
use super::orders::is_valid_order_id;
use super::sales::{WriteContext, positive};
use crate::domain::transfers::{
    TransferStatus, discrepancy, receiver_effect, sender_effect, settle,
};

const MAX_LINES: usize = 200;
const REF_TYPE: &str = "transfer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Outbound, Self::Inbound]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// `POST /v1/transfers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    pub transfer_id: String,
    pub to_store: String,
    pub lines: Vec<TransferLineRequest>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferLineRequest {
    pub sku: Option<String>,
    pub gtin: Option<String>,
    pub quantity: i64,
}

/// `POST /v1/transfers/{id}/receive`: the scanned quantities.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    pub lines: Vec<TransferLineRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferView {
    /// Chain-wide id: `{dispatching lane}:{local id}` (print it on the delivery note).
    pub transfer_id: String,
    pub local_id: String,
    pub direction: Direction,
    pub from_store: String,
    pub to_store: String,
    pub status: TransferStatus,
    pub created_at: String,
    pub lines: Vec<TransferLineView>,
    pub history: Vec<TransferEventView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferLineView {
    pub sku: String,
    pub dispatched: i64,
    pub received: Option<i64>,
    /// received − dispatched, once received.
    pub discrepancy: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferEventView {
    pub status: TransferStatus,
    pub at: String,
    pub actor: String,
}

/// What the sync side needs to create an inbound transfer (or restore an own outbound one).
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub transfer_id: &'a str,
    pub from_store: &'a str,
    pub to_store: &'a str,
    pub created_at: &'a str,
    pub lines: &'a BTreeMap<String, i64>,
}

/// Dispatches a transfer from this node's store (`store_id`): status `in_transit`, the units
/// leave on-hand at once.
pub fn create(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    store_id: &str,
    request: &NewTransfer,
) -> Result<TransferView, StoreError> {
    if !is_valid_order_id(&request.transfer_id) {
        return Err(StoreError::unprocessable(
            "transfer_id",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    if !crate::domain::ids::is_store_id(&request.to_store) {
        return Err(StoreError::unprocessable(
            "to_store",
            "not a valid store id",
        ));
    }
    if request.to_store == store_id {
        return Err(StoreError::unprocessable(
            "to_store",
            "a transfer goes to another store",
        ));
    }
    let id = format!("{}:{}", ctx.writer_id, request.transfer_id);
    if exists(conn, &id)? {
        return Err(StoreError::Conflict(format!(
            "transfer {:?} already exists",
            request.transfer_id
        )));
    }
    let lines = resolve_lines(conn, &request.lines, None, true)?;
    conn.prepare_cached(
        "INSERT INTO transfer (id, local_id, direction, from_store, to_store, status, created_at, updated_at)
         VALUES (?1, ?2, 'outbound', ?3, ?4, 'in_transit', ?5, ?5)",
    )?
    .execute(params![id, request.transfer_id, store_id, request.to_store, ctx.now])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO transfer_line (transfer_id, sku, dispatched) VALUES (?1, ?2, ?3)",
    )?;
    for (sku, qty) in &lines {
        insert.execute(params![id, sku, qty])?;
    }
    add_event(
        conn,
        &id,
        TransferStatus::InTransit,
        ctx.now,
        ctx.terminal,
        false,
    )?;
    book(conn, &id, ctx.terminal, ctx.now)?;
    tracing::info!(transfer = %id, to_store = request.to_store, lines = lines.len(), "transfer dispatched");
    get(conn, &id)?.ok_or_else(|| StoreError::Inconsistent("transfer vanished".into()))
}

/// Books the receipt of an inbound transfer with the scanned quantities.
pub fn receive(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    lookup: &str,
    request: &ReceiveRequest,
) -> Result<TransferView, StoreError> {
    let (id, direction, status) = find(conn, lookup)?;
    if direction != Direction::Inbound {
        return Err(StoreError::Conflict(format!(
            "transfer {lookup:?} is outbound: it is received at the other store"
        )));
    }
    check_open(lookup, status)?;
    let expected = line_quantities(conn, &id, "dispatched")?;
    let counted = resolve_lines(conn, &request.lines, Some(&expected), false)?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO transfer_line (transfer_id, sku, dispatched, received) VALUES (?1, ?2, 0, ?3)
         ON CONFLICT(transfer_id, sku) DO UPDATE SET received = excluded.received",
    )?;
    for sku in expected.keys().chain(counted.keys()) {
        upsert.execute(params![id, sku, counted.get(sku).copied().unwrap_or(0)])?;
    }
    set_status(conn, &id, TransferStatus::Received, ctx.now)?;
    add_event(
        conn,
        &id,
        TransferStatus::Received,
        ctx.now,
        ctx.terminal,
        false,
    )?;
    book(conn, &id, ctx.terminal, ctx.now)?;
    let short: i64 = discrepancy(&expected, &counted).values().sum();
    tracing::info!(transfer = %id, discrepancy = short, "transfer received");
    get(conn, &id)?.ok_or_else(|| StoreError::Inconsistent("transfer vanished".into()))
}

/// Cancels an outbound transfer still in transit: the units come back on hand.
pub fn cancel(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    lookup: &str,
) -> Result<TransferView, StoreError> {
    let (id, direction, status) = find(conn, lookup)?;
    if direction != Direction::Outbound {
        return Err(StoreError::Conflict(format!(
            "transfer {lookup:?} is inbound: only the sending store cancels it"
        )));
    }
    check_open(lookup, status)?;
    set_status(conn, &id, TransferStatus::Cancelled, ctx.now)?;
    add_event(
        conn,
        &id,
        TransferStatus::Cancelled,
        ctx.now,
        ctx.terminal,
        false,
    )?;
    book(conn, &id, ctx.terminal, ctx.now)?;
    tracing::info!(transfer = %id, "transfer cancelled");
    get(conn, &id)?.ok_or_else(|| StoreError::Inconsistent("transfer vanished".into()))
}

fn check_open(lookup: &str, status: TransferStatus) -> Result<(), StoreError> {
    match status {
        TransferStatus::InTransit => Ok(()),
        other => Err(StoreError::Conflict(format!(
            "transfer {lookup:?} is already {}",
            other.as_str()
        ))),
    }
}

/// Creates an inbound transfer this node receives (from the orders document). Returns
/// `false` if it already exists.
pub fn create_inbound(
    conn: &Connection,
    inbound: &Inbound<'_>,
    status: TransferStatus,
    now: &str,
) -> Result<bool, StoreError> {
    if exists(conn, inbound.transfer_id)? {
        return Ok(false);
    }
    let local_id = inbound
        .transfer_id
        .split_once(':')
        .map_or(inbound.transfer_id, |(_, local)| local);
    conn.prepare_cached(
        "INSERT INTO transfer (id, local_id, direction, from_store, to_store, status, created_at, updated_at)
         VALUES (?1, ?2, 'inbound', ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        inbound.transfer_id,
        local_id,
        inbound.from_store,
        inbound.to_store,
        status.as_str(),
        inbound.created_at,
        now
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO transfer_line (transfer_id, sku, dispatched) VALUES (?1, ?2, ?3)",
    )?;
    for (sku, qty) in inbound.lines {
        insert.execute(params![inbound.transfer_id, sku, qty])?;
    }
    add_event(
        conn,
        inbound.transfer_id,
        TransferStatus::InTransit,
        inbound.created_at,
        "sync",
        true,
    )?;
    if status != TransferStatus::InTransit {
        add_event(conn, inbound.transfer_id, status, now, "sync", true)?;
    }
    tracing::info!(
        transfer = inbound.transfer_id,
        from_store = inbound.from_store,
        status = status.as_str(),
        "inbound transfer announced"
    );
    Ok(true)
}

/// Puts back a transfer this lane dispatched and published before its database was restored
/// from an older backup (the orders document still holds it): its id is taken again and
/// a later cancel or receipt books the difference. What its status moved is already in
/// this writer's totals of the stock document, which SQLite follows, so it is recorded as
/// booked and nothing is booked now. Returns `false` if the id exists here.
pub fn restore_outbound(
    conn: &Connection,
    record: &Inbound<'_>,
    status: TransferStatus,
    now: &str,
) -> Result<bool, StoreError> {
    if exists(conn, record.transfer_id)? {
        return Ok(false);
    }
    let local_id = record
        .transfer_id
        .split_once(':')
        .map_or(record.transfer_id, |(_, local)| local);
    conn.prepare_cached(
        "INSERT INTO transfer (id, local_id, direction, from_store, to_store, status, created_at, updated_at)
         VALUES (?1, ?2, 'outbound', ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        record.transfer_id,
        local_id,
        record.from_store,
        record.to_store,
        status.as_str(),
        record.created_at,
        now
    ])?;
    let booked = sender_effect(status, record.lines);
    let mut insert = conn.prepare_cached(
        "INSERT INTO transfer_line (transfer_id, sku, dispatched, booked) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (sku, qty) in record.lines {
        let booked = booked.get(sku).copied().unwrap_or(0);
        insert.execute(params![record.transfer_id, sku, qty, booked])?;
    }
    add_event(conn, record.transfer_id, status, now, "sync", true)?;
    tracing::info!(
        transfer = record.transfer_id,
        status = status.as_str(),
        "own transfer restored from the orders document"
    );
    Ok(true)
}

/// Gives transfer `id` the chain-wide id `new` (its local id stays): a transfer whose id an
/// earlier incarnation of this lane had already published (a restored database) is shared
/// under a fresh one. Its lines, history and ledger references follow.
pub fn rename(conn: &Connection, id: &str, new: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO transfer (id, local_id, direction, from_store, to_store, status, created_at, updated_at)
         SELECT ?2, local_id, direction, from_store, to_store, status, created_at, updated_at
         FROM transfer WHERE id = ?1",
    )?
    .execute(params![id, new])?;
    for sql in [
        "UPDATE transfer_line SET transfer_id = ?2 WHERE transfer_id = ?1",
        "UPDATE transfer_event SET transfer_id = ?2 WHERE transfer_id = ?1",
        "UPDATE stock_movement SET ref_id = ?2 WHERE ref_type = 'transfer' AND ref_id = ?1",
    ] {
        conn.prepare_cached(sql)?.execute(params![id, new])?;
    }
    conn.prepare_cached("DELETE FROM transfer WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Applies a status decided in the orders document (another writer's event): updates the
/// status and received lines and books the difference. Returns whether anything changed.
pub fn apply_remote_status(
    conn: &Connection,
    id: &str,
    status: TransferStatus,
    received: Option<&BTreeMap<String, i64>>,
    actor: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let Some(current) = status_of(conn, id)? else {
        return Ok(false);
    };
    if current == status {
        return Ok(false);
    }
    if let (TransferStatus::Received, Some(lines)) = (status, received) {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO transfer_line (transfer_id, sku, dispatched, received) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT(transfer_id, sku) DO UPDATE SET received = excluded.received",
        )?;
        for (sku, qty) in lines {
            upsert.execute(params![id, sku, qty])?;
        }
        conn.prepare_cached(
            "UPDATE transfer_line SET received = 0 WHERE transfer_id = ?1 AND received IS NULL",
        )?
        .execute([id])?;
    }
    set_status(conn, id, status, now)?;
    add_event(conn, id, status, now, actor, true)?;
    book(conn, id, "sync", now)?;
    tracing::info!(
        transfer = id,
        status = status.as_str(),
        decided_by = actor,
        "transfer status from sync"
    );
    Ok(true)
}

/// Books `effect(status) − booked` for every line of the transfer as `transfer` movements.
fn book(conn: &Connection, id: &str, terminal: &str, now: &str) -> Result<(), StoreError> {
    let (direction, status) = direction_and_status(conn, id)?;
    let target = match direction {
        Direction::Outbound => sender_effect(status, &line_quantities(conn, id, "dispatched")?),
        Direction::Inbound => receiver_effect(status, &line_quantities(conn, id, "received")?),
    };
    let booked = line_quantities(conn, id, "booked")?;
    for (sku, delta) in settle(&target, &booked) {
        ledger::record(
            conn,
            &Movement {
                sku: &sku,
                kind: MovementKind::Transfer,
                on_hand_delta: delta,
                reserved_delta: 0,
                ref_type: REF_TYPE,
                ref_id: id,
                terminal,
            },
            now,
        )?;
        conn.prepare_cached(
            "UPDATE transfer_line SET booked = booked + ?3 WHERE transfer_id = ?1 AND sku = ?2",
        )?
        .execute(params![id, sku, delta])?;
    }
    Ok(())
}

/// Per SKU, the value of `column` (`dispatched`, `received` or `booked`); NULLs omitted.
fn line_quantities(
    conn: &Connection,
    id: &str,
    column: &'static str,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT sku, {column} FROM transfer_line WHERE transfer_id = ?1 AND {column} IS NOT NULL"
    ))?;
    let rows = stmt.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Resolves request lines to SKU → quantity. `known`: SKUs of the transfer, accepted by SKU
/// even if this store's catalog lacks them. `positive_only`: dispatch needs quantity > 0;
/// a receipt may count 0.
fn resolve_lines(
    conn: &Connection,
    lines: &[TransferLineRequest],
    known: Option<&BTreeMap<String, i64>>,
    positive_only: bool,
) -> Result<BTreeMap<String, i64>, StoreError> {
    if lines.len() > MAX_LINES || (positive_only && lines.is_empty()) {
        return Err(StoreError::unprocessable(
            "lines",
            format!("a transfer has 1 to {MAX_LINES} lines"),
        ));
    }
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let field = format!("lines[{i}]");
        let sku = match (&line.sku, known) {
            (Some(sku), Some(known)) if known.contains_key(sku) && line.gtin.is_none() => {
                sku.clone()
            }
            _ => catalog::resolve(conn, &field, line.sku.as_deref(), line.gtin.as_deref())?.sku,
        };
        let quantity = if positive_only {
            positive(&format!("{field}.quantity"), line.quantity)?
        } else if line.quantity < 0 {
            return Err(StoreError::unprocessable(
                format!("{field}.quantity"),
                "must not be negative",
            ));
        } else {
            line.quantity
        };
        let total = out.entry(sku).or_insert(0);
        *total = total
            .checked_add(quantity)
            .ok_or_else(|| StoreError::unprocessable(format!("{field}.quantity"), "too large"))?;
    }
    Ok(out)
}

fn exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM transfer WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn status_of(conn: &Connection, id: &str) -> Result<Option<TransferStatus>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT status FROM transfer WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    text.map(|t| parse_status(&t)).transpose()
}

fn parse_status(text: &str) -> Result<TransferStatus, StoreError> {
    TransferStatus::parse(text)
        .ok_or_else(|| StoreError::Inconsistent(format!("transfer status {text:?}")))
}

fn parse_direction(text: &str) -> Result<Direction, StoreError> {
    Direction::parse(text)
        .ok_or_else(|| StoreError::Inconsistent(format!("transfer direction {text:?}")))
}

fn direction_and_status(
    conn: &Connection,
    id: &str,
) -> Result<(Direction, TransferStatus), StoreError> {
    let (d, s): (String, String) = conn
        .prepare_cached("SELECT direction, status FROM transfer WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((parse_direction(&d)?, parse_status(&s)?))
}

/// The transfer a path names: its chain-wide id, or a local id that names exactly one.
fn find(
    conn: &Connection,
    lookup: &str,
) -> Result<(String, Direction, TransferStatus), StoreError> {
    let id = resolve_id(conn, lookup)?
        .ok_or_else(|| StoreError::not_found(format!("transfer {lookup:?}")))?;
    let (direction, status) = direction_and_status(conn, &id)?;
    Ok((id, direction, status))
}

fn resolve_id(conn: &Connection, lookup: &str) -> Result<Option<String>, StoreError> {
    if exists(conn, lookup)? {
        return Ok(Some(lookup.to_owned()));
    }
    let mut stmt = conn.prepare_cached("SELECT id FROM transfer WHERE local_id = ?1 LIMIT 2")?;
    let ids: Vec<String> = stmt
        .query_map([lookup], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match ids.as_slice() {
        [one] => Ok(Some(one.clone())),
        [] => Ok(None),
        _ => Err(StoreError::Conflict(format!(
            "local id {lookup:?} names several transfers: use the full transfer_id"
        ))),
    }
}

fn set_status(
    conn: &Connection,
    id: &str,
    status: TransferStatus,
    now: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE transfer SET status = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, status.as_str(), now])?;
    Ok(())
}

fn add_event(
    conn: &Connection,
    id: &str,
    status: TransferStatus,
    at: &str,
    actor: &str,
    shared: bool,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO transfer_event (transfer_id, status, at, actor, shared) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, status.as_str(), at, actor, i64::from(shared)])?;
    Ok(())
}

#[cfg(test)]
mod tests;
