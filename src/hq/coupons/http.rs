//! Coupons over HTTP (admin role): `POST /v1/coupons` issues one, `GET /v1/coupons` lists
//! them, `GET /v1/coupons/{code}` shows one with where its uses are,
//! `POST /v1/coupons/{code}/grant` moves uses from HQ's pool to a store's lane,
//! `POST /v1/coupons/{code}/revoke` withdraws it, and `POST /v1/coupons/{code}/redeem`
//! (web role too) redeems one use for the web shop or the app.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{CouponRefused, CouponView};
use crate::domain::coupons::{Channel, Coupon, normalise_code};
use crate::domain::pricing::Rule;
use crate::hq::http::{Answer, HttpState, JsonBody, Problem};

/// `POST /v1/coupons`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCoupon {
    /// 4 to 32 of A-Z 0-9 - (upper-cased).
    pub code: String,
    /// Printed on the receipt.
    pub name: String,
    /// One of the pricing engine's rules: `{"kind": "basket_amount_off", "min_total_minor":
    /// 0, "amount_minor": 500}`, `{"kind": "percent_off", "target": {"skus": [..],
    /// "categories": [..]}, "percent_bp": 1000}`, ...
    #[schema(value_type = Object)]
    pub discount: Rule,
    /// Redemptions allowed in all; 1 when omitted (single use).
    #[serde(default = "one")]
    pub uses: i64,
    /// A personal coupon's customer reference; omitted: a bearer coupon.
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub channel: Option<Channel>,
    /// RFC 3339; omitted: never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Uses to hand to stores now, so they can redeem offline: `{"s1": 1}` (the store's
    /// lane HQ knows, online first) or `{"s1.lane2": 1}`. The rest stay in HQ's pool.
    #[serde(default)]
    pub grants: BTreeMap<String, i64>,
}

fn one() -> i64 {
    1
}

/// `POST /v1/coupons/{code}/grant`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantUses {
    /// `{store}` or `{store}.{node}`.
    pub holder: String,
    pub uses: i64,
}

impl From<CouponRefused> for Problem {
    fn from(e: CouponRefused) -> Self {
        let status = match e {
            CouponRefused::Unknown(_) => StatusCode::NOT_FOUND,
            CouponRefused::Exists(_)
            | CouponRefused::PoolShort { .. }
            | CouponRefused::Refused(_)
            | CouponRefused::NoneAtHq(_) => StatusCode::CONFLICT,
            CouponRefused::Invalid(_)
            | CouponRefused::NoLane(_)
            | CouponRefused::Uses
            | CouponRefused::Reference => StatusCode::UNPROCESSABLE_ENTITY,
            CouponRefused::NoCatalog => StatusCode::SERVICE_UNAVAILABLE,
            CouponRefused::Hq(_) => return Self::internal(e),
        };
        Self::new(status, e.to_string())
    }
}

fn code_of(raw: &str) -> Result<String, Problem> {
    normalise_code(raw).map_err(|_| Problem::new(StatusCode::NOT_FOUND, "no such coupon"))
}

async fn view(auth: &crate::hq::http::Authorised<'_>, code: String) -> Answer {
    let shown = auth
        .hq(move |hq| hq.coupon_view(&code).map_err(CouponRefused::from))
        .await??;
    match shown {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(Problem::new(StatusCode::NOT_FOUND, "no such coupon")),
    }
}

/// Issues a coupon (published to every store), granting uses to stores if asked.
#[utoipa::path(post, path = "/v1/coupons", tag = "coupons", request_body = NewCoupon,
    responses((status = 201, body = CouponView, description = "The coupon and where its uses are")))]
