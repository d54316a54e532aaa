use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::crdt::epoch_orders::{carry_over_orders, open_next_orders_epoch};
use crate::domain::coupons::{pool, uses_to_grant};
use crate::domain::pricing::Rule;

fn w(id: &str) -> WriterId {
    WriterId::new(id).unwrap()
}

fn exchange(a: &mut OrdersDoc, b: &mut OrdersDoc) {
    let to_b = a.core().changes_since(&b.core().heads());
    let to_a = b.core().changes_since(&a.core().heads());
    b.core_mut().apply_changes(&to_b).unwrap();
    a.core_mut().apply_changes(&to_a).unwrap();
}

fn grant(lane: &str, uses: i64) -> (String, CouponEntry) {
    (
        "SAVE".to_owned(),
        CouponEntry::Grant {
            lane: w(lane),
            uses,
        },
    )
}

fn redeem(uses: i64) -> (String, CouponEntry) {
    ("SAVE".to_owned(), CouponEntry::Redeem { uses })
}

#[test]
fn definitions_round_trip_through_the_catalog() {
    let mut catalog = CatalogDoc::genesis(0, w("hq")).unwrap();
    let coupon = Coupon {
        code: "SAVE".into(),
        name: "5 off".into(),
        discount: Rule::BasketAmountOff {
            min_total_minor: 0,
            amount_minor: 500,
        },
        uses: 1,
        customer: Some("c-17".into()),
        channel: None,
        expires_at: None,
        revoked: false,
    };
    catalog.put_coupon(&coupon, 1).unwrap().unwrap();
    assert_eq!(read_coupons(catalog.core())["SAVE"], coupon);
    // The promotions read from the same map do not see it.
    assert!(
        crate::crdt::pricing::read_rules(catalog.core())
            .promotions
            .is_empty()
    );
    let mut store = CatalogDoc::genesis(0, w("s1.n1")).unwrap();
    assert!(
        store.put_coupon(&coupon, 1).is_err(),
        "only HQ defines coupons"
    );
}

#[test]
fn each_total_has_one_kind_of_writer_and_hq_accepts_them() {
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane = OrdersDoc::genesis("s1", 0, w("s1.n1")).unwrap();
    assert!(lane.add_coupons(&[grant("s1.n1", 5)], 1).is_err());
    assert!(hq.add_coupons(&[redeem(1)], 1).is_err());
    hq.add_coupons(&[grant("s1.n1", 2)], 1).unwrap().unwrap();
    exchange(&mut hq, &mut lane);
    let change = lane.add_coupons(&[redeem(1)], 2).unwrap().unwrap();
    let allowed: BTreeSet<WriterId> = [w("hq"), w("s1.n1")].into();
    assert!(hq.core().check_change(&change.bytes, &allowed).is_ok());
    exchange(&mut hq, &mut lane);
    let mine = hq.coupon_of("SAVE", &w("s1.n1"));
    assert_eq!((mine.granted, mine.redeemed, mine.held()), (2, 1, 1));
    assert_eq!(lane.coupon_totals(), hq.coupon_totals());
    // Asks: only a lane asks, only HQ answers.
    let want = ("SAVE".to_owned(), CouponEntry::Want { uses: 1 });
    let serve = (
        "SAVE".to_owned(),
        CouponEntry::Serve {
            lane: w("s1.n1"),
            uses: 1,
        },
    );
    assert!(hq.add_coupons(std::slice::from_ref(&want), 3).is_err());
    assert!(lane.add_coupons(std::slice::from_ref(&serve), 3).is_err());
    lane.add_coupons(&[want], 3).unwrap().unwrap();
    exchange(&mut hq, &mut lane);
    assert_eq!(hq.coupon_of("SAVE", &w("s1.n1")).open_asks(), 1);
    hq.add_coupons(&[serve], 4).unwrap().unwrap();
    exchange(&mut hq, &mut lane);
    let mine = lane.coupon_of("SAVE", &w("s1.n1"));
    assert_eq!((mine.wanted, mine.served, mine.open_asks()), (1, 1, 0));
}

