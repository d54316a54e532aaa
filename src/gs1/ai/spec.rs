//! The supported part of the GS1 AI syntax dictionary and value validation.
//!
//! Source: GS1's `gs1-syntax-dictionary.txt` (formats, check digits, date
//! linters) and GS1 GS §5.10.1 (the predefined-length table: which AIs can be
//! followed by the next AI without an FNC1/GS separator).

use super::super::Gs1Error;
use super::super::gtin::{digit_values, verify_check_digit};

/// What characters a part of a value may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Charset {
    Digits,
    /// GS1 AI encodable character set 82.
    Cset82,
}

/// Content rule of a part beyond its character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    Plain,
    /// Last digit is a mod-10 check digit; the text names the key.
    CheckDigit(&'static str),
    /// YYMMDD; `day_zero` allows DD = 00 ("last day of the month").
    Date {
        day_zero: bool,
    },
    /// YYMMDDHH.
    DateHour,
    /// HHMM.
    HourMinute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Part {
    pub charset: Charset,
    pub min: usize,
    pub max: usize,
    pub rule: Rule,
}

/// How the value of an AI is interpreted beyond validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Meaning {
    Plain,
    /// The 4th AI digit is the number of decimals (310n, 392n).
    Decimal,
    /// N3 ISO 4217 currency, then a decimal amount (393n).
    CurrencyDecimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AiSpec {
    pub parts: &'static [Part],
    pub meaning: Meaning,
}

impl AiSpec {
    pub fn max_len(&self) -> usize {
        self.parts.iter().map(|p| p.max).sum()
    }
}

const fn n(len: usize, rule: Rule) -> Part {
    Part {
        charset: Charset::Digits,
        min: len,
        max: len,
        rule,
    }
}

const fn n_var(min: usize, max: usize) -> Part {
    Part {
        charset: Charset::Digits,
        min,
        max,
        rule: Rule::Plain,
    }
}

const fn x_var(min: usize, max: usize) -> Part {
    Part {
        charset: Charset::Cset82,
        min,
        max,
        rule: Rule::Plain,
    }
}

const fn plain(parts: &'static [Part]) -> AiSpec {
    AiSpec {
        parts,
        meaning: Meaning::Plain,
    }
}

const SSCC: AiSpec = plain(&[n(18, Rule::CheckDigit("SSCC"))]);
const GTIN: AiSpec = plain(&[n(14, Rule::CheckDigit("GTIN"))]);
const GLN: AiSpec = plain(&[n(13, Rule::CheckDigit("GLN"))]);
const GSIN: AiSpec = plain(&[n(17, Rule::CheckDigit("GSIN"))]);
/// GSRN (8017 provider, 8018 recipient: a loyalty card names its member with 8018 or 8017).
const GSRN: AiSpec = plain(&[n(18, Rule::CheckDigit("GSRN"))]);
const DATE: AiSpec = plain(&[n(6, Rule::Date { day_zero: true })]);
const N2: AiSpec = plain(&[n(2, Rule::Plain)]);
const N3: AiSpec = plain(&[n(3, Rule::Plain)]);
const N6: AiSpec = plain(&[n(6, Rule::Plain)]);
const N_TO_8: AiSpec = plain(&[n_var(1, 8)]);
const X_TO_20: AiSpec = plain(&[x_var(1, 20)]);
const X_TO_30: AiSpec = plain(&[x_var(1, 30)]);
const X_TO_90: AiSpec = plain(&[x_var(1, 90)]);
const GDTI: AiSpec = plain(&[n(13, Rule::CheckDigit("GDTI")), x_var(0, 17)]);
const SHIP_TO_POST_ISO: AiSpec = plain(&[n(3, Rule::Plain), x_var(1, 9)]);
const EXPIRY_TIME: AiSpec = plain(&[n(6, Rule::Date { day_zero: false }), n(4, Rule::HourMinute)]);
const PROD_TIME: AiSpec = plain(&[n(8, Rule::DateHour), n_var(0, 4)]);
const MEASURE: AiSpec = AiSpec {
    parts: &[n(6, Rule::Plain)],
    meaning: Meaning::Decimal,
};
const PRICE: AiSpec = AiSpec {
    parts: &[n_var(1, 15)],
    meaning: Meaning::Decimal,
};
const PRICE_WITH_CURRENCY: AiSpec = AiSpec {
    parts: &[n(3, Rule::Plain), n_var(1, 15)],
    meaning: Meaning::CurrencyDecimal,
};

/// First two digits of the AIs that have a predefined length and therefore
/// need no FNC1 after them (GS1 GS §5.10.1). Everything else needs one, even
/// when its length is fixed (7003, 8008).
const PREDEFINED_LENGTH_PREFIXES: [&str; 22] = [
    "00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20", "31",
    "32", "33", "34", "35", "36", "41",
];

/// Whether the next AI may follow this one without a GS separator.
pub(super) fn has_predefined_length(ai: &str) -> bool {
    ai.get(..2)
        .is_some_and(|prefix| PREDEFINED_LENGTH_PREFIXES.contains(&prefix))
}

/// The spec of AI `ai` (2 to 4 digits), if supported.
pub(super) fn spec_for(ai: &str) -> Option<AiSpec> {
    if !ai.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = ai.parse().ok()?;
    let spec = match (ai.len(), code) {
        (2, 0) => SSCC,
        (2, 1 | 2) => GTIN,
        (2, 10 | 21 | 22) => X_TO_20,
        (2, 11..=13 | 15..=17) => DATE,
        (2, 20) => N2,
        (2, 30 | 37) => N_TO_8,
        (2, 90) => X_TO_30,
        (2, 91..=99) => X_TO_90,
        (3, 240 | 241 | 250 | 251 | 400 | 401) => X_TO_30,
        (3, 253) => GDTI,
        (3, 254 | 420) => X_TO_20,
        (3, 402) => GSIN,
        (3, 410..=417) => GLN,
        (3, 421) => SHIP_TO_POST_ISO,
        (3, 422) => N3,
        (4, 3100..=3699) if is_measure_ai(code) => MEASURE,
        (4, 3920..=3929) => PRICE,
        (4, 3930..=3939) => PRICE_WITH_CURRENCY,
        (4, 7003) => EXPIRY_TIME,
        (4, 8004) => X_TO_30,
        (4, 8005) => N6,
        (4, 8008) => PROD_TIME,
        (4, 8017 | 8018) => GSRN,
        _ => return None,
    };
    Some(spec)
}

/// 31nn-36nn trade/logistic measures: the dictionary defines n = 0..5 decimals
/// for the groups 310-316, 320-337, 340-357 and 360-369.
fn is_measure_ai(code: u16) -> bool {
    let group = code / 10;
    let decimals = code % 10;
    let defined_group = matches!(group, 310..=316 | 320..=337 | 340..=357 | 360..=369);
    defined_group && decimals <= 5
}

/// Finds the AI at the start of `data`. GS1 AIs are prefix-free, so the first
/// length that matches is the only one.
pub(super) fn match_ai(data: &str) -> Option<(&str, AiSpec)> {
    (2..=4).find_map(|len| {
        let ai = data.get(..len)?;
        spec_for(ai).map(|spec| (ai, spec))
    })
}

/// Validates `value` against `spec`. Errors carry 1-based positions inside
/// the value; the caller wraps them with the AI.
pub(super) fn validate(spec: &AiSpec, value: &str) -> Result<(), Gs1Error> {
    // Everything below slices by byte, which is only sound on ASCII.
    if let Some((i, found)) = value.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
        return Err(Gs1Error::InvalidCharacter {
            found,
            position: i + 1,
        });
    }
    let total_min: usize = spec.parts.iter().map(|p| p.min).sum();
    if value.len() < total_min || value.len() > spec.max_len() {
        return Err(Gs1Error::ValueLength {
            min: total_min,
            max: spec.max_len(),
            got: value.len(),
        });
    }
    let mut offset = 0;
    for (index, part) in spec.parts.iter().enumerate() {
        let is_last = index + 1 == spec.parts.len();
        let rest = value.get(offset..).unwrap_or_default();
        let take = if is_last {
            rest.len()
        } else {
            part.max.min(rest.len())
        };
        let piece = rest.get(..take).unwrap_or_default();
        validate_part(part, piece, offset)?;
        offset += take;
    }
    Ok(())
}

