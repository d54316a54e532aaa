//! Loyalty at the till: identify a member by card (`POST /v1/loyalty/lookup`, which also asks
//! HQ for the member's points; `GET /v1/loyalty/members/{card}` only reads). Points are
//! earned and spent in the sale itself (`member` and a `points` payment of `POST /v1/sales`);
//! the rule is in [`crate::domain::loyalty`], the lane's side in [`crate::store::loyalty`].

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use super::write::WriteRequest;
use crate::store::loyalty::{self, LookupRequest, MemberView};

/// Identify a member by the card scanned or typed: what they may spend at this till, and a
/// request (through sync) that HQ move the member's points here.
#[utoipa::path(post, path = "/loyalty/lookup", tag = "loyalty", request_body = LookupRequest,
    responses((status = 201, description = "The member as this node sees them (a replay of the same key returns the first answer)", body = MemberView)))]
pub async fn lookup_member(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: LookupRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| loyalty::lookup(conn, ctx, &request),
            |_, _| {},
        )
        .await
}

/// What a member may spend at this till now, without asking HQ for more.
#[utoipa::path(get, path = "/loyalty/members/{card}", tag = "loyalty",
    params(("card" = String, Path, description = "GSRN or the chain's card code")),
    responses((status = 200, description = "The member as this node sees them", body = MemberView),
        (status = 422, description = "Not a member card", body = super::error::ErrorBody)))]
pub async fn get_member(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(card): Path<String>,
) -> Result<Response, ApiError> {
    let view = state
        .store
        .read(move |conn| loyalty::view_of(conn, &card))
        .await?;
    Ok(Json(view).into_response())
}

/// Give the points this till holds for the member back to HQ, so that another store's till
/// gets them when it identifies the member.
#[utoipa::path(post, path = "/loyalty/release", tag = "loyalty", request_body = LookupRequest,
    responses((status = 201, description = "The member as this node sees them now (a replay of the same key returns the first answer)", body = MemberView)))]
pub async fn release_member(
    State(state): State<AppState>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: LookupRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| loyalty::release(conn, ctx, &request),
            |_, _| {},
        )
        .await
}
