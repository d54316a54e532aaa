//! GS1 element strings: Application Identifiers (AIs) and their values.
//!
//! Input is the data after the symbology identifier, with FNC1 separators
//! already turned into GS (0x1D) by the scanner.

mod digital_link;
mod spec;

use std::fmt;

use serde::Serialize;

pub use digital_link::parse_digital_link;
pub(crate) use spec::is_cset82;

use super::Gs1Error;
use super::gtin::Gtin14;
use spec::{Meaning, has_predefined_length, spec_for};

/// The GS control character that stands for FNC1 as a field separator.
pub const GS: char = '\u{1d}';

/// One AI and its value, e.g. `("10", "0329")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Element {
    pub ai: String,
    pub value: String,
}

/// A parsed and validated GS1 element string, in the order of the input.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ElementString {
    pub elements: Vec<Element>,
}

/// A price from AI 392n/393n in integer minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Price {
    /// Amount in minor units of the currency (cents, öre, yen).
    pub minor_units: i64,
    /// Decimals of the currency's minor unit (2 for EUR, 0 for JPY).
    pub exponent: u8,
    /// ISO 4217 numeric currency code; only 393n carries one.
    pub currency: Option<u16>,
}

/// A calendar date from a YYMMDD AI, with day 00 resolved to the last day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GsDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// Parses a GS1 element string such as `0107032069804988100329<GS>15210526`.
/// Leading, redundant and trailing GS characters are ignored.
pub fn parse_element_string(s: &str) -> Result<ElementString, Gs1Error> {
    // Positions below are byte offsets, which equal character positions once
    // the input is known to be ASCII.
    if let Some((i, found)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
        return Err(Gs1Error::InvalidCharacter {
            found,
            position: i + 1,
        });
    }
    let mut parsed = ElementString::default();
    let mut pos = 0;
    while let Some(start) = next_non_gs(s, pos) {
        let rest = s.get(start..).unwrap_or_default();
        let (ai, spec) = spec::match_ai(rest).ok_or_else(|| Gs1Error::UnknownAi {
            position: start + 1,
            data: show_gs(&rest.chars().take(10).collect::<String>()),
        })?;
        let after = rest.get(ai.len()..).unwrap_or_default();
        let until_gs = after.find(GS).unwrap_or(after.len());
        let value_len = if has_predefined_length(ai) {
            // Predefined-length AIs take exactly their length, GS or not.
            let needed = spec.max_len();
            if until_gs < needed {
                return Err(Gs1Error::AiTruncated {
                    ai: ai.to_string(),
                    expected: needed,
                    got: until_gs,
                });
            }
            needed
        } else {
            until_gs.min(spec.max_len())
        };
        let value = after.get(..value_len).unwrap_or_default();
        spec::validate(&spec, value).map_err(|problem| Gs1Error::AiValue {
            ai: ai.to_string(),
            value: value.to_string(),
            problem: Box::new(problem),
        })?;
        parsed.push(ai, value)?;
        pos = start + ai.len() + value_len;
    }
    if parsed.elements.is_empty() {
        return Err(Gs1Error::Empty);
    }
    Ok(parsed)
}

/// Parses the human-readable interpretation printed under a barcode,
/// `(01)07032069804988(10)0329`, as typed by a technician. Values cannot
/// contain parentheses in this form.
pub fn parse_human_readable(s: &str) -> Result<ElementString, Gs1Error> {
    let body = s
        .trim()
        .strip_prefix('(')
        .ok_or(Gs1Error::HumanReadable("must start with '('"))?;
    let mut parsed = ElementString::default();
    for field in body.split('(') {
        let (ai, value) = field
            .split_once(')')
            .ok_or(Gs1Error::HumanReadable("'(' without a closing ')'"))?;
        parsed.push_validated(ai, value)?;
    }
    Ok(parsed)
}

fn next_non_gs(s: &str, from: usize) -> Option<usize> {
    s.get(from..)?.find(|c| c != GS).map(|i| from + i)
}

/// Renders GS as `<GS>` so error messages stay printable.
pub(super) fn show_gs(s: &str) -> String {
    s.replace(GS, "<GS>")
}

impl ElementString {
    /// Adds an element, ignoring an exact repeat and rejecting a conflict.
    fn push(&mut self, ai: &str, value: &str) -> Result<(), Gs1Error> {
        if let Some(existing) = self.get(ai) {
            if existing == value {
                return Ok(());
            }
            return Err(Gs1Error::ConflictingAi {
                ai: ai.to_string(),
                first: existing.to_string(),
                second: value.to_string(),
            });
        }
        self.elements.push(Element {
            ai: ai.to_string(),
            value: value.to_string(),
        });
        Ok(())
    }

    /// Validates and adds an element given as separate AI and value (Digital
    /// Link path segments and query parameters).
    fn push_validated(&mut self, ai: &str, value: &str) -> Result<(), Gs1Error> {
        let spec = spec_for(ai).ok_or_else(|| Gs1Error::UnknownAi {
            position: 1,
            data: ai.to_string(),
        })?;
        spec::validate(&spec, value).map_err(|problem| Gs1Error::AiValue {
            ai: ai.to_string(),
            value: value.to_string(),
            problem: Box::new(problem),
        })?;
        self.push(ai, value)
    }

