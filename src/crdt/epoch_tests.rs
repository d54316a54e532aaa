//! Tests of the epoch switch, including the model test "nothing lost, nothing doubled".

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::domain::stock::Movement;

const STORE: &str = "s001";

fn w(id: &str) -> WriterId {
    WriterId::new(id).unwrap()
}

fn lane_id(n: usize) -> WriterId {
    w(&format!("s001.lane{n}"))
}

fn nonzero(levels: BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    levels.into_iter().filter(|(_, q)| *q != 0).collect()
}

/// Gives `to` every change of `from`.
fn sync_into(from: &StockDoc, to: &mut StockDoc) {
    let changes = from.core().changes_since(&to.core().heads());
    to.core_mut().apply_changes(&changes).unwrap();
}

#[test]
fn carry_over_moves_post_cut_work_once() {
    let mut lane = StockDoc::genesis(STORE, 1, lane_id(1)).unwrap();
    let mut hq = StockDoc::genesis(STORE, 1, w("hq")).unwrap();
    lane.apply_movements(
        &[Movement {
            sku: "x".into(),
            delta: 10,
        }],
        1,
    )
    .unwrap();
    sync_into(&lane, &mut hq);
    // Offline after the cut: a sale HQ has not seen.
    lane.apply_movements(
        &[Movement {
            sku: "x".into(),
            delta: -3,
        }],
        2,
    )
    .unwrap();
    let plan = EpochPlan::at_cut(&hq, &hq.core().heads()).unwrap();
    assert_eq!(plan.epoch, 2);
    assert_eq!(plan.base, BTreeMap::from([("x".into(), 10)]));
    assert_eq!(plan.writer_cut.len(), 1);
    let hq2 = open_next_epoch(STORE, &plan, w("hq"), 3).unwrap();
    assert!(!all_moved_over(&hq2));

    let mut lane2 = StockDoc::genesis(STORE, 2, lane_id(1)).unwrap();
    sync_into(&hq2, &mut lane2);
    assert_eq!(lane2.stock("x"), 10);
    assert!(carry_over(&lane, &mut lane2, 4).unwrap().is_some());
    assert_eq!(lane2.stock("x"), 7);
    assert!(
        carry_over(&lane, &mut lane2, 5).unwrap().is_none(),
        "exactly once"
    );
    assert_eq!(lane2.stock("x"), 7);
    assert!(all_moved_over(&lane2));
}

/// Regression: a lane restored to a backup from before the switch (its old document lacks
/// its own change named in the cut) could not move over, although an earlier incarnation
/// had already carried its work: the carry-over read the restored, stale document first.
/// HQ recomputes every level after a catch-up bundle from the borrowed document: the same
/// levels as the typed copy, base and writers' totals both (the reserved keys too).
#[test]
fn levels_read_in_place_equal_the_typed_ones() {
    let mut lane = StockDoc::genesis(STORE, 1, lane_id(1)).unwrap();
    let mut hq = StockDoc::genesis(STORE, 1, w("hq")).unwrap();
    let moves = |pairs: &[(&str, i64)]| -> Vec<Movement> {
        pairs
            .iter()
            .map(|(sku, delta)| Movement {
                sku: (*sku).into(),
                delta: *delta,
            })
            .collect()
    };
    lane.apply_movements(&moves(&[("x", 10), ("y", 4), ("y#r", 1)]), 1)
        .unwrap();
    sync_into(&lane, &mut hq);
    let plan = EpochPlan::at_cut(&hq, &hq.core().heads()).unwrap();
    let mut next = open_next_epoch(STORE, &plan, w("hq"), 2).unwrap();
    let mut lane2 = StockDoc::genesis(STORE, 2, lane_id(2)).unwrap();
    sync_into(&next, &mut lane2);
    lane2
        .apply_movements(&moves(&[("x", -3), ("z", 2)]), 3)
        .unwrap();
    sync_into(&lane2, &mut next);
    assert_eq!(StockDoc::stock_levels_of(next.core()), next.stock_levels());
    assert_eq!(next.stock_levels().get("x"), Some(&7));
    assert_eq!(StockDoc::stock_levels_of(lane.core()), lane.stock_levels());
}

