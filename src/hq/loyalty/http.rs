//! The loyalty ledger over HTTP (bearer token, like the rest of [`crate::hq::http`]):
//! - `PUT|GET /v1/loyalty/rules`: the earning and spending rules, published to every store;
//! - `POST /v1/loyalty/members` `{card, customer?}`: register a member (personal data to the
//!   customer-data store, never to a document);
//! - `GET /v1/loyalty/members?phone=…|email=…`: the members with that phone (by digits) or
//!   e-mail (any case), cards and masked names, as a store's till gets them (`super::find`);
//! - `GET /v1/loyalty/members/{card}`: balance, pool, owed, per-lane totals;
//! - `GET /v1/loyalty/members/{card}/history`: HQ's entries (web earns and spends, grants to
//!   lanes, settlements) and each lane's totals;
//! - `POST /v1/loyalty/members/{card}/earn` `{order_id, paid_minor}`: a web order earns (once);
//! - `POST /v1/loyalty/members/{card}/spend` `{reference, points}`: the web shop spends (once).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{LoyaltyRefused, MemberBalance};
use crate::domain::customer::Customer;
use crate::domain::loyalty::{LoyaltyRules, MemberId};
use crate::domain::member_find::{FindError, MemberMatches, MemberQuery};
use crate::hq::http::{Answer, HttpState, JsonBody, Problem};

impl From<LoyaltyRefused> for Problem {
    fn from(e: LoyaltyRefused) -> Self {
        let status = match &e {
            LoyaltyRefused::Invalid { .. } | LoyaltyRefused::Card(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            LoyaltyRefused::UnknownMember(_) => StatusCode::NOT_FOUND,
            LoyaltyRefused::Exists(_)
            | LoyaltyRefused::NoRules
            | LoyaltyRefused::NotEnough { .. } => StatusCode::CONFLICT,
            LoyaltyRefused::Hq(_) => return Self::internal(e),
        };
        let problem = Self::new(status, e.to_string());
        match e {
            LoyaltyRefused::Invalid { field, .. } => problem.field(field),
            LoyaltyRefused::Card(_) => problem.field("card"),
            _ => problem,
        }
    }
}

fn member(card: &str) -> Result<MemberId, Problem> {
    MemberId::parse(card).map_err(|e| Problem::from(LoyaltyRefused::Card(e)))
}

/// Publishes the loyalty rules to every store (in the catalog document).
#[utoipa::path(put, path = "/v1/loyalty/rules", tag = "loyalty", request_body = LoyaltyRules,
    responses((status = 200, body = LoyaltyRules, description = "The rules as published")))]
pub async fn put_rules(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(rules): JsonBody<LoyaltyRules>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    rules.validate().map_err(Problem::unprocessable)?;
    let messages = auth.hq(move |hq| hq.put_loyalty_rules(rules)).await??;
    auth.publish(messages);
    Ok(Json(rules).into_response())
}

/// The loyalty rules HQ publishes (404 before any).
#[utoipa::path(get, path = "/v1/loyalty/rules", tag = "loyalty",
    responses((status = 200, body = LoyaltyRules, description = "The rules"),
        (status = 409, body = crate::http_shared::error::ErrorBody, description = "HQ publishes no loyalty rules yet")))]
pub async fn get_rules(State(state): State<HttpState>, headers: HeaderMap) -> Answer {
    let auth = state.authorise(&headers)?;
    match auth.hq(|hq| hq.loyalty_rules()).await? {
        Some(rules) => Ok(Json(rules).into_response()),
        None => Err(LoyaltyRefused::NoRules.into()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The card: an 18-digit GSRN or the chain's code.
    pub card: String,
    /// Name, phone, e-mail: kept in the customer-data store, erasable.
    #[serde(default)]
    pub customer: Option<Customer>,
}

/// Registers a member.
#[utoipa::path(post, path = "/v1/loyalty/members", tag = "loyalty", request_body = NewMember,
    responses((status = 201, body = Object, description = "`{\"member\": card}`")))]
pub async fn create_member(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<NewMember>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = member(&request.card)?;
    if let Some(customer) = request.customer {
        let m = id.to_string();
        auth.privacy(move |p| p.put_member(&m, &customer))
            .await?
            .map_err(Problem::unprocessable)?;
    }
    let m = id.clone();
    auth.hq(move |hq| hq.create_member(&m)).await??;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "member": id.to_string() })),
    )
        .into_response())
}

/// `GET /v1/loyalty/members`: exactly one of the two.
#[derive(Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MemberSearch {
    /// As the customer gives it: matched by its digits (5 to 20).
    phone: Option<String>,
    /// Matched case-insensitively.
    email: Option<String>,
}

