//! The loyalty ledger: points a member earns on sales, spends as a payment and loses again
//! when a sale is returned, kept so that no schedule of partitions takes a balance below zero.
//!
//! # Rule (bounded counters, as the online escrow bounds stock)
//! Every figure is a grow-only total per writer, so concurrent earns and spends at several
//! stores and the web shop commute. The member's points sit in two kinds of place:
//! - **HQ's pool**: every point earned anywhere (a store lane or the web shop), plus what
//!   lanes release, minus what HQ grants to lanes, spends for the web shop or settles;
//! - **a lane's allowance**: what HQ granted to that lane, plus what the lane refunded (a
//!   return of a sale paid in points gives them back), minus what it spent, reversed or
//!   released. Only the lane writes those four, only HQ grants.
//!
//! Each writer takes points only from a place whose figures it knows exactly on the side
//! that matters: a lane spends or reverses only from its own allowance (it knows its own
//! spends exactly, and HQ's grants only late: too low, never too high); HQ grants, spends and
//! settles only from its pool (it knows its own grants exactly, earns and releases only
//! late). So the pool and every allowance stay ≥ 0 whatever each side knows, and the balance,
//! their sum, `earned + refunded − spent − reversed − settled`, never goes below zero (a lane
//! refunds at most what its own sale spent, so `refunded ≤ spent`). See the property test in
//! `crdt::loyalty`.
//!
//! Points are earned into the pool, not the earning lane: they become spendable at a till
//! once HQ has seen them and granted them (a lane asks with a `wanted` count when the member
//! is identified at its till; HQ answers each new want by granting the pool). A return whose
//! points the lane cannot take from its allowance (the member spent them) records what is
//! missing as `owed`; HQ settles owed points from the pool before it grants anything, so a
//! member who owes points spends none until new earnings cover them.
//!
//! A sale earns once: its points are recorded with the sale, under the sale's idempotency
//! key, and the document gets the lane's running total, never the sale twice.
//!
//! # Layout
//! In the store's orders document; see `crdt::loyalty`.

use serde::{Deserialize, Serialize};

/// HQ's loyalty rules, published in the catalog document (the node earns and spends offline
/// with the last rules it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoyaltyRules {
    /// Points earned per whole currency unit (100 minor units) paid other than in points;
    /// part units earn nothing.
    pub points_per_unit: i64,
    /// What one point is worth when spent, in minor units.
    pub point_value_minor: i64,
}

impl LoyaltyRules {
    pub fn validate(&self) -> Result<(), LoyaltyError> {
        if !(0..=10_000).contains(&self.points_per_unit) {
            return Err(LoyaltyError::Rules("points_per_unit must be 0 to 10000"));
        }
        if !(1..=1_000_000).contains(&self.point_value_minor) {
            return Err(LoyaltyError::Rules(
                "point_value_minor must be 1 to 1000000",
            ));
        }
        Ok(())
    }

    /// Points a sale earns on `paid_minor` (the total less what points paid).
    pub fn points_for(&self, paid_minor: i64) -> i64 {
        (paid_minor.max(0) / 100).saturating_mul(self.points_per_unit)
    }

    /// Points that pay `amount_minor`; refused unless they pay it exactly.
    pub fn points_paying(&self, amount_minor: i64) -> Result<i64, LoyaltyError> {
        if amount_minor <= 0 || amount_minor % self.point_value_minor != 0 {
            return Err(LoyaltyError::NotWholePoints {
                amount_minor,
                point_value_minor: self.point_value_minor,
            });
        }
        Ok(amount_minor / self.point_value_minor)
    }
}

