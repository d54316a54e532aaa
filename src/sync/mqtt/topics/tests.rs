//! Unit and property tests of the topic layout: building, parsing, round trips, refusals.

use super::*;
use proptest::prelude::*;

fn id(s: &str) -> Id {
    Id::new(s).unwrap()
}

fn space() -> TopicSpace {
    TopicSpace::new(id("acme"))
}

fn store(s: &str) -> Scope {
    Scope::store(id(s)).unwrap()
}

#[test]
fn builds_the_documented_topics() {
    let t = space();
    let s = store("s042");
    assert_eq!(
        t.changes(&s, &id("stock"), &id("lane1")).to_string(),
        "storenode/v1/acme/s042/changes/stock/lane1"
    );
    assert_eq!(
        t.heads(&Scope::Hq, &s, &id("stock"), &id("hq1"))
            .to_string(),
        "storenode/v1/acme/hq/heads/s042/stock/hq1"
    );
    assert_eq!(
        t.status(&s, &id("lane1")).to_string(),
        "storenode/v1/acme/s042/status/lane1"
    );
    assert_eq!(
        t.request(&s, &id("lane1")).to_string(),
        "storenode/v1/acme/s042/req/lane1"
    );
    assert_eq!(
        t.response(&s, &id("lane1")).to_string(),
        "storenode/v1/acme/s042/resp/lane1"
    );
}

#[test]
fn builds_filters() {
    let t = space();
    let s = store("s042");
    assert_eq!(t.changes_filter(None), "storenode/v1/acme/+/changes/+/+");
    assert_eq!(
        t.changes_filter(Some(&Scope::Hq)),
        "storenode/v1/acme/hq/changes/+/+"
    );
    assert_eq!(
        t.heads_filter(Some(&Scope::Hq), Some(&s)),
        "storenode/v1/acme/hq/heads/s042/+/+"
    );
    assert_eq!(t.status_filter(None), "storenode/v1/acme/+/status/+");
    assert_eq!(t.requests_filter(), "storenode/v1/acme/+/req/+");
    assert_eq!(t.retired_filter(&s), "storenode/v1/acme/s042/retired/+");
}

#[test]
fn a_retirement_topic_round_trips() {
    let t = space();
    let topic = t.retired(&store("s042"), &id("s042.lane2"));
    assert_eq!(
        topic.to_string(),
        "storenode/v1/acme/s042/retired/s042.lane2"
    );
    assert!(topic.is_retained());
    assert_eq!(parse(&topic.to_string()).unwrap(), topic);
}

#[test]
fn member_lookup_topics_round_trip_and_are_never_retained() {
    let t = space();
    let find = t.find(&store("s042"), &id("s042.lane1"));
    assert_eq!(find.to_string(), "storenode/v1/acme/s042/find/s042.lane1");
    let found = t.found(&store("s042"), &id("s042.lane1"));
    assert_eq!(found.to_string(), "storenode/v1/acme/s042/found/s042.lane1");
    for topic in [find, found] {
        assert!(!topic.is_retained());
        assert_eq!(parse(&topic.to_string()), Ok(topic));
    }
    assert_eq!(t.find_filter(), "storenode/v1/acme/+/find/+");
    assert!(matches!(
        parse("storenode/v1/acme/s042/find/a/b"),
        Err(TopicError::WrongSegmentCount { .. })
    ));
}

#[test]
fn epcis_topics_round_trip() {
    let t = space();
    let batch = t.epcis(&store("s042"), &id("s042.lane1"));
    assert_eq!(batch.to_string(), "storenode/v1/acme/s042/epcis/s042.lane1");
    assert!(!batch.is_retained());
    assert_eq!(parse(&batch.to_string()), Ok(batch));
    let ack = t.epcis_ack(&id("s042"), &id("s042.lane1"));
    assert_eq!(
        ack.to_string(),
        "storenode/v1/acme/hq/epcis-ack/s042/s042.lane1"
    );
    assert!(ack.is_retained());
    assert_eq!(ack.scope(), &Scope::Hq);
    assert_eq!(parse(&ack.to_string()), Ok(ack));
    assert_eq!(t.epcis_filter(), "storenode/v1/acme/+/epcis/+");
    assert!(matches!(
        parse("storenode/v1/acme/s042/epcis/a/b"),
        Err(TopicError::WrongSegmentCount { .. })
    ));
    assert!(matches!(
        parse("storenode/v1/acme/hq/epcis-ack/s042"),
        Err(TopicError::WrongSegmentCount { .. })
    ));
}

#[test]
fn parses_hq_heads_of_a_store_document() {
    let topic = parse("storenode/v1/acme/hq/heads/s042/stock/hq1").unwrap();
    assert_eq!(
        topic,
        Topic::Heads {
            tenant: id("acme"),
            scope: Scope::Hq,
            doc_scope: store("s042"),
            doc: id("stock"),
            writer: id("hq1"),
        }
    );
    assert!(topic.is_retained());
    assert_eq!(topic.scope(), &Scope::Hq);
}

#[test]
fn hq_changes_of_a_store_document_name_the_store() {
    let t = space();
    let topic = t.changes_about(&Scope::Hq, &store("s042"), &id("orders"), &id("hq"));
    assert_eq!(
        topic.to_string(),
        "storenode/v1/acme/hq/changes/s042/orders/hq"
    );
    assert_eq!(parse(&topic.to_string()), Ok(topic));
    assert_eq!(
        t.changes_about_filter(Some(&Scope::Hq), Some(&store("s042"))),
        "storenode/v1/acme/hq/changes/s042/+/+"
    );
    // The own-scope form keeps the short layout (catalog, a lane's own documents).
    assert_eq!(
        t.changes_about(&Scope::Hq, &Scope::Hq, &id("catalog"), &id("hq"))
            .to_string(),
        "storenode/v1/acme/hq/changes/catalog/hq"
    );
    assert_eq!(
        parse("storenode/v1/acme/s1/changes/s1/stock/w"),
        Ok(t.changes(&store("s1"), &id("stock"), &id("w")))
    );
}

