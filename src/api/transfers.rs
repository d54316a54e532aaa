//! Store-to-store transfer routes: dispatch, receive, cancel, list, one.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use super::write::WriteRequest;
use crate::metrics::Metrics;
use crate::store::transfers::{self, Direction, NewTransfer, ReceiveRequest};
use crate::sync::transfers::TransferStatus;

fn count_write<T>(m: &Metrics, _: &T) {
    m.stock_writes.inc();
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferQuery {
    direction: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

pub async fn list_transfers(
    State(state): State<AppState>,
    _t: TerminalId,
    Query(q): Query<TransferQuery>,
) -> Result<Response, ApiError> {
    let direction = match q.direction.as_deref() {
        None => None,
        Some(d) => Some(Direction::parse(d).ok_or_else(|| {
            ApiError::bad_request(
                Some("direction".into()),
                format!("direction {d:?} is not one of inbound, outbound"),
            )
        })?),
    };
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(TransferStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                Some("status".into()),
                format!("status {s:?} is not one of in_transit, received, cancelled"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state
        .store
        .read(move |conn| transfers::list(conn, direction, status, limit))
        .await?;
    Ok(Json(json!({ "transfers": rows })).into_response())
}

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
