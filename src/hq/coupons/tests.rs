//! HQ's coupon state: issue, grant within the pool, revoke.

use super::*;
use crate::crdt::orders::OrdersDoc;
use crate::domain::coupons::Refusal;
use crate::domain::pricing::Rule;
use crate::hq::db::testing::TestDb;

fn coupon(code: &str, uses: i64) -> Coupon {
    Coupon {
        code: code.into(),
        name: "5 off".into(),
        discount: Rule::BasketAmountOff {
            min_total_minor: 0,
            amount_minor: 500,
        },
        uses,
        customer: None,
        channel: None,
        expires_at: None,
        revoked: false,
    }
}

/// HQ with the orders document of store s1 (as after its first sync).
fn hq_with_s1(dir: &TestDb) -> HqState {
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let id = DocId::new("s1", DocKind::Orders).unwrap();
    let doc = OrdersDoc::genesis("s1", 0, WriterId::hq()).unwrap();
    hq.docs.insert(id, doc.core().clone());
    hq
}

#[test]
fn grants_come_from_the_pool_and_never_exceed_the_uses() {
    let dir = TestDb::new();
    let mut hq = hq_with_s1(&dir);
    let grants = BTreeMap::from([("s1.lane1".to_owned(), 1)]);
    let out = hq.issue_coupon(coupon("web-5", 2), &grants).unwrap();
    assert!(
        out.len() >= 2,
        "the catalog change and the orders change go out"
    );
    let view = hq.coupon_view("WEB-5").unwrap().unwrap();
    assert_eq!((view.pool, view.redeemed), (1, 0));
    assert_eq!(view.holders[0].lane, "s1.lane1");
    assert_eq!(view.holders[0].held, 1);

    let lane = WriterId::new("s1.lane2").unwrap();
    assert!(matches!(
        hq.grant_coupon("WEB-5", &lane, 2),
        Err(CouponRefused::PoolShort { pool: 1, .. })
    ));
    hq.grant_coupon("WEB-5", &lane, 1).unwrap();
    assert_eq!(hq.coupon_view("WEB-5").unwrap().unwrap().pool, 0);

    assert!(matches!(
        hq.issue_coupon(coupon("WEB-5", 1), &BTreeMap::new()),
        Err(CouponRefused::Exists(_))
    ));
    let too_many = BTreeMap::from([("s1.lane1".to_owned(), 3)]);
    assert!(matches!(
        hq.issue_coupon(coupon("WEB-6", 2), &too_many),
        Err(CouponRefused::PoolShort { .. })
    ));
    let unknown_store = BTreeMap::from([("s9".to_owned(), 1)]);
    assert!(matches!(
        hq.issue_coupon(coupon("WEB-7", 2), &unknown_store),
        Err(CouponRefused::NoLane(_))
    ));
    hq.revoke_coupon("WEB-5").unwrap();
    assert!(hq.coupon_view("WEB-5").unwrap().unwrap().coupon.revoked);
    assert!(matches!(
        hq.revoke_coupon("NOPE-1"),
        Err(CouponRefused::Unknown(_))
    ));
}

/// A lane of s1 adds `entries` in its own copy; HQ receives the change as over MQTT.
fn from_lane(hq: &mut HqState, lane: &mut OrdersDoc, entries: &[(String, CouponEntry)]) {
    let change = lane.add_coupons(entries, 1).unwrap().unwrap();
    let topic = format!("storenode/v1/t/s1/changes/orders/{}", lane.core().writer());
    let message = crate::sync::payload::SyncMessage::Changes {
        doc: DocId::new("s1", DocKind::Orders).unwrap(),
        epoch: 0,
        changes: vec![change.bytes],
    }
    .encode()
    .unwrap();
    hq.handle(&topic, &message).unwrap();
}

fn ask() -> (String, CouponEntry) {
    ("APP-2".to_owned(), CouponEntry::Want { uses: 1 })
}