#[test]
fn a_document_named_like_a_kind_is_still_a_document() {
    let topic = parse("storenode/v1/acme/s1/changes/status/heads").unwrap();
    assert_eq!(
        topic,
        space().changes(&store("s1"), &id("status"), &id("heads"))
    );
    assert!(!topic.is_retained());
}

#[test]
fn rejects_wrong_prefix() {
    for bad in [
        "",
        "storenode",
        "storenode/v2/a/b/status/w",
        "xstorenode/v1/a/b/status/w",
    ] {
        assert!(
            matches!(parse(bad), Err(TopicError::WrongPrefix { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn rejects_wildcards_and_empty_segments() {
    assert!(matches!(
        parse("storenode/v1/acme/+/status/w"),
        Err(TopicError::InvalidIdChar { found: '+', .. })
    ));
    assert!(matches!(
        parse("storenode/v1/acme/s1/status/#"),
        Err(TopicError::InvalidIdChar { found: '#', .. })
    ));
    assert_eq!(
        parse("storenode/v1/acme//status/w"),
        Err(TopicError::EmptyId)
    );
    assert_eq!(
        parse("storenode/v1/acme/s1/status/"),
        Err(TopicError::EmptyId)
    );
}

#[test]
fn rejects_wrong_segment_counts() {
    assert!(matches!(
        parse("storenode/v1/acme/s1/status/w/extra"),
        Err(TopicError::WrongSegmentCount {
            kind: "status",
            expected: 6,
            found: 7,
            ..
        })
    ));
    assert!(matches!(
        parse("storenode/v1/acme/s1/changes/doc"),
        Err(TopicError::WrongSegmentCount {
            kind: "changes",
            expected: 7,
            found: 6,
            ..
        })
    ));
    assert!(matches!(
        parse("storenode/v1/acme/s1"),
        Err(TopicError::WrongSegmentCount { .. })
    ));
}

#[test]
fn pii_topics_round_trip_and_filter() {
    let t = space();
    let topic = t.pii(&Scope::Hq, &id("s042"), &id("web-1"));
    assert_eq!(topic.to_string(), "storenode/v1/acme/hq/pii/s042/web-1");
    assert_eq!(parse(&topic.to_string()), Ok(topic.clone()));
    assert!(topic.is_retained());
    assert_eq!(
        t.pii_filter(Some(&Scope::Hq), Some(&id("s042"))),
        "storenode/v1/acme/hq/pii/s042/+"
    );
    assert_eq!(t.pii_filter(None, None), "storenode/v1/acme/+/pii/+/+");
    assert!(matches!(
        parse("storenode/v1/acme/hq/pii/s042"),
        Err(TopicError::WrongSegmentCount { kind: "pii", .. })
    ));
    assert!(matches!(
        parse("storenode/v1/acme/hq/pii/s042/hq:web-1"),
        Err(TopicError::InvalidIdChar { found: ':', .. })
    ));
}

#[test]
fn rejects_unknown_kind() {
    assert!(matches!(
        parse("storenode/v1/acme/s1/gossip/w"),
        Err(TopicError::UnknownKind { .. })
    ));
}

#[test]
fn id_rules() {
    assert_eq!(Id::new(""), Err(TopicError::EmptyId));
    assert!(Id::new("a".repeat(MAX_ID_LEN)).is_ok());
    assert_eq!(
        Id::new("a".repeat(MAX_ID_LEN + 1)),
        Err(TopicError::IdTooLong {
            len: MAX_ID_LEN + 1
        })
    );
    for bad in ["a/b", "a+b", "a#b", "$SYS", "a b", "é"] {
        assert!(
            matches!(Id::new(bad), Err(TopicError::InvalidIdChar { .. })),
            "{bad:?}"
        );
    }
    assert_eq!(Scope::store(id("hq")), Err(TopicError::ReservedStoreId));
}

fn arb_id() -> impl Strategy<Value = Id> {
    "[A-Za-z0-9._-]{1,64}".prop_map(|s| Id::new(s).unwrap())
}

fn arb_scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Hq),
        arb_id().prop_map(|id| Scope::parse(id.as_str()).unwrap()),
    ]
}

fn arb_topic() -> impl Strategy<Value = Topic> {
    (
        arb_id(),
        arb_scope(),
        arb_scope(),
        arb_id(),
        arb_id(),
        0..7u8,
    )
        .prop_map(|(tenant, scope, doc_scope, doc, writer, kind)| match kind {
            0 => Topic::Changes {
                tenant,
                scope,
                doc_scope,
                doc,
                writer,
            },
            1 => Topic::Heads {
                tenant,
                scope,
                doc_scope,
                doc,
                writer,
            },
            2 => Topic::Status {
                tenant,
                scope,
                writer,
            },
            3 => Topic::Request {
                tenant,
                scope,
                writer,
            },
            4 => Topic::Find {
                tenant,
                scope,
                writer,
            },
            5 => Topic::Found {
                tenant,
                scope,
                writer,
            },
            _ => Topic::Response {
                tenant,
                scope,
                writer,
            },
        })
}

proptest! {
    #[test]
    fn display_then_parse_round_trips(topic in arb_topic()) {
        prop_assert_eq!(parse(&topic.to_string()), Ok(topic));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in ".*") {
        let _ = parse(&s);
    }

    #[test]
    fn near_miss_topics_never_panic(tail in "[a-z/+#]{0,40}") {
        let _ = parse(&format!("storenode/v1/{tail}"));
    }
}
