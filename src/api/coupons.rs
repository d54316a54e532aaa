//! `GET /coupons/{code}`: what this lane knows of a coupon, so a till can tell the customer
//! before the sale (redeeming is part of the sale: `coupons` in `POST /sales`), and
//! `POST /coupons/{code}/release`: uses given back to HQ.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use super::write::WriteRequest;
use crate::store::coupons::{self, CouponAtStore, ReleaseRequest};

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

/// Gives uses this lane holds back to HQ's pool (so HQ can move them to another store).
#[utoipa::path(post, path = "/coupons/{code}/release", tag = "coupons",
    params(("code" = String, Path)),
    request_body = ReleaseRequest,
    responses((status = 201, description = "Done (a replay of the same key returns the first answer)", body = CouponAtStore)))]
pub async fn release_coupon(
    State(state): State<AppState>,
    Path(code): Path<String>,
    write: WriteRequest,
) -> Result<Response, ApiError> {
    let request: ReleaseRequest = write.parse()?;
    write
        .run(
            &state,
            move |conn, ctx| coupons::release(conn, ctx, &code, &request),
            |_, _| {},
        )
        .await
}
