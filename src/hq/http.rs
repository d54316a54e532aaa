//! HQ's HTTP API for the web shop and back office (bearer token):
//! - `GET /v1/stock/{store}/{sku}`: one figure, with `available_to_sell`, `as_of`, `online`;
//! - `GET /v1/stock?store=S`: every SKU of a store;
//! - `POST /v1/catalog` `{"items": [...]}`: publish catalog items and prices to every store;
//! - `POST /v1/epochs/{store}`: open the next epoch of a store's stock and orders documents (bounded history);
//! - `POST /v1/orders`: place an online click-and-collect order at a store;
//! - `GET /v1/orders/{id}`: its current status (folded from every writer) and history;
//! - customer data and GDPR erasure (`PUT|GET /v1/orders/{id}/customer`,
//!   `POST /v1/privacy/erase`, `GET /v1/privacy/erasures/{order_id}`): see [`super::privacy`];
//! - `GET /v1/epcis/events?store=S&from=&to=&limit=&after=`: stores' EPCIS 2.0 events, see
//!   [`super::epcis`];
//! - promotions, price lists and `POST /v1/quote`: see [`super::pricing`].

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use super::state::{CancelRefused, NewHqOrder, OrderRefused, Outgoing};
use super::{SharedHq, lock};
use crate::crdt::catalog::CatalogItem;
use crate::domain::orders::OrderStatus;
use crate::settings::Secret;

#[derive(Clone)]
pub struct HttpState {
    pub hq: SharedHq,
    pub token: Secret,
    pub publish: mpsc::UnboundedSender<Outgoing>,
    /// Customer data and erasure (`super::privacy`).
    pub privacy: super::privacy::SharedPrivacy,
    /// Stores' EPCIS events (`super::epcis`).
    pub epcis: super::epcis::SharedEpcis,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/v1/stock", get(store_stock))
        .route("/v1/stock/{store}/{sku}", get(one_sku))
        .route("/v1/catalog", post(publish_catalog))
        .route("/v1/epochs/{store}", post(open_epoch))
        .route("/v1/orders", post(place_order).get(list_orders))
        .route("/v1/orders/{id}", get(one_order))
        .route("/v1/transfers", get(super::http_transfers::store_transfers))
        .route(
            "/v1/transfers/{id}",
            get(super::http_transfers::one_transfer),
        )
        .route("/v1/orders/{id}/cancel", post(cancel_order))
        .route("/v1/escrow/{store}", get(store_escrow))
        .route("/v1/escrow/{store}/{sku}/return", post(return_escrow))
        .route(
            "/v1/orders/{id}/customer",
            get(super::privacy::get_customer).put(super::privacy::put_customer),
        )
        .route("/v1/privacy/erase", post(super::privacy::erase))
        .route(
            "/v1/privacy/erasures/{order_id}",
            get(super::privacy::erasure),
        )
        .route("/v1/epcis/events", get(super::epcis::events))
        .route(
            "/v1/promotions",
            post(super::pricing::put_promotion).get(super::pricing::list_promotions),
        )
        .route(
            "/v1/promotions/{id}/end",
            post(super::pricing::end_promotion),
        )
        .route("/v1/pricing", post(super::pricing::put_pricing))
        .route("/v1/quote", post(super::pricing::post_quote))
        .with_state(state)
}

pub(super) fn authorised(state: &HttpState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(state.token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )))
    }
}

pub(super) fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": detail.into() }))).into_response()
}

