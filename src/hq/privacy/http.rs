//! The customer data routes (see the module docs of [`super`]). Errors name orders and
//! stores at most: any other failure is logged and answered without detail.

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{EraseRequest, HqLookup, HqPrivacyError};
use crate::domain::customer::Customer;
use crate::hq::http::{Answer, Authorised, HttpState, JsonBody, Problem};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StoreQuery {
    /// The order's store (needed when the order is not HQ's own, or its id is at several).
    store: Option<String>,
}

/// The store of HQ's own order `order_id`, if HQ placed it.
async fn hq_order_store(auth: &Authorised<'_>, order_id: &str) -> Option<String> {
    let id = order_id.to_owned();
    auth.hq(move |hq| hq.order_view(&id).map(|v| v.store))
        .await
        .ok()
        .flatten()
}

/// A customer not stored: erased is 409, a bad topic segment or customer 422; the rest
/// names nothing.
fn put_refused(e: HqPrivacyError) -> Problem {
    match e {
        HqPrivacyError::Erased { .. } => Problem::new(StatusCode::CONFLICT, e.to_string()),
        HqPrivacyError::Topic(_) | HqPrivacyError::Privacy(_) => Problem::unprocessable(e),
        _ => Problem::hidden(e),
    }
}

/// Stores an order's customer data (kept beside the documents, erasable).
#[utoipa::path(put, path = "/v1/orders/{id}/customer", tag = "privacy",
    params(("id" = String, Path), StoreQuery), request_body = Customer,
    responses((status = 200, body = Object, description = "`{\"order_id\", \"store\", \"customer\": \"stored\"}`")))]
pub async fn put_customer(
    State(state): State<HttpState>,
    headers: HeaderMap,
    UrlPath(order_id): UrlPath<String>,
    Query(query): Query<StoreQuery>,
    JsonBody(customer): JsonBody<Customer>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let store = match query.store {
        Some(store) => store,
        None => hq_order_store(&auth, &order_id).await.ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "no such HQ order; name its store with ?store=",
            )
        })?,
    };
    let (id, at) = (order_id.clone(), store.clone());
    let messages = auth
        .privacy(move |p| p.put(&at, &id, &customer))
        .await?
        .map_err(put_refused)?;
    auth.publish(messages);
    Ok(
        Json(serde_json::json!({ "order_id": order_id, "store": store, "customer": "stored" }))
            .into_response(),
    )
}

/// An order's customer data (404 with `erased_at` once erased).
#[utoipa::path(get, path = "/v1/orders/{id}/customer", tag = "privacy",
    params(("id" = String, Path), StoreQuery),
    responses((status = 200, body = Object, description = "`{\"order_id\", \"store\", \"customer\"}`")))]
pub async fn get_customer(
    State(state): State<HttpState>,
    headers: HeaderMap,
    UrlPath(order_id): UrlPath<String>,
    Query(query): Query<StoreQuery>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = order_id.clone();
    let found = auth
        .privacy(move |p| p.lookup(&id, query.store.as_deref()))
        .await?
        .map_err(Problem::hidden)?;
    match found {
        HqLookup::Found { store, customer } => Ok(Json(serde_json::json!({
            "order_id": order_id, "store": store, "customer": customer
        }))
        .into_response()),
        HqLookup::Erased(view) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "the customer data of this order was erased",
        )
        .with("order_id", view.order_id)
        .with("store", view.store)
        .with("erased_at", view.erased_at)),
        HqLookup::Unknown => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no customer data for this order",
        )),
        HqLookup::Ambiguous => Err(Problem::new(
            StatusCode::CONFLICT,
            "this order id exists at several stores; add ?store=",
        )),
    }
}

/// Erases a customer's data at HQ and every store (by order, e-mail or phone).
#[utoipa::path(post, path = "/v1/privacy/erase", tag = "privacy", request_body = EraseRequest,
    responses((status = 200, body = Object, description = "`{\"erased\": [...]}`")))]
pub async fn erase(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<EraseRequest>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    request
        .check()
        .map_err(|reason| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?;
    let hq_store = match &request.order_id {
        Some(order_id) => hq_order_store(&auth, order_id.trim()).await,
        None => None,
    };
    let (views, messages) = auth
        .privacy(move |p| p.erase(&request, hq_store))
        .await?
        .map_err(Problem::hidden)?;
    auth.publish(messages);
    Ok(Json(serde_json::json!({ "erased": views })).into_response())
}

/// The erasures recorded for an order, with each store's confirmation.
#[utoipa::path(get, path = "/v1/privacy/erasures/{order_id}", tag = "privacy",
    params(("order_id" = String, Path)),
    responses((status = 200, body = Object, description = "`{\"order_id\", \"erasures\": [...]}`")))]
pub async fn erasure(
    State(state): State<HttpState>,
    headers: HeaderMap,
    UrlPath(order_id): UrlPath<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = order_id.clone();
    let views = auth
        .privacy(move |p| p.erasures(&id))
        .await?
        .map_err(Problem::hidden)?;
    if views.is_empty() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no erasure recorded for this order",
        ));
    }
    Ok(Json(serde_json::json!({ "order_id": order_id, "erasures": views })).into_response())
}
