//! GTIN check digits and the normalised 14-digit GTIN.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Gs1Error;

/// Mod-10 check digit of `body` (all digits except the check digit), as used by
/// GTIN-8/12/13/14, SSCC, GLN and GSIN: weights 3,1,3,1... from the right.
pub fn check_digit(body: &str) -> Result<u8, Gs1Error> {
    let digits = digit_values(body)?;
    if digits.is_empty() {
        return Err(Gs1Error::Empty);
    }
    Ok(check_digit_of(&digits))
}

/// Check digit of already validated digit values (0-9).
pub(super) fn check_digit_of(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    // (10 - sum mod 10) mod 10 always fits a u8.
    ((10 - sum % 10) % 10) as u8
}

/// Digit values of `s`, or the first non-digit with its 1-based position.
pub(super) fn digit_values(s: &str) -> Result<Vec<u8>, Gs1Error> {
    s.chars()
        .enumerate()
        .map(|(i, c)| match c.to_digit(10) {
            // to_digit(10) accepts only ASCII '0'..='9', so the cast is lossless.
            Some(d) => Ok(d as u8),
            _ => Err(Gs1Error::NonDigit {
                found: c,
                position: i + 1,
            }),
        })
        .collect()
}

/// Verifies that the last digit of `number` is its check digit.
/// `what` names the identifier in the error ("GTIN", "SSCC", "GLN").
pub(super) fn verify_check_digit(number: &str, what: &'static str) -> Result<(), Gs1Error> {
    let digits = digit_values(number)?;
    let Some((&got, body)) = digits.split_last() else {
        return Err(Gs1Error::Empty);
    };
    let expected = check_digit_of(body);
    if expected == got {
        Ok(())
    } else {
        Err(Gs1Error::CheckDigit {
            what,
            expected,
            got,
        })
    }
}

/// A GTIN normalised to 14 digits (GTIN-8/12/13 left-padded with zeros), with a
/// verified check digit. This is the catalogue key for trade items.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Gtin14(#[serde(deserialize_with = "deserialize_gtin")] String);

impl Gtin14 {
    /// Parses a GTIN-8, -12, -13 or -14 and verifies its check digit.
    pub fn parse(s: &str) -> Result<Gtin14, Gs1Error> {
        let digits = digit_values(s)?;
        if ![8, 12, 13, 14].contains(&digits.len()) {
            return Err(Gs1Error::GtinLength(digits.len()));
        }
        verify_check_digit(s, "GTIN")?;
        Ok(Gtin14(format!("{s:0>14}")))
    }

    /// Builds a GTIN-14 from 13 body digits by appending the check digit.
    pub(super) fn from_body(body: &str) -> Result<Gtin14, Gs1Error> {
        if body.len() != 13 {
            return Err(Gs1Error::GtinLength(body.len() + 1));
        }
        let check = check_digit(body)?;
        Ok(Gtin14(format!("{body}{check}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The GTIN-13 form (EAN-13) if the indicator digit is 0.
    pub fn as_gtin13(&self) -> Option<&str> {
        self.0.strip_prefix('0')
    }
}

impl fmt::Display for Gtin14 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Gtin14 {
    type Err = Gs1Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Gtin14::parse(s)
    }
}

// Deserialising goes through `parse` so a stored GTIN is always valid.
fn deserialize_gtin<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = String::deserialize(d)?;
    Gtin14::parse(&raw)
        .map(|g| g.0)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn check_digits_from_protocols_2_1() {
        assert_eq!(check_digit("950110153100"), Ok(0));
        assert_eq!(check_digit("9501234"), Ok(6));
        assert_eq!(check_digit("8061414112345"), Ok(8));
        assert_eq!(check_digit("10614141234567890"), Ok(8));
    }

    #[test]
    fn check_digit_rejects_bad_input() {
        assert_eq!(check_digit(""), Err(Gs1Error::Empty));
        assert_eq!(
            check_digit("12x4"),
            Err(Gs1Error::NonDigit {
                found: 'x',
                position: 3
            })
        );
        // Non-ASCII digits are not GS1 digits.
        assert!(check_digit("١٢٣").is_err());
    }

    #[test]
    fn parse_pads_all_lengths() {
        assert_eq!(
            Gtin14::parse("9501101531000").unwrap().as_str(),
            "09501101531000"
        );
        assert_eq!(
            Gtin14::parse("95012346").unwrap().as_str(),
            "00000095012346"
        );
        assert_eq!(
            Gtin14::parse("614141123452").unwrap().as_str(),
            "00614141123452"
        );
        assert_eq!(
            Gtin14::parse("80614141123458").unwrap().to_string(),
            "80614141123458"
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert_eq!(
            Gtin14::parse("9501101531003").unwrap_err().to_string(),
            "GTIN check digit: expected 0, got 3"
        );
        assert_eq!(
            Gtin14::parse("12345678901").unwrap_err().to_string(),
            "GTIN length 11 is not 8, 12, 13 or 14"
        );
        assert_eq!(
            Gtin14::parse("95x1101531000").unwrap_err().to_string(),
            "non-digit 'x' at position 3"
        );
    }

    #[test]
    fn gtin13_view_and_serde() {
        let g = Gtin14::parse("5901234123457").unwrap();
        assert_eq!(g.as_gtin13(), Some("5901234123457"));
        assert_eq!(serde_json::to_string(&g).unwrap(), "\"05901234123457\"");
        let back: Gtin14 = serde_json::from_str("\"5901234123457\"").unwrap();
        assert_eq!(back, g);
        assert!(serde_json::from_str::<Gtin14>("\"5901234123458\"").is_err());
        assert_eq!(Gtin14::parse("80614141123458").unwrap().as_gtin13(), None);
    }

    proptest! {
        #[test]
        fn appended_check_digit_always_parses(body in "[0-9]{13}") {
            let check = check_digit(&body).unwrap();
            let gtin = Gtin14::parse(&format!("{body}{check}")).unwrap();
            prop_assert_eq!(gtin.as_str(), format!("{body}{check}"));
        }

        #[test]
        fn wrong_check_digit_is_rejected(body in "[0-9]{12}", delta in 1u8..10) {
            let check = check_digit(&body).unwrap();
            let wrong = (check + delta) % 10;
            let is_check_digit_error = matches!(
                Gtin14::parse(&format!("{body}{wrong}")),
                Err(Gs1Error::CheckDigit { .. })
            );
            prop_assert!(is_check_digit_error);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = Gtin14::parse(&s);
            let _ = check_digit(&s);
        }
    }
}
