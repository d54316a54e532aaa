//! Restricted Circulation Numbers: variable-measure EAN-13 with prefix 20-29,
//! where part of the number is a price, weight or count.
//!
//! The layout is set by each country's GS1 organisation, so the same 13
//! digits mean different things in different regions: always parse with the
//! store's configured region. Layouts follow GS1 GS §2.1.11-2.1.12 as
//! published per country (biip's `_RCN_RULES` lists the sources).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::Gs1Error;
use super::gtin::{Gtin14, digit_values};

/// Region whose variable-measure rules apply; configured per store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RcnRegion {
    Sweden,
    Norway,
    Germany,
    Denmark,
    UnitedKingdom,
    Finland,
    /// Estonia, Latvia and Lithuania share one layout.
    Baltics,
    /// Treat prefix 20-29 numbers as opaque GTINs.
    None,
}

impl RcnRegion {
    /// The configuration name ("se", "gb", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RcnRegion::Sweden => "se",
            RcnRegion::Norway => "no",
            RcnRegion::Germany => "de",
            RcnRegion::Denmark => "dk",
            RcnRegion::UnitedKingdom => "gb",
            RcnRegion::Finland => "fi",
            RcnRegion::Baltics => "baltics",
            RcnRegion::None => "none",
        }
    }
}

impl FromStr for RcnRegion {
    type Err = Gs1Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let region = match s.trim().to_ascii_lowercase().as_str() {
            "se" => RcnRegion::Sweden,
            "no" => RcnRegion::Norway,
            "de" => RcnRegion::Germany,
            "dk" => RcnRegion::Denmark,
            "gb" => RcnRegion::UnitedKingdom,
            "fi" => RcnRegion::Finland,
            "baltics" => RcnRegion::Baltics,
            "none" => RcnRegion::None,
            _ => return Err(Gs1Error::UnknownRegion(s.to_string())),
        };
        Ok(region)
    }
}

impl fmt::Display for RcnRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The variable measure carried in the barcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// The price is `minor_units` × 10^-`decimals` in the region's currency:
    /// `{minor_units: 1234, decimals: 2}` is 12.34. Use
    /// [`Measure::price_minor_units`] to get the store currency's minor units.
    Price { minor_units: i64, decimals: u8 },
    /// Net weight in grams (every layout has at most 3 decimals of kg).
    WeightGrams(i64),
    /// Number of pieces.
    Count(i64),
}

impl Measure {
    /// The price in minor units of a currency with `exponent` decimals
    /// (2 for SEK/EUR/GBP), or `None` if this is not a price.
    pub fn price_minor_units(&self, exponent: u8) -> Option<Result<i64, Gs1Error>> {
        match *self {
            Measure::Price {
                minor_units,
                decimals,
            } => Some(super::decimal_to_minor_units(
                minor_units,
                decimals,
                exponent,
            )),
            _ => None,
        }
    }
}

/// A decoded variable-measure number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rcn {
    /// The GTIN with the measure (and its check digit) zeroed and the GTIN
    /// check digit recomputed: the key to look the item up in the catalogue.
    pub item_key: Gtin14,
    pub measure: Measure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Price,
    Weight,
    Count,
}

/// Where the measure sits in the 12 digits before the GTIN check digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    kind: Kind,
    /// Leading digits that identify the item (prefix included).
    item_digits: usize,
    /// A price check digit follows the item digits.
    has_check: bool,
    decimals: u8,
}

const fn layout(kind: Kind, item_digits: usize, has_check: bool, decimals: u8) -> Layout {
    Layout {
        kind,
        item_digits,
        has_check,
        decimals,
    }
}

