use super::*;
use crate::domain::loyalty::HqTotals;
use proptest::prelude::*;

const M: &str = "CLUB-1";

fn w(id: &str) -> WriterId {
    WriterId::new(id).unwrap()
}

fn exchange(a: &mut OrdersDoc, b: &mut OrdersDoc) {
    let to_b = a.core().changes_since(&b.core().heads());
    let to_a = b.core().changes_since(&a.core().heads());
    b.core_mut().apply_changes(&to_b).unwrap();
    a.core_mut().apply_changes(&to_a).unwrap();
}

/// The ledger over several stores' documents plus HQ's own totals.
fn combine<'a>(docs: impl IntoIterator<Item = &'a OrdersDoc>, hq: HqTotals) -> MemberLedger {
    let mut all = MemberLedger {
        hq,
        ..Default::default()
    };
    for doc in docs {
        all.lanes.extend(doc.loyalty_of(M).lanes);
    }
    all
}

#[test]
fn lanes_and_hq_add_their_own_totals_and_hq_grants_count_only_from_hq() {
    let mut lane = OrdersDoc::genesis("s1", 0, w("s1.n1")).unwrap();
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    lane.add_loyalty(&[(M.into(), LoyaltyField::Earned, 30)], 1)
        .unwrap()
        .unwrap();
    lane.add_loyalty(
        &[
            (M.into(), LoyaltyField::Earned, 20),
            (M.into(), LoyaltyField::Wanted, 1),
        ],
        2,
    )
    .unwrap();
    // A lane writing a grant key in its own map grants nothing.
    lane.add_loyalty(&[(M.into(), LoyaltyField::Granted(w("s1.n1")), 99)], 3)
        .unwrap();
    exchange(&mut lane, &mut hq);
    hq.add_loyalty(
        &[
            (M.into(), LoyaltyField::Granted(w("s1.n1")), 40),
            (M.into(), LoyaltyField::Served(w("s1.n1")), 1),
        ],
        4,
    )
    .unwrap();
    exchange(&mut lane, &mut hq);
    let ledger = lane.loyalty_of(M);
    assert_eq!(ledger, hq.loyalty_of(M));
    let l = ledger.lanes["s1.n1"];
    assert_eq!((l.earned, l.wanted, l.granted, l.served), (50, 1, 40, 1));
    assert_eq!(
        (ledger.pool(), l.allowance(), ledger.balance()),
        (10, 40, 50)
    );
    assert_eq!(lane.loyalty_of("OTHER"), MemberLedger::default());
}

#[test]
fn rules_travel_in_the_catalog_and_only_hq_writes_them() {
    let mut hq = CatalogDoc::genesis(0, w("hq")).unwrap();
    let rules = LoyaltyRules {
        points_per_unit: 1,
        point_value_minor: 1,
    };
    assert!(hq.put_loyalty_rules(&rules, 1).unwrap().is_some());
    assert!(
        hq.put_loyalty_rules(&rules, 2).unwrap().is_none(),
        "unchanged"
    );
    assert_eq!(read_loyalty_rules(hq.core()), Some(rules));
    let mut node = CatalogDoc::genesis(0, w("s1.n1")).unwrap();
    assert!(node.put_loyalty_rules(&rules, 1).is_err());
}

// ---- No balance below zero under random interleavings ----------------------------------

#[derive(Clone, Debug)]
enum Step {
    /// A sale at store `i` earns `n` (offline or not).
    Earn(usize, i64),
    /// The member pays `n` points at store `i` (only from the lane's allowance).
    Spend(usize, i64),
    /// A return at store `i` takes back `n` of the points earned there.
    Return(usize, i64),
    /// A return at store `i` of a sale paid in points gives back `n` of the points spent there.
    Refund(usize, i64),
    /// The member is identified at store `i`'s till: the lane asks for points.
    Want(usize),
    /// HQ settles what is owed and answers wants with its pool.
    HqSettle,
    /// The web shop earns / spends at HQ.
    WebEarn(i64),
    WebSpend(i64),
    /// Store `i`'s link toggles; messages flow if it is up.
    Toggle(usize),
    Sync(usize),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0_usize..2, 1_i64..40).prop_map(|(i, n)| Step::Earn(i, n)),
        (0_usize..2, 1_i64..40).prop_map(|(i, n)| Step::Spend(i, n)),
        (0_usize..2, 1_i64..30).prop_map(|(i, n)| Step::Return(i, n)),
        (0_usize..2, 1_i64..30).prop_map(|(i, n)| Step::Refund(i, n)),
        (0_usize..2).prop_map(Step::Want),
        Just(Step::HqSettle),
        (1_i64..30).prop_map(Step::WebEarn),
        (1_i64..30).prop_map(Step::WebSpend),
        (0_usize..2).prop_map(Step::Toggle),
        (0_usize..2).prop_map(Step::Sync),
        (0_usize..2).prop_map(Step::Sync),
    ]
}

