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

/// A sale naming `codes` was refused with 409: if a coupon was refused because this lane
/// holds none of its uses, the lane asks HQ for one (`store::coupons::ask_hq`, its own write:
/// the sale's was undone) and the answer says so. Online, HQ's ingest answers within a
/// moment and the same sale (same key) goes through then; offline, once the store is back.
pub async fn ask_hq_after_refusal(
    state: &AppState,
    terminal: String,
    codes: Vec<String>,
    refused: ApiError,
) -> ApiError {
    let asked = state
        .store
        .write(move |conn| {
            let now = crate::clock::now_utc();
            coupons::ask_hq(conn, &terminal, &now, &codes)
        })
        .await;
    let asked = match asked {
        Ok(asked) if !asked.is_empty() => asked,
        Ok(_) => return refused,
        Err(error) => {
            tracing::warn!(%error, "could not ask HQ for a coupon use");
            return refused;
        }
    };
    let online = (state.online)();
    let codes = asked.join(", ");
    let mut answer = if online {
        ApiError::new(
            refused.status,
            refused.code,
            format!(
                "coupon {codes} is not held by this store: asked HQ for a use: try again in a moment"
            ),
        )
    } else {
        ApiError::new(
            refused.status,
            refused.code,
            format!(
                "coupon {codes} is not held by this store: asked HQ for a use: try again when online"
            ),
        )
    };
    answer.retry_after_secs = online.then_some(1);
    answer.field = Some("coupons".into());
    answer
}