#[test]
fn a_writer_that_already_carried_over_does_not_read_its_restored_old_document() {
    let mut lane = StockDoc::genesis(STORE, 1, lane_id(1)).unwrap();
    let restored = lane.clone();
    let mut hq = StockDoc::genesis(STORE, 1, w("hq")).unwrap();
    let sale = Movement {
        sku: "x".into(),
        delta: -3,
    };
    lane.apply_movements(std::slice::from_ref(&sale), 1)
        .unwrap();
    sync_into(&lane, &mut hq);
    let plan = EpochPlan::at_cut(&hq, &hq.core().heads()).unwrap();
    let hq2 = open_next_epoch(STORE, &plan, w("hq"), 2).unwrap();
    let mut earlier = StockDoc::genesis(STORE, 2, lane_id(1).new_incarnation()).unwrap();
    sync_into(&hq2, &mut earlier);
    carry_over(&lane, &mut earlier, 3).unwrap();

    let mut again = StockDoc::genesis(STORE, 2, lane_id(1).new_incarnation()).unwrap();
    sync_into(&earlier, &mut again);
    assert!(carry_over(&restored, &mut again, 4).unwrap().is_none());
    assert_eq!(again.stock("x"), -3);
}

#[test]
fn carry_over_checks_succession_and_cut_heads() {
    let old = StockDoc::genesis(STORE, 1, lane_id(1)).unwrap();
    let mut skip = StockDoc::genesis(STORE, 3, lane_id(1)).unwrap();
    assert!(matches!(
        carry_over(&old, &mut skip, 0),
        Err(EpochError::NotNextEpoch { old: 1, new: 3 })
    ));
    let mut other = StockDoc::genesis("s002", 2, lane_id(1)).unwrap();
    assert!(matches!(
        carry_over(&old, &mut other, 0),
        Err(EpochError::OtherStore { .. })
    ));
    let elsewhere = StockDoc::genesis("s002", 1, lane_id(1)).unwrap();
    assert!(matches!(
        EpochPlan::at_cut(&old, &elsewhere.core().heads()),
        Err(EpochError::UnknownCutHead(_))
    ));
}

#[test]
fn carry_amounts_is_now_minus_cut() {
    let now = BTreeMap::from([("a".into(), 5), ("b".into(), 2)]);
    let cut = BTreeMap::from([("a".into(), 7), ("b".into(), 2), ("c".into(), 1)]);
    assert_eq!(
        carry_amounts(&now, &cut),
        BTreeMap::from([("a".into(), -2), ("c".into(), -1)])
    );
}

#[derive(Clone, Debug)]
enum Step {
    Move { lane: usize, sku: usize, delta: i64 },
    Push { lane: usize },
    Pull { lane: usize },
    MoveOver { lane: usize },
}

fn arb_step(lanes: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..lanes, 0..3_usize, -5_i64..6).prop_map(|(lane, sku, delta)| Step::Move { lane, sku, delta }),
        2 => (0..lanes).prop_map(|lane| Step::Push { lane }),
        1 => (0..lanes).prop_map(|lane| Step::Pull { lane }),
        1 => (0..lanes).prop_map(|lane| Step::MoveOver { lane }),
    ]
}

struct Lane {
    old: StockDoc,
    new: Option<StockDoc>,
}

struct World {
    lanes: Vec<Lane>,
    hq_old: StockDoc,
    hq_new: Option<StockDoc>,
    made: BTreeMap<String, i64>,
    clock: i64,
}

