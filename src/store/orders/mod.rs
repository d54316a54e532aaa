//! Click-and-collect orders: reserved on arrival, picked by scanning, collected with a pickup
//! code at any lane, cancelled or expired with their reservation released.
//!
//! Status flow: `reserved → picking → ready → collected`, and from any open status to
//! `cancelled` or `expired`. Units are held in `stock_level.reserved` (not taken off the
//! shelf count) until collection, so a cancel after picking puts them back simply by
//! releasing the hold. Every change is a row in `cc_order_event` (the status history).

mod lifecycle;
mod mirror;
pub use lifecycle::*;
pub use mirror::*;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::domain::orders::Delivery;

use super::StoreError;
use super::catalog;
use super::ledger::{self, Movement, MovementKind};
use super::sales::{WriteContext, positive};

pub(super) const MAX_LINES: usize = 200;
pub(super) const DEFAULT_HOLD_HOURS: u32 = 72;
pub(super) const MAX_HOLD_HOURS: u32 = 24 * 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Reserved,
    Picking,
    Ready,
    Collected,
    /// Ship-from-store: handed to the carrier.
    Shipped,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Picking => "picking",
            Self::Ready => "ready",
            Self::Collected => "collected",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Reserved,
            Self::Picking,
            Self::Ready,
            Self::Collected,
            Self::Shipped,
            Self::Cancelled,
            Self::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    /// Still holding stock for the customer.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Reserved | Self::Picking | Self::Ready)
    }

    /// The units went to the customer (collected or shipped).
    pub fn is_handed_over(self) -> bool {
        matches!(self, Self::Collected | Self::Shipped)
    }
}

/// The terminal named in the history for status changes copied from the orders document
/// (another lane's or HQ's decision). Such events are not published again.
pub const MIRROR_ACTOR: &str = "mirror";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub order_id: String,
    #[serde(default = "default_channel")]
    pub channel: String,
    /// Shown to the customer by the web shop; only its hash is stored.
    pub pickup_code: String,
    pub hold_hours: Option<u32>,
    #[serde(default)]
    pub delivery: Delivery,
    pub lines: Vec<OrderLineRequest>,
    /// Kept beside the order for pickup or delivery, erasable; never in the reply, the
    /// history or the orders document.
    #[serde(default)]
    pub customer: Option<crate::domain::customer::Customer>,
}

