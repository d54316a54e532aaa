//! Coupons in HQ's quote (`POST /v1/quote`): a coupon the web shop names is priced as the
//! till would price it, after the checks that need only its definition (known, not revoked,
//! not expired, this customer's). A quote redeems nothing, so it does not look at uses.

use crate::crdt::coupons::read_coupons;
use crate::crdt::doc::SyncDoc;
use crate::domain::coupons::{Refusal, check_redeem, normalise_code};
use crate::domain::pricing::Promotion;
use crate::hq::pricing::{QuoteError, QuoteRequest};

/// The promotions of the coupons `request` names, or why one cannot be used.
pub fn promotions(
    catalog: &SyncDoc,
    request: &QuoteRequest,
    now: &str,
) -> Result<Vec<Promotion>, QuoteError> {
    if request.coupons.is_empty() {
        return Ok(Vec::new());
    }
    let known = read_coupons(catalog);
    let mut out: Vec<Promotion> = Vec::new();
    for (i, raw) in request.coupons.iter().enumerate() {
        let refuse = |r: String| QuoteError::Coupon(i, r);
        let code = normalise_code(raw).map_err(|e| refuse(e.to_string()))?;
        let coupon = known.get(&code);
        // "Held" here means: the definition allows a use; where it is held is the till's
        // question (it redeems only uses its lane holds).
        let anyone = crate::domain::coupons::CouponTotals {
            granted: 1,
            ..Default::default()
        };
        check_redeem(&code, coupon, anyone, 0, 1, now).map_err(|r| refuse(r.to_string()))?;
        if let Some(c) = coupon.filter(|c| c.customer.is_some() && c.customer != request.customer) {
            return Err(refuse(Refusal::OtherCustomer(c.code.clone()).to_string()));
        }
        let promotion = coupon.map(|c| c.promotion());
        if let Some(p) = promotion.filter(|p| !out.iter().any(|o| o.id == p.id)) {
            out.push(p);
        }
    }
    Ok(out)
}
