//! HQ's transfer routes (bearer token like the rest of HQ's API):
//! - `GET /v1/transfers/{id}`: one transfer (chain-wide id `{lane}:{local id}`) with its
//!   folded status, dispatched and received quantities, discrepancy and history;
//! - `GET /v1/transfers?store=S&status=in_transit`: transfers from or to a store, and per
//!   SKU the units in transit out of and into it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::http::{HttpState, authorised, problem};
use super::lock;
use crate::domain::transfers::TransferStatus;

pub async fn one_transfer(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let hq = state.hq.clone();
    let found = tokio::task::spawn_blocking(move || lock(&hq).transfer_view(&id)).await;
    match found {
        Ok(Ok(Some(view))) => Json(view).into_response(),
        Ok(Ok(None)) => problem(StatusCode::NOT_FOUND, "no such transfer"),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransfersQuery {
    store: String,
    status: Option<String>,
}

pub async fn store_transfers(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<TransfersQuery>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return *denied;
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => match TransferStatus::parse(s) {
            Some(status) => Some(status),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "status must be one of in_transit, received, cancelled",
                );
            }
        },
    };
    let hq = state.hq.clone();
    let found = tokio::task::spawn_blocking(move || {
        let hq = lock(&hq);
        Ok::<_, super::state::HqError>((
            hq.transfers_of(&query.store, status)?,
            hq.in_transit(&query.store)?,
        ))
    })
    .await;
    match found {
        Ok(Ok((transfers, in_transit))) => Json(serde_json::json!({
            "transfers": transfers,
            "in_transit": in_transit,
        }))
        .into_response(),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