pub(super) fn default_channel() -> String {
    "store".into()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    pub sku: Option<String>,
    pub gtin: Option<String>,
    pub quantity: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickRequest {
    pub sku: Option<String>,
    pub gtin: Option<String>,
    #[serde(default = "one")]
    pub quantity: i64,
}

pub(super) fn one() -> i64 {
    1
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectRequest {
    pub pickup_code: String,
}

/// `POST /v1/orders/{id}/ship`: the parcel left with a carrier.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    pub carrier: String,
    pub tracking: Option<String>,
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub status: OrderStatus,
    pub channel: String,
    pub delivery: Delivery,
    /// The lane holding the units, when it is another lane of this store (pick and mark
    /// ready there; collect and cancel anywhere).
    pub fulfilment: Option<String>,
    /// The order's id in the store's orders document, once shared with HQ.
    pub doc_id: Option<String>,
    pub created_at: String,
    pub hold_until: String,
    pub lines: Vec<OrderLineView>,
    pub history: Vec<OrderEvent>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct OrderLineView {
    pub line_no: u32,
    pub sku: String,
    pub quantity: i64,
    pub picked: i64,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct OrderEvent {
    pub status: OrderStatus,
    pub at: String,
    pub actor: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct OrderSummary {
    pub order_id: String,
    pub status: OrderStatus,
    pub channel: String,
    pub created_at: String,
    pub hold_until: String,
    pub units: i64,
}

pub(super) fn pickup_hash(order_id: &str, code: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(order_id.as_bytes());
    hasher.update([0]);
    hasher.update(code.trim().as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether `id` is an order id a store accepts (HQ checks before publishing an order).
pub fn is_valid_order_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

pub(super) fn check_order_id(id: &str) -> Result<(), StoreError> {
    if is_valid_order_id(id) {
        Ok(())
    } else {
        Err(StoreError::unprocessable(
            "order_id",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ))
    }
}

pub(super) fn hold_until(now: &str, hours: u32) -> Result<String, StoreError> {
    let format = &time::format_description::well_known::Rfc3339;
    let start = time::OffsetDateTime::parse(now, format)
        .map_err(|e| StoreError::Inconsistent(format!("clock value {now:?}: {e}")))?;
    let end = start + time::Duration::hours(i64::from(hours));
    let pattern = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    end.format(&pattern)
        .map_err(|e| StoreError::Inconsistent(format!("hold time: {e}")))
}

pub fn create(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order: &NewOrder,
) -> Result<OrderView, StoreError> {
    check_order_id(&order.order_id)?;
    let code = order.pickup_code.trim();
    if code.len() < 4 || code.len() > 32 {
        return Err(StoreError::unprocessable(
            "pickup_code",
            "must be 4 to 32 characters",
        ));
    }
    let hash = pickup_hash(&order.order_id, code);
    let view = insert_order(conn, ctx, order, &hash, None)?;
    if let Some(customer) = &order.customer {
        crate::store::customers::put(conn, &order.order_id, customer)?;
    }
    Ok(view)
}

/// The pickup-code hash the store keeps for `order_id` (hex SHA-256). HQ hashes the code
/// the web shop gives it with this same function, so only the hash ever leaves HQ.
pub fn pickup_code_hash(order_id: &str, code: &str) -> String {
    pickup_hash(order_id, code)
}

/// Validates and inserts an order with its lines, reservations and first event.
pub(super) fn insert_order(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order: &NewOrder,
    pickup_code_hash: &str,
    doc_id: Option<&str>,
) -> Result<OrderView, StoreError> {
    if order.lines.is_empty() || order.lines.len() > MAX_LINES {
        return Err(StoreError::unprocessable(
            "lines",
            format!("an order needs 1 to {MAX_LINES} lines"),
        ));
    }
    let hours = order.hold_hours.unwrap_or(DEFAULT_HOLD_HOURS);
    if hours == 0 || hours > MAX_HOLD_HOURS {
        return Err(StoreError::unprocessable(
            "hold_hours",
            format!("must be 1 to {MAX_HOLD_HOURS}"),
        ));
    }
    let exists: bool = conn
        .prepare_cached("SELECT 1 FROM cc_order WHERE id = ?1")?
        .query_row([&order.order_id], |_| Ok(true))
        .optional()?
        .unwrap_or(false);
    if exists {
        return Err(StoreError::Conflict(format!(
            "order {:?} already exists",
            order.order_id
        )));
    }
    conn.prepare_cached(
        "INSERT INTO cc_order (id, status, channel, pickup_code_hash, created_at, hold_until, updated_at, delivery, doc_id)
         VALUES (?1, 'reserved', ?2, ?3, ?4, ?5, ?4, ?6, ?7)",
    )?
    .execute(params![
        order.order_id,
        order.channel,
        pickup_code_hash,
        ctx.now,
        hold_until(ctx.now, hours)?,
        order.delivery.as_str(),
        doc_id,
    ])?;
    for (i, line) in order.lines.iter().enumerate() {
        let field = format!("lines[{i}]");
        let item = catalog::resolve(conn, &field, line.sku.as_deref(), line.gtin.as_deref())?;
        positive(&format!("{field}.quantity"), line.quantity)?;
        conn.prepare_cached(
            "INSERT INTO cc_order_line (order_id, line_no, sku, quantity) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            order.order_id,
            i as i64 + 1,
            item.sku,
            line.quantity
        ])?;
        reserve(conn, ctx, &order.order_id, &item.sku, line.quantity)?;
    }
    add_event(conn, ctx, &order.order_id, OrderStatus::Reserved, None)?;
    get(conn, &order.order_id)?.ok_or_else(|| StoreError::Inconsistent("order vanished".into()))
}

pub(super) fn reserve(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    sku: &str,
    quantity: i64,
) -> Result<(), StoreError> {
    ledger::record(
        conn,
        &Movement {
            sku,
            kind: MovementKind::Reservation,
            on_hand_delta: 0,
            reserved_delta: quantity,
            ref_type: "order",
            ref_id: order_id,
            terminal: ctx.terminal,
        },
        ctx.now,
    )?;
    Ok(())
}

pub(super) fn add_event(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    status: OrderStatus,
    note: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO cc_order_event (order_id, status, at, actor, note) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![order_id, status.as_str(), ctx.now, ctx.terminal, note])?;
    conn.prepare_cached("UPDATE cc_order SET status = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![order_id, status.as_str(), ctx.now])?;
    Ok(())
}

pub(super) fn status_of(conn: &Connection, order_id: &str) -> Result<OrderStatus, StoreError> {
    let status: String = conn
        .prepare_cached("SELECT status FROM cc_order WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("order {order_id:?}")))?;
    OrderStatus::parse(&status)
        .ok_or_else(|| StoreError::Inconsistent(format!("order {order_id} has status {status:?}")))
}

pub(super) fn lines(conn: &Connection, order_id: &str) -> Result<Vec<OrderLineView>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT line_no, sku, quantity, picked FROM cc_order_line WHERE order_id = ?1 ORDER BY line_no",
    )?;
    let rows = stmt.query_map([order_id], |r| {
        Ok(OrderLineView {
            line_no: r.get(0)?,
            sku: r.get(1)?,
            quantity: r.get(2)?,
            picked: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, order_id: &str) -> Result<Option<OrderView>, StoreError> {
    let head = conn
        .prepare_cached(
            "SELECT status, channel, created_at, hold_until, delivery, fulfilment, doc_id
             FROM cc_order WHERE id = ?1",
        )?
        .query_row([order_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, String>(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .optional()?;
    let Some((status, channel, created_at, hold_until, delivery, fulfilment, doc_id)) = head else {
        return Ok(None);
    };
    let delivery = Delivery::parse(&delivery).ok_or_else(|| {
        StoreError::Inconsistent(format!("order {order_id} has delivery {delivery:?}"))
    })?;
    let status = OrderStatus::parse(&status).ok_or_else(|| {
        StoreError::Inconsistent(format!("order {order_id} has status {status:?}"))
    })?;
    let mut stmt = conn.prepare_cached(
        "SELECT status, at, actor, note FROM cc_order_event WHERE order_id = ?1 ORDER BY id",
    )?;
    let history = stmt
        .query_map([order_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .map(|row| {
            let (status, at, actor, note) = row?;
            let status = OrderStatus::parse(&status)
                .ok_or_else(|| StoreError::Inconsistent(format!("event status {status:?}")))?;
            Ok(OrderEvent {
                status,
                at,
                actor,
                note,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(OrderView {
        order_id: order_id.to_string(),
        status,
        channel,
        delivery,
        fulfilment,
        doc_id,
        created_at,
        hold_until,
        lines: lines(conn, order_id)?,
        history,
    }))
}

pub fn list(
    conn: &Connection,
    status: Option<OrderStatus>,
    limit: u32,
) -> Result<Vec<OrderSummary>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, o.status, o.channel, o.created_at, o.hold_until,
                (SELECT COALESCE(sum(quantity), 0) FROM cc_order_line l WHERE l.order_id = o.id)
         FROM cc_order o WHERE (?1 IS NULL OR o.status = ?1) ORDER BY o.created_at, o.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![status.map(OrderStatus::as_str), limit], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })?;
    rows.map(|row| {
        let (order_id, status, channel, created_at, hold_until, units) = row?;
        let status = OrderStatus::parse(&status).ok_or_else(|| {
            StoreError::Inconsistent(format!("order {order_id} has status {status:?}"))
        })?;
        Ok(OrderSummary {
            order_id,
            status,
            channel,
            created_at,
            hold_until,
            units,
        })
    })
    .collect()
}

pub(super) fn require(
    status: OrderStatus,
    allowed: &[OrderStatus],
    action: &str,
    order_id: &str,
) -> Result<(), StoreError> {
    if allowed.contains(&status) {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "order {order_id:?} is {}: cannot {action}",
            status.as_str()
        )))
    }
}
