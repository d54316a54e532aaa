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

mod handler;

pub use handler::{Answer, Authorised, Problem};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::mpsc;

use super::SharedHq;
use super::state::{CancelRefused, NewHqOrder, OrderRefused, Outgoing};
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

/// An order refused: taken or not granted is 409, invalid or without a lane 422.
impl From<OrderRefused> for Problem {
    fn from(e: OrderRefused) -> Self {
        let status = match e {
            OrderRefused::Exists(_) | OrderRefused::NotGranted { .. } => StatusCode::CONFLICT,
            OrderRefused::Invalid { .. } | OrderRefused::NoLane(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            OrderRefused::Hq(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

/// A cancel refused: an unknown order is 404, a closed one 409.
impl From<CancelRefused> for Problem {
    fn from(e: CancelRefused) -> Self {
        match e {
            CancelRefused::Unknown(_) => Self::new(StatusCode::NOT_FOUND, "no such order"),
            CancelRefused::Closed(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
            CancelRefused::Hq(_) => Self::internal(e),
        }
    }
}

async fn one_sku(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path((store, sku)): Path<(String, String)>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    match auth.hq(move |hq| hq.stock(&store, &sku)).await?? {
        Some(row) => Ok(Json(row).into_response()),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no stock known for this store and SKU",
        )),
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
) -> Answer {
    let auth = state.authorise(&headers)?;
    let rows = auth.hq(move |hq| hq.store_stock(&query.store)).await??;
    Ok(Json(serde_json::json!({ "items": rows })).into_response())
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
) -> Answer {
    let auth = state.authorise(&headers)?;
    let count = body.items.len();
    let messages = auth
        .hq(move |hq| hq.publish_catalog(&body.items))
        .await?
        .map_err(Problem::unprocessable)?;
    auth.publish(messages);
    Ok(Json(serde_json::json!({ "published": count })).into_response())
}

async fn open_epoch(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(store): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let name = store.clone();
    let (epoch, messages) = auth.hq(move |hq| hq.open_epoch(&name)).await??;
    auth.publish(messages);
    Ok(Json(serde_json::json!({ "store": store, "epoch": epoch })).into_response())
}

async fn place_order(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Json(order): Json<NewHqOrder>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let placed = {
        let order = order.clone();
        auth.hq(move |hq| hq.create_order(&order)).await??
    };
    auth.publish(placed);
    if let Some(customer) = order.customer.clone() {
        // The order stands without its customer data if storing that fails.
        let (store, id) = (order.store.clone(), order.order_id.clone());
        match auth.privacy(move |p| p.put(&store, &id, &customer)).await? {
            Ok(messages) => auth.publish(messages),
            Err(e) => {
                tracing::error!(order = order.order_id, error = %e, "customer data of a new order not stored");
                return Err(Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("order placed, customer data not stored: {e}"),
                ));
            }
        }
    }
    let body = serde_json::json!({
        "order_id": order.order_id,
        "store": order.store,
        "status": "placed",
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
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
) -> Answer {
    let auth = state.authorise(&headers)?;
    let status = match query.status.as_deref().map(OrderStatus::parse) {
        Some(None) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "status: unknown order status",
            ));
        }
        Some(Some(status)) => Some(status),
        None => None,
    };
    let orders = auth
        .hq(move |hq| hq.store_orders(&query.store, status))
        .await?;
    Ok(Json(serde_json::json!({ "orders": orders })).into_response())
}

async fn cancel_order(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let (messages, view) = auth
        .hq(move |hq| {
            hq.cancel_order(&order_id)
                .map(|messages| (messages, hq.order_view(&order_id)))
        })
        .await??;
    auth.publish(messages);
    Ok(Json(view).into_response())
}

async fn store_escrow(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(store): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = store.clone();
    let totals = auth.hq(move |hq| hq.store_escrow(&id)).await?;
    let skus: Vec<_> = totals
        .into_iter()
        .map(|(sku, t)| {
            serde_json::json!({ "sku": sku, "granted": t.granted,
            "consumed": t.consumed, "returned": t.returned, "remaining": t.remaining() })
        })
        .collect();
    Ok(Json(serde_json::json!({ "store": store, "escrow": skus })).into_response())
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
) -> Answer {
    let auth = state.authorise(&headers)?;
    let (messages, totals) = auth
        .hq(move |hq| {
            hq.return_escrow(&store, &sku, request.quantity)
                .map(|messages| (messages, hq.escrow_of(&store, &sku)))
        })
        .await??;
    auth.publish(messages);
    Ok(Json(
        serde_json::json!({ "granted": totals.granted, "consumed": totals.consumed,
        "returned": totals.returned, "remaining": totals.remaining() }),
    )
    .into_response())
}

async fn one_order(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    match auth.hq(move |hq| hq.order_view(&order_id)).await? {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(Problem::new(StatusCode::NOT_FOUND, "no such order")),
    }
}
