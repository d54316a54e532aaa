//! The read models of `figures.rs` against the computation they replace (every store's
//! orders document loaded and summed): equal after every step of random operations by two
//! HQ instances over one database, and after a fill from documents stored without them.

use std::collections::BTreeMap;

use super::HqState;
use crate::crdt::coupons::CouponEntry;
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::loyalty::{LoyaltyEntry, LoyaltyField};
use crate::crdt::orders::OrdersDoc;
use crate::crdt::stock::StockDoc;
use crate::domain::coupons::{Coupon, CouponTotals};
use crate::domain::loyalty::{LaneTotals, LoyaltyRules, MemberId};
use crate::domain::pricing::Rule;
use crate::domain::stock::Movement;
use crate::hq::db::testing::TestDb;
use crate::sync::payload::SyncMessage;

const CODES: [&str; 2] = ["WEB-1", "APP-2"];
const MEMBERS: [&str; 3] = ["CLUB-1", "CLUB-2", "CLUB-3"];

/// A small deterministic generator (xorshift64): the same operations on every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % sides as u64).unwrap()
    }
}

fn coupon(code: &str, uses: i64) -> Coupon {
    Coupon {
        code: code.into(),
        name: "off".into(),
        discount: Rule::BasketAmountOff {
            min_total_minor: 0,
            amount_minor: 100,
        },
        uses,
        customer: None,
        channel: None,
        expires_at: None,
        revoked: false,
    }
}

/// The old computation: a coupon's holders over every store's orders document.
fn holders_from_documents(hq: &mut HqState, code: &str) -> BTreeMap<WriterId, CouponTotals> {
    hq.all_orders_docs()
        .unwrap()
        .into_iter()
        .filter_map(|core| OrdersDoc::from_core(core).ok())
        .flat_map(|doc| doc.coupon_totals().remove(code).unwrap_or_default())
        .collect()
}

/// The old computation: a member's lanes over every store's orders document.
fn lanes_from_documents(hq: &mut HqState, member: &str) -> BTreeMap<String, LaneTotals> {
    let mut lanes = BTreeMap::new();
    for core in hq.all_orders_docs().unwrap() {
        if let Ok(doc) = OrdersDoc::from_core(core) {
            lanes.extend(doc.loyalty_of(member).lanes);
        }
    }
    lanes
}

fn assert_rows_equal_documents(hq: &mut HqState, step: usize) {
    for code in CODES {
        let rows = hq.coupon_holder_rows(code).unwrap();
        assert_eq!(
            rows,
            holders_from_documents(hq, code),
            "{code} at step {step}"
        );
    }
    for member in MEMBERS {
        let rows = hq.member_lane_rows(member).unwrap();
        assert_eq!(
            rows,
            lanes_from_documents(hq, member),
            "{member} at step {step}"
        );
    }
}

/// The lane's store and the topic its orders changes arrive on.
fn changes_topic(lane: &OrdersDoc) -> (String, String) {
    let store = lane.core().id().store.clone();
    let topic = format!(
        "storenode/v1/t/{store}/changes/orders/{}",
        lane.core().writer()
    );
    (store, topic)
}

/// A lane's change to its store's orders document, received as over MQTT.
fn publish(hq: &mut HqState, lane: &mut OrdersDoc, change: Vec<u8>) {
    let (store, topic) = changes_topic(lane);
    let message = SyncMessage::Changes {
        doc: DocId::new(&store, DocKind::Orders).unwrap(),
        epoch: 0,
        changes: vec![change],
    }
    .encode()
    .unwrap();
    hq.handle(&topic, &message).unwrap();
}