struct Lane {
    doc: OrdersDoc,
    writer: WriterId,
    linked: bool,
    /// Points earned here that no return has taken back yet (what a return may reverse).
    returnable: i64,
    /// Points spent here that no return has given back yet (what a return may refund).
    refundable: i64,
}

impl Lane {
    fn allowance(&self) -> i64 {
        self.doc
            .loyalty_of(M)
            .lanes
            .get(self.writer.as_str())
            .map_or(0, LaneTotals::allowance)
    }
}

/// What is true now: each store's two copies merged, plus HQ's own totals.
fn truth(lanes: &[Lane], hq_docs: &[OrdersDoc], hq: HqTotals) -> MemberLedger {
    let merged: Vec<OrdersDoc> = lanes
        .iter()
        .zip(hq_docs)
        .map(|(lane, hq_doc)| {
            let mut a = OrdersDoc::from_core(lane.doc.core().clone()).unwrap();
            let mut b = OrdersDoc::from_core(hq_doc.core().clone()).unwrap();
            exchange(&mut a, &mut b);
            a
        })
        .collect();
    combine(&merged, hq)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn no_balance_goes_negative_and_replicas_converge(
        steps in prop::collection::vec(arb_step(), 1..50),
    ) {
        let mut lanes: Vec<Lane> = (1..=2)
            .map(|i| {
                let writer = w(&format!("s{i}.n1"));
                Lane {
                    doc: OrdersDoc::genesis(&format!("s{i}"), 0, writer.clone()).unwrap(),
                    writer,
                    linked: true,
                    returnable: 0,
                    refundable: 0,
                }
            })
            .collect();
        let mut hq_docs: Vec<OrdersDoc> = (1..=2)
            .map(|i| OrdersDoc::genesis(&format!("s{i}"), 0, w("hq")).unwrap())
            .collect();
        let mut hq = HqTotals::default();
        let (mut earned, mut spent, mut reversed, mut refunded) = (0_i64, 0_i64, 0_i64, 0_i64);
        for step in steps {
            match step {
                Step::Earn(i, n) => {
                    lanes[i].doc.add_loyalty(&[(M.into(), LoyaltyField::Earned, n)], 1).unwrap();
                    lanes[i].returnable += n;
                    earned += n;
                }
                Step::Spend(i, n) if lanes[i].allowance() >= n => {
                    lanes[i].doc.add_loyalty(&[(M.into(), LoyaltyField::Spent, n)], 1).unwrap();
                    lanes[i].refundable += n;
                    spent += n;
                }
                Step::Refund(i, n) if lanes[i].refundable > 0 => {
                    let n = n.min(lanes[i].refundable);
                    lanes[i].refundable -= n;
                    lanes[i].doc.add_loyalty(&[(M.into(), LoyaltyField::Refunded, n)], 1).unwrap();
                    refunded += n;
                }
                Step::Return(i, n) => {
                    let n = n.min(lanes[i].returnable);
                    let take = n.min(lanes[i].allowance().max(0));
                    lanes[i].returnable -= n;
                    lanes[i].doc.add_loyalty(&[
                        (M.into(), LoyaltyField::Reversed, take),
                        (M.into(), LoyaltyField::Owed, n - take),
                    ], 1).unwrap();
                    reversed += take;
                }
                Step::Want(i) => {
                    lanes[i].doc.add_loyalty(&[(M.into(), LoyaltyField::Wanted, 1)], 1).unwrap();
                }
                Step::HqSettle => {
                    let seen = combine(&hq_docs, hq);
                    let (settle, mut grant) = seen.hq_plan();
                    hq.settled += settle;
                    for (i, doc) in hq_docs.iter_mut().enumerate() {
                        let lane = w(&format!("s{}.n1", i + 1));
                        let l = seen.lanes.get(lane.as_str()).copied().unwrap_or_default();
                        if l.wanted > l.served {
                            doc.add_loyalty(&[
                                (M.into(), LoyaltyField::Granted(lane.clone()), grant),
                                (M.into(), LoyaltyField::Served(lane), l.wanted - l.served),
                            ], 1).unwrap();
                            grant = 0;
                        }
                    }
                    reversed += settle;
                }
                Step::WebEarn(n) => {
                    hq.earned += n;
                    earned += n;
                }
                Step::WebSpend(n) if combine(&hq_docs, hq).pool() >= n => {
                    hq.spent += n;
                    spent += n;
                }
                Step::Toggle(i) => lanes[i].linked = !lanes[i].linked,
                Step::Sync(i) if lanes[i].linked => exchange(&mut lanes[i].doc, &mut hq_docs[i]),
                _ => {}
            }
            let t = truth(&lanes, &hq_docs, hq);
            prop_assert!(t.pool() >= 0, "pool {}", t.pool());
            for (lane, l) in &t.lanes {
                prop_assert!(l.allowance() >= 0, "{} allowance {}", lane, l.allowance());
            }
            prop_assert!(t.balance() >= 0);
            prop_assert_eq!(t.balance(), earned + refunded - spent - reversed);
            prop_assert!(spent - refunded <= earned);
        }
        for (lane, doc) in lanes.iter_mut().zip(hq_docs.iter_mut()) {
            exchange(&mut lane.doc, doc);
            prop_assert_eq!(lane.doc.loyalty_ledgers(), doc.loyalty_ledgers());
        }
        let end = combine(&hq_docs, hq);
        prop_assert_eq!(end.balance(), earned + refunded - spent - reversed);
        prop_assert!(end.balance() >= 0);
    }
}

