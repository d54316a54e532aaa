use proptest::prelude::*;

use super::*;

fn alice() -> Customer {
    Customer::new(
        " Alice Example ",
        "+46 (70) 123-45 67",
        "alice.example+cc@mail.example.com",
        Some("Storgatan 1\n111 22 Stockholm".into()),
    )
    .unwrap()
}

#[test]
fn valid_customers_are_trimmed() {
    let c = alice();
    assert_eq!(c.name(), "Alice Example");
    assert_eq!(c.phone_key(), "46701234567");
    assert_eq!(c.email_key(), "alice.example+cc@mail.example.com");
    assert_eq!(c.address(), Some("Storgatan 1\n111 22 Stockholm"));
    let no_address = Customer::new("Bo", "0701234567", "bo@x.se", Some("  ".into())).unwrap();
    assert_eq!(no_address.address(), None);
}

#[test]
fn invalid_fields_are_named_and_never_echoed() {
    let cases = [
        ("", "0701234567", "a@b.se", "name"),
        ("N\u{7}", "0701234567", "a@b.se", "name"),
        ("N", "123", "a@b.se", "phone"),
        ("N", "07012345678901234567890", "a@b.se", "phone"),
        ("N", "070-SECRET-1", "a@b.se", "phone"),
        ("N", "070+1234567", "a@b.se", "phone"),
        ("N", "0701234567", "secret-no-at.se", "email"),
        ("N", "0701234567", "secret@nodot", "email"),
        ("N", "0701234567", "se cret@b.se", "email"),
        ("N", "0701234567", "secret@b..se", "email"),
        ("N", "0701234567", "secret@-b.se", "email"),
    ];
    for (name, phone, email, field) in cases {
        let err = Customer::new(name, phone, email, None).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("customer.{field}:")), "{text}");
        assert!(
            !text.contains("SECRET") && !text.contains("secret"),
            "{text}"
        );
    }
    let long = "x".repeat(MAX_NAME_CHARS + 1);
    assert!(Customer::new(long, "0701234567", "a@b.se", None).is_err());
    let long_address = Some("x".repeat(MAX_ADDRESS_CHARS + 1));
    assert!(Customer::new("N", "0701234567", "a@b.se", long_address).is_err());
}

#[test]
fn debug_and_display_are_redacted() {
    let c = alice();
    for shown in [format!("{c:?}"), format!("{c}"), format!("{:?}", Some(&c))] {
        for secret in ["Alice", "46", "alice", "Storgatan"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
    let payload = PiiPayload::Customer(c);
    assert!(!format!("{payload:?}").contains("Alice"));
}

#[test]
fn deserialising_validates() {
    let ok: Customer =
        serde_json::from_str(r#"{"name":"Bo","phone":"0701234567","email":"bo@x.se"}"#).unwrap();
    assert_eq!(ok.name(), "Bo");
    let bad = serde_json::from_str::<Customer>(
        r#"{"name":"Bo","phone":"0701234567","email":"not-an-email"}"#,
    );
    assert!(bad.is_err());
    let unknown = serde_json::from_str::<Customer>(
        r#"{"name":"Bo","phone":"0701234567","email":"bo@x.se","ssn":"1"}"#,
    );
    assert!(unknown.is_err());
}

#[test]
fn payload_codec() {
    let tomb = PiiPayload::Erased {
        erased_at: "2026-11-23T16:00:00.000Z".into(),
        by: Some("s1.lane1".into()),
    };
    assert_eq!(PiiPayload::decode(&tomb.encode()).unwrap(), tomb);
    assert_eq!(PiiPayload::decode(b"").unwrap(), PiiPayload::Cleared);
    assert!(PiiPayload::Cleared.encode().is_empty());
    for bad in [
        &br#"{}"#[..],
        br#"{"erased_at":"yesterday"}"#,
        br#"{"erased_at":"2026-11-23T16:00:00Z","customer":{"name":"A","phone":"0701234567","email":"a@b.se"}}"#,
        br#"{"customer":{"name":"A","phone":"SECRET","email":"a@b.se"}}"#,
        b"not json",
    ] {
        let err = PiiPayload::decode(bad).unwrap_err().to_string();
        assert!(!err.contains("SECRET"), "{err}");
    }
    let huge = vec![b' '; MAX_PAYLOAD_BYTES + 1];
    assert!(PiiPayload::decode(&huge).is_err());
    // A forged `by` that is not a writer id is dropped, not trusted.
    let forged = br#"{"erased_at":"2026-11-23T16:00:00Z","by":"a/b"}"#;
    assert!(matches!(
        PiiPayload::decode(forged).unwrap(),
        PiiPayload::Erased { by: None, .. }
    ));
}

fn arb_customer() -> impl Strategy<Value = Customer> {
    (
        "[A-Za-zÅÄÖåäö .'-]{1,40}",
        "\\+?[0-9]{5,15}",
        "[a-z0-9._+-]{1,20}@[a-z0-9]{1,10}\\.[a-z]{2,6}",
        proptest::option::of("[A-Za-z0-9 ,\n]{0,60}"),
    )
        .prop_filter_map("valid", |(n, p, e, a)| Customer::new(n, p, e, a).ok())
}

proptest! {
    #[test]
    fn customers_round_trip_through_the_wire(c in arb_customer()) {
        let payload = PiiPayload::Customer(c);
        prop_assert_eq!(PiiPayload::decode(&payload.encode()).unwrap(), payload);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = PiiPayload::decode(&bytes);
    }

    #[test]
    fn validation_never_panics(n in ".{0,50}", p in ".{0,30}", e in ".{0,60}") {
        let _ = Customer::new(n, p, e, None);
    }
}

/// Schemathesis found it: the OpenAPI schema counts characters (`{1,64}`, `maxLength`), the
/// check counted bytes, so a schema-valid address with a non-ASCII local part was refused.
#[test]
fn e_mail_lengths_count_characters_as_the_schema_does() {
    let local = "ĀÉ".repeat(20); // 40 characters, 80 bytes
    assert!(check_email(&format!("{local}@mail.example.com")).is_ok());
    let too_long = "é".repeat(65);
    assert!(check_email(&format!("{too_long}@mail.example.com")).is_err());
    let whole = format!("a@{}.se", "é".repeat(240)); // 245 characters, 485 bytes
    assert!(check_email(&whole).is_ok());
    assert!(check_email(&format!("a@{}.se", "é".repeat(250))).is_err());
}