/// Points a return gives back of a sale paid (partly) in points.
///
/// `spent` points paid `spent × point_value_minor` of a sale whose lines can refund
/// `refundable_minor` in all; earlier returns refunded `refunded_before_minor` of it and gave
/// back `already_refunded` points; this return refunds `refund_minor`. The points given back
/// up to and including this return are the returned share of `spent`, rounded down, and all
/// of it once the whole sale is returned: the last return gets the remainder, so returns sum
/// exactly to what was paid in points, however the sale is split. A return never gives back
/// more in points than it refunds in value (with a point worth more than one minor unit, a
/// partial return that is worth less than a point gets money, and the next one catches up).
pub fn points_to_refund(
    spent: i64,
    point_value_minor: i64,
    already_refunded: i64,
    refunded_before_minor: i64,
    refund_minor: i64,
    refundable_minor: i64,
) -> i64 {
    if spent <= 0 || point_value_minor <= 0 || refund_minor <= 0 || refundable_minor <= 0 {
        return 0;
    }
    let returned = refunded_before_minor.saturating_add(refund_minor);
    let due = if returned >= refundable_minor {
        spent
    } else {
        let share = i128::from(spent) * i128::from(returned.max(0)) / i128::from(refundable_minor);
        i64::try_from(share).unwrap_or(spent).min(spent)
    };
    let left = spent.saturating_sub(already_refunded).max(0);
    due.saturating_sub(already_refunded)
        .clamp(0, left)
        .min(refund_minor / point_value_minor)
}

/// Points a return takes back: the returned share of what the sale earned, rounded down,
/// never more than the sale earned less what earlier returns took.
pub fn points_to_reverse(
    earned: i64,
    already_reversed: i64,
    refund_minor: i64,
    sale_paid_minor: i64,
) -> i64 {
    if earned <= 0 || sale_paid_minor <= 0 {
        return 0;
    }
    let share = i128::from(earned) * i128::from(refund_minor.max(0)) / i128::from(sale_paid_minor);
    let left = earned.saturating_sub(already_reversed).max(0);
    i64::try_from(share).unwrap_or(i64::MAX).min(left)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoyaltyError {
    #[error("loyalty rules: {0}")]
    Rules(&'static str),
    #[error(
        "{amount_minor} minor units is not a whole number of points ({point_value_minor} each)"
    )]
    NotWholePoints {
        amount_minor: i64,
        point_value_minor: i64,
    },
    #[error(
        "not a member card: give an 18-digit GSRN (AI 8017/8018, check digit) or the chain's code (4 to 32 letters, digits, '-')"
    )]
    BadCard,
}

/// A member's identifier in every document and table: the digits of a GSRN card, or the
/// chain's own card code in upper case. Never a name or anything personal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberId(String);

impl MemberId {
    /// From what the till has: a scan (`8017…`/`8018…` element string, or
    /// `(8018)…`), a typed GSRN, or the chain's code.
    pub fn parse(input: &str) -> Result<Self, LoyaltyError> {
        let s = input.trim();
        let gsrn = if s.starts_with('(') {
            crate::gs1::parse_human_readable(s).ok()
        } else if (s.starts_with("8017") || s.starts_with("8018")) && s.len() == 22 {
            crate::gs1::parse_element_string(s).ok()
        } else {
            None
        };
        if let Some(parsed) = gsrn {
            return parsed
                .get("8018")
                .or_else(|| parsed.get("8017"))
                .map(|v| Self(v.to_owned()))
                .ok_or(LoyaltyError::BadCard);
        }
        if s.len() == 18 && s.bytes().all(|b| b.is_ascii_digit()) {
            // A typed GSRN: its check digit must hold, as on a scanned one.
            let (body, check) = s.split_at(17);
            let ok = crate::gs1::check_digit(body).is_ok_and(|c| check == c.to_string());
            return if ok {
                Ok(Self(s.to_owned()))
            } else {
                Err(LoyaltyError::BadCard)
            };
        }
        let chain_code = (4..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !s.bytes().all(|b| b.is_ascii_digit());
        if chain_code {
            return Ok(Self(s.to_ascii_uppercase()));
        }
        Err(LoyaltyError::BadCard)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One lane's totals for a member (its own fields, and what HQ granted it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LaneTotals {
    pub earned: i64,
    /// Points given back to the member by returns of sales paid in points (spendable here).
    #[serde(default)]
    pub refunded: i64,
    pub spent: i64,
    pub reversed: i64,
    pub released: i64,
    pub owed: i64,
    /// How often the member was identified at this lane's till (each asks HQ for points).
    pub wanted: i64,
    /// Granted to this lane by HQ.
    pub granted: i64,
    /// The lane's wants HQ has answered (HQ writes it).
    pub served: i64,
}

impl LaneTotals {
    /// Points this lane may spend or reverse now.
    pub fn allowance(&self) -> i64 {
        self.granted
            .saturating_add(self.refunded)
            .saturating_sub(self.spent)
            .saturating_sub(self.reversed)
            .saturating_sub(self.released)
    }
}

/// HQ's own totals for a member (the web shop's earns and spends, settled owed points).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HqTotals {
    pub earned: i64,
    pub spent: i64,
    pub settled: i64,
}

/// A member's ledger as one writer sees it: every lane's totals and HQ's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MemberLedger {
    pub lanes: std::collections::BTreeMap<String, LaneTotals>,
    pub hq: HqTotals,
}