fn layout_for(region: RcnRegion, prefix: u8) -> Option<Layout> {
    use Kind::{Count, Price, Weight};
    let found = match (region, prefix) {
        (RcnRegion::Sweden | RcnRegion::Norway, 20) => layout(Price, 8, false, 2),
        (RcnRegion::Sweden | RcnRegion::Norway, 21) => layout(Price, 8, false, 1),
        (RcnRegion::Sweden | RcnRegion::Norway, 22) => layout(Price, 8, false, 0),
        (RcnRegion::Sweden | RcnRegion::Norway | RcnRegion::Finland | RcnRegion::Baltics, 23) => {
            layout(Weight, 8, false, 3)
        }
        (RcnRegion::Sweden | RcnRegion::Norway | RcnRegion::Finland | RcnRegion::Baltics, 24) => {
            layout(Weight, 8, false, 2)
        }
        (RcnRegion::Sweden | RcnRegion::Norway | RcnRegion::Finland | RcnRegion::Baltics, 25) => {
            layout(Weight, 8, false, 1)
        }
        (RcnRegion::Germany, 22 | 23) => layout(Price, 6, true, 2),
        (RcnRegion::Germany, 25 | 26) => layout(Count, 6, true, 0),
        (RcnRegion::Germany, 28 | 29) => layout(Weight, 6, true, 3),
        (RcnRegion::Denmark, 21..=24) => layout(Price, 6, false, 2),
        (RcnRegion::Denmark, 26 | 28) => layout(Weight, 6, false, 3),
        (RcnRegion::Denmark, 27) => layout(Weight, 7, false, 3),
        (RcnRegion::UnitedKingdom, 20) => layout(Price, 7, true, 2),
        _ => return None,
    };
    Some(found)
}

/// Decodes a variable-measure EAN-13 under `region`'s rules. Returns
/// `Ok(None)` when the number is a valid GTIN but not a variable-measure
/// number in that region (other prefix, prefix unused there, or region
/// `None`); errors for an invalid GTIN or a wrong price check digit.
pub fn parse_rcn(gtin13: &str, region: RcnRegion) -> Result<Option<Rcn>, Gs1Error> {
    let gtin = Gtin14::parse(gtin13)?;
    let Some(ean13) = gtin.as_gtin13() else {
        return Ok(None);
    };
    let digits = digit_values(ean13)?;
    let prefix = match digits.as_slice() {
        [a, b, ..] => a * 10 + b,
        _ => return Ok(None),
    };
    let Some(layout) = layout_for(region, prefix) else {
        return Ok(None);
    };
    let item = digits.get(..layout.item_digits).unwrap_or_default();
    let value_start = layout.item_digits + usize::from(layout.has_check);
    let value = digits.get(value_start..12).unwrap_or_default();
    if layout.has_check {
        let got = digits.get(layout.item_digits).copied().unwrap_or_default();
        verify_price_check(value, got)?;
    }
    Ok(Some(Rcn {
        item_key: item_key(item, 12 - layout.item_digits)?,
        measure: measure(layout, value),
    }))
}

fn verify_price_check(value: &[u8], got: u8) -> Result<(), Gs1Error> {
    let expected = price_check_digit(value).unwrap_or(got);
    if expected == got {
        Ok(())
    } else {
        Err(Gs1Error::CheckDigit {
            what: "variable-measure",
            expected,
            got,
        })
    }
}

/// Item digits followed by zeros in place of the measure (a zero measure's
/// price check digit is 0 too), with a fresh GTIN check digit.
fn item_key(item: &[u8], zeroed: usize) -> Result<Gtin14, Gs1Error> {
    let item: String = item.iter().map(|d| char::from(b'0' + d)).collect();
    Gtin14::from_body(&format!("0{item}{}", "0".repeat(zeroed)))
}

fn measure(layout: Layout, value: &[u8]) -> Measure {
    // At most 5 digits, so this cannot overflow.
    let number = value.iter().fold(0i64, |acc, &d| acc * 10 + i64::from(d));
    match layout.kind {
        Kind::Price => Measure::Price {
            minor_units: number,
            decimals: layout.decimals,
        },
        Kind::Weight => {
            Measure::WeightGrams(number * 10i64.pow(3 - u32::from(layout.decimals.min(3))))
        }
        Kind::Count => Measure::Count(number),
    }
}

