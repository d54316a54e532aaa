use super::*;
use proptest::prelude::*;

fn decode(hex: &str) -> Epc {
    decode_epc_hex(hex).unwrap()
}

fn tag_uri(hex: &str) -> String {
    decode(hex).tag_uri().unwrap()
}

fn id_uri(hex: &str) -> String {
    decode(hex).pure_identity_uri().unwrap()
}

fn gtin(hex: &str) -> String {
    decode(hex).gtin14().unwrap().to_string()
}

#[test]
fn sgtin96_vectors_from_protocols_3_2() {
    let h = "3074257BF7194E4000001A85";
    assert_eq!(tag_uri(h), "urn:epc:tag:sgtin-96:3.0614141.812345.6789");
    assert_eq!(gtin(h), "80614141123458");
    assert_eq!(decode(h).scheme_name(), "sgtin-96");

    let h = "3034257BF7194E4000001A85";
    assert_eq!(decode(h).filter(), Some(1));
    assert_eq!(gtin(h), "80614141123458");

    assert_eq!(
        id_uri("3034257BF7194E4000003039"),
        "urn:epc:id:sgtin:0614141.812345.12345"
    );

    let h = "3036142C8C008F8000053244";
    assert_eq!(gtin(h), "08719139005740");
    assert_eq!(id_uri(h), "urn:epc:id:sgtin:8719139.000574.340548");

    let h = "3034007D00011C400000000B";
    assert_eq!(tag_uri(h), "urn:epc:tag:sgtin-96:1.0008000.001137.11");
    assert_eq!(gtin(h), "00008000011378");

    let h = "30C579D5D4ADB60000000000";
    assert_eq!(tag_uri(h), "urn:epc:tag:sgtin-96:6.50712192365.88.0");
    assert_eq!(gtin(h), "85071219236581");

    let h = "30396062C3A1A800006B33F4";
    assert_eq!(id_uri(h), "urn:epc:id:sgtin:360843.0951968.7025652");
    assert_eq!(gtin(h), "03608439519680");

    let h = "30340BB6884CB101A13BC744";
    assert_eq!(id_uri(h), "urn:epc:id:sgtin:0191906.078532.7000016708");
    assert_eq!(gtin(h), "00191906785327");
}

#[test]
fn sscc_and_giai_vectors_from_protocols_3_3() {
    let sscc = |h: &str| match decode(h) {
        Epc::Sscc { sscc, .. } => sscc,
        other => panic!("not an SSCC: {other:?}"),
    };
    let h = "3154257BF4499602D2000000";
    assert_eq!(tag_uri(h), "urn:epc:tag:sscc-96:2.0614141.1234567890");
    assert_eq!(sscc(h), "106141412345678908");

    let h = "31003932449F003039000000";
    assert_eq!(tag_uri(h), "urn:epc:tag:sscc-96:0.061414123456.12345");
    assert_eq!(sscc(h), "106141412345623458");

    let h = "31AC16465751CCD0C2000000";
    assert_eq!(id_uri(h), "urn:epc:id:sscc:023356789.30200002");
    assert_eq!(decode(h).filter(), Some(5));

    let h = "3434257BF400000000BC6038";
    assert_eq!(tag_uri(h), "urn:epc:tag:giai-96:1.0614141.12345400");
    assert_eq!(id_uri(h), "urn:epc:id:giai:0614141.12345400");
    assert_eq!(
        tag_uri("3434257BF400000000000000"),
        "urn:epc:tag:giai-96:1.0614141.0"
    );
}

fn reason(hex: &str) -> String {
    match decode(hex) {
        Epc::Unknown { reason, hex: kept } => {
            assert_eq!(kept, hex.to_uppercase());
            reason
        }
        other => panic!("decoded {other:?}"),
    }
}