fn validate_part(part: &Part, piece: &str, offset: usize) -> Result<(), Gs1Error> {
    if piece.len() < part.min || piece.len() > part.max {
        return Err(Gs1Error::ValueLength {
            min: part.min,
            max: part.max,
            got: piece.len(),
        });
    }
    check_charset(part.charset, piece, offset)?;
    match part.rule {
        Rule::Plain => Ok(()),
        Rule::CheckDigit(what) => verify_check_digit(piece, what),
        Rule::Date { day_zero } => validate_date(piece, day_zero),
        Rule::DateHour => {
            let (date, hour) = piece.split_at(6.min(piece.len()));
            validate_date(date, false)?;
            validate_clock(hour, 23, "hour above 23")
        }
        Rule::HourMinute => {
            let (hour, minute) = piece.split_at(2.min(piece.len()));
            validate_clock(hour, 23, "hour above 23")?;
            validate_clock(minute, 59, "minute above 59")
        }
    }
}

fn check_charset(charset: Charset, piece: &str, offset: usize) -> Result<(), Gs1Error> {
    let allowed = match charset {
        Charset::Digits => |c: char| c.is_ascii_digit(),
        Charset::Cset82 => is_cset82,
    };
    match piece.chars().enumerate().find(|&(_, c)| !allowed(c)) {
        None => Ok(()),
        Some((i, found)) if charset == Charset::Digits => Err(Gs1Error::NonDigit {
            found,
            position: offset + i + 1,
        }),
        Some((i, found)) => Err(Gs1Error::InvalidCharacter {
            found,
            position: offset + i + 1,
        }),
    }
}

