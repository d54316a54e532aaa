//! Loyalty at the till: identify a member by card (`POST /v1/loyalty/lookup`, which also asks
//! HQ for the member's points; `GET /v1/loyalty/members/{card}` only reads), or find the
//! card by phone or e-mail while HQ is reachable (`POST /v1/loyalty/find`, answered by HQ:
//! [`crate::domain::member_find`]). Points are earned and spent in the sale itself (`member`
//! and a `points` payment of `POST /v1/sales`); the rule is in [`crate::domain::loyalty`], the
//! lane's side in [`crate::store::loyalty`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use super::write::WriteRequest;
use crate::domain::member_find::{FindError, MemberMatches, MemberQuery};
use crate::store::loyalty::{self, LookupRequest, MemberView};
use crate::sync::node::find::FindUnavailable;

/// What the till types to find a member: exactly one of the two.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindMember {
    /// As the customer gives it (`+49 30 1234567`): matched by its digits (5 to 20).
    #[schema(max_length = 32)]
    pub phone: Option<String>,
    /// Matched case-insensitively.
    #[schema(max_length = 254)]
    pub email: Option<String>,
}

/// Redacted: the request is personal data.
impl std::fmt::Debug for FindMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FindMember { <redacted> }")
    }
}

/// The till's message when HQ cannot be asked: what to do instead comes first.
pub const HQ_UNREACHABLE: &str = "HQ unreachable: scan the member's card";

fn refused(e: FindError) -> ApiError {
    let field = match &e {
        FindError::Invalid { field, .. } => Some((*field).to_owned()),
        FindError::OneSelector | FindError::Payload(_) => None,
    };
    ApiError {
        field,
        ..ApiError::status(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    }
}

fn unavailable(e: &FindUnavailable) -> ApiError {
    ApiError {
        retry_after_secs: Some(5),
        ..ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{HQ_UNREACHABLE} ({e})"),
        )
    }
}

/// Find a member's card by phone or e-mail, asking HQ (which alone keeps members' personal
/// data): cards with masked names for staff to confirm. Needs the node and HQ online; a POST
/// so that the phone or e-mail never appears in a URL. Nothing is stored or logged of it.
#[utoipa::path(post, path = "/loyalty/find", tag = "loyalty", request_body = FindMember,
    responses((status = 200, description = "The members HQ found (none: `members` is empty), at most 5, names masked", body = MemberMatches),
        (status = 422, description = "Not exactly one of phone and email, a phone without 5 to 20 digits, or not an e-mail address", body = super::error::ErrorBody),
        (status = 503, description = "HQ unreachable: the node or HQ is offline, or HQ did not answer within a few seconds; scan the member's card", body = super::error::ErrorBody)))]
pub async fn find_member(
    State(state): State<AppState>,
    terminal: TerminalId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: FindMember = super::json::parse(&body)?;
    let query =
        MemberQuery::new(request.phone.as_deref(), request.email.as_deref()).map_err(refused)?;
    let by = query.by();
    let found = match &state.sync {
        Some(sync) => sync.find_members(query).await,
        None => Err(FindUnavailable::NoSync),
    };
    match found {
        Ok(found) => {
            tracing::info!(terminal = %terminal.0, by, matches = found.members.len(), "member lookup at HQ");
            Ok(Json(found).into_response())
        }
        Err(e) => {
            tracing::warn!(terminal = %terminal.0, by, reason = %e, "member lookup got no answer");
            Err(unavailable(&e))
        }
    }
}

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
