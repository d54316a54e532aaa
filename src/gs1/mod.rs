//! GS1 identifiers as they arrive from scanners and RFID readers.
//!
//! Everything here is pure: bytes or text in, typed values out, no I/O and no
//! clock. The submodules follow the path of a scan through the daemon:
//!
//! - [`symbology`]: split the AIM identifier (`]C1`, `]E0`, ...) off the data.
//! - [`gtin`]: GTIN check digits and the 14-digit [`gtin::Gtin14`] key.
//! - [`ai`]: GS1 element strings (`(01)...(10)...`) and GS1 Digital Link URIs.
//! - [`rcn`]: variable-measure EAN-13 (price/weight in the barcode), per region.
//! - [`epc`]: EPC Tag Data Standard binary decoding and encoding (RFID).
//! - [`scan`]: one scanned barcode into a [`scan::ScanContent`].
//! - [`explain`]: JSON explanation of a barcode or EPC for `storenode diag decode`.

pub mod ai;
pub mod epc;
pub mod explain;
pub mod gtin;
pub mod rcn;
pub mod scan;
pub mod symbology;

pub use ai::{
    Element, ElementString, parse_digital_link, parse_element_string, parse_human_readable,
};
pub use epc::{Epc, EpcPattern, SgtinScheme, decode_epc, decode_epc_hex};
pub use gtin::{Gtin14, check_digit};
pub use rcn::{Measure, Rcn, RcnRegion, parse_rcn};
pub use scan::{ScanContent, interpret};
pub use symbology::{Symbology, split_aim};

/// Every way GS1 input can be wrong. Positions are 1-based (the first
/// character is position 1) because these messages are read by technicians.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Gs1Error {
    #[error("empty input")]
    Empty,
    #[error("non-digit '{found}' at position {position}")]
    NonDigit { found: char, position: usize },
    #[error("character '{found}' at position {position} is not allowed (GS1 character set 82)")]
    InvalidCharacter { found: char, position: usize },
    #[error("GTIN length {0} is not 8, 12, 13 or 14")]
    GtinLength(usize),
    #[error("{what} check digit: expected {expected}, got {got}")]
    CheckDigit {
        what: &'static str,
        expected: u8,
        got: u8,
    },
    #[error("length {got} is not {}", length_range(*min, *max))]
    ValueLength { min: usize, max: usize, got: usize },
    #[error("invalid date {value}: {problem}")]
    InvalidDate {
        value: String,
        problem: &'static str,
    },
    #[error("invalid time {value}: {problem}")]
    InvalidTime {
        value: String,
        problem: &'static str,
    },
    #[error("unknown application identifier at position {position} (data \"{data}\")")]
    UnknownAi { position: usize, data: String },
    #[error("AI ({ai}) needs {expected} characters, only {got} before the end or a GS")]
    AiTruncated {
        ai: String,
        expected: usize,
        got: usize,
    },
    #[error("AI ({ai}) value \"{value}\": {problem}")]
    AiValue {
        ai: String,
        value: String,
        problem: Box<Gs1Error>,
    },
    #[error("AI ({ai}) appears twice with different values \"{first}\" and \"{second}\"")]
    ConflictingAi {
        ai: String,
        first: String,
        second: String,
    },
    #[error("not in the (AI)value form: {0}")]
    HumanReadable(&'static str),
    #[error("not a GS1 Digital Link URI: {0}")]
    NotDigitalLink(&'static str),
    #[error("bad percent-encoding in \"{0}\"")]
    PercentEncoding(String),
    #[error(
        "amount {mantissa} with {decimals} decimals cannot be expressed in minor units of a currency with {exponent} decimals"
    )]
    SubMinorAmount {
        mantissa: i64,
        decimals: u8,
        exponent: u8,
    },
    #[error("amount {mantissa} with {decimals} decimals overflows minor units")]
    AmountOverflow { mantissa: i64, decimals: u8 },
    #[error("unknown RCN region \"{0}\"; valid names: se, no, de, dk, gb, fi, baltics, none")]
    UnknownRegion(String),
    #[error("invalid hex: {0}")]
    Hex(#[from] hex::FromHexError),
    #[error("EPC filter {0} is not in 0-7")]
    EpcFilter(u8),
    #[error("EPC company prefix must have 6 to 12 digits, got {0}")]
    EpcCompanyPrefixLength(usize),
    #[error(
        "EPC {field} must have {expected} digits with a {prefix_digits}-digit company prefix, got {got}"
    )]
    EpcFieldLength {
        field: &'static str,
        expected: usize,
        prefix_digits: usize,
        got: usize,
    },
    #[error("EPC {field} {value} does not fit in {bits} bits")]
    EpcFieldTooLarge {
        field: &'static str,
        value: String,
        bits: u32,
    },
    #[error("EPC {field} \"{value}\" must not have leading zeros")]
    EpcLeadingZero { field: &'static str, value: String },
    #[error("EPC {field} must have 1 to {max} characters, got {got}")]
    EpcSerialLength {
        field: &'static str,
        max: usize,
        got: usize,
    },
}

/// Converts `mantissa` × 10^-`decimals` (major units) to integer minor units
/// of a currency with `exponent` decimals, refusing to round: money is exact.
pub fn decimal_to_minor_units(mantissa: i64, decimals: u8, exponent: u8) -> Result<i64, Gs1Error> {
    let overflow = Gs1Error::AmountOverflow { mantissa, decimals };
    if decimals <= exponent {
        let factor = 10i64
            .checked_pow(u32::from(exponent - decimals))
            .ok_or(overflow.clone())?;
        mantissa.checked_mul(factor).ok_or(overflow)
    } else {
        let divisor = 10i64
            .checked_pow(u32::from(decimals - exponent))
            .ok_or(overflow)?;
        if mantissa % divisor != 0 {
            return Err(Gs1Error::SubMinorAmount {
                mantissa,
                decimals,
                exponent,
            });
        }
        Ok(mantissa / divisor)
    }
}

fn length_range(min: usize, max: usize) -> String {
    if min == max {
        min.to_string()
    } else {
        format!("{min} to {max}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        let e = Gs1Error::CheckDigit {
            what: "GTIN",
            expected: 7,
            got: 3,
        };
        assert_eq!(e.to_string(), "GTIN check digit: expected 7, got 3");
        assert_eq!(
            Gs1Error::GtinLength(11).to_string(),
            "GTIN length 11 is not 8, 12, 13 or 14"
        );
        let e = Gs1Error::NonDigit {
            found: 'x',
            position: 3,
        };
        assert_eq!(e.to_string(), "non-digit 'x' at position 3");
        let e = Gs1Error::ValueLength {
            min: 1,
            max: 20,
            got: 0,
        };
        assert_eq!(e.to_string(), "length 0 is not 1 to 20");
    }

    #[test]
    fn minor_units_are_exact() {
        assert_eq!(decimal_to_minor_units(123, 1, 2), Ok(1230));
        assert_eq!(decimal_to_minor_units(1230, 2, 2), Ok(1230));
        assert_eq!(decimal_to_minor_units(12300, 3, 2), Ok(1230));
        assert_eq!(
            decimal_to_minor_units(1234, 2, 0).unwrap_err().to_string(),
            "amount 1234 with 2 decimals cannot be expressed in minor units of a currency with 0 decimals"
        );
        assert!(decimal_to_minor_units(i64::MAX, 0, 2).is_err());
        assert!(decimal_to_minor_units(1, 0, 200).is_err());
    }
}