/// GS1 AI encodable character set 82 (GS1 GS §7.11, figure 7.11-1).
pub(crate) fn is_cset82(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!\"%&'()*+,-./:;<=>?_".contains(c)
}

fn validate_clock(digits: &str, max: u32, problem: &'static str) -> Result<(), Gs1Error> {
    match digits.parse::<u32>() {
        Ok(v) if v <= max => Ok(()),
        _ => Err(Gs1Error::InvalidTime {
            value: digits.to_string(),
            problem,
        }),
    }
}

/// A YYMMDD date split into numbers, day 0 kept as 0.
pub(super) fn split_date(value: &str) -> Option<(u8, u8, u8)> {
    let digits = digit_values(value).ok()?;
    match digits.as_slice() {
        [y1, y2, m1, m2, d1, d2] => Some((y1 * 10 + y2, m1 * 10 + m2, d1 * 10 + d2)),
        _ => None,
    }
}

fn validate_date(value: &str, day_zero: bool) -> Result<(), Gs1Error> {
    let bad = |problem| Gs1Error::InvalidDate {
        value: value.to_string(),
        problem,
    };
    let (yy, month, day) = split_date(value).ok_or_else(|| bad("not six digits YYMMDD"))?;
    if !(1..=12).contains(&month) {
        return Err(bad("month is not 01-12"));
    }
    if day == 0 && !day_zero {
        return Err(bad("day 00 is not allowed here"));
    }
    // The century is unknown without a clock; every YY%4==0 year from 2000 to
    // 2099 is a leap year, which is the window that matters.
    if day > days_in_month(2000 + u16::from(yy), month) {
        return Err(bad("day is past the end of the month"));
    }
    Ok(())
}

pub(super) fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_supported_ais() -> Vec<String> {
        let two = (0..100).map(|c| format!("{c:02}"));
        let three = (0..1000).map(|c| format!("{c:03}"));
        let four = (0..10000).map(|c| format!("{c:04}"));
        two.chain(three)
            .chain(four)
            .filter(|ai| spec_for(ai).is_some())
            .collect()
    }

    #[test]
    fn supported_ais_are_prefix_free() {
        let ais = all_supported_ais();
        for a in &ais {
            for b in &ais {
                assert!(
                    a == b || !b.starts_with(a.as_str()),
                    "{a} is a prefix of {b}"
                );
            }
        }
    }

    #[test]
    fn predefined_length_ais_have_fixed_length() {
        for ai in all_supported_ais() {
            let spec = spec_for(&ai).unwrap();
            if has_predefined_length(&ai) {
                let fixed = spec.parts.iter().all(|p| p.min == p.max);
                assert!(fixed, "AI {ai} is in the predefined table but variable");
            }
        }
    }

    #[test]
    fn brief_ai_list_is_supported() {
        for ai in [
            "00", "01", "02", "10", "11", "12", "13", "15", "16", "17", "20", "21", "22", "30",
            "37", "240", "241", "250", "251", "253", "254", "400", "401", "402", "410", "417",
            "420", "421", "422", "3100", "3165", "3205", "3695", "3920", "3939", "7003", "8004",
            "8008",
        ] {
            assert!(spec_for(ai).is_some(), "{ai} unsupported");
        }
        for ai in ["3106", "3380", "3940", "14", "7002", "ab"] {
            assert!(spec_for(ai).is_none(), "{ai} should be unsupported");
        }
    }

    #[test]
    fn fnc1_rule_and_traps() {
        assert!(has_predefined_length("01"));
        assert!(has_predefined_length("3103"));
        assert!(has_predefined_length("414"));
        assert!(!has_predefined_length("10"));
        assert!(!has_predefined_length("7003"));
        assert!(!has_predefined_length("8008"));
        assert!(!has_predefined_length("3922"));
    }

    #[test]
    fn dates() {
        assert!(validate_date("200229", true).is_ok());
        assert!(validate_date("210229", true).is_err());
        assert!(validate_date("211200", true).is_ok());
        assert!(validate_date("211200", false).is_err());
        assert!(validate_date("211301", true).is_err());
        assert!(validate_date("210431", true).is_err());
    }

    #[test]
    fn charset_positions_are_one_based_within_value() {
        let err = validate(&N6, "12a456").unwrap_err();
        assert_eq!(
            err,
            Gs1Error::NonDigit {
                found: 'a',
                position: 3
            }
        );
        let err = validate(&X_TO_20, "AB C").unwrap_err();
        assert_eq!(
            err.to_string(),
            "character ' ' at position 3 is not allowed (GS1 character set 82)"
        );
    }
}
