//! The documents HQ keeps, over HTTP: stock figures, catalog publishing, opening a
//! store's next epoch.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::{Answer, HttpState, JsonBody, Problem};
use crate::crdt::catalog::CatalogItem;

pub(super) async fn one_sku(
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
pub(super) struct StoreQuery {
    store: String,
}

pub(super) async fn store_stock(
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

pub(super) async fn publish_catalog(
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

pub(super) async fn open_epoch(
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
