//! Coupons: HQ issues a code with a number of uses and a discount; tills and the web shop
//! redeem it. The rule that keeps a coupon from being redeemed more often than issued, with or
//! without a network, lives here (no I/O).
//!
//! # Rule (a bounded counter per holder, like the online escrow in [`super::escrow`])
//! - **HQ** issues `uses` and holds them in its pool. It *grants* uses to a store's lane
//!   (`granted` grows, written only by HQ), only while its pool covers them:
//!   `pool = uses − Σ granted + Σ released`.
//! - A **lane** redeems (`redeemed` grows) and gives unused uses back (`released` grows),
//!   both only while what it holds, `held = granted − redeemed − released`, covers them
//!   *in its own view*.
//!
//! Every total only grows and each has one kind of writer, so both views err on the safe
//! side: a lane may lag behind on HQ's grants (it holds too few, never too many), and HQ may
//! lag behind on releases (its pool is too small, never too large). Hence
//! `Σ redeemed ≤ Σ (granted − released) ≤ uses` under every schedule of partitions: a lane
//! cut off from HQ redeems only uses it already holds (the property test in
//! `crdt::coupons`).
//!
//! A lane that does not hold a use **asks** HQ for one (`wanted` grows, written only by the
//! lane, at most one ask open per coupon: `wanted > served`); HQ answers every open ask
//! (`served` grows, written only by HQ) and grants with it what [`uses_to_grant`] allows,
//! from its pool as above, so asks change nothing in the bound.
//!
//! The discount itself is one of the pricing engine's rules, applied to the basket as a
//! promotion named after the coupon (`coupon.{CODE}`), so a receipt names it and a return
//! refunds what the customer paid, exactly as with promotions.
//!
//! # Layout
//! Definitions in HQ's catalog document, counters in each store's orders document; see
//! `crdt::coupons`.

use serde::{Deserialize, Serialize};

use super::pricing::{Promotion, Rule, RuleError, Scope, Window};

/// Shortest and longest code accepted (after trimming); codes are upper-cased.
pub const MIN_CODE_LEN: usize = 4;
pub const MAX_CODE_LEN: usize = 32;
/// At most this many uses per coupon (keeps totals far from overflow).
pub const MAX_USES: i64 = 1_000_000;
/// Prefix of the promotion id a coupon's discount appears under on receipts and quotes.
pub const PROMOTION_PREFIX: &str = "coupon.";

/// How the coupon reached the customer (for HQ's records; any channel may redeem).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Web,
    App,
    Sms,
}

/// A coupon as HQ publishes it to every store (in the catalog document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coupon {
    /// What the customer shows (scanned or typed); upper case.
    pub code: String,
    /// Printed on the receipt.
    pub name: String,
    /// The discount, one of the pricing engine's rules (`percent_off`, `amount_off` on items
    /// or categories, `basket_percent_off`, `basket_amount_off`, ...).
    pub discount: Rule,
    /// Redemptions allowed in all (1: single use).
    pub uses: i64,
    /// A personal coupon's customer reference (HQ's customer id); `None`: a bearer coupon,
    /// anyone with the code may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// First instant (UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`) it is no longer valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// HQ withdrew it: refused wherever this is known (uses a lane already holds stay
    /// redeemable there until it learns of it).
    #[serde(default)]
    pub revoked: bool,
}

/// A coupon HQ refuses to issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CouponError {
    #[error("code: must be {MIN_CODE_LEN} to {MAX_CODE_LEN} of A-Z 0-9 -, got {0:?}")]
    Code(String),
    #[error("uses: must be 1 to {MAX_USES}, got {0}")]
    Uses(i64),
    #[error("expires_at: {0}")]
    Expiry(String),
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// Normalises a code as a till scans or types it: trimmed, upper case, checked.
pub fn normalise_code(code: &str) -> Result<String, CouponError> {
    let code = code.trim().to_ascii_uppercase();
    let ok = (MIN_CODE_LEN..=MAX_CODE_LEN).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(code)
    } else {
        Err(CouponError::Code(code))
    }
}