async fn one_sku(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path((store, sku)): Path<(String, String)>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let found = tokio::task::spawn_blocking(move || lock(&hq).stock(&store, &sku)).await;
    match found {
        Ok(Ok(Some(row))) => Json(row).into_response(),
        Ok(Ok(None)) => problem(
            StatusCode::NOT_FOUND,
            "no stock known for this store and SKU",
        ),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct StoreQuery {
    store: String,
}

async fn store_stock(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<StoreQuery>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let rows = tokio::task::spawn_blocking(move || lock(&hq).store_stock(&query.store)).await;
    match rows {
        Ok(Ok(rows)) => Json(serde_json::json!({ "items": rows })).into_response(),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogBody {
    pub items: Vec<CatalogItem>,
}

async fn publish_catalog(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Json(body): Json<CatalogBody>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let count = body.items.len();
    let published =
        tokio::task::spawn_blocking(move || lock(&hq).publish_catalog(&body.items)).await;
    match published {
        Ok(Ok(messages)) => {
            for m in messages {
                let _ = state.publish.send(m);
            }
            Json(serde_json::json!({ "published": count })).into_response()
        }
        Ok(Err(e)) => problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn open_epoch(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(store): Path<String>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let name = store.clone();
    let opened = tokio::task::spawn_blocking(move || lock(&hq).open_epoch(&name)).await;
    match opened {
        Ok(Ok((epoch, messages))) => {
            for m in messages {
                let _ = state.publish.send(m);
            }
            Json(serde_json::json!({ "store": store, "epoch": epoch })).into_response()
        }
        Ok(Err(e @ super::state::HqError::UnknownStore(_))) => {
            problem(StatusCode::NOT_FOUND, e.to_string())
        }
        Ok(Err(e @ super::state::HqError::EpochPending(_))) => {
            problem(StatusCode::CONFLICT, e.to_string())
        }
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn place_order(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Json(order): Json<NewHqOrder>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let placed = tokio::task::spawn_blocking({
        let order = order.clone();
        move || lock(&hq).create_order(&order)
    })
    .await;
    match placed {
        Ok(Ok(messages)) => {
            for m in messages {
                let _ = state.publish.send(m);
            }
            if let Some(customer) = &order.customer {
                // The order stands without its customer data if storing that fails.
                let stored = super::privacy::lock(&state.privacy).put(
                    &order.store,
                    &order.order_id,
                    customer,
                );
                match stored {
                    Ok(messages) => {
                        for m in messages {
                            let _ = state.publish.send(m);
                        }
                    }
                    Err(e) => {
                        tracing::error!(order = order.order_id, error = %e, "customer data of a new order not stored");
                        return problem(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("order placed, customer data not stored: {e}"),
                        );
                    }
                }
            }
            let body = serde_json::json!({
                "order_id": order.order_id,
                "store": order.store,
                "status": "placed",
            });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Ok(Err(e @ (OrderRefused::Exists(_) | OrderRefused::NotGranted { .. }))) => {
            problem(StatusCode::CONFLICT, e.to_string())
        }
        Ok(Err(e @ (OrderRefused::Invalid { .. } | OrderRefused::NoLane(_)))) => {
            problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Ok(Err(e @ OrderRefused::Hq(_))) => {
            problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OrdersQuery {
    store: String,
    status: Option<String>,
}

async fn list_orders(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<OrdersQuery>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let status = match query.status.as_deref().map(OrderStatus::parse) {
        Some(None) => return problem(StatusCode::BAD_REQUEST, "status: unknown order status"),
        Some(Some(status)) => Some(status),
        None => None,
    };
    let hq = state.hq.clone();
    let found =
        tokio::task::spawn_blocking(move || lock(&hq).store_orders(&query.store, status)).await;
    match found {
        Ok(orders) => Json(serde_json::json!({ "orders": orders })).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn cancel_order(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let id = order_id.clone();
    let cancelled = tokio::task::spawn_blocking(move || {
        let mut hq = lock(&hq);
        hq.cancel_order(&id)
            .map(|messages| (messages, hq.order_view(&id)))
    })
    .await;
    match cancelled {
        Ok(Ok((messages, view))) => {
            for m in messages {
                let _ = state.publish.send(m);
            }
            Json(view).into_response()
        }
        Ok(Err(CancelRefused::Unknown(_))) => problem(StatusCode::NOT_FOUND, "no such order"),
        Ok(Err(e @ CancelRefused::Closed(_))) => problem(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn store_escrow(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(store): Path<String>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let id = store.clone();
    match tokio::task::spawn_blocking(move || lock(&hq).store_escrow(&id)).await {
        Ok(totals) => {
            let skus: Vec<_> = totals
                .into_iter()
                .map(|(sku, t)| {
                    serde_json::json!({ "sku": sku, "granted": t.granted,
                    "consumed": t.consumed, "returned": t.returned, "remaining": t.remaining() })
                })
                .collect();
            Json(serde_json::json!({ "store": store, "escrow": skus })).into_response()
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnRequest {
    quantity: i64,
}

async fn return_escrow(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path((store, sku)): Path<(String, String)>,
    Json(request): Json<ReturnRequest>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let returned = tokio::task::spawn_blocking(move || {
        let mut hq = lock(&hq);
        hq.return_escrow(&store, &sku, request.quantity)
            .map(|messages| (messages, hq.escrow_of(&store, &sku)))
    })
    .await;
    match returned {
        Ok(Ok((messages, totals))) => {
            for m in messages {
                let _ = state.publish.send(m);
            }
            Json(
                serde_json::json!({ "granted": totals.granted, "consumed": totals.consumed,
                "returned": totals.returned, "remaining": totals.remaining() }),
            )
            .into_response()
        }
        Ok(Err(e @ OrderRefused::NotGranted { .. })) => {
            problem(StatusCode::CONFLICT, e.to_string())
        }
        Ok(Err(e @ OrderRefused::Invalid { .. })) => {
            problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn one_order(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let found = tokio::task::spawn_blocking(move || lock(&hq).order_view(&order_id)).await;
    match found {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such order"),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
