//! HQ's pricing API (bearer token, like the rest of [`super::http`]):
//! - `POST /v1/promotions` (a promotion): create or replace it, published to every store;
//! - `GET /v1/promotions`: the published promotions;
//! - `POST /v1/promotions/{id}/end`: withdraw it everywhere;
//! - `POST /v1/pricing` `{price_lists, end_price_lists, categories, time_zones}`: the rest of
//!   the rules (price lists, category members, stores' time zones);
//! - `POST /v1/quote` `{store, at?, lines: [{sku, quantity?, weight_grams?}]}`: prices a
//!   basket for the web shop with the same engine and rules the store's till uses.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::http::{Answer, Authorised, HttpState, JsonBody, Problem};
use crate::crdt::catalog::read_item;
use crate::crdt::doc::SyncDoc;
use crate::crdt::pricing::{PricingEdit, read_rules};
use crate::domain::pricing::{self, BasketLine, PriceContext, PriceList, PricedBasket, Promotion};
use crate::money::Quantity;
use crate::store::pricing::{LocalTimeError, check_zones, local_time};

const MAX_QUOTE_LINES: usize = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingBody {
    /// Price lists: `id`, prices per SKU, stores, window.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub price_lists: Vec<PriceList>,
    #[serde(default)]
    pub end_price_lists: Vec<String>,
    /// Category → its SKUs (an empty list removes the category).
    #[serde(default)]
    pub categories: BTreeMap<String, Vec<String>>,
    /// Store (or `*`) → IANA time zone (`null` removes it).
    #[serde(default)]
    pub time_zones: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    pub store: String,
    /// UTC instant to price at (RFC 3339); now when omitted.
    #[serde(default)]
    pub at: Option<String>,
    pub lines: Vec<QuoteLine>,
    /// Coupon codes to price with (a quote redeems nothing).
    #[serde(default)]
    pub coupons: Vec<String>,
    /// The customer, for a personal coupon.
    #[serde(default)]
    pub customer: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteLine {
    pub sku: String,
    pub quantity: Option<i64>,
    pub weight_grams: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quote {
    pub store: String,
    /// The store's wall-clock time the rules were read at.
    pub local_time: String,
    #[serde(flatten)]
    pub basket: PricedBasket,
}

#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    #[error("lines: a quote needs 1 to {MAX_QUOTE_LINES} lines")]
    Lines,
    #[error("lines[{0}].sku: {1:?} is not in the catalog")]
    UnknownSku(usize, String),
    #[error("lines[{0}]: {1}")]
    Quantity(usize, &'static str),
    #[error(transparent)]
    Time(#[from] LocalTimeError),
    #[error(transparent)]
    Pricing(#[from] pricing::PricingError),
    #[error("coupons[{0}]: {1}")]
    Coupon(usize, String),
}

/// Prices `request` with the rules and prices in HQ's catalog document.
pub fn quote(catalog: &SyncDoc, request: &QuoteRequest, now: &str) -> Result<Quote, QuoteError> {
    if request.lines.is_empty() || request.lines.len() > MAX_QUOTE_LINES {
        return Err(QuoteError::Lines);
    }
    let mut rules = read_rules(catalog);
    let coupons = crate::hq::coupons::quote::promotions(catalog, request, now)?;
    rules.promotions.extend(coupons);
    let mut basket = Vec::with_capacity(request.lines.len());
    for (i, line) in request.lines.iter().enumerate() {
        let item = read_item(catalog, &line.sku)
            .ok_or_else(|| QuoteError::UnknownSku(i, line.sku.clone()))?;
        let quantity = match (item.variable_measure, line.quantity, line.weight_grams) {
            (true, None | Some(1), Some(g)) if g > 0 => Quantity::Grams(g),
            (true, _, _) => {
                return Err(QuoteError::Quantity(
                    i,
                    "sold by weight: give a positive weight_grams",
                ));
            }
            (false, q, None) if q.unwrap_or(1) > 0 => Quantity::Pieces(q.unwrap_or(1)),
            (false, _, _) => {
                return Err(QuoteError::Quantity(
                    i,
                    "give a positive quantity (no weight_grams)",
                ));
            }
        };
        basket.push(BasketLine {
            sku: item.sku,
            quantity,
            list_price_minor: item.price_minor,
        });
    }
    let at = local_time(&rules, &request.store, request.at.as_deref().unwrap_or(now))?;
    let priced = pricing::price_basket(
        &rules,
        PriceContext {
            store: &request.store,
            at,
        },
        &basket,
    )?;
    Ok(Quote {
        store: request.store.clone(),
        local_time: at.to_string(),
        basket: priced,
    })
}

/// Runs `edits` on HQ's catalog and sends the change to the stores.
async fn publish(auth: &Authorised<'_>, edits: Vec<PricingEdit>) -> Result<(), Problem> {
    let messages = auth
        .hq(move |hq| hq.edit_pricing(&edits))
        .await?
        .map_err(Problem::unprocessable)?;
    auth.publish(messages);
    Ok(())
}

async fn rules(auth: &Authorised<'_>) -> Result<pricing::PricingRules, Problem> {
    auth.hq(|hq| hq.catalog().map(read_rules).unwrap_or_default())
        .await
}

/// Publishes a promotion (new or replacing one of the same id).
#[utoipa::path(post, path = "/v1/promotions", tag = "pricing",
    request_body(content = Object, description = "A promotion: `id`, its rule, the SKUs or categories and stores it applies to, its window"),
    responses((status = 201, body = Object, description = "`{\"promotion\": id}`")))]
pub async fn put_promotion(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(promotion): JsonBody<Promotion>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = promotion.id.clone();
    publish(&auth, vec![PricingEdit::PutPromotion(promotion)]).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "promotion": id })),
    )
        .into_response())
}

