//! Unit tests of the member lookup at HQ, on SQLite (and PostgreSQL with
//! `STORENODE_HQ_TEST_DB=postgres`): phone by digits, e-mail in any case, at most five,
//! erased members and orders' customers never found, answers only to the asking writer.

use std::sync::{Arc, Mutex};

use super::*;
use crate::domain::customer::Customer;
use crate::domain::member_find::{MAX_MATCHES, MemberMatches, MemberQuery};
use crate::hq::db::testing::TestDb;
use crate::hq::privacy::{EraseRequest, HqPrivacy};
use crate::sync::topics::{Id, TopicSpace};

fn privacy() -> (TestDb, SharedPrivacy) {
    let db = TestDb::new();
    let topics = TopicSpace::new(Id::new("t").unwrap());
    let privacy = HqPrivacy::open(&db.target, topics).unwrap();
    (db, Arc::new(Mutex::new(privacy)))
}

fn member(p: &SharedPrivacy, card: &str, name: &str, phone: &str, email: &str) {
    let customer = Customer::new(name, phone, email, None).unwrap();
    lock(p).put_member(card, &customer).unwrap();
}

fn find(p: &SharedPrivacy, phone: Option<&str>, email: Option<&str>) -> MemberMatches {
    let query = MemberQuery::new(phone, email).unwrap();
    lock(p).find_members(&query).unwrap()
}

fn cards(found: &MemberMatches) -> Vec<&str> {
    found.members.iter().map(|m| m.card.as_str()).collect()
}

#[test]
fn phones_match_by_digits_and_emails_in_any_case_with_masked_names() {
    let (_db, p) = privacy();
    member(
        &p,
        "CLUB-1001",
        "Ada Example",
        "+49 30 1234567",
        "Ada@Example.com",
    );
    member(
        &p,
        "CLUB-1002",
        "Bo Other",
        "+49 30 7654321",
        "bo@example.com",
    );
    // An order's customer with the same phone is not a member.
    let customer = Customer::new("Ada Example", "+49 30 1234567", "ada@example.com", None);
    lock(&p).put("s1", "web-1", &customer.unwrap()).unwrap();

    let by_phone = find(&p, Some("(49) 30-123 45 67"), None);
    assert_eq!(cards(&by_phone), ["CLUB-1001"]);
    assert_eq!(by_phone.members[0].name, "A. E.");
    assert!(!by_phone.more);
    let by_email = find(&p, None, Some("ADA@example.COM"));
    assert_eq!(cards(&by_email), ["CLUB-1001"]);
    assert!(find(&p, Some("+49 30 0000000"), None).members.is_empty());
}

#[test]
fn at_most_five_are_shown_by_card_and_more_is_said() {
    let (_db, p) = privacy();
    for i in (1..=7).rev() {
        member(
            &p,
            &format!("CLUB-20{i}"),
            "Kim Family",
            "0701234567",
            &format!("k{i}@example.com"),
        );
    }
    let found = find(&p, Some("070 123 45 67"), None);
    assert_eq!(found.members.len(), MAX_MATCHES);
    assert_eq!(cards(&found)[0], "CLUB-201");
    assert!(found.more);
}

#[test]
fn an_erased_member_is_not_found() {
    let (_db, p) = privacy();
    member(&p, "CLUB-3001", "Cy Erased", "0709999999", "cy@example.com");
    member(&p, "CLUB-3002", "Di Kept", "0708888888", "di@example.com");
    let by_phone = EraseRequest {
        phone: Some("070 999 99 99".into()),
        ..EraseRequest::default()
    };
    let (erased, _) = lock(&p).erase(&by_phone, None).unwrap();
    assert_eq!(erased.len(), 1);
    assert!(find(&p, Some("0709999999"), None).members.is_empty());
    assert!(find(&p, None, Some("cy@example.com")).members.is_empty());
    assert_eq!(cards(&find(&p, Some("0708888888"), None)), ["CLUB-3002"]);
}

#[test]
fn a_store_writers_lookup_is_answered_on_its_own_found_topic() {
    let (_db, p) = privacy();
    member(
        &p,
        "CLUB-1001",
        "Ada Example",
        "+49 30 1234567",
        "ada@example.com",
    );
    let request = FindRequest {
        id: "abc123".into(),
        query: MemberQuery::new(Some("+49 30 1234567"), None).unwrap(),
    };
    let out = answer(&p, "storenode/v1/t/s1/find/s1.lane1", &request.encode()).unwrap();
    assert_eq!(out.topic, "storenode/v1/t/s1/found/s1.lane1");
    assert!(!out.retain);
    let reply = FindReply::decode(&out.payload).unwrap();
    assert_eq!(reply.id, "abc123");
    let found = reply.result.unwrap();
    assert_eq!(cards(&found), ["CLUB-1001"]);
    // Nothing personal beyond the initials travels back.
    let text = String::from_utf8_lossy(&out.payload);
    for secret in ["Ada", "Example", "1234567", "ada@"] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn lookups_not_from_a_store_or_malformed_are_refused() {
    let (_db, p) = privacy();
    let request = FindRequest {
        id: "abc123".into(),
        query: MemberQuery::new(None, Some("ada@example.com")).unwrap(),
    }
    .encode();
    assert!(matches!(
        answer(&p, "storenode/v1/t/hq/find/hq", &request),
        Err(Refused::NotAStore)
    ));
    assert!(matches!(
        answer(
            &p,
            "storenode/v1/t/s1/find/s1.lane1",
            br#"{"id":"x","phone":"12"}"#
        ),
        Err(Refused::Request(_))
    ));
    assert!(matches!(
        answer(&p, "storenode/v1/t/s1/find", &request),
        Err(Refused::Topic(_))
    ));
    assert!(is_find_topic("storenode/v1/t/s1/find/s1.lane1"));
    assert!(!is_find_topic("storenode/v1/t/s1/found/s1.lane1"));
}
