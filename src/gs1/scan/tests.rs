use super::*;
use crate::gs1::rcn::Measure;
use proptest::prelude::*;

fn scan(data: &[u8]) -> ScanContent {
    interpret(data, RcnRegion::None)
}

fn gtin(content: &ScanContent) -> &str {
    content.gtin14.as_ref().map(Gtin14::as_str).unwrap_or("")
}

#[test]
fn ean13_with_crlf_from_protocols_1_5() {
    let c = scan(b"]E05901234123457\r\n");
    assert_eq!(c.symbology.as_deref(), Some("]E0"));
    assert_eq!(gtin(&c), "05901234123457");
    assert!(c.valid);
    assert!(c.ai.is_empty());
    assert_eq!(c.raw, "]E05901234123457<CR><LF>");
}

#[test]
fn ean8_from_protocols_1_5() {
    let c = scan(b"]E496385074\r");
    assert_eq!(c.symbology.as_deref(), Some("]E4"));
    assert_eq!(gtin(&c), "00000096385074");
}

#[test]
fn gs1_128_and_datamatrix_from_protocols_1_5() {
    for prefix in ["]C1", "]d2"] {
        let data = format!("{prefix}0107032069804988100329\u{1d}15210526\r\n");
        let c = scan(data.as_bytes());
        assert!(c.valid, "{c:?}");
        assert_eq!(c.symbology.as_deref(), Some(prefix));
        assert_eq!(gtin(&c), "07032069804988");
        assert_eq!(c.ai.get("10").map(String::as_str), Some("0329"));
        assert_eq!(c.ai.get("15").map(String::as_str), Some("210526"));
        assert_eq!(
            c.raw,
            format!("{prefix}0107032069804988100329<GS>15210526<CR><LF>")
        );
    }
}

#[test]
fn literal_gs_text_is_a_separator() {
    let c = scan(b"]C10107032069804988100329<GS>15210526");
    assert_eq!(c.ai.get("10").map(String::as_str), Some("0329"));
}

#[test]
fn databar_from_protocols_1_5() {
    let c = scan(b"]e00100123456789012\r\n");
    assert_eq!(gtin(&c), "00123456789012");
    assert_eq!(c.ai.len(), 1);
}

#[test]
fn digital_link_qr_from_protocols_1_5() {
    let c = scan(b"]Q3https://example.com/01/614141123452/10/ABC123?15=250330");
    assert!(c.valid);
    assert_eq!(gtin(&c), "00614141123452");
    assert_eq!(c.ai.get("10").map(String::as_str), Some("ABC123"));
    assert_eq!(c.ai.get("15").map(String::as_str), Some("250330"));
    // The same without an AIM identifier, and in a plain QR code.
    assert_eq!(
        scan(b"https://example.com/01/614141123452").gtin14,
        c.gtin14
    );
    assert_eq!(
        scan(b"]Q1https://example.com/01/614141123452").gtin14,
        c.gtin14
    );
}

#[test]
fn plain_urls_are_not_gs1() {
    let c = scan(b"]Q1https://example.com/menu");
    assert!(c.valid);
    assert!(c.gtin14.is_none());
    let c = scan(b"]Q3https://example.com/menu");
    assert!(!c.valid);
    let c = scan(b"https://example.com/01/614141123453");
    assert!(!c.valid);
    assert!(c.error.unwrap().contains("check digit"));
}

#[test]
fn stx_etx_framed_ean_is_a_bare_gtin() {
    // The framing layer strips STX/ETX; what remains is the bare GTIN.
    let c = scan(b"5901234123457\r");
    assert_eq!(c.symbology, None);
    assert_eq!(gtin(&c), "05901234123457");
}

#[test]
fn bare_gtin_lengths() {
    for code in [
        "96385074",
        "614141123452",
        "5901234123457",
        "80614141123458",
    ] {
        assert!(scan(code.as_bytes()).gtin14.is_some(), "{code}");
    }
    let c = scan(b"5901234123458");
    assert!(!c.valid);
    assert_eq!(
        c.error.as_deref(),
        Some("GTIN check digit: expected 7, got 8")
    );
}

#[test]
fn non_gs1_labels_are_valid_without_gtin() {
    for data in [
        &b"]A0SKU-12345"[..],
        b"]C0ABC123",
        b"SKU-12345",
        b"12345",
        b"]E1 12",
    ] {
        let c = scan(data);
        assert!(c.valid, "{c:?}");
        assert!(c.gtin14.is_none());
        assert!(c.ai.is_empty());
    }
}

#[test]
fn malformed_gs1_is_invalid() {
    let c = scan(b"]C10107032069804987");
    assert!(!c.valid);
    assert_eq!(
        c.error.as_deref(),
        Some("AI (01) value \"07032069804987\": GTIN check digit: expected 8, got 7")
    );
    // Without an identifier, a complete (01) GTIN start marks GS1 data.
    let c = scan(b"01070320698049871012");
    assert!(!c.valid);
    // A GS in a Code 128 symbol is GS1 data in disguise.
    assert!(!scan(b"]C0010703206980498\x1d10A").valid);
}

#[test]
fn ean13_with_add_on_and_itf14() {
    let c = scan(b"]E3590123412345712");
    assert_eq!(gtin(&c), "05901234123457");
    let c = scan(b"]I180614141123458");
    assert_eq!(gtin(&c), "80614141123458");
}

#[test]
fn variable_measure_with_region() {
    let c = interpret(b"]E02302148210869", RcnRegion::Norway);
    let rcn = c.rcn.clone().expect("rcn");
    assert_eq!(rcn.measure, Measure::WeightGrams(1086));
    assert_eq!(rcn.item_key.as_str(), "02302148200006");
    assert_eq!(gtin(&c), "02302148210869");
    let c = interpret(b"]E02011122812349", RcnRegion::UnitedKingdom);
    assert!(!c.valid);
    assert_eq!(
        c.error.as_deref(),
        Some("variable-measure check digit: expected 9, got 8")
    );
    assert!(scan(b"]E02011122812349").valid);
}

#[test]
fn raw_is_printable_and_lossless() {
    let c = scan(b"\x02AB\xff\x1f\x03");
    assert_eq!(c.raw, "<STX>AB<xFF><x1F><ETX>");
    assert!(c.valid);
}

#[test]
fn serializes_for_the_api() {
    let c = scan(b"]C10107032069804988100329");
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["symbology"], "]C1");
    assert_eq!(json["gtin14"], "07032069804988");
    assert_eq!(json["ai"]["10"], "0329");
    assert_eq!(json["valid"], true);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..60)) {
        let c = interpret(&data, RcnRegion::Sweden);
        prop_assert!(c.valid || c.error.is_some());
    }

    #[test]
    fn gs1_looking_text_never_panics(s in "(\\][A-Za-z][0-9])?[0-9\u{1d}A-Z<>GS/:.?=]{0,40}") {
        let _ = interpret(s.as_bytes(), RcnRegion::Germany);
    }
}