/// Redacted: the search is personal data.
impl std::fmt::Debug for MemberSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberSearch { <redacted> }")
    }
}

fn search_refused(e: FindError) -> Problem {
    let problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
    match e {
        FindError::Invalid { field, .. } => problem.field(field),
        FindError::OneSelector | FindError::Payload(_) => problem,
    }
}

/// The members with this phone or e-mail: cards and masked names (at most 5), as a store's
/// till gets them; erased members are not found.
#[utoipa::path(get, path = "/v1/loyalty/members", tag = "loyalty", params(MemberSearch),
    responses((status = 200, body = MemberMatches, description = "The members found (none: `members` is empty)"),
        (status = 422, body = crate::http_shared::error::ErrorBody, description = "Not exactly one of phone and email, a phone without 5 to 20 digits, or not an e-mail address")))]
pub async fn find_members(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(search): Query<MemberSearch>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let query = MemberQuery::new(search.phone.as_deref(), search.email.as_deref())
        .map_err(search_refused)?;
    let by = query.by();
    let found = auth
        .privacy(move |p| p.find_members(&query))
        .await?
        .map_err(Problem::hidden)?;
    tracing::info!(by, matches = found.members.len(), "member lookup at HQ");
    Ok(Json(found).into_response())
}

/// A member's balance: every point earned anywhere HQ has heard of, less what was spent,
/// reversed or settled; the pool HQ holds and each lane's share.
#[utoipa::path(get, path = "/v1/loyalty/members/{card}", tag = "loyalty",
    params(("card" = String, Path)),
    responses((status = 200, body = MemberBalance, description = "The member's balance"),
        (status = 422, body = crate::http_shared::error::ErrorBody, description = "Not a member card")))]
pub async fn balance(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(card): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = member(&card)?;
    let view = auth.hq(move |hq| hq.member_balance(id.as_str())).await??;
    Ok(Json(view).into_response())
}

/// HQ's own entries for the member, oldest first, and each lane's totals.
#[utoipa::path(get, path = "/v1/loyalty/members/{card}/history", tag = "loyalty",
    params(("card" = String, Path)),
    responses((status = 200, body = Object, description = "`{\"member\", \"entries\": [HqEntry], \"lanes\"}`"),
        (status = 422, body = crate::http_shared::error::ErrorBody, description = "Not a member card")))]
pub async fn history(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(card): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = member(&card)?;
    let (entries, view) = auth
        .hq(move |hq| {
            let entries = hq.member_history(id.as_str())?;
            hq.member_balance(id.as_str()).map(|v| (entries, v))
        })
        .await??;
    Ok(Json(serde_json::json!({
        "member": view.member, "entries": entries, "lanes": view.lanes,
    }))
    .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarnRequest {
    /// The web order: it earns once, however often this is sent.
    pub order_id: String,
    /// What the customer paid other than in points, in minor units.
    pub paid_minor: i64,
}

/// A web order earns points by HQ's rules (once per order id).
#[utoipa::path(post, path = "/v1/loyalty/members/{card}/earn", tag = "loyalty",
    params(("card" = String, Path)), request_body = EarnRequest,
    responses((status = 200, body = Object, description = "`{\"member\", \"points_earned\", \"balance\"}`")))]
pub async fn earn(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(card): Path<String>,
    JsonBody(request): JsonBody<EarnRequest>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = member(&card)?;
    let (points, view) = auth
        .hq(move |hq| {
            let points = hq.earn_online(&id, &request.order_id, request.paid_minor)?;
            Ok::<_, LoyaltyRefused>((points, hq.member_balance(id.as_str())?))
        })
        .await??;
    Ok(Json(serde_json::json!({
        "member": view.member, "points_earned": points, "balance": view.balance,
    }))
    .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendRequest {
    /// The web shop's payment: it spends once, however often this is sent.
    pub reference: String,
    pub points: i64,
}

/// The web shop pays with points HQ holds for the member (409 if it holds fewer).
#[utoipa::path(post, path = "/v1/loyalty/members/{card}/spend", tag = "loyalty",
    params(("card" = String, Path)), request_body = SpendRequest,
    responses((status = 200, body = Object, description = "`{\"member\", \"points_spent\", \"balance\"}`")))]
pub async fn spend(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(card): Path<String>,
    JsonBody(request): JsonBody<SpendRequest>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = member(&card)?;
    let points = request.points;
    let view = auth
        .hq(move |hq| {
            hq.spend_online(&id, &request.reference, request.points)?;
            Ok::<_, LoyaltyRefused>(hq.member_balance(id.as_str())?)
        })
        .await??;
    Ok(Json(serde_json::json!({
        "member": view.member, "points_spent": points, "balance": view.balance,
    }))
    .into_response())
}
