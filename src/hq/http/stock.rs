//! The documents HQ keeps, over HTTP: stock figures, catalog publishing, opening a
//! store's next epoch.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::{Answer, HttpState, JsonBody, Problem};
use crate::crdt::catalog::CatalogItem;

/// One SKU of one store as HQ has it.
#[utoipa::path(get, path = "/v1/stock/{store}/{sku}", tag = "stock",
    params(("store" = String, Path), ("sku" = String, Path)),
    responses((status = 200, body = Object, description = "`store`, `sku`, `on_hand`, `reserved`, `safety_stock`, `available_to_sell`, the online escrow, `as_of`, `online`")))]
pub async fn one_sku(
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

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StoreQuery {
    /// The store.
    store: String,
}

/// Every SKU of a store as HQ has it.
#[utoipa::path(get, path = "/v1/stock", tag = "stock", params(StoreQuery),
    responses((status = 200, body = Object, description = "`{\"items\": [...]}`, one row per SKU as `GET /v1/stock/{store}/{sku}` answers it")))]
pub async fn store_stock(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<StoreQuery>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let rows = auth.hq(move |hq| hq.store_stock(&query.store)).await??;
    Ok(Json(serde_json::json!({ "items": rows })).into_response())
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogBody {
    /// Items: `sku`, `name`, `price_minor`, `currency`, `tax_class`, `gtins`,
    /// `variable_measure` (as `storenode catalog import` reads them).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<CatalogItem>,
}

/// Publishes catalog items and prices to every store.
#[utoipa::path(post, path = "/v1/catalog", tag = "stock", request_body = CatalogBody,
    responses((status = 200, body = Object, description = "`{\"published\": n}`")))]
pub async fn publish_catalog(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CatalogBody>,
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

/// Opens the next epoch of a store's stock and orders documents (bounded history).
#[utoipa::path(post, path = "/v1/epochs/{store}", tag = "stock", params(("store" = String, Path)),
    responses((status = 200, body = Object, description = "`{\"store\": s, \"epoch\": n}`")))]
pub async fn open_epoch(
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
