use proptest::prelude::*;
use serde_json::Value;

use super::*;

const SCHEMA: &str = include_str!("../../../tests/data/epcis/EPCIS-JSON-Schema.json");

fn origin(gln: Option<&str>) -> Origin {
    Origin::new("acme", "s042", "lane1", gln).unwrap()
}

fn row(kind: EventKind) -> EventRow {
    EventRow {
        seq: 1,
        kind,
        source_id: 7,
        at: "2026-03-01T10:00:00.000Z".into(),
        sku: Some("MUG".into()),
        gtin14: Some("04012345000108".into()),
        quantity: Some(12),
        epc: None,
        reader: None,
        antenna: None,
        lines: Vec::new(),
    }
}

fn validate(doc: &Value) {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

#[test]
fn receipt_is_a_class_level_receiving_event() {
    let e = build_event(&origin(Some("4012345000009")), &row(EventKind::Receipt)).unwrap();
    assert_eq!(e["bizStep"], "receiving");
    assert_eq!(e["disposition"], "sellable_not_accessible");
    assert_eq!(e["action"], "OBSERVE");
    assert_eq!(
        e["quantityList"][0]["epcClass"],
        "https://id.gs1.org/01/04012345000108"
    );
    assert_eq!(e["quantityList"][0]["quantity"], 12);
    assert_eq!(
        e["bizLocation"]["id"],
        "https://id.gs1.org/414/4012345000009"
    );
    assert_eq!(
        e["readPoint"]["id"],
        "https://id.gs1.org/414/4012345000009/254/lane1"
    );
    assert_eq!(e["eventTimeZoneOffset"], "+00:00");
    assert!(e.get("epcList").is_none());
}

#[test]
fn sale_mixes_epc_and_class_lines() {
    let mut r = row(EventKind::Sale);
    r.lines = vec![
        SaleLine {
            gtin14: Some("04012345000108".into()),
            quantity: 2,
            unit: "piece".into(),
            epc: None,
        },
        SaleLine {
            gtin14: Some("80614141123458".into()),
            quantity: 1,
            unit: "piece".into(),
            epc: Some("3074257BF7194E4000001A85".into()),
        },
        SaleLine {
            gtin14: Some("02000000000008".into()),
            quantity: 1086,
            unit: "gram".into(),
            epc: None,
        },
        SaleLine {
            gtin14: None,
            quantity: 1,
            unit: "piece".into(),
            epc: None,
        },
    ];
    let e = build_event(&origin(None), &r).unwrap();
    assert_eq!(e["bizStep"], "retail_selling");
    assert_eq!(e["disposition"], "retail_sold");
    assert_eq!(e["epcList"][0], "urn:epc:id:sgtin:0614141.812345.6789");
    assert_eq!(e["quantityList"].as_array().unwrap().len(), 2);
    assert_eq!(e[LINES_WITHOUT_GTIN], 1);
    assert_eq!(e["quantityList"][1]["uom"], "GRM");
    assert_eq!(e["quantityList"][1]["quantity"], 1086);
    assert_eq!(e["bizLocation"]["id"], "urn:storenode:loc:acme:s042");
}

#[test]
fn tag_read_and_exit_alert_are_epc_level() {
    let mut r = row(EventKind::ExitAlert);
    r.epc = Some("3074257BF7194E4000001A85".into());
    r.reader = Some("door 1".into());
    r.antenna = Some(2);
    let e = build_event(&origin(Some("4012345000009")), &r).unwrap();
    assert_eq!(e["bizStep"], "entering_exiting");
    assert_eq!(e["disposition"], "unknown");
    assert_eq!(
        e["readPoint"]["id"],
        "https://id.gs1.org/414/4012345000009/254/door%201.2"
    );
    r.kind = EventKind::TagRead;
    r.epc = Some("E2801160600002".into());
    let e = build_event(&origin(None), &r).unwrap();
    assert_eq!(e["bizStep"], "cycle_counting");
    assert_eq!(e["epcList"][0], "urn:epc:raw:56.xE2801160600002");
}

#[test]
fn event_without_gs1_identity_is_skipped() {
    let mut r = row(EventKind::Count);
    r.gtin14 = None;
    assert!(build_event(&origin(None), &r).is_none());
}

#[test]
fn document_of_every_kind_validates_against_the_official_schema() {
    let o = origin(Some("4012345000009"));
    let mut events = Vec::new();
    for kind in [EventKind::Receipt, EventKind::Count] {
        events.push(build_event(&o, &row(kind)).unwrap());
    }
    let mut count_unknown = row(EventKind::Count);
    count_unknown.quantity = None;
    events.push(build_event(&o, &count_unknown).unwrap());
    for kind in [EventKind::TagRead, EventKind::ExitAlert] {
        let mut r = row(kind);
        r.epc = Some("3074257BF7194E4000001A85".into());
        r.reader = Some("reader0".into());
        r.antenna = Some(1);
        events.push(build_event(&o, &r).unwrap());
    }
    let mut sale = row(EventKind::Sale);
    sale.lines = vec![SaleLine {
        gtin14: Some("04012345000108".into()),
        quantity: 500,
        unit: "gram".into(),
        epc: Some("3074257BF7194E4000001A85".into()),
    }];
    events.push(build_event(&o, &sale).unwrap());
    let doc = document(events, "2026-03-01T10:00:01.000Z", 3);
    validate(&doc);
    validate(&document(Vec::new(), "2026-03-01T10:00:01.000Z", 0));
}

#[test]
fn schema_rejects_a_broken_document() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let mut e = build_event(&origin(None), &row(EventKind::Receipt)).unwrap();
    e["bizStep"] = Value::from("not a step");
    assert!(!validator.is_valid(&document(vec![e], "2026-03-01T10:00:01.000Z", 0)));
    // Formats are checked too: a location must be a URI, a time RFC 3339.
    let mut e = build_event(&origin(None), &row(EventKind::Receipt)).unwrap();
    e["readPoint"]["id"] = Value::from("lane 1");
    assert!(!validator.is_valid(&document(vec![e], "2026-03-01T10:00:01.000Z", 0)));
    let e = build_event(&origin(None), &row(EventKind::Receipt)).unwrap();
    assert!(!validator.is_valid(&document(vec![e], "yesterday", 0)));
}