/// An RFC 3339 instant in UTC as the clock writes it (sortable as text).
pub fn normalise_instant(text: &str) -> Result<String, CouponError> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| CouponError::Expiry(format!("{text:?} is not RFC 3339: {e}")))?
        .to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format)
        .map_err(|e| CouponError::Expiry(e.to_string()))
}

impl Coupon {
    /// Checks and normalises (code, expiry) a coupon before HQ issues it.
    pub fn validated(mut self) -> Result<Self, CouponError> {
        self.code = normalise_code(&self.code)?;
        if !(1..=MAX_USES).contains(&self.uses) {
            return Err(CouponError::Uses(self.uses));
        }
        self.expires_at = self
            .expires_at
            .as_deref()
            .map(normalise_instant)
            .transpose()?;
        self.promotion().validate()?;
        Ok(self)
    }

    /// The discount as a promotion the engine applies ahead of every published one, so the
    /// customer gets what the coupon says.
    pub fn promotion(&self) -> Promotion {
        Promotion {
            id: format!("{PROMOTION_PREFIX}{}", self.code),
            name: self.name.clone(),
            priority: i32::MAX,
            exclusive: false,
            scope: Scope::default(),
            window: Window::default(),
            rule: self.discount.clone(),
        }
    }

    /// Whether it has expired at `now` (both in the clock's format).
    pub fn expired(&self, now: &str) -> bool {
        self.expires_at.as_deref().is_some_and(|e| now >= e)
    }
}

/// One holder's totals of one coupon (summed over its writer entries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CouponTotals {
    /// Uses HQ granted to this holder.
    pub granted: i64,
    /// Uses it redeemed.
    pub redeemed: i64,
    /// Uses it gave back to HQ's pool.
    pub released: i64,
    /// Uses it asked HQ for (a till was refused for not holding one).
    #[serde(default)]
    pub wanted: i64,
    /// Its asks HQ answered (granting, or not when its pool was empty).
    #[serde(default)]
    pub served: i64,
}

/// One of the three totals, with the only kind of writer that adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CouponField {
    /// HQ.
    Granted,
    /// The holding lane.
    Redeemed,
    /// The holding lane.
    Released,
    /// The asking lane.
    Wanted,
    /// HQ (answering a lane's asks).
    Served,
}

impl CouponField {
    pub const ALL: [CouponField; 5] = [
        Self::Granted,
        Self::Redeemed,
        Self::Released,
        Self::Wanted,
        Self::Served,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Redeemed => "redeemed",
            Self::Released => "released",
            Self::Wanted => "wanted",
            Self::Served => "served",
        }
    }

    /// Written by HQ (per lane), not by the lane itself.
    pub fn by_hq(self) -> bool {
        matches!(self, Self::Granted | Self::Served)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl CouponTotals {
    /// Uses this holder may still redeem (never negative).
    pub fn held(&self) -> i64 {
        self.granted
            .saturating_sub(self.redeemed)
            .saturating_sub(self.released)
            .max(0)
    }

    /// Asks of this lane HQ has not answered yet.
    pub fn open_asks(&self) -> i64 {
        self.wanted.saturating_sub(self.served).max(0)
    }

    pub fn add(&mut self, field: CouponField, value: i64) {
        let slot = match field {
            CouponField::Granted => &mut self.granted,
            CouponField::Redeemed => &mut self.redeemed,
            CouponField::Released => &mut self.released,
            CouponField::Wanted => &mut self.wanted,
            CouponField::Served => &mut self.served,
        };
        *slot = slot.saturating_add(value);
    }
}

/// Uses HQ grants a lane whose asks of `coupon` are open (`asking`), from `pool` (HQ's, as it
/// sees it) at `now`: none for a revoked or expired coupon; for a personal coupon, none while
/// another lane (`others`) holds one of its uses (the customer's uses follow the customer to
/// one till at a time; that lane may give them back); else one use per open ask, as far as
/// the pool covers. HQ answers the asks either way, so a lane asks again on its next refusal.
pub fn uses_to_grant(
    coupon: &Coupon,
    asking: CouponTotals,
    others: impl IntoIterator<Item = CouponTotals>,
    pool: i64,
    now: &str,
) -> i64 {
    if coupon.revoked || coupon.expired(now) {
        return 0;
    }
    if coupon.customer.is_some() && others.into_iter().any(|t| t.held() > 0) {
        return 0;
    }
    asking.open_asks().min(pool).max(0)
}

/// HQ's pool: the uses no lane holds, as HQ sees the holders' totals.
pub fn pool(uses: i64, holders: impl IntoIterator<Item = CouponTotals>) -> i64 {
    holders.into_iter().fold(uses, |pool, t| {
        pool.saturating_sub(t.granted).saturating_add(t.released)
    })
}

/// What every refusal for not holding a use says (so the API can tell it from other
/// conflicts once it is text, and ask HQ for a use).
pub const NOT_HELD_HERE: &str = "is not held by this store";

/// Why a redemption was refused. The text is what the till shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("coupon {0} is unknown")]
    Unknown(String),
    #[error("coupon {0} was revoked by HQ")]
    Revoked(String),
    #[error("coupon {code} expired at {at}")]
    Expired { code: String, at: String },
    #[error("coupon {0} is used up")]
    UsedUp(String),
    #[error(
        "coupon {0} is not held by this store: its uses are held by another store or HQ — try again when online"
    )]
    HeldElsewhere(String),
    #[error("coupon {0} is for another customer")]
    OtherCustomer(String),
    #[error("coupon {0} takes nothing off this basket")]
    NotApplicable(String),
}

