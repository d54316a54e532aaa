//! `storenode diag decode VALUE`: explain a barcode or an EPC as JSON.
//!
//! Deciding between EPC hex and barcode data, in order:
//! 1. `epc:` prefix: EPC hex, always. A `]` prefix (AIM identifier): barcode.
//!    A `(` prefix: the human-readable form `(01)...(10)...`.
//! 2. Even-length hex of 24 to 64 characters that starts with a decodable EPC
//!    header (30, 31, 34, 36) or contains a letter A-F: EPC (so E2.../00B0...
//!    reads as an unknown EPC with its reason).
//! 3. Such hex made of digits only, with another first byte (e.g. 00...):
//!    barcode if it reads as valid GS1 data with a GTIN or AIs, else EPC.
//! 4. Everything else: barcode. A 13/14-digit GTIN is too short for rule 2,
//!    so it is always a barcode; force a reading with `epc:` or a `]` prefix.

use serde_json::{Map, Value, json};

use super::ai::parse_human_readable;
use super::epc::{Epc, SUPPORTED_HEADERS, decode_epc, decode_epc_hex};
use super::rcn::RcnRegion;
use super::scan::{ScanContent, interpret};

/// Explains `value` (barcode data or EPC hex) as JSON for technicians.
pub fn explain(value: &str, region: RcnRegion) -> Value {
    let value = value.trim();
    if let Some(hex) = strip_prefix_ignore_case(value, "epc:") {
        return explain_epc_hex(hex.trim());
    }
    if value.starts_with('(') {
        return human_readable_json(value);
    }
    if value.starts_with(']') || !is_epc_sized_hex(value) {
        return barcode_json(&interpret(value.as_bytes(), region));
    }
    let bytes = hex::decode(value).unwrap_or_default();
    let epc_header = bytes.first().is_some_and(|h| SUPPORTED_HEADERS.contains(h));
    let has_letters = value.bytes().any(|b| b.is_ascii_alphabetic());
    if epc_header || has_letters {
        return epc_json(&decode_epc(&bytes));
    }
    let scanned = interpret(value.as_bytes(), region);
    if scanned.valid && (scanned.gtin14.is_some() || !scanned.ai.is_empty()) {
        barcode_json(&scanned)
    } else {
        epc_json(&decode_epc(&bytes))
    }
}

/// `(01)...(10)...` as printed under a label: validated like a scan.
fn human_readable_json(value: &str) -> Value {
    let mut out = json!({"kind": "barcode", "symbology": null, "valid": true, "ai": {}});
    match parse_human_readable(value) {
        Ok(elements) => {
            if let Some(gtin) = elements.gtin() {
                out["gtin14"] = json!(gtin);
            }
            let ai: Map<String, Value> = elements
                .elements
                .into_iter()
                .map(|e| (e.ai, Value::String(e.value)))
                .collect();
            out["ai"] = Value::Object(ai);
        }
        Err(e) => {
            out["valid"] = json!(false);
            out["error"] = json!(e.to_string());
        }
    }
    out
}