// Weighting tables of GS1 GS §7.9.3 ("2-", "3", "5+", "5-"), indexed by digit.
const WEIGHT_2_MINUS: [u8; 10] = [0, 2, 4, 6, 8, 9, 1, 3, 5, 7];
const WEIGHT_3: [u8; 10] = [0, 3, 6, 9, 2, 5, 8, 1, 4, 7];
const WEIGHT_5_PLUS: [u8; 10] = [0, 5, 1, 6, 2, 7, 3, 8, 4, 9];
const WEIGHT_5_MINUS: [u8; 10] = [0, 5, 9, 4, 8, 3, 7, 2, 6, 1];

fn weighted(table: &[u8; 10], digit: u8) -> u32 {
    u32::from(table.get(usize::from(digit)).copied().unwrap_or_default())
}

/// Price check digit of a 4- or 5-digit price field (GS1 GS §7.9.2-7.9.4).
fn price_check_digit(value: &[u8]) -> Option<u8> {
    match *value {
        [a, b, c, d] => {
            let sum = weighted(&WEIGHT_2_MINUS, a)
                + weighted(&WEIGHT_2_MINUS, b)
                + weighted(&WEIGHT_3, c)
                + weighted(&WEIGHT_5_MINUS, d);
            u8::try_from(sum * 3 % 10).ok()
        }
        [a, b, c, d, e] => {
            let sum = weighted(&WEIGHT_5_PLUS, a)
                + weighted(&WEIGHT_2_MINUS, b)
                + weighted(&WEIGHT_5_MINUS, c)
                + weighted(&WEIGHT_5_PLUS, d)
                + weighted(&WEIGHT_2_MINUS, e);
            let target = u8::try_from((10 - sum % 10) % 10).ok()?;
            // The check digit is the one whose "5-" weight completes the sum.
            WEIGHT_5_MINUS
                .iter()
                .position(|&w| w == target)
                .and_then(|p| u8::try_from(p).ok())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gs1::gtin::check_digit;
    use proptest::prelude::*;

    fn rcn(s: &str, region: RcnRegion) -> Rcn {
        parse_rcn(s, region).unwrap().unwrap()
    }

    #[test]
    fn price_check_digits_from_protocols_2_3() {
        assert_eq!(price_check_digit(&[2, 8, 7, 5]), Some(9));
        assert_eq!(price_check_digit(&[1, 2, 3, 4]), Some(9));
        assert_eq!(price_check_digit(&[1, 4, 6, 8, 5]), Some(6));
        assert_eq!(price_check_digit(&[0, 0, 0, 0]), Some(0));
        assert_eq!(price_check_digit(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(price_check_digit(&[1, 2, 3]), None);
    }

    #[test]
    fn weight_tables_follow_their_definitions() {
        // GS1 GS §7.9.3: multiply, then combine the product's units and tens.
        let rule = |factor: i32, combine: fn(i32, i32) -> i32| -> Vec<u8> {
            (0..10)
                .map(|d| {
                    let product = d * factor;
                    combine(product % 10, product / 10).rem_euclid(10) as u8
                })
                .collect()
        };
        assert_eq!(WEIGHT_2_MINUS.to_vec(), rule(2, |u, t| u - t));
        assert_eq!(WEIGHT_3.to_vec(), rule(3, |u, _| u));
        assert_eq!(WEIGHT_5_PLUS.to_vec(), rule(5, |u, t| u + t));
        assert_eq!(WEIGHT_5_MINUS.to_vec(), rule(5, |u, t| u - t));
    }

    #[test]
    fn norway_weights() {
        let r = rcn("2302148210869", RcnRegion::Norway);
        assert_eq!(r.measure, Measure::WeightGrams(1086));
        assert_eq!(r.item_key.as_str(), "02302148200006");
        let r = rcn("2368091402263", RcnRegion::Norway);
        assert_eq!(r.measure, Measure::WeightGrams(226));
    }

    #[test]
    fn sweden_prices_and_weight() {
        let r = rcn("2088060112343", RcnRegion::Sweden);
        let price = Measure::Price {
            minor_units: 1234,
            decimals: 2,
        };
        assert_eq!(r.measure, price);
        assert_eq!(r.item_key.as_str(), "02088060100005");
        assert_eq!(r.measure.price_minor_units(2), Some(Ok(1234)));
        let r = rcn("2188060112340", RcnRegion::Sweden);
        assert_eq!(r.measure.price_minor_units(2), Some(Ok(12340)));
        let r = rcn("2288060112347", RcnRegion::Sweden);
        assert_eq!(r.measure.price_minor_units(2), Some(Ok(123400)));
        let r = rcn("2388060112344", RcnRegion::Sweden);
        assert_eq!(r.measure, Measure::WeightGrams(1234));
        assert_eq!(r.measure.price_minor_units(2), None);
    }

    #[test]
    fn united_kingdom_price_and_bad_check() {
        let r = rcn("2011122912346", RcnRegion::UnitedKingdom);
        assert_eq!(r.measure.price_minor_units(2), Some(Ok(1234)));
        assert_eq!(r.item_key.as_str(), "02011122000005");
        let err = parse_rcn("2011122812349", RcnRegion::UnitedKingdom).unwrap_err();
        assert_eq!(
            err.to_string(),
            "variable-measure check digit: expected 9, got 8"
        );
    }

    #[test]
    fn germany_weight_with_5_digit_check() {
        // [X] built in the documented layout: item 281234, check 1, 1.234 kg.
        let body = "281234101234";
        let gtin = format!("{body}{}", check_digit(body).unwrap());
        let r = rcn(&gtin, RcnRegion::Germany);
        assert_eq!(r.measure, Measure::WeightGrams(1234));
        let key_body = "0281234000000";
        let key = format!("{key_body}{}", check_digit(key_body).unwrap());
        assert_eq!(r.item_key.as_str(), key);
        let bad = "281234201234";
        let bad = format!("{bad}{}", check_digit(bad).unwrap());
        assert!(parse_rcn(&bad, RcnRegion::Germany).is_err());
    }

    #[test]
    fn not_variable_measure_is_none() {
        assert_eq!(parse_rcn("2088060112343", RcnRegion::None), Ok(None));
        assert_eq!(parse_rcn("2088060112343", RcnRegion::Germany), Ok(None));
        assert_eq!(parse_rcn("5901234123457", RcnRegion::Sweden), Ok(None));
        assert_eq!(parse_rcn("80614141123458", RcnRegion::Sweden), Ok(None));
        assert!(parse_rcn("2088060112344", RcnRegion::Sweden).is_err());
    }

    #[test]
    fn region_names() {
        for name in ["se", "no", "de", "dk", "gb", "fi", "baltics", "none"] {
            let region: RcnRegion = name.parse().unwrap();
            assert_eq!(region.as_str(), name);
        }
        assert_eq!("SE".parse::<RcnRegion>(), Ok(RcnRegion::Sweden));
        assert_eq!(
            "uk".parse::<RcnRegion>().unwrap_err().to_string(),
            "unknown RCN region \"uk\"; valid names: se, no, de, dk, gb, fi, baltics, none"
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "([0-9]{0,15}|\\PC{0,15})", region in 0usize..8) {
            let regions = [RcnRegion::Sweden, RcnRegion::Norway, RcnRegion::Germany,
                RcnRegion::Denmark, RcnRegion::UnitedKingdom, RcnRegion::Finland,
                RcnRegion::Baltics, RcnRegion::None];
            let _ = parse_rcn(&s, regions[region]);
        }

        #[test]
        fn item_key_is_its_own_key(body in "2[0-9]{11}", region in 0usize..7) {
            let regions = [RcnRegion::Sweden, RcnRegion::Norway, RcnRegion::Germany,
                RcnRegion::Denmark, RcnRegion::UnitedKingdom, RcnRegion::Finland,
                RcnRegion::Baltics];
            let gtin = format!("{body}{}", check_digit(&body).unwrap());
            if let Ok(Some(r)) = parse_rcn(&gtin, regions[region]) {
                let again = parse_rcn(r.item_key.as_str(), regions[region]).unwrap().unwrap();
                prop_assert_eq!(&again.item_key, &r.item_key);
            }
        }
    }
}