#[test]
fn non_gs1_content_from_protocols_3_4() {
    assert_eq!(
        reason("00B07A140000000000000000"),
        "unprogrammed (header 0x00)"
    );
    assert_eq!(
        reason("E2000019060C02090690D3C2"),
        "TID class E2, not an EPC"
    );
    assert_eq!(
        reason("E28011704000021D35AE4008"),
        "TID class E2, not an EPC"
    );
    assert_eq!(
        reason("350000000000000000000000"),
        "unsupported header 0x35 (GID-96)"
    );
    assert_eq!(reason("FF00"), "unknown header 0xFF");
    assert_eq!(reason(""), "empty EPC");
    let unknown = decode("E28011704000021D35AE4008");
    assert_eq!(unknown.scheme_name(), "unknown");
    assert_eq!(unknown.pure_identity_uri(), None);
    assert_eq!(unknown.tag_uri(), None);
    assert_eq!(unknown.hex(), "E28011704000021D35AE4008");
}

#[test]
fn malformed_known_headers() {
    assert_eq!(
        reason("3074257BF7194E40"),
        "truncated: sgtin-96 needs 12 bytes, got 8"
    );
    // Partition 7 is undefined.
    assert_eq!(reason("301C257BF7194E4000001A85"), "bad partition 7");
    // Partition 0 with a 40-bit company prefix above 999999999999.
    assert_eq!(
        reason("3003FFFFFFFFFF0000000000"),
        "company prefix 1099511627775 has more than 12 digits"
    );
    assert_eq!(
        reason("3074257BF7194E4000001A8501"),
        "sgtin-96 followed by non-zero data"
    );
    // Zero padding after the EPC (a 128-bit EPC memory) is fine.
    let padded = decode("3074257BF7194E4000001A8500000000");
    assert_eq!(padded.scheme_name(), "sgtin-96");
    assert_eq!(padded.hex(), "3074257BF7194E4000001A8500000000");
}

#[test]
fn hex_input_forms() {
    let spaced = decode_epc_hex(" 0x30 74 25 7b f7 19 4e 40 00 00 1a 85 ").unwrap();
    assert_eq!(spaced, decode("3074257BF7194E4000001A85"));
    assert!(matches!(decode_epc_hex("30Z"), Err(Gs1Error::Hex(_))));
    assert!(
        decode_epc_hex("307")
            .unwrap_err()
            .to_string()
            .starts_with("invalid hex")
    );
}

#[test]
fn encoders_reproduce_vectors() {
    let bytes = encode_sgtin96(3, "0614141", "812345", 6789).unwrap();
    assert_eq!(hex::encode_upper(bytes), "3074257BF7194E4000001A85");
    let bytes = encode_sscc96(2, "0614141", "1234567890").unwrap();
    assert_eq!(hex::encode_upper(bytes), "3154257BF4499602D2000000");
    let bytes = encode_giai96(1, "0614141", "12345400").unwrap();
    assert_eq!(hex::encode_upper(bytes), "3434257BF400000000BC6038");
}

#[test]
fn sgtin198_alphanumeric_serial() {
    let bytes = encode_sgtin198(3, "0614141", "712345", "32a/b").unwrap();
    assert_eq!(bytes.len(), 25);
    let epc = decode_epc(&bytes);
    assert_eq!(epc.scheme_name(), "sgtin-198");
    assert_eq!(
        epc.tag_uri().unwrap(),
        "urn:epc:tag:sgtin-198:3.0614141.712345.32a%2Fb"
    );
    assert_eq!(epc.gtin14().unwrap().as_str(), "70614141123451");
    let mut broken = bytes;
    broken[24] = 0;
    broken[20] = 0xFF;
    assert_eq!(
        reason(&hex::encode(broken)),
        "serial has data after its terminating zero"
    );
}

#[test]
fn encoder_errors_name_the_problem() {
    let msg = |r: Result<[u8; 12], Gs1Error>| r.unwrap_err().to_string();
    assert_eq!(
        msg(encode_sgtin96(8, "0614141", "812345", 1)),
        "EPC filter 8 is not in 0-7"
    );
    assert_eq!(
        msg(encode_sgtin96(1, "06141", "812345", 1)),
        "EPC company prefix must have 6 to 12 digits, got 5"
    );
    assert_eq!(
        msg(encode_sgtin96(1, "0614141", "81234", 1)),
        "EPC item reference must have 6 digits with a 7-digit company prefix, got 5"
    );
    assert_eq!(
        msg(encode_sgtin96(1, "0614141", "812345", 1 << 38)),
        "EPC serial 274877906944 does not fit in 38 bits"
    );
    assert_eq!(
        msg(encode_giai96(1, "0614141", "0123")),
        "EPC asset reference \"0123\" must not have leading zeros"
    );
    assert_eq!(
        msg(encode_sscc96(1, "06141x1", "1234567890")),
        "non-digit 'x' at position 6"
    );
    assert!(encode_sgtin198(1, "0614141", "812345", "").is_err());
    assert!(encode_sgtin198(1, "0614141", "812345", "a b").is_err());
    assert!(encode_sgtin198(1, "0614141", "812345", &"1".repeat(21)).is_err());
}

