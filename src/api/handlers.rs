//! Route handlers: parse, call the store, answer. No business logic lives here.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use serde::Deserialize;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use utoipa::IntoParams;

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use super::query::{self, ApiQuery};
use super::replies::{EscrowList, ItemReply, ItemStock, OrderList, StockOne, StockPage};
use super::write::WriteRequest;
use crate::health::{Alive, Readiness};
use crate::metrics::Metrics;
use crate::store::catalog;
use crate::store::escrow;
use crate::store::inventory::{
    self, AdjustmentRequest, CountRequest, ReceiptRequest, StockWriteResult,
};
use crate::store::ledger;
use crate::store::orders::{
    self, CancelRequest, CollectRequest, NewOrder, OrderStatus, OrderView, PickRequest, ShipRequest,
};
use crate::store::pricing;
use crate::store::sales::{self, ReturnReceipt, ReturnRequest, SaleReceipt, SaleRequest};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = Alive)))]
pub async fn healthz() -> impl IntoResponse {
    Json(Alive { status: "ok" })
}

/// Readiness with component states.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready: a critical component is down", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if let Err(wait) = state.public_limits.readyz.take() {
        state.metrics.public_rate_limited.inc();
        return super::limits::too_many("/readyz", wait).into_response();
    }
    // A real write (rate-limited) rather than the last error: a store that opened its file
    // read-only, a full disk or a lock held elsewhere refuse the next sale, so not ready.
    crate::probes::check_store(&state.store, &state.health).await;
    let body = state.health.readiness();
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Err(wait) = state.public_limits.metrics.take() {
        state.metrics.public_rate_limited.inc();
        return super::limits::too_many("/metrics", wait).into_response();
    }
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    let negative = state.store.read(ledger::negative_count).await.unwrap_or(0);
    crate::metrics::gauge(
        &mut out,
        "storenode_skus_negative_stock",
        "SKUs with stock on hand below zero.",
        negative as i64,
    );
    let uptime = state.started.elapsed().as_secs() as i64;
    crate::metrics::gauge(
        &mut out,
        "storenode_uptime_seconds",
        "Seconds since the node started.",
        uptime,
    );
    crate::probes::check_store(&state.store, &state.health).await;
    state.health.render(&mut out);
    (state.extra_metrics)(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

pub async fn no_route(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

/// A known path with a method it does not serve (axum adds the `Allow` header).
pub async fn method_not_allowed(
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not served at {}", uri.path()),
    )
}

/// Look an item up by SKU or any GTIN, with its stock, its price now and its promotions.
#[utoipa::path(get, path = "/items/{key}", tag = "stock",
    params(("key" = String, Path, description = "SKU or GTIN-8/12/13/14")),
    responses((status = 200, description = "The item and its stock", body = ItemReply)))]
