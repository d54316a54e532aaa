//! `GET /coupons/{code}`: what this lane knows of a coupon, so a till can tell the customer
//! before the sale (redeeming is part of the sale: `coupons` in `POST /sales`).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use crate::store::coupons::{self, CouponAtStore};

/// A coupon as this lane knows it: HQ's definition and the uses it holds.
#[utoipa::path(get, path = "/coupons/{code}", tag = "coupons",
    params(("code" = String, Path, description = "As scanned or typed")),
    responses((status = 200, description = "The coupon and the uses this lane holds", body = CouponAtStore)))]
pub async fn get_coupon(
    State(state): State<AppState>,
    _t: TerminalId,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = code.clone();
    let found = state
        .store
        .read(move |conn| coupons::view(conn, &lookup))
        .await?;
    found
        .map(|c| Json(c).into_response())
        .ok_or_else(|| ApiError::not_found(format!("coupon {code:?} is unknown here")))
}