impl MemberLedger {
    fn sum(&self, f: impl Fn(&LaneTotals) -> i64) -> i64 {
        self.lanes
            .values()
            .fold(0_i64, |acc, l| acc.saturating_add(f(l)))
    }

    pub fn earned(&self) -> i64 {
        self.sum(|l| l.earned).saturating_add(self.hq.earned)
    }

    /// Points returns gave back (sales paid in points), at every lane.
    pub fn refunded(&self) -> i64 {
        self.sum(|l| l.refunded)
    }

    /// What HQ may grant, spend or settle from.
    pub fn pool(&self) -> i64 {
        self.earned()
            .saturating_add(self.sum(|l| l.released))
            .saturating_sub(self.sum(|l| l.granted))
            .saturating_sub(self.hq.spent)
            .saturating_sub(self.hq.settled)
    }

    /// Points the member has: the pool plus every lane's allowance.
    pub fn balance(&self) -> i64 {
        self.pool().saturating_add(self.sum(LaneTotals::allowance))
    }

    /// Points a return could not take back and HQ has not settled yet.
    pub fn owed(&self) -> i64 {
        self.sum(|l| l.owed).saturating_sub(self.hq.settled).max(0)
    }

    /// What HQ settles now and then grants: `(settle, grant)`, each from the pool as HQ
    /// sees it, owed points first.
    pub fn hq_plan(&self) -> (i64, i64) {
        let pool = self.pool().max(0);
        let settle = self.owed().min(pool);
        (settle, pool - settle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_earn_on_whole_units_and_spend_whole_points() {
        let rules = LoyaltyRules {
            points_per_unit: 2,
            point_value_minor: 5,
        };
        rules.validate().unwrap();
        assert_eq!(rules.points_for(1_999), 38);
        assert_eq!(rules.points_for(-5), 0);
        assert_eq!(rules.points_paying(50), Ok(10));
        assert!(rules.points_paying(51).is_err());
        assert!(rules.points_paying(0).is_err());
        let bad = LoyaltyRules {
            points_per_unit: 1,
            point_value_minor: 0,
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_return_reverses_its_share_and_never_more_than_earned() {
        assert_eq!(points_to_reverse(10, 0, 500, 1_000), 5);
        assert_eq!(points_to_reverse(10, 8, 1_000, 1_000), 2);
        assert_eq!(points_to_reverse(10, 0, 333, 1_000), 3);
        assert_eq!(points_to_reverse(0, 0, 500, 1_000), 0);
        assert_eq!(points_to_reverse(10, 0, 500, 0), 0);
    }

    #[test]
    fn a_return_gives_back_its_share_of_points_and_the_last_one_the_rest() {
        // 119 points paid a milk: its return gives 119 back.
        assert_eq!(points_to_refund(119, 1, 0, 0, 119, 119), 119);
        // 100 points and 2.00 in cash paid 3.00: a 1.00 return gets 33 points (and 0.67 in
        // money), the rest of the sale the other 67.
        assert_eq!(points_to_refund(100, 1, 0, 0, 100, 300), 33);
        assert_eq!(points_to_refund(100, 1, 33, 100, 200, 300), 67);
        // Retried at the end, or a sale without points: nothing more.
        assert_eq!(points_to_refund(100, 1, 100, 300, 1, 300), 0);
        assert_eq!(points_to_refund(0, 1, 0, 0, 100, 300), 0);
        // A point worth 1.00 cannot pay back a 0.50 return: money now, the point later.
        assert_eq!(points_to_refund(1, 100, 0, 0, 50, 100), 0);
        assert_eq!(points_to_refund(1, 100, 0, 50, 50, 100), 0);
        assert_eq!(points_to_refund(2, 100, 0, 0, 100, 200), 1);
        assert_eq!(points_to_refund(2, 100, 1, 100, 100, 200), 1);
    }

    proptest::proptest! {
        /// Any split of a sale into partial returns gives back exactly the points it spent
        /// (a point worth one minor unit), and no return's money part is negative.
        #[test]
        fn partial_returns_sum_to_what_points_paid(
            lines in proptest::collection::vec(1_i64..5_000, 1..8),
            points_share in 0_i64..=100,
        ) {
            let total: i64 = lines.iter().sum();
            let spent = total * points_share / 100;
            let (mut points, mut money, mut before) = (0_i64, 0_i64, 0_i64);
            for refund in &lines {
                let p = points_to_refund(spent, 1, points, before, *refund, total);
                proptest::prop_assert!(p >= 0 && p <= *refund);
                points += p;
                money += refund - p;
                before += refund;
            }
            proptest::prop_assert_eq!(points, spent);
            proptest::prop_assert_eq!(money, total - spent);
        }
    }

    #[test]
    fn cards_are_gsrns_or_the_chains_code() {
        // 80180614141000000012 style: 18 digits with a valid check digit.
        let body = "06141410000000001";
        let check = crate::gs1::check_digit(body).unwrap();
        let gsrn = format!("{body}{check}");
        let bad = format!("{body}{}", (check + 1) % 10);
        assert_eq!(MemberId::parse(&gsrn).unwrap().as_str(), gsrn);
        assert_eq!(
            MemberId::parse(&format!("8018{gsrn}")).unwrap().as_str(),
            gsrn
        );
        assert_eq!(
            MemberId::parse(&format!("(8017){gsrn}")).unwrap().as_str(),
            gsrn
        );
        assert_eq!(MemberId::parse(&bad), Err(LoyaltyError::BadCard));
        assert_eq!(MemberId::parse(" club-42 ").unwrap().as_str(), "CLUB-42");
        assert!(MemberId::parse("ab").is_err());
        assert!(
            MemberId::parse("1234").is_err(),
            "digits only: a broken GSRN"
        );
        assert!(MemberId::parse("a b c d").is_err());
    }

    #[test]
    fn balance_is_pool_plus_allowances_and_owed_is_settled_first() {
        let mut ledger = MemberLedger::default();
        ledger.lanes.insert(
            "s1.n1".into(),
            LaneTotals {
                earned: 100,
                ..Default::default()
            },
        );
        ledger.lanes.insert(
            "s2.n1".into(),
            LaneTotals {
                granted: 60,
                spent: 50,
                owed: 20,
                ..Default::default()
            },
        );
        assert_eq!(ledger.pool(), 40);
        assert_eq!(ledger.balance(), 50);
        // A return at s1 gives back points its sale spent: s1 may spend them, HQ counts them.
        ledger.lanes.get_mut("s1.n1").unwrap().refunded = 7;
        assert_eq!((ledger.pool(), ledger.balance()), (40, 57));
        ledger.lanes.get_mut("s1.n1").unwrap().refunded = 0;
        assert_eq!(ledger.owed(), 20);
        assert_eq!(ledger.hq_plan(), (20, 20));
        ledger.hq.settled = 20;
        assert_eq!(
            (ledger.owed(), ledger.pool(), ledger.balance()),
            (0, 20, 30)
        );
    }
}
