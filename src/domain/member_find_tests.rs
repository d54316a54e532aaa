use super::*;

#[test]
fn names_are_masked_to_the_initials_of_the_first_and_last_word() {
    assert_eq!(mask_name("Ada Example"), "A. E.");
    assert_eq!(mask_name("  ada   lovelace example "), "A. E.");
    assert_eq!(mask_name("Björn"), "B.");
    assert_eq!(mask_name("Élodie de la Fontaine"), "É. F.");
    // A leading non-letter is skipped; a word without letters gives no initial.
    assert_eq!(mask_name("(Jo) 42 O'Neill"), "J. O.");
    assert_eq!(mask_name("1234"), "?");
    assert_eq!(mask_name("李 小龍"), "李. 小.");
}

#[test]
fn a_query_keys_the_phone_by_its_digits_and_the_email_in_lower_case() {
    let by_phone = MemberQuery::new(Some(" +49 (30) 123-4567 "), None).unwrap();
    assert_eq!(by_phone, MemberQuery::Phone("49301234567".into()));
    assert_eq!((by_phone.by(), by_phone.key()), ("phone", "49301234567"));
    let by_email = MemberQuery::new(Some("  "), Some(" Ada@Example.COM ")).unwrap();
    assert_eq!(by_email, MemberQuery::Email("ada@example.com".into()));
    assert_eq!(by_email.by(), "email");
}

#[test]
fn bad_queries_are_refused_without_quoting_them() {
    let cases: [(Option<&str>, Option<&str>, &str); 8] = [
        (None, None, "exactly one"),
        (Some(""), Some(" "), "exactly one"),
        (Some("0701234567"), Some("a@b.se"), "exactly one"),
        (Some("no digits SECRET"), None, "phone:"),
        (Some("SECRET"), None, "phone:"),
        (Some("1234"), None, "phone:"),
        (None, Some("SECRET-no-at.example"), "email:"),
        (None, Some("SECRET@nodot"), "email:"),
    ];
    for (phone, email, expected) in cases {
        let text = MemberQuery::new(phone, email).unwrap_err().to_string();
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }
}

#[test]
fn debug_of_a_query_or_request_shows_no_personal_data() {
    let query = MemberQuery::new(None, Some("ada@example.com")).unwrap();
    let request = FindRequest {
        id: "r1".into(),
        query: MemberQuery::new(Some("0701234567"), None).unwrap(),
    };
    for shown in [format!("{query:?}"), format!("{request:?}")] {
        assert!(
            !shown.contains("ada") && !shown.contains("0701234567"),
            "{shown}"
        );
    }
}

#[test]
fn requests_carry_the_key_and_round_trip() {
    let request = FindRequest {
        id: "0f3a-1".into(),
        query: MemberQuery::new(Some("+49 30 1234567"), None).unwrap(),
    };
    let bytes = request.encode();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        serde_json::json!({ "id": "0f3a-1", "phone": "49301234567" })
    );
    assert_eq!(FindRequest::decode(&bytes).unwrap(), request);
}

#[test]
fn hostile_requests_are_refused() {
    let long_id = format!(r#"{{"id":"{}","phone":"0701234567"}}"#, "a".repeat(65));
    let huge = vec![b' '; MAX_PAYLOAD_BYTES + 1];
    let cases: [&[u8]; 7] = [
        b"",
        b"not json",
        br#"{"id":"r1"}"#,
        br#"{"id":"r/1","phone":"0701234567"}"#,
        br#"{"id":"r1","phone":"0701234567","extra":1}"#,
        long_id.as_bytes(),
        &huge,
    ];
    for bytes in cases {
        assert!(FindRequest::decode(bytes).is_err());
    }
}

#[test]
fn replies_round_trip_and_hold_hq_to_masked_names_and_the_cap() {
    let rows = (1..=7)
        .map(|i| (format!("CLUB-100{i}"), "Ada Example".to_owned()))
        .collect();
    let found = MemberMatches::from_rows(rows);
    assert_eq!(found.members.len(), MAX_MATCHES);
    assert!(found.more);
    assert_eq!(found.members[0].name, "A. E.");
    let reply = FindReply {
        id: "r1".into(),
        result: Ok(found),
    };
    assert_eq!(FindReply::decode(&reply.encode()).unwrap(), reply);
    let failed = FindReply {
        id: "r2".into(),
        result: Err("HQ could not search".into()),
    };
    assert_eq!(FindReply::decode(&failed.encode()).unwrap(), failed);

    let unmasked = br#"{"id":"r1","members":[{"card":"CLUB-1001","name":"Ada Lovelace Example"}]}"#;
    assert!(FindReply::decode(unmasked).is_err());
    let not_a_card = br#"{"id":"r1","members":[{"card":"x y","name":"A. E."}]}"#;
    assert!(FindReply::decode(not_a_card).is_err());
    let six: Vec<_> = (1..=6)
        .map(|i| serde_json::json!({ "card": format!("CLUB-100{i}"), "name": "A." }))
        .collect();
    let too_many = serde_json::to_vec(&serde_json::json!({ "id": "r1", "members": six })).unwrap();
    assert!(FindReply::decode(&too_many).is_err());
    assert!(FindReply::decode(br#"{"id":"r1"}"#).is_err());
}
