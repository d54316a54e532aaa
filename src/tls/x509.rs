//! Just enough DER to read a certificate's validity window and subject CN, for the expiry
//! warning of `diag net` and the identity checks of `provision` and `config check`. A full
//! X.509 parser is a large dependency for two dates and a name; this walks Certificate →
//! TBSCertificate → Validity, Subject and nothing else. The signature checks are rustls's
//! (webpki). Pure: PEM bytes in, a verdict out.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

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
    let window = tbs_field(der, 3)?;
    if window.tag != SEQUENCE {
        return Err(X509Error::Malformed(window.body_start));
    }
    let not_before = element(der, window.body_start)?;
    let not_after = element(der, not_before.end)?;
    Ok(Validity {
        not_before: parse_time(not_before.tag, not_before.body)?,
        not_after: parse_time(not_after.tag, not_after.body)?,
    })
}

/// The TBSCertificate field `index` counted after the optional version: 0 serial,
/// 1 signature algorithm, 2 issuer, 3 validity, 4 subject.
fn tbs_field(der: &[u8], index: usize) -> Result<Element<'_>, X509Error> {
    let certificate = element(der, 0)?;
    let tbs = element(der, certificate.body_start)?;
    if certificate.tag != SEQUENCE || tbs.tag != SEQUENCE {
        return Err(X509Error::Malformed(0));
    }
    let mut at = tbs.body_start;
    let first = element(der, at)?;
    if first.tag == EXPLICIT_VERSION {
        at = first.end;
    }
    for _ in 0..index {
        at = element(der, at)?.end;
    }
    let field = element(der, at)?;
    if field.end > tbs.end {
        return Err(X509Error::Malformed(at));
    }
    Ok(field)
}

/// OID 2.5.4.3 (id-at-commonName), DER-encoded.
const COMMON_NAME_OID: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

/// The subject's common name (CN), the identity the broker's ACL sees; `None` without one.
pub fn common_name(der: &[u8]) -> Result<Option<String>, X509Error> {
    let subject = tbs_field(der, 4)?;
    if subject.tag != SEQUENCE {
        return Err(X509Error::Malformed(subject.body_start));
    }
    // Name: SEQUENCE OF SET OF SEQUENCE { OID, value }.
    let mut at = subject.body_start;
    while at < subject.end {
        let set = element(der, at)?;
        let mut inner = set.body_start;
        while inner < set.end {
            let pair = element(der, inner)?;
            let oid = element(der, pair.body_start)?;
            if der.get(pair.body_start..oid.end) == Some(COMMON_NAME_OID) {
                let value = element(der, oid.end)?;
                return Ok(Some(String::from_utf8_lossy(value.body).into_owned()));
            }
            inner = pair.end;
        }
        at = set.end;
    }
    Ok(None)
}

/// What is wrong with a store's TLS identity; each says what the broker would do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("the CA certificate is unusable: {0}")]
    Ca(String),
    #[error(
        "the store certificate does not verify against the CA ({0}): the broker will refuse the connection"
    )]
    Chain(String),
    #[error("the private key does not belong to the store certificate: TLS will fail")]
    KeyMismatch,
    #[error("the private key is unusable: {0}")]
    Key(String),
    #[error(
        "the store certificate is for {found:?} but this store is {expected:?}: the broker takes the certificate's CN as the store id and would refuse every publish"
    )]
    Name { found: String, expected: String },
}

/// A store identity that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub common_name: String,
    pub validity: Validity,
}

fn pem_certificates(
    what: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let bad = |reason: String| IdentityError::Pem { what, reason };
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no \"BEGIN CERTIFICATE\" block in it".into()));
    }
    Ok(certs)
}

/// Verifies the store certificate chain against `ca`, the key against the certificate and
/// the certificate's CN against `store_id`, at `now`.
pub fn check_identity(
    ca: &[u8],
    cert: &[u8],
    key: &[u8],
    store_id: &str,
    now: OffsetDateTime,
) -> Result<Identity, IdentityError> {
    let roots = pem_certificates("CA file", ca)?;
    let chain = pem_certificates("certificate file", cert)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
        .map_err(|e| IdentityError::Pem {
            what: "key file",
            reason: format!("not PEM: {e}"),
        })?
        .ok_or(IdentityError::Pem {
            what: "key file",
            reason: "no private key block (PKCS#8, PKCS#1 or SEC1) in it".into(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(root)
            .map_err(|e| IdentityError::Ca(e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(store),
        provider.clone(),
    )
    .build()
    .map_err(|e| IdentityError::Ca(e.to_string()))?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or(IdentityError::Chain("empty".into()))?;
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    verifier
        .verify_client_cert(leaf, intermediates, at)
        .map_err(|e| IdentityError::Chain(e.to_string()))?;
    match rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider) {
        Ok(_) => {}
        Err(rustls::Error::InconsistentKeys(_)) => return Err(IdentityError::KeyMismatch),
        Err(e) => return Err(IdentityError::Key(e.to_string())),
    }
    let malformed = |e: X509Error| IdentityError::Pem {
        what: "certificate file",
        reason: e.to_string(),
    };
    let common_name = common_name(leaf).map_err(malformed)?.unwrap_or_default();
    if common_name != store_id {
        return Err(IdentityError::Name {
            found: common_name,
            expected: store_id.to_string(),
        });
    }
    Ok(Identity {
        common_name,
        validity: validity(leaf).map_err(malformed)?,
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

    /// `(ca_pem, issuer)` of a fresh CA.
    fn ca() -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        (pem, rcgen::Issuer::new(params, key))
    }

    /// `(cert_pem, key_pem)` for CN `name`, signed by `issuer`.
    fn client(name: &str, issuer: &rcgen::Issuer<'static, rcgen::KeyPair>) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn a_matching_identity_passes_and_names_its_cn() {
        let (ca, issuer) = ca();
        let (cert, key) = client("s042", &issuer);
        let id = check_identity(
            ca.as_bytes(),
            cert.as_bytes(),
            key.as_bytes(),
            "s042",
            now(),
        )
        .unwrap();
        assert_eq!(id.common_name, "s042");
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused() {
        let (trusted, _) = ca();
        let (_, other) = ca();
        let (cert, key) = client("s042", &other);
        let ca = trusted;
        let err = check_identity(
            ca.as_bytes(),
            cert.as_bytes(),
            key.as_bytes(),
            "s042",
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, IdentityError::Chain(_)), "{err}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (ca, issuer) = ca();
        let (cert, _) = client("s042", &issuer);
        let (_, other_key) = client("s042", &issuer);
        let err = check_identity(
            ca.as_bytes(),
            cert.as_bytes(),
            other_key.as_bytes(),
            "s042",
            now(),
        )
        .unwrap_err();
        assert_eq!(err, IdentityError::KeyMismatch);
    }

    #[test]
    fn a_certificate_for_another_store_is_refused() {
        let (ca, issuer) = ca();
        let (cert, key) = client("s043", &issuer);
        let err = check_identity(
            ca.as_bytes(),
            cert.as_bytes(),
            key.as_bytes(),
            "s042",
            now(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"s043\" but this store is \"s042\""),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_refused_naming_the_file() {
        let (ca, issuer) = ca();
        let (_, key) = client("s042", &issuer);
        let err =
            check_identity(ca.as_bytes(), b"garbage", key.as_bytes(), "s042", now()).unwrap_err();
        assert!(err.to_string().starts_with("certificate file:"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn common_name_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = common_name(&bytes);
        }

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