#[test]
fn counters_are_exact_across_an_epoch_switch_with_a_lane_redeeming_offline() {
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane = OrdersDoc::genesis("s1", 0, w("s1.n1")).unwrap();
    hq.add_coupons(&[grant("s1.n1", 3)], 1).unwrap();
    exchange(&mut hq, &mut lane);
    lane.add_coupons(
        &[redeem(1), ("SAVE".into(), CouponEntry::Want { uses: 1 })],
        2,
    )
    .unwrap();
    exchange(&mut hq, &mut lane);
    let serve = CouponEntry::Serve {
        lane: w("s1.n1"),
        uses: 1,
    };
    hq.add_coupons(&[("SAVE".into(), serve)], 2).unwrap();
    // Cut off: this redemption and this ask are after HQ's cut.
    lane.add_coupons(
        &[redeem(1), ("SAVE".into(), CouponEntry::Want { uses: 1 })],
        3,
    )
    .unwrap();
    let (mut hq_new, _) = open_next_orders_epoch(&hq, w("hq"), 500).unwrap();
    let at_cut = hq_new.coupon_of("SAVE", &w("s1.n1"));
    assert_eq!((at_cut.granted, at_cut.redeemed), (3, 1));
    let mut new = OrdersDoc::genesis("s1", 1, w("s1.n1")).unwrap();
    exchange(&mut hq_new, &mut new);
    let carried = carry_over_orders(&lane, &mut new, 600).unwrap().unwrap();
    hq_new.core_mut().apply_changes(&[&carried.bytes]).unwrap();
    let now = hq_new.coupon_of("SAVE", &w("s1.n1"));
    assert_eq!((now.granted, now.redeemed, now.held()), (3, 2, 1));
    assert_eq!((now.wanted, now.served, now.open_asks()), (2, 1, 1));
    assert_eq!(new.coupon_of("SAVE", &w("s1.n1")), now);
}

// ---- No schedule of partitions redeems a coupon more often than issued ------------------

const LANES: [&str; 3] = ["s1.n1", "s1.n2", "s2.n1"];

#[derive(Clone, Debug)]
enum Step {
    /// HQ grants `n` uses to a lane (only from its pool as it sees it).
    Grant(usize, i64),
    /// A lane redeems `n` (only what it holds as it sees it).
    Redeem(usize, i64),
    /// A lane gives `n` back to HQ.
    Release(usize, i64),
    /// A till of a lane that holds no use is refused: the lane asks HQ (one ask open at most).
    Want(usize),
    /// HQ answers every open ask it sees, granting from its pool (`domain::uses_to_grant`).
    Answer,
    /// A lane's link to HQ toggles.
    Toggle(usize),
    /// HQ and a lane exchange changes, if linked.
    Sync(usize),
    /// The two lanes of store s1 exchange changes with each other (their local broker).
    Peer,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3_usize, 1_i64..3).prop_map(|(l, n)| Step::Grant(l, n)),
        (0..3_usize, 1_i64..3).prop_map(|(l, n)| Step::Redeem(l, n)),
        (0..3_usize, 1_i64..3).prop_map(|(l, n)| Step::Redeem(l, n)),
        (0..3_usize, 1_i64..2).prop_map(|(l, n)| Step::Release(l, n)),
        (0..3_usize).prop_map(Step::Want),
        (0..3_usize).prop_map(Step::Want),
        Just(Step::Answer),
        (0..3_usize).prop_map(Step::Toggle),
        (0..3_usize).prop_map(Step::Sync),
        (0..3_usize).prop_map(Step::Sync),
        Just(Step::Peer),
    ]
}

fn store_of(lane: &str) -> &str {
    lane.split_once('.').map_or(lane, |(s, _)| s)
}

/// HQ's replicas of both stores' orders documents.
struct Hq {
    s1: OrdersDoc,
    s2: OrdersDoc,
}

impl Hq {
    fn doc(&mut self, lane: &str) -> &mut OrdersDoc {
        if store_of(lane) == "s1" {
            &mut self.s1
        } else {
            &mut self.s2
        }
    }

    fn pool(&self, uses: i64) -> i64 {
        let holders = [&self.s1, &self.s2].into_iter().flat_map(|doc| {
            doc.coupon_totals()
                .remove("SAVE")
                .unwrap_or_default()
                .into_values()
        });
        pool(uses, holders)
    }