#[test]
fn totals_are_exact_across_an_epoch_switch_with_a_lane_spending_offline() {
    use crate::crdt::epoch_orders::{carry_over_orders, open_next_orders_epoch};
    let lane_id = w("s1.n1");
    let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
    let mut lane = OrdersDoc::genesis("s1", 0, lane_id.clone()).unwrap();
    lane.add_loyalty(
        &[
            (M.into(), LoyaltyField::Earned, 30),
            (M.into(), LoyaltyField::Wanted, 1),
        ],
        1,
    )
    .unwrap();
    exchange(&mut lane, &mut hq);
    hq.add_loyalty(
        &[
            (M.into(), LoyaltyField::Granted(lane_id.clone()), 30),
            (M.into(), LoyaltyField::Served(lane_id.clone()), 1),
        ],
        2,
    )
    .unwrap();
    exchange(&mut lane, &mut hq);
    // The lane is cut off: it spends and earns after HQ's cut.
    lane.add_loyalty(
        &[
            (M.into(), LoyaltyField::Spent, 12),
            (M.into(), LoyaltyField::Earned, 5),
            (M.into(), LoyaltyField::Refunded, 4),
        ],
        3,
    )
    .unwrap();
    let (mut hq_new, _) = open_next_orders_epoch(&hq, w("hq"), 500).unwrap();
    assert_eq!(
        hq_new.loyalty_of(M),
        hq.loyalty_of(M),
        "the base is the cut"
    );
    let mut new = OrdersDoc::genesis("s1", 1, lane_id.clone()).unwrap();
    let from_hq = hq_new.core().changes_since(&new.core().heads());
    new.core_mut().apply_changes(&from_hq).unwrap();
    let carried = carry_over_orders(&lane, &mut new, 600).unwrap().unwrap();
    hq_new.core_mut().apply_changes(&[&carried.bytes]).unwrap();
    let l = hq_new.loyalty_of(M).lanes[lane_id.as_str()];
    assert_eq!(
        (l.earned, l.spent, l.refunded, l.wanted, l.granted, l.served),
        (35, 12, 4, 1, 30, 1)
    );
    assert_eq!(l.allowance(), 22);
    assert_eq!(new.loyalty_of(M), hq_new.loyalty_of(M));
}