/// The promotions HQ publishes.
#[utoipa::path(get, path = "/v1/promotions", tag = "pricing",
    responses((status = 200, body = Object, description = "`{\"promotions\": [...]}`")))]
pub async fn list_promotions(State(state): State<HttpState>, headers: HeaderMap) -> Answer {
    let auth = state.authorise(&headers)?;
    let mut promotions = rules(&auth).await?.promotions;
    promotions.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(serde_json::json!({ "promotions": promotions })).into_response())
}

/// Ends a promotion.
#[utoipa::path(post, path = "/v1/promotions/{id}/end", tag = "pricing", params(("id" = String, Path)),
    responses((status = 200, body = Object, description = "`{\"ended\": id}`")))]
pub async fn end_promotion(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    if !rules(&auth).await?.promotions.iter().any(|p| p.id == id) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("no promotion {id:?}"),
        ));
    }
    publish(&auth, vec![PricingEdit::EndPromotion(id.clone())]).await?;
    Ok(Json(serde_json::json!({ "ended": id })).into_response())
}

/// Publishes price lists, categories and stores' time zones.
#[utoipa::path(post, path = "/v1/pricing", tag = "pricing", request_body = PricingBody,
    responses((status = 200, body = Object, description = "`{\"published\": true}`")))]
pub async fn put_pricing(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PricingBody>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let zones = pricing::PricingRules {
        time_zones: body
            .time_zones
            .iter()
            .filter_map(|(s, z)| Some((s.clone(), z.clone()?)))
            .collect(),
        ..Default::default()
    };
    check_zones(&zones).map_err(Problem::unprocessable)?;
    let edits = body
        .price_lists
        .into_iter()
        .map(PricingEdit::PutPriceList)
        .chain(
            body.end_price_lists
                .into_iter()
                .map(PricingEdit::EndPriceList),
        )
        .chain(
            body.categories
                .into_iter()
                .map(|(name, skus)| PricingEdit::PutCategory { name, skus }),
        )
        .chain(
            body.time_zones
                .into_iter()
                .map(|(store, zone)| PricingEdit::PutTimeZone { store, zone }),
        )
        .collect();
    publish(&auth, edits).await?;
    Ok(Json(serde_json::json!({ "published": true })).into_response())
}

/// Prices a basket at a store as its till would (the web shop's quote).
#[utoipa::path(post, path = "/v1/quote", tag = "pricing", request_body = QuoteRequest,
    responses((status = 200, body = Object, description = "The priced basket: `store`, `local_time`, lines, totals, promotions applied")))]
pub async fn post_quote(
    State(state): State<HttpState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<QuoteRequest>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let now = crate::clock::now_utc();
    let quoted = auth
        .hq(move |hq| {
            let catalog = hq
                .catalog()
                .ok_or_else(|| "HQ's catalog is not loaded yet".to_owned())?;
            quote(catalog, &request, &now).map_err(|e| e.to_string())
        })
        .await?
        .map_err(Problem::unprocessable)?;
    Ok(Json(quoted).into_response())
}

#[cfg(test)]
#[path = "pricing_tests.rs"]
mod tests;
