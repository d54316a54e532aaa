use super::*;
use proptest::prelude::*;

fn parse(s: &str) -> ElementString {
    parse_element_string(s).unwrap()
}

#[test]
fn gs_separates_variable_length_lot() {
    let es = parse("0107032069804988100329\u{1d}15210526");
    assert_eq!(es.to_string(), "(01)07032069804988(10)0329(15)210526");
    assert_eq!(es.gtin().unwrap().as_str(), "07032069804988");
    assert_eq!(es.get("15"), Some("210526"));
}

#[test]
fn without_gs_the_lot_swallows_the_rest() {
    let es = parse("010703206980498810032915210526");
    assert_eq!(es.to_string(), "(01)07032069804988(10)032915210526");
}

#[test]
fn redundant_and_trailing_gs_are_ignored() {
    let es = parse("\u{1d}0107032069804988\u{1d}\u{1d}100329\u{1d}\u{1d}15210526\u{1d}");
    assert_eq!(es.to_string(), "(01)07032069804988(10)0329(15)210526");
}

#[test]
fn gtin_only_from_databar_vector() {
    let es = parse("0100123456789012");
    assert_eq!(es.gtin().unwrap().as_str(), "00123456789012");
}

#[test]
fn decimal_ais_from_protocols_2_2() {
    let es = parse("3105123456");
    assert_eq!(es.decimal("3105"), Some((123456, 5)));
    let es = parse("3102001250");
    assert_eq!(es.decimal("3102"), Some((1250, 2)));
    let es = parse("3921123");
    assert_eq!(es.decimal("3921"), Some((123, 1)));
    let es = parse("39327101230");
    assert_eq!(es.decimal("3932"), Some((1230, 2)));
    assert_eq!(es.decimal("01"), None);
    assert_eq!(es.decimal("3921"), None);
}

#[test]
fn prices_in_minor_units() {
    let price = parse("3921123").price(2).unwrap().unwrap();
    assert_eq!(
        price,
        Price {
            minor_units: 1230,
            exponent: 2,
            currency: None
        }
    );
    let price = parse("39327101230").price(0).unwrap().unwrap();
    assert_eq!(
        price,
        Price {
            minor_units: 1230,
            exponent: 2,
            currency: Some(710)
        }
    );
    // JPY has no minor unit; 12.30 yen cannot be charged.
    assert!(parse("39323921230").price(2).is_err());
    assert_eq!(
        parse("39303921230").price(2).unwrap().unwrap().minor_units,
        1230
    );
    assert_eq!(parse("0100123456789012").price(2), Ok(None));
}

#[test]
fn day_zero_is_last_day_of_month() {
    let es = parse("15200200");
    assert_eq!(
        es.date("15", 2025),
        Some(GsDate {
            year: 2020,
            month: 2,
            day: 29
        })
    );
    let es = parse("17211200");
    assert_eq!(
        es.date("17", 2025),
        Some(GsDate {
            year: 2021,
            month: 12,
            day: 31
        })
    );
    assert_eq!(es.date("10", 2025), None);
}

#[test]
fn century_window() {
    assert_eq!(resolve_century(75, 2025), 2075);
    assert_eq!(resolve_century(76, 2025), 1976);
    assert_eq!(resolve_century(1, 2098), 2101);
    assert_eq!(resolve_century(48, 2098), 2148);
    assert_eq!(resolve_century(49, 2098), 2049);
}

#[test]
fn fixed_length_ais_that_need_fnc1() {
    let es = parse("70032501311200\u{1d}800825013112\u{1d}0107032069804988");
    assert_eq!(es.get("7003"), Some("2501311200"));
    assert_eq!(es.get("8008"), Some("25013112"));
    assert!(es.gtin().is_some());
    assert!(parse_element_string("70032501312400").is_err());
}

#[test]
fn other_supported_ais() {
    let es = parse("00106141412345678908\u{1d}3710\u{1d}4140614141000418254AB\u{1d}4217520ABC");
    assert_eq!(es.get("00"), Some("106141412345678908"));
    assert_eq!(es.get("37"), Some("10"));
    assert_eq!(es.get("414"), Some("0614141000418"));
    assert_eq!(es.get("254"), Some("AB"));
    assert_eq!(es.get("421"), Some("7520ABC"));
    let es = parse("8004061414112345400");
    assert_eq!(es.get("8004"), Some("061414112345400"));
}