    /// Answers every open ask HQ sees, as `hq::coupons` does at ingest.
    fn answer(&mut self, coupon: &Coupon) {
        for lane in LANES {
            let totals = self
                .doc(lane)
                .coupon_totals()
                .remove("SAVE")
                .unwrap_or_default();
            let mine = totals.get(&w(lane)).copied().unwrap_or_default();
            if mine.open_asks() == 0 {
                continue;
            }
            let others = totals
                .iter()
                .filter(|(l, _)| l.as_str() != lane)
                .map(|(_, t)| *t);
            let uses = uses_to_grant(coupon, mine, others, self.pool(coupon.uses), "2026-12-01");
            let mut entries = vec![(
                "SAVE".to_owned(),
                CouponEntry::Serve {
                    lane: w(lane),
                    uses: mine.open_asks(),
                },
            )];
            if uses > 0 {
                entries.push(grant(lane, uses));
            }
            self.doc(lane).add_coupons(&entries, 1).unwrap();
        }
    }
}

fn bearer(uses: i64) -> Coupon {
    Coupon {
        code: "SAVE".into(),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn redemptions_never_exceed_the_uses_issued(
        uses in 1_i64..5,
        steps in prop::collection::vec(arb_step(), 1..60),
    ) {
        let coupon = bearer(uses);
        let mut hq = Hq {
            s1: OrdersDoc::genesis("s1", 0, w("hq")).unwrap(),
            s2: OrdersDoc::genesis("s2", 0, w("hq")).unwrap(),
        };
        let mut lanes: Vec<OrdersDoc> = LANES
            .iter()
            .map(|l| OrdersDoc::genesis(store_of(l), 0, w(l)).unwrap())
            .collect();
        let mut linked = [true; 3];
        let mut redeemed = 0;
        for step in steps {
            match step {
                Step::Grant(l, n) if hq.pool(uses) >= n => {
                    hq.doc(LANES[l]).add_coupons(&[grant(LANES[l], n)], 1).unwrap();
                }
                Step::Redeem(l, n) if lanes[l].coupon_of("SAVE", &w(LANES[l])).held() >= n => {
                    lanes[l].add_coupons(&[redeem(n)], 1).unwrap();
                    redeemed += n;
                }
                Step::Release(l, n) if lanes[l].coupon_of("SAVE", &w(LANES[l])).held() >= n => {
                    lanes[l]
                        .add_coupons(&[("SAVE".to_owned(), CouponEntry::Release { uses: n })], 1)
                        .unwrap();
                }
                Step::Want(l) => {
                    let mine = lanes[l].coupon_of("SAVE", &w(LANES[l]));
                    if mine.held() == 0 && mine.open_asks() == 0 {
                        lanes[l]
                            .add_coupons(&[("SAVE".to_owned(), CouponEntry::Want { uses: 1 })], 1)
                            .unwrap();
                    }
                }
                Step::Answer => hq.answer(&coupon),
                Step::Toggle(l) => linked[l] = !linked[l],
                Step::Sync(l) if linked[l] => exchange(hq.doc(LANES[l]), &mut lanes[l]),
                Step::Peer => {
                    let (a, b) = lanes.split_at_mut(1);
                    exchange(&mut a[0], &mut b[0]);
                }
                _ => {}
            }
            prop_assert!(redeemed <= uses, "redeemed {} of {} uses", redeemed, uses);
            for (l, lane) in lanes.iter().enumerate() {
                let mine = lane.coupon_of("SAVE", &w(LANES[l]));
                prop_assert!(mine.open_asks() <= 1, "{} asks open at {}", mine.open_asks(), LANES[l]);
            }
            prop_assert!(hq.pool(uses) >= 0);
        }
        // Healed: every replica agrees, and every use is in HQ's pool, held, or redeemed.
        for (l, lane) in lanes.iter_mut().enumerate() {
            exchange(hq.doc(LANES[l]), lane);
        }
        let mut held = 0;
        for (l, lane) in lanes.iter().enumerate() {
            let mine = lane.coupon_of("SAVE", &w(LANES[l]));
            prop_assert_eq!(mine, hq.doc(LANES[l]).coupon_of("SAVE", &w(LANES[l])));
            held += mine.held();
        }
        prop_assert_eq!(hq.pool(uses) + held + redeemed, uses);
        // HQ answers what is still open; then no ask is left unanswered, and the bound holds.
        hq.answer(&coupon);
        for (l, lane) in lanes.iter_mut().enumerate() {
            exchange(hq.doc(LANES[l]), lane);
            let mine = lane.coupon_of("SAVE", &w(LANES[l]));
            prop_assert_eq!(mine.open_asks(), 0);
        }
        prop_assert!(hq.pool(uses) >= 0);
    }
}
