//! Orders that come from elsewhere: HQ's online orders, and other lanes' orders mirrored from the store's orders document.

#[allow(unused_imports)] // the parent's imports, shared by its parts
use super::*;

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

pub(super) fn hours_between(from: &str, to: &str) -> Option<u32> {
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
    insert_copy(conn, ctx, order, Some(&order.fulfilment), status)
}

/// Puts back an order this lane took and published before its database was restored from
/// an older backup (`fulfilment` is ignored: the units are held here). No stock effect: its
/// reservation is already in this writer's totals of the stock document, which SQLite
/// follows. Its id is taken again, and the order can be collected or cancelled here.
pub fn restore_own(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order: &MirrorOrder,
    status: OrderStatus,
) -> Result<(), StoreError> {
    insert_copy(conn, ctx, order, None, status)
}

fn insert_copy(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order: &MirrorOrder,
    fulfilment: Option<&str>,
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
        fulfilment,
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
        Some(fulfilment.unwrap_or("restored from the orders document"))
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
    // The holding lane's settlement is its own event, shared like any other: a later
    // incarnation of this writer (a restored database) then knows the units were moved.
    let settle = if here { ctx } else { &mirror };
    match target {
        t if t.is_handed_over() => hand_over(conn, settle, order_id, local, t, note)?,
        OrderStatus::Cancelled | OrderStatus::Expired if local.is_open() => {
            close_open(conn, settle, order_id, target, note)?;
        }
        _ if here || !local.is_open() => return Ok(false),
        progress => add_event(conn, &mirror, order_id, progress, note)?,
    }
    Ok(true)
}

/// Sets the local status of an order to one this writer already recorded in the orders
/// document (a database restored from an older backup is behind it): its stock effect is
/// in the writer's totals already, so nothing is booked, and the event is not shared again.
pub fn take_status(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    order_id: &str,
    status: OrderStatus,
) -> Result<(), StoreError> {
    let mirror = WriteContext {
        terminal: MIRROR_ACTOR,
        ..*ctx
    };
    add_event(
        conn,
        &mirror,
        order_id,
        status,
        Some("recorded by this lane before a restore"),
    )
}