impl Refusal {
    /// A short machine-readable reason (the API's `code`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "coupon_unknown",
            Self::Revoked(_) => "coupon_revoked",
            Self::Expired { .. } => "coupon_expired",
            Self::UsedUp(_) => "coupon_used_up",
            Self::HeldElsewhere(_) => "coupon_held_elsewhere",
            Self::OtherCustomer(_) => "coupon_other_customer",
            Self::NotApplicable(_) => "coupon_not_applicable",
        }
    }
}

/// Whether a lane holding `mine` (its view) may redeem `count` uses of `coupon` at `now`.
/// `redeemed_known` is every redemption the lane knows of (its own, at least): when it
/// reaches `uses` the coupon is used up, otherwise the missing uses are elsewhere.
pub fn check_redeem(
    code: &str,
    coupon: Option<&Coupon>,
    mine: CouponTotals,
    redeemed_known: i64,
    count: i64,
    now: &str,
) -> Result<(), Refusal> {
    let Some(coupon) = coupon else {
        return Err(Refusal::Unknown(code.to_owned()));
    };
    if coupon.revoked {
        return Err(Refusal::Revoked(coupon.code.clone()));
    }
    if coupon.expired(now) {
        return Err(Refusal::Expired {
            code: coupon.code.clone(),
            at: coupon.expires_at.clone().unwrap_or_default(),
        });
    }
    if mine.held() >= count {
        return Ok(());
    }
    if redeemed_known.saturating_add(count) > coupon.uses {
        return Err(Refusal::UsedUp(coupon.code.clone()));
    }
    Err(Refusal::HeldElsewhere(coupon.code.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pricing::Target;

    fn coupon(uses: i64) -> Coupon {
        Coupon {
            code: " save-10 ".into(),
            name: "10 % off".into(),
            discount: Rule::BasketPercentOff {
                min_total_minor: 0,
                percent_bp: 1000,
            },
            uses,
            customer: None,
            channel: Some(Channel::Sms),
            expires_at: Some("2026-12-31T23:00:00+01:00".into()),
            revoked: false,
        }
    }

    #[test]
    fn validation_normalises_code_and_expiry_and_checks_the_rule() {
        let c = coupon(1).validated().unwrap();
        assert_eq!(c.code, "SAVE-10");
        assert_eq!(c.expires_at.as_deref(), Some("2026-12-31T22:00:00.000Z"));
        assert_eq!(c.promotion().id, "coupon.SAVE-10");
        assert!(matches!(coupon(0).validated(), Err(CouponError::Uses(0))));
        let mut bad = coupon(1);
        bad.code = "a b".into();
        assert!(matches!(bad.validated(), Err(CouponError::Code(_))));
        let mut bad = coupon(1);
        bad.discount = Rule::PercentOff {
            target: Target::default(),
            percent_bp: 500,
        };
        assert!(matches!(bad.validated(), Err(CouponError::Rule(_))));
        let mut bad = coupon(1);
        bad.expires_at = Some("tomorrow".into());
        assert!(matches!(bad.validated(), Err(CouponError::Expiry(_))));
    }

    #[test]
    fn a_lane_redeems_only_what_it_holds_and_says_why_not() {
        let c = coupon(2).validated().unwrap();
        let now = "2026-12-01T10:00:00.000Z";
        let held = |granted, redeemed| CouponTotals {
            granted,
            redeemed,
            ..Default::default()
        };
        assert_eq!(
            check_redeem("SAVE-10", Some(&c), held(1, 0), 0, 1, now),
            Ok(())
        );
        assert_eq!(
            check_redeem("SAVE-10", Some(&c), held(1, 1), 1, 1, now),
            Err(Refusal::HeldElsewhere("SAVE-10".into()))
        );
        assert!(
            Refusal::HeldElsewhere("SAVE-10".into())
                .to_string()
                .contains(NOT_HELD_HERE)
        );
        assert_eq!(
            check_redeem("SAVE-10", Some(&c), held(2, 2), 2, 1, now),
            Err(Refusal::UsedUp("SAVE-10".into()))
        );
        assert!(matches!(
            check_redeem(
                "SAVE-10",
                Some(&c),
                held(1, 0),
                0,
                1,
                "2026-12-31T22:00:00.000Z"
            ),
            Err(Refusal::Expired { .. })
        ));
        assert_eq!(
            check_redeem("NOPE", None, held(0, 0), 0, 1, now),
            Err(Refusal::Unknown("NOPE".into()))
        );
        let revoked = Coupon {
            revoked: true,
            ..c.clone()
        };
        assert_eq!(
            check_redeem("SAVE-10", Some(&revoked), held(1, 0), 0, 1, now)
                .unwrap_err()
                .reason(),
            "coupon_revoked"
        );
    }

    #[test]
    fn the_pool_is_what_no_holder_has() {
        let a = CouponTotals {
            granted: 3,
            redeemed: 1,
            released: 1,
            ..Default::default()
        };
        let b = CouponTotals {
            granted: 2,
            ..Default::default()
        };
        assert_eq!(pool(10, [a, b]), 6);
        assert_eq!(a.held(), 1);
    }

    #[test]
    fn hq_grants_an_open_ask_from_its_pool_while_the_coupon_is_valid() {
        let c = coupon(3).validated().unwrap();
        let now = "2026-12-01T10:00:00.000Z";
        let asking = CouponTotals {
            wanted: 2,
            served: 1,
            ..Default::default()
        };
        let holder = CouponTotals {
            granted: 1,
            ..Default::default()
        };
        assert_eq!(asking.open_asks(), 1);
        assert_eq!(uses_to_grant(&c, asking, [holder], 2, now), 1);
        assert_eq!(uses_to_grant(&c, asking, [holder], 0, now), 0, "pool empty");
        let answered = CouponTotals {
            served: 2,
            ..asking
        };
        assert_eq!(uses_to_grant(&c, answered, [], 2, now), 0, "nothing open");
        let late = "2026-12-31T22:00:00.000Z";
        assert_eq!(uses_to_grant(&c, asking, [], 2, late), 0, "expired");
        let revoked = Coupon {
            revoked: true,
            ..c.clone()
        };
        assert_eq!(uses_to_grant(&revoked, asking, [], 2, now), 0);
        // A personal coupon: not while another lane holds one of the customer's uses.
        let personal = Coupon {
            customer: Some("cust-1".into()),
            ..c.clone()
        };
        assert_eq!(uses_to_grant(&personal, asking, [holder], 2, now), 0);
        let spent = CouponTotals {
            redeemed: 1,
            ..holder
        };
        assert_eq!(uses_to_grant(&personal, asking, [spent], 2, now), 1);
    }
}