fn is_epc_sized_hex(value: &str) -> bool {
    (24..=64).contains(&value.len())
        && value.len().is_multiple_of(2)
        && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

fn explain_epc_hex(hex: &str) -> Value {
    match decode_epc_hex(hex) {
        Ok(epc) => epc_json(&epc),
        Err(e) => json!({"kind": "epc", "scheme": "unknown", "hex": hex, "reason": e.to_string()}),
    }
}

fn epc_json(epc: &Epc) -> Value {
    let uri = epc.pure_identity_uri();
    match epc {
        Epc::Sgtin {
            filter,
            gtin14,
            serial,
            ..
        } => json!({
            "kind": "epc", "scheme": epc.scheme_name(), "filter": filter,
            "gtin14": gtin14, "serial": serial, "epc_uri": uri,
        }),
        Epc::Sscc { filter, sscc, .. } => json!({
            "kind": "epc", "scheme": epc.scheme_name(), "filter": filter,
            "sscc": sscc, "epc_uri": uri,
        }),
        Epc::Giai {
            filter,
            company_prefix,
            asset_reference,
            ..
        } => json!({
            "kind": "epc", "scheme": epc.scheme_name(), "filter": filter,
            "giai": format!("{company_prefix}{asset_reference}"), "epc_uri": uri,
        }),
        Epc::Unknown { hex, reason } => {
            json!({"kind": "epc", "scheme": "unknown", "hex": hex, "reason": reason})
        }
    }
}

fn barcode_json(scan: &ScanContent) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("barcode"));
    out.insert("symbology".into(), json!(scan.symbology));
    if let Some(gtin) = &scan.gtin14 {
        out.insert("gtin14".into(), json!(gtin));
    }
    out.insert("valid".into(), json!(scan.valid));
    out.insert("ai".into(), json!(scan.ai));
    if let Some(rcn) = &scan.rcn {
        out.insert("rcn".into(), json!(rcn));
    }
    if let Some(error) = &scan.error {
        out.insert("error".into(), json!(error));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn explain_none(value: &str) -> Value {
        explain(value, RcnRegion::None)
    }

    #[test]
    fn sgtin_explained() {
        assert_eq!(
            explain_none("3074257BF7194E4000001A85"),
            json!({"kind": "epc", "scheme": "sgtin-96", "filter": 3,
                "gtin14": "80614141123458", "serial": "6789",
                "epc_uri": "urn:epc:id:sgtin:0614141.812345.6789"})
        );
        assert_eq!(
            explain_none("epc:3074257bf7194e4000001a85"),
            explain_none("3074257BF7194E4000001A85")
        );
    }

    #[test]
    fn sscc_and_giai_explained() {
        assert_eq!(
            explain_none("3154257BF4499602D2000000"),
            json!({"kind": "epc", "scheme": "sscc-96", "filter": 2,
                "sscc": "106141412345678908",
                "epc_uri": "urn:epc:id:sscc:0614141.1234567890"})
        );
        assert_eq!(
            explain_none("3434257BF400000000BC6038"),
            json!({"kind": "epc", "scheme": "giai-96", "filter": 1,
                "giai": "061414112345400",
                "epc_uri": "urn:epc:id:giai:0614141.12345400"})
        );
    }

    #[test]
    fn non_gs1_epcs_explained() {
        assert_eq!(
            explain_none("E28011704000021D35AE4008"),
            json!({"kind": "epc", "scheme": "unknown", "hex": "E28011704000021D35AE4008",
                "reason": "TID class E2, not an EPC"})
        );
        assert_eq!(
            explain_none("00B07A140000000000000000")["reason"],
            "unprogrammed (header 0x00)"
        );
        assert_eq!(explain_none("000000000000000000000000")["kind"], "epc");
        let bad = explain_none("epc:30xyz");
        assert_eq!(bad["scheme"], "unknown");
        assert!(bad["reason"].as_str().unwrap().starts_with("invalid hex"));
    }

    #[test]
    fn barcodes_explained() {
        assert_eq!(
            explain_none("]C10107032069804988100329<GS>15210526"),
            json!({"kind": "barcode", "symbology": "]C1", "gtin14": "07032069804988",
                "valid": true, "ai": {"01": "07032069804988", "10": "0329", "15": "210526"}})
        );
        assert_eq!(
            explain_none("5901234123458"),
            json!({"kind": "barcode", "symbology": null, "valid": false, "ai": {},
                "error": "GTIN check digit: expected 7, got 8"})
        );
        assert_eq!(
            explain_none("(01)07032069804988(10)0329"),
            json!({"kind": "barcode", "symbology": null, "gtin14": "07032069804988",
                "valid": true, "ai": {"01": "07032069804988", "10": "0329"}})
        );
        assert_eq!(explain_none("(01)0703")["valid"], false);
        let weighed = explain("2302148210869", RcnRegion::Norway);
        assert_eq!(weighed["rcn"]["measure"]["weight_grams"], 1086);
        assert_eq!(weighed["rcn"]["item_key"], "02302148200006");
    }

    #[test]
    fn ambiguity_rule() {
        // 24 digits starting with an EPC header: EPC.
        assert_eq!(explain_none("301234567890123456789012")["kind"], "epc");
        // 13/14-digit GTINs are too short to be EPC hex: barcode.
        assert_eq!(explain_none("3012345678903")["kind"], "barcode");
        assert_eq!(explain_none("30123456789012")["kind"], "barcode");
        // 24 digits that are a valid element string: barcode.
        let sscc = explain_none("001061414123456789083710");
        assert_eq!(sscc["kind"], "barcode");
        assert_eq!(sscc["ai"]["37"], "10");
        // The same digits forced to EPC.
        assert_eq!(explain_none("epc:001061414123456789083710")["kind"], "epc");
        // An AIM prefix forces a barcode reading.
        assert_eq!(
            explain_none("]C1301234567890123456789012")["kind"],
            "barcode"
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,70}") {
            let v = explain(&s, RcnRegion::Germany);
            prop_assert!(v["kind"] == "epc" || v["kind"] == "barcode");
        }

        #[test]
        fn hex_never_panics(s in "(epc:)?[0-9A-F]{20,66}") {
            let v = explain(&s, RcnRegion::Sweden);
            prop_assert!(v["kind"] == "epc" || v["kind"] == "barcode");
        }
    }
}