pub async fn issue(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewCoupon>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let coupon = Coupon {
        code: body.code,
        name: body.name,
        discount: body.discount,
        uses: body.uses,
        customer: body.customer,
        channel: body.channel,
        expires_at: body.expires_at,
        revoked: false,
    };
    let code = normalise_code(&coupon.code).map_err(Problem::unprocessable)?;
    let grants = body.grants;
    let messages = auth
        .hq(move |hq| hq.issue_coupon(coupon, &grants))
        .await??;
    auth.publish(messages);
    let shown = view(&auth, code).await?;
    Ok((StatusCode::CREATED, shown).into_response())
}

/// Every coupon issued.
#[utoipa::path(get, path = "/v1/coupons", tag = "coupons",
    responses((status = 200, body = Object, description = "`{\"coupons\": [CouponView]}`")))]
pub async fn list(State(state): State<HttpState>, headers: HeaderMap) -> Answer {
    let auth = state.authorise(&headers)?;
    let all: Vec<CouponView> = auth
        .hq(|hq| {
            let codes: Vec<String> = hq.coupons().into_keys().collect();
            codes
                .iter()
                .filter_map(|code| hq.coupon_view(code).transpose())
                .collect::<Result<_, _>>()
                .map_err(CouponRefused::from)
        })
        .await??;
    Ok(Json(serde_json::json!({ "coupons": all })).into_response())
}

/// One coupon: its definition, HQ's pool, and each lane's uses.
#[utoipa::path(get, path = "/v1/coupons/{code}", tag = "coupons", params(("code" = String, Path)),
    responses((status = 200, body = CouponView), (status = 404, description = "No such coupon")))]
pub async fn show(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    view(&auth, code_of(&code)?).await
}

/// Moves uses from HQ's pool to a store's lane (while the store is online: it learns of
/// them by sync, then redeems them offline too).
#[utoipa::path(post, path = "/v1/coupons/{code}/grant", tag = "coupons", params(("code" = String, Path)),
    request_body = GrantUses,
    responses((status = 200, body = CouponView), (status = 409, description = "HQ's pool is short")))]
pub async fn grant(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    JsonBody(body): JsonBody<GrantUses>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let code = code_of(&code)?;
    let c = code.clone();
    let messages = auth
        .hq(move |hq| {
            let lane = hq.coupon_lane(&body.holder)?;
            hq.grant_coupon(&c, &lane, body.uses)
        })
        .await??;
    auth.publish(messages);
    view(&auth, code).await
}

/// Revokes a coupon: refused wherever the revocation has arrived.
#[utoipa::path(post, path = "/v1/coupons/{code}/revoke", tag = "coupons", params(("code" = String, Path)),
    responses((status = 200, body = CouponView), (status = 404, description = "No such coupon")))]
pub async fn revoke(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let code = code_of(&code)?;
    let c = code.clone();
    let messages = auth.hq(move |hq| hq.revoke_coupon(&c)).await??;
    auth.publish(messages);
    view(&auth, code).await
}

/// `POST /v1/coupons/{code}/redeem`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemOnline {
    /// The web order or payment this use pays for: a retried request with the same
    /// reference redeems once.
    pub reference: String,
    /// Who redeems (HQ's customer reference); required for a personal coupon.
    #[serde(default)]
    pub customer: Option<String>,
}

/// The web shop or the app redeems one use (when the customer pays), from HQ's pool: the
/// uses no store holds. Once per `reference`.
#[utoipa::path(post, path = "/v1/coupons/{code}/redeem", tag = "coupons", params(("code" = String, Path)),
    request_body = RedeemOnline,
    responses((status = 200, body = super::online::OnlineRedemption),
        (status = 404, description = "No such coupon"),
        (status = 409, description = "Revoked, expired, another customer's, or no use left at HQ"),
        (status = 422, description = "A malformed reference")))]
pub async fn redeem(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    JsonBody(body): JsonBody<RedeemOnline>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let code = code_of(&code)?;
    let done = auth
        .hq(move |hq| hq.redeem_online(&code, &body.reference, body.customer.as_deref()))
        .await??;
    Ok(Json(done).into_response())
}