/// One random operation: a lane's coupon or loyalty entry, or one of HQ's own writes.
fn random_operation(hq: &mut HqState, lanes: &mut [OrdersDoc], dice: &mut Dice, step: usize) {
    let code = CODES[dice.roll(CODES.len())];
    let member = MEMBERS[dice.roll(MEMBERS.len())];
    let card = MemberId::parse(member).unwrap();
    let points = i64::try_from(dice.roll(40) + 1).unwrap();
    let lane_index = dice.roll(lanes.len());
    match dice.roll(7) {
        0 | 1 => {
            let entry = match dice.roll(3) {
                0 => CouponEntry::Want { uses: 1 },
                1 => CouponEntry::Redeem { uses: 1 },
                _ => CouponEntry::Release { uses: 1 },
            };
            let lane = &mut lanes[lane_index];
            let change = lane.add_coupons(&[(code.to_owned(), entry)], 1).unwrap();
            publish(hq, lane, change.unwrap().bytes);
        }
        2 | 3 => {
            let field = match dice.roll(6) {
                0 | 1 => LoyaltyField::Earned,
                2 => LoyaltyField::Spent,
                3 => LoyaltyField::Owed,
                4 => LoyaltyField::Wanted,
                _ => LoyaltyField::Refunded,
            };
            let entry: LoyaltyEntry = (member.to_owned(), field, points);
            let lane = &mut lanes[lane_index];
            let change = lane.add_loyalty(&[entry], 1).unwrap();
            publish(hq, lane, change.unwrap().bytes);
        }
        4 => {
            let to = lanes[lane_index].core().writer().clone();
            let _ = hq.grant_coupon(code, &to, 1 + i64::from(dice.roll(2) == 0));
        }
        5 => {
            let _ = hq.redeem_online(code, &format!("web-{step}"), None);
        }
        _ => {
            let _ = hq.earn_online(&card, &format!("o-{step}"), points * 10);
            let _ = hq.spend_online(&card, &format!("p-{step}"), points);
        }
    }
}

/// Two HQ instances on one database, with loyalty rules of a point per unit.
fn two_instances_with_rules(dir: &TestDb) -> (HqState, HqState) {
    let mut a = HqState::open_target(&dir.target, "t", 1).unwrap();
    let b = HqState::open_target(&dir.target, "t", 1).unwrap();
    a.put_loyalty_rules(LoyaltyRules {
        points_per_unit: 1,
        point_value_minor: 1,
    })
    .unwrap();
    (a, b)
}

#[test]
fn rows_equal_the_documents_over_random_operations_of_two_instances() {
    let dir = TestDb::new();
    let (mut a, mut b) = two_instances_with_rules(&dir);
    a.issue_coupon(coupon("WEB-1", 12), &BTreeMap::new())
        .unwrap();
    b.issue_coupon(coupon("APP-2", 4), &BTreeMap::new())
        .unwrap();
    let mut lanes: Vec<OrdersDoc> = ["s1.n1", "s1.n2", "s2.n1", "s3.n1"]
        .iter()
        .map(|w| {
            let writer = WriterId::new(w).unwrap();
            let store = w.split('.').next().unwrap();
            OrdersDoc::genesis(store, 0, writer).unwrap()
        })
        .collect();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    for step in 0..150 {
        let hq = if dice.roll(2) == 0 { &mut a } else { &mut b };
        random_operation(hq, &mut lanes, &mut dice, step);
        if step % 10 == 9 {
            assert_rows_equal_documents(&mut a, step);
            assert_rows_equal_documents(&mut b, step);
        }
    }
    // The operations reached every kind of figure (not an empty comparison).
    let held: usize = CODES
        .iter()
        .map(|c| a.coupon_holder_rows(c).unwrap().len())
        .sum();
    let members: usize = MEMBERS
        .iter()
        .map(|m| a.member_lane_rows(m).unwrap().len())
        .sum();
    assert!(held >= 3 && members >= 3, "{held} {members}");
    let granted = MEMBERS
        .iter()
        .flat_map(|m| a.member_lane_rows(m).unwrap().into_values())
        .any(|t| t.granted > 0);
    assert!(granted, "HQ's settlements granted points to some lane");

    // An epoch cut rolls s1's orders document over (the totals move into its base): the
    // rows follow the new document.
    let mut stock = StockDoc::genesis("s1", 0, WriterId::new("s1.n1").unwrap()).unwrap();
    let sold = [Movement {
        sku: "A".into(),
        delta: 5,
    }];
    let change = stock.apply_movements(&sold, 1).unwrap().unwrap();
    let message = SyncMessage::Changes {
        doc: DocId::new("s1", DocKind::Stock).unwrap(),
        epoch: 0,
        changes: vec![change.bytes],
    }
    .encode()
    .unwrap();
    a.handle("storenode/v1/t/s1/changes/stock/s1.n1", &message)
        .unwrap();
    let before: Vec<_> = CODES
        .iter()
        .map(|c| a.coupon_holder_rows(c).unwrap())
        .collect();
    assert_eq!(a.open_epoch("s1").unwrap().0, 1);
    assert_rows_equal_documents(&mut a, 1_000);
    assert_rows_equal_documents(&mut b, 1_001);
    let after: Vec<_> = CODES
        .iter()
        .map(|c| a.coupon_holder_rows(c).unwrap())
        .collect();
    assert_eq!(before, after, "a cut carries the totals over");

    // An HQ upgraded onto documents stored before the tables: filled at its first start.
    let expected: Vec<_> = CODES
        .iter()
        .map(|c| a.coupon_holder_rows(c).unwrap())
        .collect();
    drop((a, b));
    {
        let db = crate::hq::db::Db::open(&dir.target).unwrap();
        db.batch(
            "DELETE FROM hq_coupon_holder; DELETE FROM hq_loyalty_lane;
             DELETE FROM hq_figures_filled;",
        )
        .unwrap();
    }
    let mut c = HqState::open_target(&dir.target, "t", 1).unwrap();
    assert_rows_equal_documents(&mut c, usize::MAX);
    let filled: Vec<_> = CODES
        .iter()
        .map(|code| c.coupon_holder_rows(code).unwrap())
        .collect();
    assert_eq!(filled, expected);
}