fn company_and_reference(total: usize) -> impl Strategy<Value = (String, String)> {
    (6usize..=12).prop_flat_map(move |cp| {
        (
            proptest::string::string_regex(&format!("[0-9]{{{cp}}}")).unwrap(),
            proptest::string::string_regex(&format!("[0-9]{{{}}}", total - cp)).unwrap(),
        )
    })
}

proptest! {
    #[test]
    fn sgtin96_round_trips(filter in 0u8..8, (cp, item) in company_and_reference(13), serial in 0u64..(1 << 38)) {
        let epc = decode_epc(&encode_sgtin96(filter, &cp, &item, serial).unwrap());
        let Epc::Sgtin { scheme, filter: f, company_prefix, item_reference, serial: s, .. } = epc else {
            return Err(TestCaseError::fail("not an SGTIN"));
        };
        prop_assert_eq!(scheme, SgtinScheme::Sgtin96);
        prop_assert_eq!((f, company_prefix, item_reference, s), (filter, cp, item, serial.to_string()));
    }

    #[test]
    fn sgtin198_round_trips(filter in 0u8..8, (cp, item) in company_and_reference(13), serial in "[A-Za-z0-9!\"%&'()*+,./:;<=>?_-]{1,20}") {
        let epc = decode_epc(&encode_sgtin198(filter, &cp, &item, &serial).unwrap());
        let Epc::Sgtin { scheme, company_prefix, item_reference, serial: s, .. } = epc else {
            return Err(TestCaseError::fail("not an SGTIN"));
        };
        prop_assert_eq!(scheme, SgtinScheme::Sgtin198);
        prop_assert_eq!((company_prefix, item_reference, s), (cp, item, serial));
    }

    #[test]
    fn sscc96_round_trips(filter in 0u8..8, (cp, serial_ref) in company_and_reference(17)) {
        let epc = decode_epc(&encode_sscc96(filter, &cp, &serial_ref).unwrap());
        let Epc::Sscc { company_prefix, serial_reference, sscc, .. } = epc else {
            return Err(TestCaseError::fail("not an SSCC"));
        };
        prop_assert_eq!(sscc.len(), 18);
        prop_assert!(crate::gs1::gtin::verify_check_digit(&sscc, "SSCC").is_ok());
        prop_assert_eq!((company_prefix, serial_reference), (cp, serial_ref));
    }

    #[test]
    fn giai96_round_trips(filter in 0u8..8, cp_len in 6usize..=12, asset in any::<u64>()) {
        let cp = "1".repeat(cp_len);
        let bits = 82 - GIAI_PARTITIONS[12 - cp_len].prefix_bits;
        let asset = (asset >> (64 - bits)).to_string();
        let epc = decode_epc(&encode_giai96(filter, &cp, &asset).unwrap());
        prop_assert_eq!(epc.pure_identity_uri().unwrap(), format!("urn:epc:id:giai:{cp}.{asset}"));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let epc = decode_epc(&bytes);
        let _ = (epc.pure_identity_uri(), epc.tag_uri(), epc.scheme_name());
        prop_assert_eq!(epc.hex(), hex::encode_upper(&bytes));
    }

    #[test]
    fn known_headers_with_random_bodies_never_panic(
        header in prop::sample::select(vec![0x30u8, 0x31, 0x34, 0x36]),
        body in prop::collection::vec(any::<u8>(), 0..30),
    ) {
        let bytes = [vec![header], body].concat();
        let epc = decode_epc(&bytes);
        let _ = (epc.pure_identity_uri(), epc.tag_uri());
    }

    #[test]
    fn hex_text_never_panics(s in "\\PC{0,40}") {
        let _ = decode_epc_hex(&s);
    }
}
