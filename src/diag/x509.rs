//! Just enough DER to read a certificate's subject-free validity window, for the expiry
//! warning of `diag net`. A full X.509 parser is a large dependency for two dates; this
//! walks Certificate → TBSCertificate → Validity and nothing else. Pure.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    #[error("certificate DER is truncated or malformed at byte {0}")]
    Malformed(usize),
    #[error("certificate time {0:?} is not a valid UTCTime/GeneralizedTime")]
    BadTime(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Whole days left until `not_after` (negative once expired).
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_days()
    }
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const EXPLICIT_VERSION: u8 = 0xa0;

/// One DER element: its tag, its contents and the offset just past it.
struct Element<'a> {
    tag: u8,
    body: &'a [u8],
    body_start: usize,
    end: usize,
}

fn element(der: &[u8], at: usize) -> Result<Element<'_>, X509Error> {
    let bad = || X509Error::Malformed(at);
    let tag = *der.get(at).ok_or_else(bad)?;
    let first = *der.get(at + 1).ok_or_else(bad)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(bad());
        }
        let bytes = der.get(at + 2..at + 2 + count).ok_or_else(bad)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + count)
    };
    let body_start = at + header;
    let end = body_start.checked_add(len).ok_or_else(bad)?;
    let body = der.get(body_start..end).ok_or_else(bad)?;
    Ok(Element {
        tag,
        body,
        body_start,
        end,
    })
}

/// The validity window of one DER certificate.
pub fn validity(der: &[u8]) -> Result<Validity, X509Error> {
    let certificate = element(der, 0)?;
    let tbs = element(der, certificate.body_start)?;
    if certificate.tag != SEQUENCE || tbs.tag != SEQUENCE {
        return Err(X509Error::Malformed(0));
    }
    // TBSCertificate: [0] version (optional), serial, signature algorithm, issuer, validity.
    let mut at = tbs.body_start;
    let first = element(der, at)?;
    if first.tag == EXPLICIT_VERSION {
        at = first.end;
    }
    for _ in 0..3 {
        at = element(der, at)?.end;
    }
    let window = element(der, at)?;
    if window.tag != SEQUENCE {
        return Err(X509Error::Malformed(at));
    }
    let not_before = element(der, window.body_start)?;
    let not_after = element(der, not_before.end)?;
    Ok(Validity {
        not_before: parse_time(not_before.tag, not_before.body)?,
        not_after: parse_time(not_after.tag, not_after.body)?,
    })
}

/// `YYMMDDHHMMSSZ` (UTCTime, years 1950–2049) or `YYYYMMDDHHMMSSZ` (GeneralizedTime).
fn parse_time(tag: u8, body: &[u8]) -> Result<OffsetDateTime, X509Error> {
    let text = std::str::from_utf8(body).unwrap_or_default();
    let bad = || X509Error::BadTime(text.to_string());
    let digits = text.strip_suffix('Z').ok_or_else(bad)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i32 = digits
                .get(..2)
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, digits.get(2..))
        }
        (GENERALIZED_TIME, 14) => (
            digits
                .get(..4)
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?,
            digits.get(4..),
        ),
        _ => return Err(bad()),
    };
    let rest = rest.ok_or_else(bad)?;
    let field = |i: usize| -> Result<u8, X509Error> {
        rest.get(i..i + 2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let month = Month::try_from(field(0)?).map_err(|_| bad())?;
    let date = Date::from_calendar_date(year, month, field(2)?).map_err(|_| bad())?;
    let time = Time::from_hms(field(4)?, field(6)?, field(8)?).map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_valid_until(year: i32) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["broker.test".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 1, 2);
        params.not_after = rcgen::date_time_ymd(year, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_window_of_a_generated_certificate() {
        let v = validity(&cert_valid_until(2030)).unwrap();
        assert_eq!(
            v.not_before.date(),
            Date::from_calendar_date(2024, Month::January, 2).unwrap()
        );
        assert_eq!(
            v.not_after.date(),
            Date::from_calendar_date(2030, Month::March, 4).unwrap()
        );
    }

    #[test]
    fn generalized_time_after_2049() {
        let v = validity(&cert_valid_until(2051)).unwrap();
        assert_eq!(v.not_after.year(), 2051);
    }

    #[test]
    fn days_left_counts_down() {
        let v = validity(&cert_valid_until(2030)).unwrap();
        let now = PrimitiveDateTime::new(
            Date::from_calendar_date(2030, Month::March, 1).unwrap(),
            Time::MIDNIGHT,
        )
        .assume_utc();
        assert_eq!(v.days_left(now), 3);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = validity(&bytes);
        }

        #[test]
        fn truncated_certificates_are_errors(cut in 0usize..200) {
            let der = cert_valid_until(2030);
            let cut = cut.min(der.len() - 1);
            // Cutting inside the header or validity must fail cleanly.
            let _ = validity(der.get(..cut).unwrap());
        }
    }
}