    /// Value of the first element with this AI.
    pub fn get(&self, ai: &str) -> Option<&str> {
        self.elements
            .iter()
            .find(|e| e.ai == ai)
            .map(|e| e.value.as_str())
    }

    /// The trade item GTIN from AI (01).
    pub fn gtin(&self) -> Option<Gtin14> {
        self.get("01").and_then(|v| Gtin14::parse(v).ok())
    }

    /// A decimal AI (31nn-36nn measures, 392n, 393n) as `(mantissa, decimals)`:
    /// `3102001250` gives `(1250, 2)`, i.e. 12.50.
    pub fn decimal(&self, ai: &str) -> Option<(i64, u8)> {
        let spec = spec_for(ai)?;
        let value = self.get(ai)?;
        let amount = match spec.meaning {
            Meaning::Decimal => value,
            Meaning::CurrencyDecimal => value.get(3..)?,
            Meaning::Plain => return None,
        };
        let decimals = ai.bytes().last()?.checked_sub(b'0')?;
        Some((amount.parse().ok()?, decimals))
    }

    /// The price of the first 392n/393n element in minor units. 392n has no
    /// currency in the data, so it is read in the store's currency, whose
    /// minor-unit exponent the caller gives; 393n names its currency and is
    /// read with that currency's exponent.
    pub fn price(&self, local_currency_exponent: u8) -> Result<Option<Price>, Gs1Error> {
        let Some(element) = self.elements.iter().find(|e| is_price_ai(&e.ai)) else {
            return Ok(None);
        };
        let Some((mantissa, decimals)) = self.decimal(&element.ai) else {
            return Ok(None);
        };
        let currency = if element.ai.starts_with("393") {
            element.value.get(..3).and_then(|c| c.parse::<u16>().ok())
        } else {
            None
        };
        let exponent = currency.map_or(local_currency_exponent, iso4217_exponent);
        let minor_units = super::decimal_to_minor_units(mantissa, decimals, exponent)?;
        Ok(Some(Price {
            minor_units,
            exponent,
            currency,
        }))
    }

    /// A date AI (11-17, or the date part of 7003) as a calendar date. GS1 GS
    /// §7.12 picks the century relative to `reference_year` (normally this
    /// year): up to 50 years ahead, otherwise up to 49 years back.
    pub fn date(&self, ai: &str, reference_year: u16) -> Option<GsDate> {
        if !matches!(ai, "11" | "12" | "13" | "15" | "16" | "17" | "7003") {
            return None;
        }
        let (yy, month, day) = spec::split_date(self.get(ai)?.get(..6)?)?;
        let year = resolve_century(yy, reference_year);
        let day = if day == 0 {
            spec::days_in_month(year, month)
        } else {
            day
        };
        Some(GsDate { year, month, day })
    }

    /// The element string as a scanner would send it: GS after every AI
    /// that is not of predefined length, except the last.
    pub fn to_data(&self) -> String {
        let mut out = String::new();
        for (i, e) in self.elements.iter().enumerate() {
            out.push_str(&e.ai);
            out.push_str(&e.value);
            let is_last = i + 1 == self.elements.len();
            if !is_last && !has_predefined_length(&e.ai) {
                out.push(GS);
            }
        }
        out
    }
}

/// Human-readable form: `(01)07032069804988(10)0329`.
impl fmt::Display for ElementString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.elements
            .iter()
            .try_for_each(|e| write!(f, "({}){}", e.ai, e.value))
    }
}

fn is_price_ai(ai: &str) -> bool {
    ai.len() == 4 && (ai.starts_with("392") || ai.starts_with("393"))
}

fn resolve_century(yy: u8, reference_year: u16) -> u16 {
    let century = reference_year - reference_year % 100;
    let diff = i32::from(yy) - i32::from(reference_year % 100);
    let year = i32::from(century) + i32::from(yy);
    let year = if diff > 50 {
        year - 100
    } else if diff <= -50 {
        year + 100
    } else {
        year
    };
    u16::try_from(year).unwrap_or(0)
}

/// Minor-unit exponent of an ISO 4217 numeric currency code. Only the
/// currencies that differ from the usual 2 are listed.
fn iso4217_exponent(code: u16) -> u8 {
    match code {
        // BIF, CLP, DJF, GNF, ISK, JPY, KMF, KRW, PYG, RWF, UGX, VND, VUV, XAF, XOF, XPF
        108 | 152 | 262 | 324 | 352 | 392 | 174 | 410 | 600 | 646 | 800 | 704 | 548 | 950 | 952
        | 953 => 0,
        // BHD, IQD, JOD, KWD, LYD, OMR, TND
        48 | 368 | 400 | 414 | 434 | 512 | 788 => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests;
