//! HQ's transfer routes (bearer token like the rest of HQ's API):
//! - `GET /v1/transfers/{id}`: one transfer (chain-wide id `{lane}:{local id}`) with its
//!   folded status, dispatched and received quantities, discrepancy and history;
//! - `GET /v1/transfers?store=S&status=in_transit`: transfers from or to a store, and per
//!   SKU the units in transit out of and into it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use crate::domain::transfers::TransferStatus;
use crate::hq::http::{Answer, HttpState, Problem};

/// One transfer (chain-wide id `{lane}:{local id}`).
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "transfers", params(("id" = String, Path)),
    responses((status = 200, body = Object, description = "Folded status, dispatched and received quantities, discrepancy, history")))]
pub async fn one_transfer(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    match auth.hq(move |hq| hq.transfer_view(&id)).await?? {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(Problem::new(StatusCode::NOT_FOUND, "no such transfer")),
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransfersQuery {
    /// The store (sending or receiving).
    store: String,
    /// Only transfers with this status.
    #[param(inline, value_type = Option<TransferStatus>)]
    status: Option<String>,
}

/// Transfers from or to a store, and its units in transit per SKU.
#[utoipa::path(get, path = "/v1/transfers", tag = "transfers", params(TransfersQuery),
    responses((status = 200, body = Object, description = "`{\"transfers\": [...], \"in_transit\": ...}`")))]

pub async fn store_transfers(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<TransfersQuery>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(TransferStatus::parse(s).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "status must be one of in_transit, received, cancelled",
            )
        })?),
    };
    let (transfers, in_transit) = auth
        .hq(move |hq| {
            Ok::<_, crate::hq::state::HqError>((
                hq.transfers_of(&query.store, status)?,
                hq.in_transit(&query.store)?,
            ))
        })
        .await??;
    Ok(Json(serde_json::json!({
        "transfers": transfers,
        "in_transit": in_transit,
    }))
    .into_response())
}
