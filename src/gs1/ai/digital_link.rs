//! GS1 Digital Link URIs, as printed in QR codes:
//! `https://example.com/01/614141123452/10/ABC123?15=250330`.
//!
//! The path holds a primary key (e.g. `/01/{gtin}`) and key qualifiers in
//! AI/value pairs, possibly after a resolver-specific path prefix; query
//! parameters with numeric keys are data attributes. Unsupported or
//! non-numeric query keys (`linkType`, tracking parameters) are ignored.

use super::super::Gs1Error;
use super::super::gtin::Gtin14;
use super::{ElementString, spec};

/// AIs that may start the identifying part of a Digital Link path.
const PRIMARY_KEYS: [&str; 8] = ["00", "01", "253", "401", "402", "414", "417", "8004"];

/// Parses a GS1 Digital Link URI into its element string.
pub fn parse_digital_link(url: &str) -> Result<ElementString, Gs1Error> {
    let after_scheme = strip_scheme(url).ok_or(Gs1Error::NotDigitalLink(
        "does not start with http:// or https://",
    ))?;
    let without_fragment = after_scheme.split('#').next().unwrap_or_default();
    let (location, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    let path = location.split_once('/').map_or("", |(_host, path)| path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = find_key_start(&segments).ok_or(Gs1Error::NotDigitalLink(
        "no GS1 primary key such as /01/{gtin} in the path",
    ))?;

    let mut parsed = ElementString::default();
    for pair in segments.get(start..).unwrap_or_default().chunks(2) {
        if let [ai, value] = pair {
            push_decoded(&mut parsed, ai, value)?;
        }
    }
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        if spec::spec_for(key).is_some() {
            push_decoded(&mut parsed, key, value)?;
        }
    }
    Ok(parsed)
}

fn strip_scheme(url: &str) -> Option<&str> {
    ["https://", "http://"].iter().find_map(|scheme| {
        let head = url.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| url.get(scheme.len()..))
            .flatten()
    })
}

/// Index of the first segment from which the rest of the path is a primary
/// key followed by AI/value pairs of supported AIs.
fn find_key_start(segments: &[&str]) -> Option<usize> {
    (0..segments.len()).find(|&i| {
        let tail = segments.get(i..).unwrap_or_default();
        let starts_with_key = tail.first().is_some_and(|ai| PRIMARY_KEYS.contains(ai));
        let all_pairs_known = tail
            .chunks(2)
            .all(|pair| matches!(pair, [ai, _] if spec::spec_for(ai).is_some()));
        starts_with_key && tail.len() % 2 == 0 && all_pairs_known
    })
}

fn push_decoded(parsed: &mut ElementString, ai: &str, raw: &str) -> Result<(), Gs1Error> {
    let value = percent_decode(raw)?;
    // Digital Link allows GTIN-8/12/13 in the URI; element strings use 14.
    let value = if ai == "01" {
        Gtin14::parse(&value)
            .map_err(|problem| Gs1Error::AiValue {
                ai: ai.to_string(),
                value: value.clone(),
                problem: Box::new(problem),
            })?
            .to_string()
    } else {
        value
    };
    parsed.push_validated(ai, &value)
}

fn percent_decode(raw: &str) -> Result<String, Gs1Error> {
    let bad = || Gs1Error::PercentEncoding(raw.to_string());
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        if b == b'%' {
            let hi = input.next().and_then(hex_value).ok_or_else(bad)?;
            let lo = input.next().and_then(hex_value).ok_or_else(bad)?;
            bytes.push(hi << 4 | lo);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).map_err(|_| bad())
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn biip_example_from_protocols_1_5() {
        let parsed =
            parse_digital_link("https://example.com/01/614141123452/10/ABC123?15=250330").unwrap();
        assert_eq!(parsed.to_string(), "(01)00614141123452(10)ABC123(15)250330");
        assert_eq!(parsed.gtin().unwrap().as_str(), "00614141123452");
    }

    #[test]
    fn path_prefix_fragment_and_foreign_params_are_skipped() {
        let parsed = parse_digital_link(
            "HTTPS://id.example.org/shop/products/01/09506000134352/21/A%2F1?linkType=gs1:pip&17=261231#x",
        )
        .unwrap();
        assert_eq!(parsed.to_string(), "(01)09506000134352(21)A/1(17)261231");
    }

    #[test]
    fn rejects_what_is_not_a_digital_link() {
        for url in [
            "ftp://example.com/01/09506000134352",
            "https://example.com/products/123",
            "https://example.com/01",
            "https://example.com/",
            "https",
        ] {
            assert!(
                matches!(parse_digital_link(url), Err(Gs1Error::NotDigitalLink(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn rejects_bad_values() {
        let err = parse_digital_link("https://e.com/01/09506000134353").unwrap_err();
        assert_eq!(
            err.to_string(),
            "AI (01) value \"09506000134353\": GTIN check digit: expected 2, got 3"
        );
        assert!(parse_digital_link("https://e.com/01/09506000134352/10/%ZZ").is_err());
        assert!(parse_digital_link("https://e.com/01/09506000134352?17=261341").is_err());
        assert!(matches!(
            parse_digital_link("https://e.com/01/09506000134352/10/A?10=B"),
            Err(Gs1Error::ConflictingAi { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = parse_digital_link(&s);
            let _ = parse_digital_link(&format!("https://e.com/01/{s}"));
        }
    }
}
