//! An order's life after it is placed: picking, ready, collected or shipped, cancelled, expired.

#[allow(unused_imports)] // the parent's imports, shared by its parts
use super::*;

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
pub(super) fn pickup_code_key(conn: &Connection, order_id: &str) -> Result<String, StoreError> {
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
pub(super) fn hand_over(
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

pub(super) fn fulfilment_of(
    conn: &Connection,
    order_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT fulfilment FROM cc_order WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))
        .optional()?
        .flatten())
}

pub(super) fn require_fulfilled_here(
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

pub(super) fn require_delivery(
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

pub(super) fn close_open(
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
