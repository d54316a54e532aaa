//! Coupons redeemed by the web shop or the app (`POST /v1/coupons/{code}/redeem`): a use is
//! taken from HQ's pool, the uses no store lane holds, under the coupon's lock HQ's grants take, so
//! the web and the stores together never redeem more than issued. A stores' lane redeems
//! only what HQ granted it, and HQ grants only from the same pool.
//!
//! Once per reference (the web order or payment id): a retried request answers the first
//! redemption again and takes nothing more. A quote (`POST /v1/quote`) prices a coupon but
//! redeems nothing; the web shop redeems when the customer pays.

use serde::Serialize;

use super::CouponRefused;
use crate::domain::coupons::{Coupon, CouponTotals, Refusal, check_redeem, pool};
use crate::hq::db::locks::coupon_lock;
use crate::hq::state::{HqError, HqState};

/// Longest web order or payment reference accepted.
const MAX_REFERENCE_LEN: usize = 128;

/// `POST /v1/coupons/{code}/redeem`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OnlineRedemption {
    pub code: String,
    pub reference: String,
    /// When the use was taken (the first request's time, for a retried one).
    pub redeemed_at: String,
    /// A retried request: the use was taken by an earlier one with this reference.
    pub replayed: bool,
    /// Uses HQ still holds after this one (may grant or redeem online).
    pub pool: i64,
}

impl HqState {
    /// Takes one use of `code` from HQ's pool for the web order or payment `reference`.
    /// `customer`: who redeems, checked against a personal coupon's customer.
    pub fn redeem_online(
        &mut self,
        code: &str,
        reference: &str,
        customer: Option<&str>,
    ) -> Result<OnlineRedemption, CouponRefused> {
        if reference.is_empty()
            || reference.len() > MAX_REFERENCE_LEN
            || reference.chars().any(char::is_control)
        {
            return Err(CouponRefused::Reference);
        }
        // Only the pool's lock: no document is written.
        self.with_locks(&[], &[coupon_lock(code)], |hq| {
            hq.redeem_online_locked(code, reference, customer)
        })
    }

    fn redeem_online_locked(
        &mut self,
        code: &str,
        reference: &str,
        customer: Option<&str>,
    ) -> Result<OnlineRedemption, CouponRefused> {
        let Some(coupon) = self.coupons().remove(code) else {
            return Err(CouponRefused::Unknown(code.to_owned()));
        };
        if let Some(at) = self.online_redemption_at(code, reference)? {
            return Ok(OnlineRedemption {
                code: code.to_owned(),
                reference: reference.to_owned(),
                redeemed_at: at,
                replayed: true,
                pool: self.coupon_pool(&coupon)?,
            });
        }
        let now = crate::clock::now_utc();
        // The definition's checks, as a till makes them; where the use comes from is below.
        let a_use = CouponTotals {
            granted: 1,
            ..CouponTotals::default()
        };
        check_redeem(code, Some(&coupon), a_use, 0, 1, &now).map_err(CouponRefused::Refused)?;
        if coupon.customer.is_some() && coupon.customer.as_deref() != customer {
            return Err(CouponRefused::Refused(Refusal::OtherCustomer(
                code.to_owned(),
            )));
        }
        let left = self.coupon_pool(&coupon)?;
        if left < 1 {
            return Err(CouponRefused::NoneAtHq(code.to_owned()));
        }
        self.db
            .execute(
                "INSERT INTO hq_coupon_online (code, reference, at) VALUES (?1, ?2, ?3)",
                &[&code, &reference, &now],
            )
            .map_err(HqError::from)?;
        tracing::info!(code, pool = left - 1, "coupon redeemed online");
        Ok(OnlineRedemption {
            code: code.to_owned(),
            reference: reference.to_owned(),
            redeemed_at: now,
            replayed: false,
            pool: left - 1,
        })
    }

    fn online_redemption_at(&self, code: &str, reference: &str) -> Result<Option<String>, HqError> {
        Ok(self.db.query_opt(
            "SELECT at FROM hq_coupon_online WHERE code = ?1 AND reference = ?2",
            &[&code, &reference],
            |r| r.get(0),
        )?)
    }

    /// Uses of `code` the web shop and the app redeemed.
    pub(super) fn online_redemptions(&self, code: &str) -> Result<i64, HqError> {
        Ok(self.db.query_one(
            "SELECT COUNT(*) FROM hq_coupon_online WHERE code = ?1",
            &[&code],
            |r| r.get(0),
        )?)
    }

    /// HQ's pool of `coupon`: issued, less what lanes hold or redeemed, less online
    /// redemptions. Exact under the coupon's lock ([`crate::hq::db::locks::coupon_lock`]).
    pub(super) fn coupon_pool(&mut self, coupon: &Coupon) -> Result<i64, HqError> {
        let holders = self.coupon_holders(&coupon.code)?;
        let online = self.online_redemptions(&coupon.code)?;
        Ok(pool(coupon.uses, holders.into_values()).saturating_sub(online))
    }
}
