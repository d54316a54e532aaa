//! Click-and-collect orders: reserved on arrival, picked by scanning, collected with a pickup
//! code at any lane, cancelled or expired with their reservation released.
//!
//! Status flow: `reserved → picking → ready → collected`, and from any open status to
//! `cancelled` or `expired`. Units are held in `stock_level.reserved` (not taken off the
//! shelf count) until collection, so a cancel after picking puts them back simply by
//! releasing the hold. Every change is a row in `cc_order_event` (the status history).

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::domain::orders::Delivery;

use super::StoreError;
use super::catalog;
use super::ledger::{self, Movement, MovementKind};
use super::sales::{WriteContext, positive};

const MAX_LINES: usize = 200;
const DEFAULT_HOLD_HOURS: u32 = 72;
const MAX_HOLD_HOURS: u32 = 24 * 30;

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

fn default_channel() -> String {
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

fn one() -> i64 {
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

fn pickup_hash(order_id: &str, code: &str) -> String {
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

fn check_order_id(id: &str) -> Result<(), StoreError> {
    if is_valid_order_id(id) {
        Ok(())
    } else {
        Err(StoreError::unprocessable(
            "order_id",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ))
    }
}

fn hold_until(now: &str, hours: u32) -> Result<String, StoreError> {
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

/// An online order HQ published for this store (see `sync::local`): the plain pickup code
/// never reaches the store, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HqOrder {
    pub order_id: String,
    /// The id in the orders document (`hq:{order_id}`).
    pub doc_id: String,
    pub channel: String,
    pub delivery: Delivery,
    pub hold_hours: Option<u32>,
    /// (sku, quantity)
    pub lines: Vec<(String, i64)>,
}

/// Creates an order HQ placed, with its reservation, through the same checks as
/// [`create`]; `pickup_code_hash` must be the 64-hex-digit [`pickup_code_hash`].
pub fn create_from_hq(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order: &HqOrder,
    pickup_code_hash: &str,
) -> Result<OrderView, StoreError> {
    check_order_id(&order.order_id)?;
    let well_formed =
        pickup_code_hash.len() == 64 && pickup_code_hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(StoreError::unprocessable(
            "pickup_code_hash",
            "must be 64 hex digits (SHA-256)",
        ));
    }
    let request = NewOrder {
        order_id: order.order_id.clone(),
        channel: order.channel.clone(),
        pickup_code: String::new(),
        hold_hours: order.hold_hours,
        delivery: order.delivery,
        customer: None,
        lines: order
            .lines
            .iter()
            .map(|(sku, quantity)| OrderLineRequest {
                sku: Some(sku.clone()),
                gtin: None,
                quantity: *quantity,
            })
            .collect(),
    };
    insert_order(
        conn,
        ctx,
        &request,
        &pickup_code_hash.to_ascii_lowercase(),
        Some(&order.doc_id),
    )
}

/// Validates and inserts an order with its lines, reservations and first event.
fn insert_order(
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

fn reserve(
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

fn add_event(
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

fn status_of(conn: &Connection, order_id: &str) -> Result<OrderStatus, StoreError> {
    let status: String = conn
        .prepare_cached("SELECT status FROM cc_order WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("order {order_id:?}")))?;
    OrderStatus::parse(&status)
        .ok_or_else(|| StoreError::Inconsistent(format!("order {order_id} has status {status:?}")))
}

fn lines(conn: &Connection, order_id: &str) -> Result<Vec<OrderLineView>, StoreError> {
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

fn require(
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

/// One scan while picking: the item must be in the order and not yet fully picked.
pub fn pick(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    request: &PickRequest,
) -> Result<OrderView, StoreError> {
    let status = status_of(conn, order_id)?;
    require(
        status,
        &[OrderStatus::Reserved, OrderStatus::Picking],
        "pick",
        order_id,
    )?;
    require_fulfilled_here(conn, order_id, "pick")?;
    positive("quantity", request.quantity)?;
    let item = catalog::resolve(
        conn,
        "item",
        request.sku.as_deref(),
        request.gtin.as_deref(),
    )?;
    let open_line = lines(conn, order_id)?
        .into_iter()
        .find(|l| l.sku == item.sku && l.picked < l.quantity);
    let Some(line) = open_line else {
        let in_order = lines(conn, order_id)?.iter().any(|l| l.sku == item.sku);
        let reason = if in_order {
            format!("{} is already fully picked", item.sku)
        } else {
            format!(
                "wrong item: {} ({}) is not in this order",
                item.sku, item.name
            )
        };
        return Err(StoreError::unprocessable("item", reason));
    };
    if line.picked + request.quantity > line.quantity {
        return Err(StoreError::unprocessable(
            "quantity",
            format!(
                "only {} more of {} are needed",
                line.quantity - line.picked,
                item.sku
            ),
        ));
    }
    conn.prepare_cached(
        "UPDATE cc_order_line SET picked = picked + ?3 WHERE order_id = ?1 AND line_no = ?2",
    )?
    .execute(params![order_id, line.line_no, request.quantity])?;
    if status == OrderStatus::Reserved {
        add_event(conn, ctx, order_id, OrderStatus::Picking, None)?;
    }
    get(conn, order_id)?.ok_or_else(|| StoreError::not_found(format!("order {order_id:?}")))
}

/// Marks a fully picked order ready for the customer.
pub fn mark_ready(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
) -> Result<OrderView, StoreError> {
    let status = status_of(conn, order_id)?;
    require(
        status,
        &[OrderStatus::Reserved, OrderStatus::Picking],
        "mark ready",
        order_id,
    )?;
    require_fulfilled_here(conn, order_id, "mark ready")?;
    let missing: i64 = lines(conn, order_id)?
        .iter()
        .map(|l| l.quantity - l.picked)
        .sum();
    if missing > 0 {
        return Err(StoreError::unprocessable(
            "lines",
            format!("{missing} units are not picked yet"),
        ));
    }
    add_event(conn, ctx, order_id, OrderStatus::Ready, None)?;
    get(conn, order_id)?.ok_or_else(|| StoreError::not_found(format!("order {order_id:?}")))
}

/// Hands the order over at any lane: the pickup code must match. At the lane holding the
/// units they leave the store (a sale movement) and the hold is released; at another lane
/// the status is recorded and that lane settles the units when it learns of it.
pub fn collect(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    request: &CollectRequest,
) -> Result<OrderView, StoreError> {
    let status = status_of(conn, order_id)?;
    require(status, &[OrderStatus::Ready], "collect", order_id)?;
    require_delivery(conn, order_id, Delivery::Collect, "collect")?;
    let stored: String = conn
        .prepare_cached("SELECT pickup_code_hash FROM cc_order WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))?;
    let given = pickup_hash(
        pickup_code_key(conn, order_id)?.as_str(),
        &request.pickup_code,
    );
    if !bool::from(stored.as_bytes().ct_eq(given.as_bytes())) {
        return Err(StoreError::unprocessable(
            "pickup_code",
            "does not match this order",
        ));
    }
    hand_over(conn, ctx, order_id, status, OrderStatus::Collected, None)?;
    get(conn, order_id)?.ok_or_else(|| StoreError::not_found(format!("order {order_id:?}")))
}

/// Ship-from-store: the packed order left with a carrier (fulfilling lane only).
pub fn ship(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    request: &ShipRequest,
) -> Result<OrderView, StoreError> {
    let status = status_of(conn, order_id)?;
    require(status, &[OrderStatus::Ready], "ship", order_id)?;
    require_delivery(conn, order_id, Delivery::Ship, "ship")?;
    require_fulfilled_here(conn, order_id, "ship")?;
    let carrier = request.carrier.trim();
    if carrier.is_empty() || carrier.len() > 64 {
        return Err(StoreError::unprocessable(
            "carrier",
            "must be 1 to 64 characters",
        ));
    }
    let tracking = request.tracking.as_deref().map(str::trim).unwrap_or("");
    if tracking.len() > 64 {
        return Err(StoreError::unprocessable(
            "tracking",
            "must be at most 64 characters",
        ));
    }
    let note = if tracking.is_empty() {
        carrier.to_owned()
    } else {
        format!("{carrier} {tracking}")
    };
    hand_over(
        conn,
        ctx,
        order_id,
        status,
        OrderStatus::Shipped,
        Some(&note),
    )?;
    get(conn, order_id)?.ok_or_else(|| StoreError::not_found(format!("order {order_id:?}")))
}

/// The order id the pickup code was hashed with: HQ hashes with its own order id, which is
/// the local id of an HQ order and the part after `{writer}:` of another lane's order.
fn pickup_code_key(conn: &Connection, order_id: &str) -> Result<String, StoreError> {
    let doc_id: Option<String> = conn
        .prepare_cached("SELECT doc_id FROM cc_order WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))?;
    Ok(match doc_id.as_deref().and_then(|d| d.split_once(':')) {
        Some((_, local)) => local.to_owned(),
        None => order_id.to_owned(),
    })
}

/// Records the hand-over; the lane holding the units also moves them out of stock
/// (`from` tells whether they are still held or were released by a withdrawal).
fn hand_over(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    from: OrderStatus,
    to: OrderStatus,
    note: Option<&str>,
) -> Result<(), StoreError> {
    if fulfilment_of(conn, order_id)?.is_none() {
        let still_held = from.is_open();
        for line in lines(conn, order_id)? {
            ledger::record(
                conn,
                &Movement {
                    sku: &line.sku,
                    kind: MovementKind::Sale,
                    on_hand_delta: -line.quantity,
                    reserved_delta: if still_held { -line.quantity } else { 0 },
                    ref_type: "order",
                    ref_id: order_id,
                    terminal: ctx.terminal,
                },
                ctx.now,
            )?;
        }
    }
    add_event(conn, ctx, order_id, to, note)
}

fn fulfilment_of(conn: &Connection, order_id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT fulfilment FROM cc_order WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))
        .optional()?
        .flatten())
}

fn require_fulfilled_here(
    conn: &Connection,
    order_id: &str,
    action: &str,
) -> Result<(), StoreError> {
    match fulfilment_of(conn, order_id)? {
        None => Ok(()),
        Some(lane) => Err(StoreError::Conflict(format!(
            "order {order_id:?} is held by lane {lane}: {action} it there"
        ))),
    }
}

fn require_delivery(
    conn: &Connection,
    order_id: &str,
    expected: Delivery,
    action: &str,
) -> Result<(), StoreError> {
    let delivery: String = conn
        .prepare_cached("SELECT delivery FROM cc_order WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))?;
    if delivery == expected.as_str() {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "order {order_id:?} is a {delivery} order: cannot {action} it"
        )))
    }
}

pub fn cancel(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    request: &CancelRequest,
) -> Result<OrderView, StoreError> {
    close_open(
        conn,
        ctx,
        order_id,
        OrderStatus::Cancelled,
        request.reason.as_deref(),
    )?;
    get(conn, order_id)?.ok_or_else(|| StoreError::not_found(format!("order {order_id:?}")))
}

fn close_open(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    to: OrderStatus,
    note: Option<&str>,
) -> Result<(), StoreError> {
    let status = status_of(conn, order_id)?;
    if !status.is_open() {
        return Err(StoreError::Conflict(format!(
            "order {order_id:?} is {}: cannot {}",
            status.as_str(),
            to.as_str()
        )));
    }
    if fulfilment_of(conn, order_id)?.is_none() {
        for line in lines(conn, order_id)? {
            reserve(conn, ctx, order_id, &line.sku, -line.quantity)?;
        }
    }
    add_event(conn, ctx, order_id, to, note)
}

/// Expires every open order whose hold time has passed; returns their ids.
pub fn expire_due(conn: &Connection, ctx: &WriteContext<'_>) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM cc_order WHERE status IN ('reserved','picking','ready') AND hold_until < ?1
         AND fulfilment IS NULL ORDER BY id",
    )?;
    let due: Vec<String> = stmt
        .query_map([ctx.now], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in &due {
        close_open(
            conn,
            ctx,
            id,
            OrderStatus::Expired,
            Some("hold time passed"),
        )?;
    }
    Ok(due)
}

/// Marks the order as shared through the orders document under `doc_id`.
pub fn set_doc_id(conn: &Connection, order_id: &str, doc_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE cc_order SET doc_id = ?2 WHERE id = ?1")?
        .execute(params![order_id, doc_id])?;
    Ok(())
}

/// The local id of the order shared as `doc_id`, if this node has it.
pub fn by_doc_id(conn: &Connection, doc_id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM cc_order WHERE doc_id = ?1")?
        .query_row([doc_id], |r| r.get(0))
        .optional()?)
}

/// The facts a node needs to publish one of its own orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnOrder {
    pub order_id: String,
    pub channel: String,
    pub delivery: Delivery,
    pub pickup_code_hash: String,
    pub created_at: String,
    pub hold_hours: u32,
    /// (sku, quantity), summed per SKU.
    pub lines: Vec<(String, i64)>,
}

/// An order taken at this node that is not shared yet (`doc_id` empty).
pub fn unshared_own(conn: &Connection, order_id: &str) -> Result<Option<OwnOrder>, StoreError> {
    let head = conn
        .prepare_cached(
            "SELECT channel, delivery, pickup_code_hash, created_at, hold_until FROM cc_order
             WHERE id = ?1 AND doc_id IS NULL AND fulfilment IS NULL",
        )?
        .query_row([order_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .optional()?;
    let Some((channel, delivery, hash, created_at, until)) = head else {
        return Ok(None);
    };
    let mut summed: std::collections::BTreeMap<String, i64> = Default::default();
    for line in lines(conn, order_id)? {
        *summed.entry(line.sku).or_default() += line.quantity;
    }
    Ok(Some(OwnOrder {
        order_id: order_id.to_owned(),
        channel,
        delivery: Delivery::parse(&delivery).unwrap_or_default(),
        pickup_code_hash: hash,
        hold_hours: hours_between(&created_at, &until).unwrap_or(DEFAULT_HOLD_HOURS),
        created_at,
        lines: summed.into_iter().collect(),
    }))
}

fn hours_between(from: &str, to: &str) -> Option<u32> {
    let format = &time::format_description::well_known::Rfc3339;
    let from = time::OffsetDateTime::parse(from, format).ok()?;
    let to = time::OffsetDateTime::parse(to, format).ok()?;
    u32::try_from((to - from).whole_hours()).ok()
}

/// An order another lane of this store holds (or HQ placed for another lane): this node
/// keeps a copy without reservations, so staff can find it and collect it at any lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorOrder {
    /// Local id: the HQ order id for HQ orders, the document id for another lane's.
    pub order_id: String,
    pub doc_id: String,
    pub channel: String,
    pub delivery: Delivery,
    pub fulfilment: String,
    pub pickup_code_hash: String,
    pub created_at: String,
    pub hold_hours: Option<u32>,
    pub lines: Vec<(String, i64)>,
}

/// Inserts the copy of an order held by another lane (no stock effect here).
pub fn insert_mirror(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order: &MirrorOrder,
    status: OrderStatus,
) -> Result<(), StoreError> {
    let hours = order
        .hold_hours
        .unwrap_or(DEFAULT_HOLD_HOURS)
        .min(MAX_HOLD_HOURS);
    conn.prepare_cached(
        "INSERT INTO cc_order (id, status, channel, pickup_code_hash, created_at, hold_until,
                               updated_at, delivery, fulfilment, doc_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        order.order_id,
        status.as_str(),
        order.channel,
        order.pickup_code_hash,
        order.created_at,
        hold_until(&order.created_at, hours).unwrap_or_else(|_| order.created_at.clone()),
        ctx.now,
        order.delivery.as_str(),
        order.fulfilment,
        order.doc_id,
    ])?;
    for (i, (sku, quantity)) in order.lines.iter().enumerate() {
        conn.prepare_cached(
            "INSERT INTO cc_order_line (order_id, line_no, sku, quantity) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![order.order_id, i as i64 + 1, sku, quantity])?;
    }
    conn.prepare_cached(
        "INSERT INTO cc_order_event (order_id, status, at, actor, note) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        order.order_id,
        status.as_str(),
        ctx.now,
        MIRROR_ACTOR,
        Some(order.fulfilment.as_str())
    ])?;
    Ok(())
}

/// Brings the local status to `target`, decided elsewhere (the folded status of the orders
/// document). The lane holding the units settles them: a hand-over sells them (also after a
/// local cancel: collected wins), a withdrawal releases the hold. Progress statuses are
/// the holding lane's own decisions and only copied to other lanes. Returns whether
/// anything changed.
pub fn follow(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    target: OrderStatus,
    decided_by: &str,
) -> Result<bool, StoreError> {
    let local = status_of(conn, order_id)?;
    if local == target || local.is_handed_over() {
        return Ok(false);
    }
    let here = fulfilment_of(conn, order_id)?.is_none();
    let note = Some(decided_by);
    let mirror = WriteContext {
        terminal: MIRROR_ACTOR,
        ..*ctx
    };
    match target {
        t if t.is_handed_over() => hand_over(conn, &mirror, order_id, local, t, note)?,
        OrderStatus::Cancelled | OrderStatus::Expired if local.is_open() => {
            close_open(conn, &mirror, order_id, target, note)?;
        }
        _ if here || !local.is_open() => return Ok(false),
        progress => add_event(conn, &mirror, order_id, progress, note)?,
    }
    Ok(true)
}
