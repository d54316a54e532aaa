//! Money arithmetic in integer minor units (cents), with one documented rounding rule.
//!
//! Rounding: every division rounds half away from zero ("commercial rounding", as in
//! DIN 1333 and most EU tax rules), once per sale line. A sale's tax is the sum of its lines'
//! tax, so a receipt's lines always add up to its totals.

/// Quantity of a line: pieces, or grams for variable-measure (weighed) items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Pieces(i64),
    Grams(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount overflows 64-bit minor units")]
    Overflow,
}

/// Decimals of a currency's minor unit (ISO 4217); 2 unless listed.
pub fn minor_unit_exponent(currency: &str) -> u8 {
    match currency {
        "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "XAF" | "XOF" | "PYG" | "UGX" => 0,
        "BHD" | "KWD" | "JOD" | "OMR" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
}

/// `numerator / denominator`, rounded half away from zero. `denominator` must be positive.
pub fn div_round(numerator: i128, denominator: i128) -> Result<i64, MoneyError> {
    debug_assert!(denominator > 0);
    let half = denominator / 2;
    let rounded = if numerator >= 0 {
        (numerator + half) / denominator
    } else {
        (numerator - half) / denominator
    };
    i64::try_from(rounded).map_err(|_| MoneyError::Overflow)
}

/// Price of a line. For weighed items `unit_price_minor` is per kilogram.
pub fn line_amount(unit_price_minor: i64, quantity: Quantity) -> Result<i64, MoneyError> {
    match quantity {
        Quantity::Pieces(n) => unit_price_minor.checked_mul(n).ok_or(MoneyError::Overflow),
        Quantity::Grams(g) => div_round(i128::from(unit_price_minor) * i128::from(g), 1000),
    }
}

/// Tax contained in a tax-inclusive amount: `gross × rate / (1 + rate)`.
pub fn tax_included(gross_minor: i64, rate_bp: u32) -> Result<i64, MoneyError> {
    let rate = i128::from(rate_bp);
    div_round(i128::from(gross_minor) * rate, 10_000 + rate)
}

/// Tax to add to a tax-exclusive amount: `net × rate`.
pub fn tax_added(net_minor: i64, rate_bp: u32) -> Result<i64, MoneyError> {
    div_round(i128::from(net_minor) * i128::from(rate_bp), 10_000)
}

/// A share of `amount` proportional to `part / whole` (for partial refunds), rounded once.
pub fn pro_rata(amount: i64, part: i64, whole: i64) -> Result<i64, MoneyError> {
    if whole <= 0 {
        return Ok(0);
    }
    div_round(i128::from(amount) * i128::from(part), i128::from(whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round(5, 10), Ok(1));
        assert_eq!(div_round(4, 10), Ok(0));
        assert_eq!(div_round(-5, 10), Ok(-1));
        assert_eq!(div_round(-4, 10), Ok(0));
    }

    #[test]
    fn german_vat_examples() {
        // 1.19 EUR gross at 19 % holds 0.19 EUR tax; 1.07 at 7 % holds 0.07.
        assert_eq!(tax_included(119, 1900), Ok(19));
        assert_eq!(tax_included(107, 700), Ok(7));
        // 9.99 at 19 %: 999 × 19 / 119 = 159.5 → 160.
        assert_eq!(tax_included(999, 1900), Ok(160));
        assert_eq!(tax_added(1000, 825), Ok(83));
    }

    #[test]
    fn weighed_line_rounds_once() {
        // 12.99 per kg × 1.086 kg = 14.10714 → 14.11
        assert_eq!(line_amount(1299, Quantity::Grams(1086)), Ok(1411));
        assert_eq!(line_amount(250, Quantity::Pieces(3)), Ok(750));
        assert_eq!(
            line_amount(i64::MAX, Quantity::Pieces(2)),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn pro_rata_of_whole_is_whole() {
        assert_eq!(pro_rata(1000, 3, 3), Ok(1000));
        assert_eq!(pro_rata(1000, 1, 3), Ok(333));
        assert_eq!(pro_rata(1000, 1, 0), Ok(0));
    }

    proptest! {
        #[test]
        fn included_tax_never_exceeds_gross(gross in 0i64..10_000_000_000, rate in 0u32..=10_000) {
            let tax = tax_included(gross, rate).unwrap();
            prop_assert!(tax >= 0 && tax <= gross);
        }

        #[test]
        fn rounding_error_at_most_half(n in -1_000_000_000i64..1_000_000_000, d in 1i64..100_000) {
            let q = div_round(i128::from(n), i128::from(d)).unwrap();
            prop_assert!((i128::from(q) * i128::from(d) - i128::from(n)).abs() * 2 <= i128::from(d));
        }
    }
}
