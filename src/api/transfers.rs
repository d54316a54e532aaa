//! Store-to-store transfer routes: dispatch, receive, cancel, list, one.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use super::query::{self, ApiQuery};
use super::replies::TransferList;
use super::write::WriteRequest;
use crate::domain::transfers::TransferStatus;
use crate::metrics::Metrics;
use crate::store::transfers::{self, Direction, NewTransfer, ReceiveRequest, TransferView};

fn count_write<T>(m: &Metrics, _: &T) {
    m.stock_writes.inc();
}

/// Dispatch a transfer to another store (units leave on-hand now).
#[utoipa::path(post, path = "/transfers", tag = "transfers", request_body = NewTransfer,
    responses((status = 201, description = "Dispatched (a replay of the same key returns the first answer)", body = TransferView)))]
pub async fn create_transfer(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: NewTransfer = write.parse()?;
    let store_id = state.config.node.store_id.clone();
    write
        .run(
            &state,
            move |conn, ctx| transfers::create(conn, ctx, &store_id, &request),
            count_write,
        )
        .await
}

/// Receive an inbound transfer with the scanned quantities (short or over recorded).
#[utoipa::path(post, path = "/transfers/{transfer_id}/receive", tag = "transfers",
    params(("transfer_id" = String, Path)), request_body = ReceiveRequest,
    responses((status = 201, description = "Received (a replay of the same key returns the first answer)", body = TransferView)))]
pub async fn receive_transfer(
    State(state): State<AppState>,
    Path(transfer_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: ReceiveRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| transfers::receive(conn, ctx, &transfer_id, &request),
            count_write,
        )
        .await
}

/// Cancel an outbound transfer still in transit (units come back); no body.
#[utoipa::path(post, path = "/transfers/{transfer_id}/cancel", tag = "transfers",
    params(("transfer_id" = String, Path)),
    responses((status = 201, description = "Cancelled (a replay of the same key returns the first answer)", body = TransferView)))]
pub async fn cancel_transfer(
    State(state): State<AppState>,
    Path(transfer_id): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    write
        .run(
            &state,
            move |conn, ctx| transfers::cancel(conn, ctx, &transfer_id),
            count_write,
        )
        .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransferQuery {
    direction: Option<Direction>,
    status: Option<TransferStatus>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Store-to-store transfers, newest first.
#[utoipa::path(get, path = "/transfers", tag = "transfers", params(TransferQuery),
    responses((status = 200, description = "Transfers, newest first", body = TransferList)))]
pub async fn list_transfers(
    State(state): State<AppState>,
    _t: TerminalId,
    ApiQuery(q): ApiQuery<TransferQuery>,
) -> Result<Response, ApiError> {
    let (direction, status) = (q.direction, q.status);
    let limit = query::limit(q.limit)?;
    let rows = state
        .store
        .read(move |conn| transfers::list(conn, direction, status, limit))
        .await?;
    Ok(Json(TransferList { transfers: rows }).into_response())
}

/// One transfer (chain-wide or local id) with lines, discrepancy and history.
#[utoipa::path(get, path = "/transfers/{transfer_id}", tag = "transfers",
    params(("transfer_id" = String, Path)),
    responses((status = 200, description = "The transfer", body = TransferView)))]
pub async fn get_transfer(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(transfer_id): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = transfer_id.clone();
    let found = state
        .store
        .read(move |conn| transfers::get(conn, &lookup))
        .await?;
    found
        .map(|t| Json(t).into_response())
        .ok_or_else(|| ApiError::not_found(format!("transfer {transfer_id:?} not found")))
}
