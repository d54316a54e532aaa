//! Customer data of an order on the POS API (`crate::privacy`):
//!
//! - `PUT /v1/orders/{order_id}/customer` (body: a customer): store it with the order;
//!   the lane publishes it to HQ. The answer (kept for idempotent replays) holds no
//!   personal data;
//! - `GET /v1/orders/{order_id}/customer`: the customer, or 404 with `erased_at`;
//! - `DELETE /v1/orders/{order_id}/customer`: erase it here (e.g. a store-only order); the
//!   lane's tombstone tells HQ, which erases its copy and tells the store's other lanes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use super::replies::{CustomerErased, CustomerReply, CustomerStored};
use super::write::WriteRequest;
use crate::domain::customer::Customer;
use crate::store::StoreError;
use crate::store::customers::{self as pii_store, Lookup};
use crate::sync::pii as link;

fn count_order_write<T>(m: &crate::metrics::Metrics, _: &T) {
    m.order_writes.inc();
}

/// Store the order's customer data (kept out of sync history; published to HQ).
#[utoipa::path(put, path = "/orders/{order_id}/customer", tag = "orders",
    params(("order_id" = String, Path)), request_body = Customer,
    responses((status = 201, description = "Stored (a replay of the same key returns the first answer)", body = CustomerStored)))]
pub async fn put_customer(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let customer: Customer = write.parse()?;
    write
        .run(
            &state,
            move |conn, _ctx| {
                if crate::store::orders::get(conn, &order_id)?.is_none() {
                    return Err(StoreError::not_found(format!("order {order_id:?}")));
                }
                pii_store::put(conn, &order_id, &customer)?;
                Ok(CustomerStored {
                    order_id,
                    customer: "stored",
                })
            },
            count_order_write,
        )
        .await
}

/// The order's customer data (404 with `erased_at` after erasure).
#[utoipa::path(get, path = "/orders/{order_id}/customer", tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 200, description = "The customer", body = CustomerReply)))]
pub async fn get_customer(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = order_id.clone();
    let found = state
        .store
        .read(move |conn| pii_store::get(conn, &lookup))
        .await?;
    Ok(match found {
        Lookup::Found(customer) => Json(CustomerReply { order_id, customer }).into_response(),
        Lookup::Erased { erased_at } => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": "not_found",
                "message": format!("the customer data of order {order_id:?} was erased"),
                "erased_at": erased_at,
            })),
        )
            .into_response(),
        Lookup::Unknown => {
            return Err(ApiError::not_found(format!(
                "no customer data for order {order_id:?}"
            )));
        }
    })
}

/// Erase the order's customer data here (GDPR); HQ and the other lanes follow. No body.
#[utoipa::path(delete, path = "/orders/{order_id}/customer", tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 201, description = "Erased (a replay of the same key returns the first answer)", body = CustomerErased)))]
pub async fn erase_customer(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let response = write
        .run(
            &state,
            move |conn, ctx| match pii_store::erase(conn, &order_id, ctx.now)? {
                Some(erased_at) => Ok(CustomerErased {
                    order_id,
                    erased_at,
                }),
                None => Err(StoreError::not_found(format!(
                    "customer data of order {order_id:?}"
                ))),
            },
            count_order_write,
        )
        .await?;
    link::checkpoint(&state.store).await;
    Ok(response)
}