/// One step of [`rows_follow_only_what_each_change_wrote`].
#[derive(Debug, Clone)]
enum Step {
    /// A lane's coupon entry (0 want, 1 redeem, 2 release).
    Coupon { lane: usize, code: usize, kind: u8 },
    /// A lane's loyalty entry (0..=5: earned, spent, owed, wanted, refunded, released).
    Points {
        lane: usize,
        member: usize,
        field: u8,
        points: i64,
    },
    /// Two changes of one lane for two members, HQ receiving the second first: it waits for
    /// its dependency, which then brings it in.
    Swapped {
        lane: usize,
        first: usize,
        second: usize,
    },
    /// Two changes of one lane sent as one bundle (a catch-up).
    Bundle {
        lane: usize,
        first: usize,
        code: usize,
    },
    /// HQ grants a lane uses of a coupon.
    Grant { lane: usize, code: usize },
    /// The web shop earns and spends a member's points (HQ's entries, then settlements).
    Online { member: usize, points: i64 },
}

/// Six members and three coupons: a change names one or two of them, so a row written for
/// the wrong name (or not written) shows.
const MORE_MEMBERS: [&str; 6] = ["CLUB-1", "CLUB-2", "CLUB-3", "CLUB-4", "CLUB-5", "CLUB-6"];
const MORE_CODES: [&str; 3] = ["WEB-1", "APP-2", "TILL-3"];

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let lane = 0..4usize;
    let member = 0..MORE_MEMBERS.len();
    let code = 0..MORE_CODES.len();
    prop_oneof![
        (lane.clone(), code.clone(), 0..3u8).prop_map(|(lane, code, kind)| Step::Coupon {
            lane,
            code,
            kind
        }),
        (lane.clone(), member.clone(), 0..6u8, 1..40i64).prop_map(
            |(lane, member, field, points)| Step::Points {
                lane,
                member,
                field,
                points
            }
        ),
        (lane.clone(), member.clone(), member.clone()).prop_map(|(lane, first, second)| {
            Step::Swapped {
                lane,
                first,
                second,
            }
        }),
        (lane.clone(), member.clone(), code.clone()).prop_map(|(lane, first, code)| Step::Bundle {
            lane,
            first,
            code
        }),
        (lane, code).prop_map(|(lane, code)| Step::Grant { lane, code }),
        (member, 1..40i64).prop_map(|(member, points)| Step::Online { member, points }),
    ]
}

fn loyalty_field(field: u8) -> LoyaltyField {
    match field {
        0 => LoyaltyField::Earned,
        1 => LoyaltyField::Spent,
        2 => LoyaltyField::Owed,
        3 => LoyaltyField::Wanted,
        4 => LoyaltyField::Refunded,
        _ => LoyaltyField::Released,
    }
}

fn earn(lane: &mut OrdersDoc, member: usize) -> Vec<u8> {
    let entry = (MORE_MEMBERS[member].to_owned(), LoyaltyField::Earned, 3);
    lane.add_loyalty(&[entry], 1).unwrap().unwrap().bytes
}

/// A lane's changes since `heads` as one bundle, received as over MQTT.
fn publish_bundle(hq: &mut HqState, lane: &OrdersDoc, heads: &[automerge::ChangeHash]) {
    let (store, topic) = changes_topic(lane);
    let message = SyncMessage::Bundle {
        doc: DocId::new(&store, DocKind::Orders).unwrap(),
        epoch: 0,
        bundle: lane.core().bundle_since(heads).unwrap(),
    }
    .encode()
    .unwrap();
    hq.handle(&topic, &message).unwrap();
}