impl World {
    fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes)
                .map(|n| Lane {
                    old: StockDoc::genesis(STORE, 1, lane_id(n)).unwrap(),
                    new: None,
                })
                .collect(),
            hq_old: StockDoc::genesis(STORE, 1, w("hq")).unwrap(),
            hq_new: None,
            made: BTreeMap::new(),
            clock: 0,
        }
    }

    fn run(&mut self, step: &Step) {
        self.clock += 1;
        match *step {
            Step::Move { lane, sku, delta } => {
                let sku = format!("sku{sku}");
                *self.made.entry(sku.clone()).or_default() += delta;
                let l = &mut self.lanes[lane];
                let doc = l.new.as_mut().unwrap_or(&mut l.old);
                doc.apply_movements(&[Movement { sku, delta }], self.clock)
                    .unwrap();
            }
            Step::Push { lane } => {
                let l = &self.lanes[lane];
                sync_into(&l.old, &mut self.hq_old);
                if let (Some(new), Some(hq_new)) = (&l.new, &mut self.hq_new) {
                    sync_into(new, hq_new);
                }
            }
            Step::Pull { lane } => {
                let l = &mut self.lanes[lane];
                sync_into(&self.hq_old, &mut l.old);
                if let (Some(new), Some(hq_new)) = (&mut l.new, &self.hq_new) {
                    sync_into(hq_new, new);
                }
            }
            Step::MoveOver { lane } => self.move_over(lane),
        }
    }

    fn cut(&mut self) {
        let plan = EpochPlan::at_cut(&self.hq_old, &self.hq_old.core().heads()).unwrap();
        self.hq_new = Some(open_next_epoch(STORE, &plan, w("hq"), self.clock).unwrap());
    }

    fn move_over(&mut self, lane: usize) {
        let Some(hq_new) = &self.hq_new else {
            return; // no new epoch yet
        };
        let l = &mut self.lanes[lane];
        if l.new.is_some() {
            return;
        }
        let mut new = StockDoc::genesis(STORE, 2, lane_id(lane)).unwrap();
        sync_into(hq_new, &mut new);
        carry_over(&l.old, &mut new, self.clock).unwrap();
        l.new = Some(new);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random interleavings of writers' movements and syncs, a cut at a random point, some
    /// writers offline during the switch (still writing in E, moving over later): the final
    /// E+1 stock equals the sum of all movements ever made.
    #[test]
    fn epoch_switch_loses_and_doubles_nothing(
        before in prop::collection::vec(arb_step(3), 0..25),
        after in prop::collection::vec(arb_step(3), 0..25),
        online_at_cut in prop::collection::vec(any::<bool>(), 3),
    ) {
        let mut world = World::new(3);
        for step in &before {
            world.run(step);
        }
        world.cut();
        for (lane, online) in online_at_cut.iter().enumerate() {
            if *online {
                world.move_over(lane);
            }
        }
        for step in &after {
            world.run(step);
        }
        for lane in 0..3 {
            world.move_over(lane);
        }
        let mut hq_new = world.hq_new.take().unwrap();
        for lane in &world.lanes {
            let new = lane.new.as_ref().unwrap();
            sync_into(new, &mut hq_new);
            // Moving over again carries nothing.
            let mut again = new.clone();
            prop_assert!(carry_over(&lane.old, &mut again, 0).unwrap().is_none());
        }
        prop_assert_eq!(nonzero(hq_new.stock_levels()), nonzero(world.made.clone()));
        prop_assert!(all_moved_over(&hq_new));
    }
}

/// `cargo test --release -- --ignored --nocapture perf_epoch` prints sizes and load times.
#[test]
#[ignore = "benchmark: prints sizes and timings"]
fn perf_epoch_history_vs_fresh() {
    let mut lane = StockDoc::genesis(STORE, 1, lane_id(1)).unwrap();
    for i in 0..100_000_i64 {
        let sku = format!("sku{:05}", i % 10_000);
        lane.apply_movements(&[Movement { sku, delta: 1 }], i)
            .unwrap();
    }
    let old_bytes = lane.core().save();
    let start = std::time::Instant::now();
    let old = StockDoc::load(&old_bytes, w("hq")).unwrap();
    let old_load = start.elapsed();
    let start = std::time::Instant::now();
    let plan = EpochPlan::at_cut(&old, &old.core().heads()).unwrap();
    let new = open_next_epoch(STORE, &plan, w("hq"), 0).unwrap();
    let switch = start.elapsed();
    let new_bytes = new.core().save();
    let start = std::time::Instant::now();
    let reloaded = StockDoc::load(&new_bytes, w("hq")).unwrap();
    let new_load = start.elapsed();
    assert_eq!(reloaded.stock_levels(), old.stock_levels());
    println!(
        "epoch E: {} bytes, load {old_load:?}; plan+open E+1 {switch:?}; E+1: {} bytes, load {new_load:?}",
        old_bytes.len(),
        new_bytes.len()
    );
}