pub async fn get_item(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = key.clone();
    let rules = state.store.pricing();
    let writer_id = state.store.writer_id().to_owned();
    let found = state
        .store
        .read(move |conn| {
            let Some(item) = catalog::find(conn, &lookup)? else {
                return Ok(None);
            };
            let level = ledger::level(conn, &item.sku)?;
            let now = crate::clock::now_utc();
            let pricing =
                pricing::item_offers(conn, &rules, &writer_id, &now, &item.sku, item.price_minor)?;
            Ok(Some((item, level, pricing)))
        })
        .await?;
    let (item, level, pricing) = found.ok_or_else(|| {
        ApiError::not_found(format!("item {key:?} not found (tried as GTIN and SKU)"))
    })?;
    let stock = ItemStock {
        on_hand: level.on_hand,
        reserved: level.reserved,
        available: level.available(),
    };
    Ok(Json(ItemReply {
        item,
        stock,
        pricing,
    })
    .into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next_after` of the previous page.
    after: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A page of stock levels, ordered by SKU.
#[utoipa::path(get, path = "/stock", tag = "stock", params(PageQuery),
    responses((status = 200, description = "One page", body = StockPage)))]
pub async fn stock_page(
    State(state): State<AppState>,
    _t: TerminalId,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = query::limit(q.limit)?;
    let after = q.after.unwrap_or_default();
    let rows = state
        .store
        .read(move |conn| ledger::page(conn, &after, limit))
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.sku.clone()))
        .flatten();
    Ok(Json(StockPage {
        items: rows,
        next_after: next,
    })
    .into_response())
}

/// Stock of one SKU (or GTIN).
#[utoipa::path(get, path = "/stock/{sku}", tag = "stock",
    params(("sku" = String, Path, description = "SKU or GTIN")),
    responses((status = 200, description = "Its stock and escrow", body = StockOne)))]
pub async fn stock_one(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(sku): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = sku.clone();
    let level = state
        .store
        .read(move |conn| {
            let Some(item) = catalog::find(conn, &lookup)? else {
                return Ok(None);
            };
            Ok(Some((
                item.sku.clone(),
                ledger::level(conn, &item.sku)?,
                escrow::get(conn, &item.sku)?,
            )))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("item {sku:?} not found")))?;
    let (sku, stock, held) = level;
    Ok(Json(StockOne {
        sku,
        on_hand: stock.on_hand,
        reserved: stock.reserved,
        available: stock.available(),
        online_escrow: held.online_remaining,
        store_free: held.store_free,
    })
    .into_response())
}

/// Record a sale (durable before the reply).
#[utoipa::path(post, path = "/sales", tag = "sales",
    request_body = SaleRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = SaleReceipt)))]
pub async fn create_sale(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: SaleRequest = write.parse()?;
    let codes = request.coupons.clone();
    let terminal = write.terminal().to_owned();
    let answer = write
        .run(
            &state,
            move |conn, ctx| sales::record_sale(conn, ctx, &request),
            count_sale,
        )
        .await;
    match answer {
        // A coupon this lane does not hold: ask HQ for a use (the sale's write was undone).
        Err(refused)
            if refused.status == StatusCode::CONFLICT
                && refused
                    .message
                    .contains(crate::domain::coupons::NOT_HELD_HERE) =>
        {
            Err(super::coupons::ask_hq_after_refusal(&state, terminal, codes, refused).await)
        }
        other => other,
    }
}

fn count_sale(m: &Metrics, receipt: &SaleReceipt) {
    m.sales.inc();
    m.sale_lines.add(receipt.lines.len() as u64);
    if !receipt.negative_stock.is_empty() {
        m.negative_stock_sales.inc();
        tracing::warn!(sale = %receipt.sale_id, skus = receipt.negative_stock.len(), "sale took stock below zero");
    }
}

/// A recorded sale.
#[utoipa::path(get, path = "/sales/{sale_id}", tag = "sales",
    params(("sale_id" = String, Path)),
    responses((status = 200, description = "The sale", body = SaleReceipt)))]
pub async fn get_sale(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(sale_id): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = sale_id.clone();
    let sale = state
        .store
        .read(move |conn| sales::get_sale(conn, &lookup))
        .await?;
    sale.map(|s| Json(s).into_response())
        .ok_or_else(|| ApiError::not_found(format!("sale {sale_id:?} not found")))
}

/// Return goods against a sale. The share of the refund that the sale paid in loyalty points
/// goes back to the member as points (`loyalty.points_refunded`, spendable at this till at
/// once), the rest in money (`refund_money_minor`).
#[utoipa::path(post, path = "/returns", tag = "returns",
    request_body = ReturnRequest,
    responses((status = 201, description = "Done: `refund_money_minor` to pay back in money, `loyalty.points_refunded` given back as points (a replay of the same key returns the first answer)", body = ReturnReceipt)))]
pub async fn create_return(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: ReturnRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| sales::record_return(conn, ctx, &request),
            |m, _| m.returns.inc(),
        )
        .await
}

/// Goods receipt.
#[utoipa::path(post, path = "/receipts", tag = "receipts",
    request_body = ReceiptRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = StockWriteResult)))]
pub async fn create_receipt(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: ReceiptRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| inventory::record_receipt(conn, ctx, &request),
            count_stock_write,
        )
        .await
}

/// Grant free units to the online channel (the tills cannot sell them).
#[utoipa::path(post, path = "/escrow/grants", tag = "escrow",
    request_body = escrow::GrantRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = escrow::EscrowView)))]
pub async fn grant_escrow(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: escrow::GrantRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| escrow::grant(conn, ctx, &request),
            count_stock_write,
        )
        .await
}

/// The online channel's escrow per SKU.
#[utoipa::path(get, path = "/escrow", tag = "escrow",
    responses((status = 200, description = "Escrow of every SKU that has one", body = EscrowList)))]
pub async fn list_escrow(
    State(state): State<AppState>,
    _t: TerminalId,
) -> Result<Response, ApiError> {
    let rows = state.store.read(escrow::list).await?;
    Ok(Json(EscrowList { escrow: rows }).into_response())
}

fn count_stock_write<T>(m: &Metrics, _: &T) {
    m.stock_writes.inc();
}

fn count_order_write<T>(m: &Metrics, _: &T) {
    m.order_writes.inc();
}

/// Stock count (recorded as the difference to on-hand).
#[utoipa::path(post, path = "/counts", tag = "counts",
    request_body = CountRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = StockWriteResult)))]
pub async fn create_count(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: CountRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| inventory::record_count(conn, ctx, &request),
            count_stock_write,
        )
        .await
}

/// Stock adjustment with a reason.
#[utoipa::path(post, path = "/adjustments", tag = "adjustments",
    request_body = AdjustmentRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = StockWriteResult)))]
pub async fn create_adjustment(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: AdjustmentRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| inventory::record_adjustment(conn, ctx, &request),
            count_stock_write,
        )
        .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only orders in this status.
    status: Option<OrderStatus>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Click-and-collect and ship-from-store orders, optionally by status.
#[utoipa::path(get, path = "/orders", tag = "orders", params(OrderQuery),
    responses((status = 200, description = "Orders, oldest first", body = OrderList)))]
pub async fn list_orders(
    State(state): State<AppState>,
    _t: TerminalId,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> Result<Response, ApiError> {
    let status = q.status;
    let limit = query::limit(q.limit)?;
    let rows = state
        .store
        .read(move |conn| orders::list(conn, status, limit))
        .await?;
    Ok(Json(OrderList { orders: rows }).into_response())
}

/// Create an order (reserves stock).
#[utoipa::path(post, path = "/orders", tag = "orders",
    request_body = NewOrder,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = OrderView)))]
pub async fn create_order(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: NewOrder = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| orders::create(conn, ctx, &request),
            count_order_write,
        )
        .await
}

/// One order with lines and status history.
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 200, description = "The order", body = OrderView)))]
pub async fn get_order(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = order_id.clone();
    let order = state
        .store
        .read(move |conn| orders::get(conn, &lookup))
        .await?;
    order
        .map(|o| Json(o).into_response())
        .ok_or_else(|| ApiError::not_found(format!("order {order_id:?} not found")))
}

/// Pick one scanned item (a wrong item is refused).
#[utoipa::path(post, path = "/orders/{order_id}/pick", tag = "orders",
    params(("order_id" = String, Path)),
    request_body = PickRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = OrderView)))]
pub async fn pick_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: PickRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| orders::pick(conn, ctx, &order_id, &request),
            count_order_write,
        )
        .await
}

/// Mark a fully picked order ready (no body).
#[utoipa::path(post, path = "/orders/{order_id}/ready", tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = OrderView)))]
pub async fn ready_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    write
        .run(
            &state,
            move |conn, ctx| orders::mark_ready(conn, ctx, &order_id),
            count_order_write,
        )
        .await
}

/// Hand over with the pickup code.
#[utoipa::path(post, path = "/orders/{order_id}/collect", tag = "orders",
    params(("order_id" = String, Path)),
    request_body = CollectRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = OrderView)))]
pub async fn collect_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let terminal = write.terminal().to_string();
    super::pickup::check(&state, &order_id, &terminal)?;
    let request: CollectRequest = write.parse()?;
    let order = order_id.clone();
    let result = write
        .run(
            &state,
            move |conn, ctx| orders::collect(conn, ctx, &order, &request),
            count_order_write,
        )
        .await;
    super::pickup::record(&state, &order_id, &terminal, &result);
    result
}

/// Ship-from-store: hand a ready order to the carrier.
#[utoipa::path(post, path = "/orders/{order_id}/ship", tag = "orders",
    params(("order_id" = String, Path)),
    request_body = ShipRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = OrderView)))]
pub async fn ship_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: ShipRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| orders::ship(conn, ctx, &order_id, &request),
            count_order_write,
        )
        .await
}

/// Cancel; releases the reservation (the body is optional).
#[utoipa::path(post, path = "/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = String, Path)),
    request_body = Option<CancelRequest>,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = OrderView)))]
pub async fn cancel_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: CancelRequest = write.parse_or_empty()?;
    write
        .run(
            &state,
            move |conn, ctx| orders::cancel(conn, ctx, &order_id, &request),
            count_order_write,
        )
        .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events from this device (e.g. the scanner bound to this terminal).
    device: Option<String>,
}

/// Live scans and tag events as Server-Sent Events, optionally for one device.
#[utoipa::path(get, path = "/events", tag = "devices", params(EventQuery),
    responses((status = 200, description = "An endless event stream", body = String, content_type = "text/event-stream")))]
pub async fn live_events(
    State(state): State<AppState>,
    _t: TerminalId,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(state.events.subscribe()).filter_map(move |received| {
        let event = match received {
            Ok(event) => event,
            // A slow client missed events: tell it, rather than silently skipping.
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                return Some(Ok(Event::default().event("lagged").data(n.to_string())));
            }
        };
        if q.device.as_deref().is_some_and(|d| d != &*event.device) {
            return None;
        }
        Some(Ok(Event::default().event(event.kind).data(event.json)))
    });
    // The stream ends when the node stops, so a connected till does not hold the shutdown up.
    let stream = futures_util::StreamExt::take_until(stream, state.shutdown.cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
