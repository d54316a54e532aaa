//! Which non-SGTIN tags an item accepts on its sale line.
//!
//! An SGTIN names its product (the GTIN), so it is checked against the item's GTINs. A GIAI
//! (an individual asset) or an SSCC (a logistic unit) names no product: a store that tags,
//! say, rental gear with GIAIs configures per item which ones belong to it, as a prefix of
//! the EPC pure identity URI: the scheme, the company prefix (a whole component, ended by
//! `.`), then optionally the start of the asset or serial reference:
//!
//! ```text
//! urn:epc:id:giai:0614141.            every GIAI of company 0614141
//! urn:epc:id:giai:0614141.12          its assets whose reference starts with "12"
//! urn:epc:id:sscc:0614141.            every SSCC of company 0614141
//! ```

use std::fmt;

use super::Epc;

/// Longest pattern accepted (bytes).
pub const MAX_PATTERN_LEN: usize = 80;

/// The URI heads of the schemes a pattern may name.
const SCHEMES: [&str; 2] = ["urn:epc:id:giai:", "urn:epc:id:sscc:"];

/// A validated EPC pattern (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpcPattern(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("SGTIN tags are checked against the item's GTINs; a pattern names GIAI or SSCC tags")]
    Sgtin,
    #[error("must start with urn:epc:id:giai: or urn:epc:id:sscc:")]
    Scheme,
    #[error("needs the company prefix (6 to 12 digits) followed by '.'")]
    CompanyPrefix,
    #[error("the reference part may hold only printable ASCII without spaces")]
    Reference,
    #[error("longer than {MAX_PATTERN_LEN} characters")]
    TooLong,
}

impl EpcPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        if text.starts_with("urn:epc:id:sgtin:") {
            return Err(PatternError::Sgtin);
        }
        let rest = SCHEMES
            .iter()
            .find_map(|head| text.strip_prefix(head))
            .ok_or(PatternError::Scheme)?;
        let (company, reference) = rest.split_once('.').ok_or(PatternError::CompanyPrefix)?;
        let digits = company.bytes().all(|b| b.is_ascii_digit());
        if !digits || !(6..=12).contains(&company.len()) {
            return Err(PatternError::CompanyPrefix);
        }
        if !reference.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PatternError::Reference);
        }
        Ok(Self(text.to_owned()))
    }

    /// Whether `epc` is a GIAI or SSCC this pattern names.
    pub fn matches(&self, epc: &Epc) -> bool {
        matches!(epc, Epc::Giai { .. } | Epc::Sscc { .. })
            && epc
                .pure_identity_uri()
                .is_some_and(|uri| uri.starts_with(&self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EpcPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{encode_giai96, encode_sgtin96, encode_sscc96};
    use super::*;
    use crate::gs1::decode_epc;

    fn giai(company: &str, asset: &str) -> Epc {
        decode_epc(&encode_giai96(1, company, asset).unwrap())
    }

    #[test]
    fn a_giai_pattern_names_a_company_and_optionally_the_start_of_the_asset_reference() {
        let company = EpcPattern::parse("urn:epc:id:giai:0614141.").unwrap();
        let bikes = EpcPattern::parse("urn:epc:id:giai:0614141.12").unwrap();
        assert!(company.matches(&giai("0614141", "12345")));
        assert!(bikes.matches(&giai("0614141", "12345")));
        assert!(!bikes.matches(&giai("0614141", "99")));
        // The company prefix is a whole component: 061414 is not 0614141.
        let shorter = EpcPattern::parse("urn:epc:id:giai:061414.").unwrap();
        assert!(!shorter.matches(&giai("0614141", "12345")));
        assert!(!company.matches(&giai("0614142", "12345")));
    }

    #[test]
    fn a_pattern_matches_only_its_scheme_and_never_an_sgtin_or_unknown_tag() {
        let sscc = EpcPattern::parse("urn:epc:id:sscc:0614141.").unwrap();
        let unit = decode_epc(&encode_sscc96(0, "0614141", "1234567890").unwrap());
        assert!(sscc.matches(&unit));
        assert!(!sscc.matches(&giai("0614141", "1")));
        let giai_pattern = EpcPattern::parse("urn:epc:id:giai:0614141.").unwrap();
        assert!(!giai_pattern.matches(&unit));
        let sgtin = decode_epc(&encode_sgtin96(1, "0614141", "812345", 6789).unwrap());
        assert!(!giai_pattern.matches(&sgtin));
        assert!(!giai_pattern.matches(&decode_epc(&[0xE2, 0, 0, 0])));
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_reason() {
        let refused = |text: &str| EpcPattern::parse(text).unwrap_err();
        assert_eq!(
            refused("urn:epc:id:sgtin:0614141.812345."),
            PatternError::Sgtin
        );
        assert_eq!(refused("giai:0614141."), PatternError::Scheme);
        assert_eq!(
            refused("urn:epc:id:giai:0614141"),
            PatternError::CompanyPrefix
        );
        assert_eq!(
            refused("urn:epc:id:giai:06141A1."),
            PatternError::CompanyPrefix
        );
        assert_eq!(
            refused("urn:epc:id:giai:12345."),
            PatternError::CompanyPrefix
        );
        assert_eq!(
            refused("urn:epc:id:giai:0614141.A B"),
            PatternError::Reference
        );
        assert_eq!(
            refused(&format!("urn:epc:id:giai:0614141.{}", "x".repeat(80))),
            PatternError::TooLong
        );
    }
}
