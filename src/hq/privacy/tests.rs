//! Unit tests of HQ's customer data store.

use super::*;
use crate::domain::customer::PiiPayload;
use crate::hq::db::testing::TestDb;
use crate::sync::topics::{Id, Scope, Topic, TopicSpace};

fn hq() -> (TestDb, HqPrivacy) {
    let dir = TestDb::new();
    let topics = TopicSpace::new(Id::new("t").unwrap());
    let privacy = HqPrivacy::open(&dir.target, topics).unwrap();
    (dir, privacy)
}

fn alice() -> Customer {
    Customer::new(
        "Alice Example",
        "+46 70 123 45 67",
        "Alice@Example.com",
        None,
    )
    .unwrap()
}

fn store_topic(store: &str, order: &str) -> Topic {
    TopicSpace::new(Id::new("t").unwrap()).pii(
        &Scope::store(Id::new(store).unwrap()).unwrap(),
        &Id::new(store).unwrap(),
        &Id::new(order).unwrap(),
    )
}

#[test]
fn put_publishes_retained_and_erase_by_email_publishes_a_tombstone() {
    let (_dir, mut hq) = hq();
    let out = hq.put("s1", "web-1", &alice()).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "storenode/v1/t/hq/pii/s1/web-1");
    assert!(out[0].retain);
    assert_eq!(
        PiiPayload::decode(&out[0].payload).unwrap(),
        PiiPayload::Customer(alice())
    );
    let by_email = EraseRequest {
        email: Some(" alice@EXAMPLE.com".into()),
        ..EraseRequest::default()
    };
    let (views, out) = hq.erase(&by_email, None).unwrap();
    assert_eq!(views.len(), 1);
    assert!(!views[0].store_confirmed);
    assert!(matches!(
        PiiPayload::decode(&out[0].payload).unwrap(),
        PiiPayload::Erased { .. }
    ));
    assert!(!String::from_utf8_lossy(&out[0].payload).contains("alice"));
    assert!(matches!(
        hq.lookup("web-1", None).unwrap(),
        HqLookup::Erased(_)
    ));
    assert!(matches!(
        hq.put("s1", "web-1", &alice()),
        Err(HqPrivacyError::Erased { .. })
    ));
    // The store's tombstone confirms.
    let tomb = PiiPayload::Erased {
        erased_at: "2026-01-01T00:00:00Z".into(),
        by: Some("s1.lane1".into()),
    };
    hq.handle(&store_topic("s1", "web-1"), &tomb.encode())
        .unwrap();
    let view = &hq.erasures("web-1").unwrap()[0];
    assert!(view.store_confirmed);
    assert_eq!(view.confirmed_by.as_deref(), Some("s1.lane1"));
    // A customer message arriving late does not bring the data back.
    hq.handle(
        &store_topic("s1", "web-1"),
        &PiiPayload::Customer(alice()).encode(),
    )
    .unwrap();
    assert!(matches!(
        hq.lookup("web-1", None).unwrap(),
        HqLookup::Erased(_)
    ));
}

#[test]
fn store_customers_are_kept_and_an_order_id_erasure_reaches_an_hq_order_without_data() {
    let (_dir, mut hq) = hq();
    hq.handle(
        &store_topic("s2", "shop-1"),
        &PiiPayload::Customer(alice()).encode(),
    )
    .unwrap();
    assert!(matches!(
        hq.lookup("shop-1", Some("s2")).unwrap(),
        HqLookup::Found { .. }
    ));
    // A store publishing about another store is refused.
    let forged = TopicSpace::new(Id::new("t").unwrap()).pii(
        &Scope::store(Id::new("s3").unwrap()).unwrap(),
        &Id::new("s2").unwrap(),
        &Id::new("shop-1").unwrap(),
    );
    assert!(hq.handle(&forged, &PiiPayload::Cleared.encode()).is_err());
    let by_phone = EraseRequest {
        phone: Some("+46 (70) 123-45-67".into()),
        ..EraseRequest::default()
    };
    assert_eq!(hq.erase(&by_phone, None).unwrap().0.len(), 1);
    // HQ's order of which HQ never had customer data: the store is still told.
    let by_order = EraseRequest {
        order_id: Some("web-7".into()),
        ..EraseRequest::default()
    };
    let (views, out) = hq.erase(&by_order, Some("s1".into())).unwrap();
    assert_eq!(views[0].store, "s1");
    assert_eq!(out[0].topic, "storenode/v1/t/hq/pii/s1/web-7");
    assert!(
        hq.erase(&EraseRequest::default(), None)
            .unwrap()
            .0
            .is_empty()
    );
    // Both tombstones are republished when HQ connects; no personal data in them.
    let again = hq.recent_tombstones().unwrap();
    assert_eq!(again.len(), 2);
    assert!(
        again
            .iter()
            .all(|m| m.retain && !String::from_utf8_lossy(&m.payload).contains("example"))
    );
}

#[test]
fn erase_requests_need_exactly_one_selector() {
    assert!(EraseRequest::default().check().is_err());
    let two = EraseRequest {
        email: Some("a@b.se".into()),
        phone: Some("12345".into()),
        ..EraseRequest::default()
    };
    assert!(two.check().is_err());
    let store_alone = EraseRequest {
        email: Some("a@b.se".into()),
        store: Some("s1".into()),
        ..EraseRequest::default()
    };
    assert!(store_alone.check().is_err());
}
