//! Orders over HTTP: `POST|GET /v1/orders`, `GET /v1/orders/{id}`,
//! `POST /v1/orders/{id}/cancel`, and the online escrow (`GET /v1/escrow/{store}`,
//! `POST /v1/escrow/{store}/{sku}/return`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::{CancelRefused, NewHqOrder, OrderRefused};
use crate::domain::orders::OrderStatus;
use crate::hq::http::{Answer, HttpState, JsonBody, Problem};

/// An order refused: taken or not granted is 409, invalid or without a lane 422.
impl From<OrderRefused> for Problem {
    fn from(e: OrderRefused) -> Self {
        let status = match e {
            OrderRefused::Exists(_)
            | OrderRefused::Archived(_)
            | OrderRefused::NotGranted { .. } => StatusCode::CONFLICT,
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

/// Places an online order at a store (click-and-collect or ship-from-store).
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = NewHqOrder,
    responses((status = 201, body = Object, description = "`{\"order_id\", \"store\", \"status\": \"placed\"}`")))]
pub async fn place_order(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<NewHqOrder>,
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

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    /// The store.
    store: String,
    /// Only orders with this status.
    #[param(pattern = "^(placed|reserved|picking|ready|collected|shipped|cancelled|expired)$")]
    status: Option<String>,
}

/// A store's orders.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(OrdersQuery),
    responses((status = 200, body = Object, description = "`{\"orders\": [...]}`")))]
pub async fn list_orders(
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

/// Cancels an order (the web shop's customer cancelled).
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = Object, description = "The order, as `GET /v1/orders/{id}` answers it")))]
pub async fn cancel_order(
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

/// A store's online escrow per SKU.
#[utoipa::path(get, path = "/v1/escrow/{store}", tag = "escrow", params(("store" = String, Path)),
    responses((status = 200, body = Object, description = "`{\"store\", \"escrow\": [{\"sku\", \"granted\", \"consumed\", \"returned\", \"remaining\"}]}`")))]
pub async fn store_escrow(
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

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// Units of the escrow given back to the store.
    quantity: i64,
}

/// Gives unused units of the online escrow back to the store.
#[utoipa::path(post, path = "/v1/escrow/{store}/{sku}/return", tag = "escrow",
    params(("store" = String, Path), ("sku" = String, Path)), request_body = ReturnRequest,
    responses((status = 200, body = Object, description = "`{\"granted\", \"consumed\", \"returned\", \"remaining\"}`")))]
pub async fn return_escrow(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path((store, sku)): Path<(String, String)>,
    JsonBody(request): JsonBody<ReturnRequest>,
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

/// An order's status (folded from every writer) and history.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = Object, description = "The order: `order_id`, `store`, `status`, lines, history")))]
pub async fn one_order(
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