fn run_step(hq: &mut HqState, lanes: &mut [OrdersDoc], step: &Step, index: usize) {
    match *step {
        Step::Coupon { lane, code, kind } => {
            let entry = match kind {
                0 => CouponEntry::Want { uses: 1 },
                1 => CouponEntry::Redeem { uses: 1 },
                _ => CouponEntry::Release { uses: 1 },
            };
            let change = lanes[lane]
                .add_coupons(&[(MORE_CODES[code].to_owned(), entry)], 1)
                .unwrap();
            publish(hq, &mut lanes[lane], change.unwrap().bytes);
        }
        Step::Points {
            lane,
            member,
            field,
            points,
        } => {
            let entry: LoyaltyEntry = (
                MORE_MEMBERS[member].to_owned(),
                loyalty_field(field),
                points,
            );
            let change = lanes[lane].add_loyalty(&[entry], 1).unwrap();
            publish(hq, &mut lanes[lane], change.unwrap().bytes);
        }
        Step::Swapped {
            lane,
            first,
            second,
        } => {
            let one = earn(&mut lanes[lane], first);
            let two = earn(&mut lanes[lane], second);
            publish(hq, &mut lanes[lane], two);
            publish(hq, &mut lanes[lane], one);
        }
        Step::Bundle { lane, first, code } => {
            let heads = lanes[lane].core().heads();
            earn(&mut lanes[lane], first);
            let want = (MORE_CODES[code].to_owned(), CouponEntry::Want { uses: 1 });
            lanes[lane].add_coupons(&[want], 1).unwrap();
            publish_bundle(hq, &lanes[lane], &heads);
        }
        Step::Grant { lane, code } => {
            let to = lanes[lane].core().writer().clone();
            let _ = hq.grant_coupon(MORE_CODES[code], &to, 1);
        }
        Step::Online { member, points } => {
            let card = MemberId::parse(MORE_MEMBERS[member]).unwrap();
            let _ = hq.earn_online(&card, &format!("o-{index}"), points * 100);
            let _ = hq.spend_online(&card, &format!("p-{index}"), points / 2 + 1);
        }
    }
}

/// Every row as the whole documents give it, against the rows HQ kept change by change.
fn assert_rows_are_the_documents(
    hq: &mut HqState,
) -> Result<(), proptest::test_runner::TestCaseError> {
    for code in MORE_CODES {
        let rows = hq.coupon_holder_rows(code).unwrap();
        proptest::prop_assert_eq!(rows, holders_from_documents(hq, code), "coupon {}", code);
    }
    for member in MORE_MEMBERS {
        let rows = hq.member_lane_rows(member).unwrap();
        proptest::prop_assert_eq!(rows, lanes_from_documents(hq, member), "member {}", member);
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// HQ rewrites only the rows of the coupons and members a change wrote (`figures.rs`):
    /// after any sequence of lanes' changes (one by one, out of order, in bundles) and of
    /// HQ's own writes (grants, answers to asks, settlements), on two instances, the rows
    /// equal a full recompute from every store's document.
    #[test]
    fn rows_follow_only_what_each_change_wrote(
        steps in proptest::collection::vec((step(), proptest::bool::ANY), 1..24),
    ) {
        let dir = TestDb::new();
        let (mut a, mut b) = two_instances_with_rules(&dir);
        for (code, uses) in MORE_CODES.iter().zip([12, 4, 7]) {
            a.issue_coupon(coupon(code, uses), &BTreeMap::new()).unwrap();
        }
        let mut lanes: Vec<OrdersDoc> = ["s1.n1", "s1.n2", "s2.n1", "s3.n1"]
            .iter()
            .map(|w| {
                let store = w.split('.').next().unwrap();
                OrdersDoc::genesis(store, 0, WriterId::new(w).unwrap()).unwrap()
            })
            .collect();
        for (index, (step, on_a)) in steps.iter().enumerate() {
            let hq = if *on_a { &mut a } else { &mut b };
            run_step(hq, &mut lanes, step, index);
        }
        assert_rows_are_the_documents(&mut a)?;
        assert_rows_are_the_documents(&mut b)?;
    }
}