#[test]
fn errors_name_the_problem() {
    let msg = |s: &str| parse_element_string(s).unwrap_err().to_string();
    assert_eq!(
        msg("0107032069804987"),
        "AI (01) value \"07032069804987\": GTIN check digit: expected 8, got 7"
    );
    assert_eq!(
        msg("01070320698049\u{1d}10A"),
        "AI (01) needs 14 characters, only 12 before the end or a GS"
    );
    assert_eq!(
        msg("010703206980498810"),
        "AI (10) value \"\": length 0 is not 1 to 20"
    );
    assert_eq!(
        msg("0107032069804988\u{1d}14123456"),
        "unknown application identifier at position 18 (data \"14123456\")"
    );
    assert_eq!(
        msg("17211301"),
        "AI (17) value \"211301\": invalid date 211301: month is not 01-12"
    );
    assert_eq!(
        msg("10AB C"),
        "AI (10) value \"AB C\": character ' ' at position 3 is not allowed (GS1 character set 82)"
    );
    assert_eq!(
        msg("3102A01250"),
        "AI (3102) value \"A01250\": non-digit 'A' at position 1"
    );
    assert_eq!(msg(""), "empty input");
    assert_eq!(msg("\u{1d}\u{1d}"), "empty input");
    assert!(matches!(
        parse_element_string("10A\u{1d}10B"),
        Err(Gs1Error::ConflictingAi { .. })
    ));
    assert!(matches!(
        parse_element_string("10é"),
        Err(Gs1Error::InvalidCharacter { position: 3, .. })
    ));
}

#[test]
fn human_readable_form() {
    let es = parse_human_readable("(01)07032069804988(10)0329(15)210526").unwrap();
    assert_eq!(es, parse("0107032069804988100329\u{1d}15210526"));
    assert!(parse_human_readable("(01)07032069804987").is_err());
    assert_eq!(
        parse_human_readable("(01").unwrap_err().to_string(),
        "not in the (AI)value form: '(' without a closing ')'"
    );
    assert!(parse_human_readable("01").is_err());
    assert!(parse_human_readable("(99999)1").is_err());
}

#[test]
fn repeated_identical_element_is_kept_once() {
    let es = parse("10A\u{1d}10A");
    assert_eq!(es.elements.len(), 1);
}

/// One value generator per AI family, used to build random element strings.
fn arb_element() -> impl Strategy<Value = Element> {
    let gtin = "[0-9]{13}".prop_map(|body| {
        let check = crate::gs1::gtin::check_digit(&body).unwrap();
        ("01".to_string(), format!("{body}{check}"))
    });
    let lot = ("(10|21|22|240|8004)", "[A-Za-z0-9!%&*+./:;<=>?_-]{1,20}")
        .prop_map(|(ai, v)| (ai.to_string(), v));
    let date = ("(11|13|15|16|17)", 0u8..100, 1u8..13, 0u8..29)
        .prop_map(|(ai, y, m, d)| (ai.to_string(), format!("{y:02}{m:02}{d:02}")));
    let measure = ("31[0-6][0-5]", "[0-9]{6}").prop_map(|(ai, v)| (ai, v));
    let count = ("(30|37)", "[0-9]{1,8}").prop_map(|(ai, v)| (ai, v));
    let price = ("393[0-9]", "[0-9]{4,18}").prop_map(|(ai, v)| (ai, v));
    prop_oneof![gtin, lot, date, measure, count, price]
        .prop_map(|(ai, value)| Element { ai, value })
}

fn unique_by_ai(elements: Vec<Element>) -> Vec<Element> {
    let mut seen = std::collections::BTreeSet::new();
    elements
        .into_iter()
        .filter(|e| seen.insert(e.ai.clone()))
        .collect()
}

proptest! {
    #[test]
    fn encode_then_parse_round_trips(elements in prop::collection::vec(arb_element(), 1..6)) {
        let original = ElementString { elements: unique_by_ai(elements) };
        let parsed = parse_element_string(&original.to_data()).unwrap();
        prop_assert_eq!(parsed, original);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "[0-9A-Z\u{1d}é()]{0,40}") {
        let _ = parse_element_string(&s);
        let _ = parse_human_readable(&s);
    }

    #[test]
    fn arbitrary_unicode_never_panics(s in "\\PC{0,40}") {
        if let Ok(es) = parse_element_string(&s) {
            for e in &es.elements {
                let _ = es.decimal(&e.ai);
                let _ = es.date(&e.ai, 2025);
            }
            let _ = es.price(2);
        }
    }
}