#[test]
fn a_lanes_ask_is_answered_at_ingest_from_the_pool_only() {
    let dir = TestDb::new();
    let mut hq = HqState::open_target(&dir.target, "t", 1).unwrap();
    let me = WriterId::new("s1.n1").unwrap();
    let mut lane = OrdersDoc::genesis("s1", 0, me.clone()).unwrap();
    hq.issue_coupon(coupon("app-2", 2), &BTreeMap::new())
        .unwrap();
    from_lane(&mut hq, &mut lane, &[ask()]);
    let view = hq.coupon_view("APP-2").unwrap().unwrap();
    assert_eq!(view.pool, 1);
    let t = view.holders[0].totals;
    assert_eq!((t.granted, t.wanted, t.served), (1, 1, 1));
    // Asked again (the use was redeemed meanwhile): the last use.
    let redeemed = ("APP-2".to_owned(), CouponEntry::Redeem { uses: 1 });
    from_lane(&mut hq, &mut lane, &[redeemed, ask()]);
    assert_eq!(hq.coupon_view("APP-2").unwrap().unwrap().pool, 0);
    // Pool empty: answered, nothing granted; the bound holds.
    from_lane(&mut hq, &mut lane, &[ask()]);
    let view = hq.coupon_view("APP-2").unwrap().unwrap();
    let t = view.holders[0].totals;
    assert_eq!((view.pool, t.granted, t.wanted, t.served), (0, 2, 3, 3));
    // A revoked coupon's ask gets nothing either.
    hq.issue_coupon(coupon("gone-1", 5), &BTreeMap::new())
        .unwrap();
    hq.revoke_coupon("GONE-1").unwrap();
    from_lane(
        &mut hq,
        &mut lane,
        &[("GONE-1".to_owned(), CouponEntry::Want { uses: 1 })],
    );
    let view = hq.coupon_view("GONE-1").unwrap().unwrap();
    assert_eq!((view.pool, view.holders[0].totals.served), (5, 1));
}

#[test]
fn the_web_redeems_from_the_pool_once_per_reference_never_past_the_uses() {
    let dir = TestDb::new();
    let mut hq = hq_with_s1(&dir);
    // 3 uses, one held by s1's lane: the web may take the other two, no more.
    let grants = BTreeMap::from([("s1.lane1".to_owned(), 1)]);
    hq.issue_coupon(coupon("sms-3", 3), &grants).unwrap();
    let first = hq.redeem_online("SMS-3", "web-1001", None).unwrap();
    assert_eq!((first.replayed, first.pool), (false, 1));
    // A retry of the same payment takes nothing more.
    let again = hq.redeem_online("SMS-3", "web-1001", None).unwrap();
    assert_eq!((again.replayed, again.pool), (true, 1));
    assert_eq!(again.redeemed_at, first.redeemed_at);
    hq.redeem_online("SMS-3", "web-1002", None).unwrap();
    assert!(matches!(
        hq.redeem_online("SMS-3", "web-1003", None),
        Err(CouponRefused::NoneAtHq(_))
    ));
    // Nor can HQ grant what the web took.
    let lane2 = WriterId::new("s1.lane2").unwrap();
    assert!(matches!(
        hq.grant_coupon("SMS-3", &lane2, 1),
        Err(CouponRefused::PoolShort { pool: 0, .. })
    ));
    let view = hq.coupon_view("SMS-3").unwrap().unwrap();
    assert_eq!((view.pool, view.redeemed, view.redeemed_online), (0, 2, 2));
    assert_eq!(view.holders[0].held, 1, "s1's use stays s1's");

    assert!(matches!(
        hq.redeem_online("SMS-3", "", None),
        Err(CouponRefused::Reference)
    ));
    assert!(matches!(
        hq.redeem_online("NOPE-1", "web-1", None),
        Err(CouponRefused::Unknown(_))
    ));
    // A personal coupon: only its customer; a revoked one: nobody.
    let mut personal = coupon("ada-10", 1);
    personal.customer = Some("cust-ada".into());
    hq.issue_coupon(personal, &BTreeMap::new()).unwrap();
    assert!(matches!(
        hq.redeem_online("ADA-10", "web-2001", Some("cust-bob")),
        Err(CouponRefused::Refused(Refusal::OtherCustomer(_)))
    ));
    hq.redeem_online("ADA-10", "web-2001", Some("cust-ada"))
        .unwrap();
    hq.issue_coupon(coupon("gone-2", 2), &BTreeMap::new())
        .unwrap();
    hq.revoke_coupon("GONE-2").unwrap();
    assert!(matches!(
        hq.redeem_online("GONE-2", "web-3001", None),
        Err(CouponRefused::Refused(Refusal::Revoked(_)))
    ));
}
