//! Route handlers: parse, call the store, answer. No business logic lives here.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use super::write::WriteRequest;
use crate::metrics::Metrics;
use crate::store::catalog;
use crate::store::escrow;
use crate::store::inventory::{self, AdjustmentRequest, CountRequest, ReceiptRequest};
use crate::store::ledger;
use crate::store::orders::{
    self, CancelRequest, CollectRequest, NewOrder, OrderStatus, PickRequest, ShipRequest,
};
use crate::store::sales::{self, ReturnRequest, SaleReceipt, SaleRequest};

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    if let Err(wait) = state.public_limits.readyz.take() {
        state.metrics.public_rate_limited.inc();
        return super::limits::too_many("/readyz", wait).into_response();
    }
    // A real write (rate-limited) rather than the last error: a store that opened its file
    // read-only, a full disk or a lock held elsewhere refuse the next sale, so not ready.
    crate::health::watch::check_store(&state.store, &state.health).await;
    let ready = state.health.ready();
    let body = json!({
        "ready": ready,
        "reasons": state.health.not_ready_reasons(),
        "components": state.health.snapshot(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

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
    crate::health::watch::check_store(&state.store, &state.health).await;
    state.health.render(&mut out);
    (state.extra_metrics)(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

pub async fn no_route(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

pub async fn get_item(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = key.clone();
    let found = state
        .store
        .read(move |conn| {
            let Some(item) = catalog::find(conn, &lookup)? else {
                return Ok(None);
            };
            let level = ledger::level(conn, &item.sku)?;
            Ok(Some((item, level)))
        })
        .await?;
    let (item, level) = found.ok_or_else(|| {
        ApiError::not_found(format!("item {key:?} not found (tried as GTIN and SKU)"))
    })?;
    Ok(Json(json!({
        "item": item,
        "stock": { "on_hand": level.on_hand, "reserved": level.reserved, "available": level.available() },
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    after: Option<String>,
    limit: Option<u32>,
}

pub async fn stock_page(
    State(state): State<AppState>,
    _t: TerminalId,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let after = q.after.unwrap_or_default();
    let rows = state
        .store
        .read(move |conn| ledger::page(conn, &after, limit))
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.sku.clone()))
        .flatten();
    Ok(Json(json!({ "items": rows, "next_after": next })).into_response())
}

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
    Ok(Json(json!({
        "sku": sku,
        "on_hand": stock.on_hand,
        "reserved": stock.reserved,
        "available": stock.available(),
        "online_escrow": held.online_remaining,
        "store_free": held.store_free,
    }))
    .into_response())
}

pub async fn create_sale(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: SaleRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| sales::record_sale(conn, ctx, &request),
            count_sale,
        )
        .await
}

fn count_sale(m: &Metrics, receipt: &SaleReceipt) {
    m.sales.inc();
    m.sale_lines.add(receipt.lines.len() as u64);
    if !receipt.negative_stock.is_empty() {
        m.negative_stock_sales.inc();
        tracing::warn!(sale = %receipt.sale_id, skus = receipt.negative_stock.len(), "sale took stock below zero");
    }
}

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

pub async fn list_escrow(
    State(state): State<AppState>,
    _t: TerminalId,
) -> Result<Response, ApiError> {
    let rows = state.store.read(escrow::list).await?;
    Ok(Json(json!({ "escrow": rows })).into_response())
}

fn count_stock_write<T>(m: &Metrics, _: &T) {
    m.stock_writes.inc();
}

fn count_order_write<T>(m: &Metrics, _: &T) {
    m.order_writes.inc();
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    status: Option<String>,
    limit: Option<u32>,
}

pub async fn list_orders(
    State(state): State<AppState>,
    _t: TerminalId,
    Query(q): Query<OrderQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(Some("status".into()), format!("status {s:?} is not one of reserved, picking, ready, collected, shipped, cancelled, expired"))
        })?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state
        .store
        .read(move |conn| orders::list(conn, status, limit))
        .await?;
    Ok(Json(json!({ "orders": rows })).into_response())
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only events from this device (e.g. the scanner bound to this terminal).
    device: Option<String>,
}

/// Live scans and tag events as Server-Sent Events, optionally for one device.
pub async fn live_events(
    State(state): State<AppState>,
    _t: TerminalId,
    Query(q): Query<EventQuery>,
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