#[test]
fn a_sale_line_given_by_gtin_13_exports_its_gtin_14() {
    // The sale of docs/api.md: `{"gtin": "4012345000016"}` is stored as given (13 digits); the
    // class URI is GS1 Digital Link, which takes the 14-digit GTIN only.
    let mut r = row(EventKind::Sale);
    r.lines = vec![SaleLine {
        gtin14: Some("4012345000016".into()),
        quantity: 2,
        unit: "piece".into(),
        epc: None,
    }];
    let e = build_event(&origin(None), &r).unwrap();
    assert_eq!(
        e["quantityList"][0]["epcClass"],
        "https://id.gs1.org/01/04012345000016"
    );
    let mut receipt = row(EventKind::Receipt);
    receipt.gtin14 = Some("96385074".into());
    let e = build_event(&origin(None), &receipt).unwrap();
    assert_eq!(
        e["quantityList"][0]["epcClass"],
        "https://id.gs1.org/01/00000096385074"
    );
}

#[test]
fn event_time_zone_offset_is_the_stores_at_the_event_time() {
    let berlin = origin(None).with_time_zone(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    let mut r = row(EventKind::Receipt);
    r.at = "2026-01-15T10:00:00.000Z".into();
    assert_eq!(
        build_event(&berlin, &r).unwrap()["eventTimeZoneOffset"],
        "+01:00"
    );
    // Summer time.
    r.at = "2026-07-15T10:00:00.000Z".into();
    let e = build_event(&berlin, &r).unwrap();
    assert_eq!(e["eventTimeZoneOffset"], "+02:00");
    // The time itself stays UTC.
    assert_eq!(e["eventTime"], "2026-07-15T10:00:00.000Z");
    let kolkata = origin(None).with_time_zone(jiff::tz::TimeZone::get("Asia/Kolkata").unwrap());
    assert_eq!(kolkata.offset_at("2026-07-15T10:00:00.000Z"), "+05:30");
    let new_york =
        origin(None).with_time_zone(jiff::tz::TimeZone::get("America/New_York").unwrap());
    assert_eq!(new_york.offset_at("2026-01-15T10:00:00.000Z"), "-05:00");
    validate(&document(vec![e], "2026-07-15T10:00:01.000Z", 0));
}

#[test]
fn lines_and_facts_without_gtin_are_counted_and_said() {
    let mut r = row(EventKind::Sale);
    r.lines = vec![
        SaleLine {
            gtin14: Some("04012345000108".into()),
            quantity: 1,
            unit: "piece".into(),
            epc: None,
        },
        SaleLine {
            gtin14: None,
            quantity: 500,
            unit: "gram".into(),
            epc: None,
        },
    ];
    let e = build_event(&origin(None), &r).unwrap();
    assert_eq!(e[LINES_WITHOUT_GTIN], 1);
    assert_eq!(e["quantityList"].as_array().unwrap().len(), 1);
    let whole = build_event(&origin(None), &row(EventKind::Sale));
    assert!(whole.is_none(), "a sale of no line has no event");
    let doc = document(vec![e], "2026-03-01T10:00:01.000Z", 2);
    assert_eq!(doc[FACTS_WITHOUT_GTIN], 2);
    assert_eq!(doc["@context"][1][EXTENSION_PREFIX], EXTENSION_NAMESPACE);
    // The extension fields are URIs (a prefix the document declares): the schema accepts them.
    validate(&doc);
    assert!(
        document(Vec::new(), "2026-03-01T10:00:01.000Z", 0)
            .get(FACTS_WITHOUT_GTIN)
            .is_none()
    );
}

#[test]
fn gln_is_checked() {
    assert!(Origin::new("t", "s", "n", Some("4012345000009")).is_ok());
    assert_eq!(
        Origin::new("t", "s", "n", Some("4012345000008")),
        Err(EpcisError::BadGln("4012345000008".into()))
    );
    assert!(Origin::new("t", "s", "n", Some("401234500000")).is_err());
}

#[test]
fn times_are_normalised_to_utc_millis() {
    assert_eq!(
        normalize_time("from", "2026-03-01T12:00:00+02:00").unwrap(),
        "2026-03-01T10:00:00.000Z"
    );
    assert_eq!(
        normalize_time("to", "yesterday"),
        Err(EpcisError::BadTime {
            field: "to",
            value: "yesterday".into()
        })
    );
}

#[test]
fn kinds_round_trip() {
    for k in [
        EventKind::Receipt,
        EventKind::Count,
        EventKind::Sale,
        EventKind::TagRead,
        EventKind::ExitAlert,
    ] {
        assert_eq!(EventKind::parse(k.as_str()), Ok(k));
    }
    assert!(EventKind::parse("transfer").is_err());
}

proptest! {
    // Normalised times sort as text exactly as the instants they name.
    #[test]
    fn normalised_times_sort_like_instants(a in 0i64..4_000_000_000, b in 0i64..4_000_000_000, off in -14i8..=14) {
        let offset = time::UtcOffset::from_hms(off, 0, 0).unwrap();
        let fmt = &time::format_description::well_known::Rfc3339;
        let ta = time::OffsetDateTime::from_unix_timestamp(a).unwrap().to_offset(offset);
        let tb = time::OffsetDateTime::from_unix_timestamp(b).unwrap();
        let na = normalize_time("from", &ta.format(fmt).unwrap()).unwrap();
        let nb = normalize_time("to", &tb.format(fmt).unwrap()).unwrap();
        prop_assert_eq!(na.cmp(&nb), a.cmp(&b));
    }

    // Any EPC hex becomes a URI the schema accepts, never a panic.
    #[test]
    fn any_epc_hex_maps_to_a_uri(bytes in proptest::collection::vec(any::<u8>(), 1..32)) {
        let hex_epc = hex::encode_upper(&bytes);
        let uri = epc_uri(&hex_epc);
        prop_assert!(uri.starts_with("urn:epc:"));
    }
}
