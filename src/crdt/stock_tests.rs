//! Tests of the stock document and the sync helpers of the core.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::crdt::doc::{ApplyOutcome, AuthError, change_author};
use automerge::ObjType;

fn w(id: &str) -> WriterId {
    WriterId::new(id).unwrap()
}

fn mv(sku: &str, delta: i64) -> Movement {
    Movement {
        sku: sku.to_owned(),
        delta,
    }
}

fn lane(n: u8) -> StockDoc {
    StockDoc::genesis("s001", 1, w(&format!("s001.lane{n}"))).unwrap()
}

#[test]
fn one_transaction_is_one_change_and_nets_per_sku() {
    let mut doc = lane(1);
    let before = doc.core().heads();
    let change = doc
        .apply_movements(
            &[
                mv("a", -1),
                mv("b", 5),
                mv("a", -2),
                mv("c", 1),
                mv("c", -1),
            ],
            10,
        )
        .unwrap()
        .unwrap();
    assert_eq!(doc.core().heads(), vec![change.hash]);
    assert_ne!(doc.core().heads(), before);
    assert_eq!(doc.stock("a"), -3);
    assert_eq!(doc.stock("b"), 5);
    assert_eq!(
        doc.stock_levels(),
        BTreeMap::from([("a".into(), -3), ("b".into(), 5)])
    );
    assert!(doc.apply_movements(&[mv("x", 0)], 11).unwrap().is_none());
    assert!(doc.apply_movements(&[], 11).unwrap().is_none());
}

#[test]
fn bad_movements_are_rejected_without_a_change() {
    let mut doc = lane(1);
    doc.apply_movements(&[mv("a", i64::MAX)], 1).unwrap();
    let heads = doc.core().heads();
    assert!(matches!(
        doc.apply_movements(&[mv("b", 1), mv("a", 1)], 2),
        Err(StockError::Overflow { .. })
    ));
    assert!(matches!(
        doc.apply_movements(&[mv("", 1)], 2),
        Err(StockError::InvalidSku(_))
    ));
    assert_eq!(doc.core().heads(), heads);
    assert_eq!(doc.stock("b"), 0);
}

#[test]
fn count_is_a_delta_against_the_local_view() {
    let mut a = lane(1);
    let mut b = lane(2);
    a.apply_movements(&[mv("x", 10)], 1).unwrap();
    b.core_mut()
        .apply_changes(&a.core().changes_since(&[]))
        .unwrap();
    // b counts 7 while a concurrently sells 2: both survive the merge.
    let delta = b.count_delta("x", 7);
    assert_eq!(delta, -3);
    let count = b.apply_movements(&[mv("x", delta)], 2).unwrap().unwrap();
    let sale = a.apply_movements(&[mv("x", -2)], 2).unwrap().unwrap();
    a.core_mut().apply_changes(&[count.bytes]).unwrap();
    b.core_mut().apply_changes(&[sale.bytes]).unwrap();
    assert_eq!(a.stock("x"), 5);
    assert_eq!(b.stock("x"), 5);
}

/// Every permutation of `items`.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            all.push(tail);
        }
    }
    all
}

#[test]
fn three_writers_converge_in_every_delivery_order() {
    let mut writers = [lane(1), lane(2), lane(3)];
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut changes = Vec::new();
    for (i, doc) in writers.iter_mut().enumerate() {
        for round in 0..2_i64 {
            let batch = [mv("hot", -1), mv(&format!("sku{i}"), round + 1)];
            for m in &batch {
                *expected.entry(m.sku.clone()).or_default() += m.delta;
            }
            changes.push(doc.apply_movements(&batch, round).unwrap().unwrap().bytes);
        }
    }
    let mut final_heads = None;
    for order in permutations(&changes) {
        // A fresh observer, each change delivered twice, in this order: the second of a
        // writer's changes often arrives before its first and must wait, not fail.
        let mut observer = StockDoc::genesis("s001", 1, w("hq")).unwrap();
        for bytes in order.iter().chain(order.iter()) {
            observer.core_mut().apply_changes(&[bytes]).unwrap();
        }
        assert_eq!(observer.stock_levels(), expected);
        assert!(observer.core().missing_deps().is_empty());
        let heads = observer.core().heads();
        assert_eq!(final_heads.get_or_insert(heads.clone()), &heads);
    }
    // The writers themselves, exchanging everything, agree as well.
    for doc in &mut writers {
        doc.core_mut().apply_changes(&changes).unwrap();
        assert_eq!(doc.stock_levels(), expected);
    }
}

#[test]
fn concurrent_first_writes_under_separate_geneses_never_conflict() {
    let mut a = lane(1);
    let mut b = lane(2);
    let ca = a.apply_movements(&[mv("x", 1)], 1).unwrap().unwrap();
    let cb = b.apply_movements(&[mv("x", 2)], 1).unwrap().unwrap();
    a.core_mut().apply_changes(&[cb.bytes]).unwrap();
    b.core_mut().apply_changes(&[ca.bytes]).unwrap();
    for doc in [&a, &b] {
        assert_eq!(doc.stock("x"), 3);
        let writers = doc.core().root_map(crate::crdt::doc::KEY_WRITERS).unwrap();
        let conflicts = automerge::ReadDoc::map_range(doc.core().automerge(), &writers, ..)
            .filter(|item| item.conflict)
            .count();
        assert_eq!(conflicts, 0);
    }
}

#[test]
fn apply_reports_queued_changes_and_missing_deps() {
    let mut a = lane(1);
    let first = a.apply_movements(&[mv("x", 1)], 1).unwrap().unwrap();
    let second = a.apply_movements(&[mv("x", 1)], 2).unwrap().unwrap();
    let mut b = lane(2);
    let outcome = b.core_mut().apply_changes(&[&second.bytes]).unwrap();
    assert_eq!(outcome.queued, 1);
    assert_eq!(outcome.missing_deps, vec![first.hash]);
    assert_eq!(b.stock("x"), 0);
    let outcome = b
        .core_mut()
        .apply_changes(&[&first.bytes, &first.bytes])
        .unwrap();
    assert_eq!(
        outcome,
        ApplyOutcome {
            applied: 1,
            duplicates: 1,
            queued: 0,
            missing_deps: vec![]
        }
    );
    assert_eq!(b.stock("x"), 2);
}

#[test]
fn malformed_change_in_a_batch_applies_nothing() {
    let mut a = lane(1);
    let good = a.apply_movements(&[mv("x", 1)], 1).unwrap().unwrap().bytes;
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let mut b = lane(2);
    let heads = b.core().heads();
    for bad in [
        corrupt,
        b"garbage".to_vec(),
        Vec::new(),
        good[..good.len() / 2].to_vec(),
    ] {
        let result = b.core_mut().apply_changes(&[good.clone(), bad]);
        assert!(matches!(
            result,
            Err(DocError::MalformedChange { index: 1, .. })
        ));
        assert_eq!(b.core().heads(), heads);
        assert_eq!(b.stock("x"), 0);
    }
}

#[test]
fn unknown_heads_fall_back_to_the_known_subset() {
    let mut a = lane(1);
    for i in 0..10 {
        a.apply_movements(&[mv("x", i + 1)], i).unwrap();
    }
    let mut b = lane(2);
    b.core_mut()
        .apply_changes(&a.core().changes_since(&[]))
        .unwrap();
    let shared = b.core().heads();
    let new_in_a = a.apply_movements(&[mv("x", 1)], 20).unwrap().unwrap();
    let unknown_to_a = b.apply_movements(&[mv("y", 1)], 20).unwrap().unwrap();
    // b asks with its heads: one of them a does not know.
    let their_heads = vec![unknown_to_a.hash];
    let raw = a.core().automerge().get_changes(&their_heads).len();
    assert_eq!(
        raw, 12,
        "automerge alone sends the whole history for unknown heads"
    );
    let answer = a.core().changes_since(&their_heads);
    assert_eq!(
        answer.len(),
        11,
        "nothing known: everything but the genesis"
    );
    let answer = a.core().changes_since(&[shared[0], unknown_to_a.hash]);
    assert_eq!(answer, vec![new_in_a.bytes]);
}

#[test]
fn own_changes_not_in_drives_the_outbox() {
    let mut a = lane(1);
    let mut hq = StockDoc::genesis("s001", 1, w("hq")).unwrap();
    let c1 = a.apply_movements(&[mv("x", 1)], 1).unwrap().unwrap();
    let c2 = a.apply_movements(&[mv("x", 1)], 2).unwrap().unwrap();
    assert_eq!(
        a.core().own_changes_not_in(&hq.core().heads()),
        vec![c1.hash, c2.hash]
    );
    hq.core_mut().apply_changes(&[&c1.bytes]).unwrap();
    assert_eq!(
        a.core().own_changes_not_in(&hq.core().heads()),
        vec![c2.hash]
    );
    // Another writer's change at HQ that a does not know yet: conservative answer.
    let mut other = lane(2);
    other
        .core_mut()
        .apply_changes(&[&c1.bytes, &c2.bytes])
        .unwrap();
    let c3 = other.apply_movements(&[mv("y", 1)], 3).unwrap().unwrap();
    hq.core_mut()
        .apply_changes(&[&c2.bytes, &c3.bytes])
        .unwrap();
    assert_eq!(
        a.core().own_changes_not_in(&hq.core().heads()),
        vec![c1.hash, c2.hash]
    );
    a.core_mut().apply_changes(&[&c3.bytes]).unwrap();
    assert!(a.core().own_changes_not_in(&hq.core().heads()).is_empty());
}

#[test]
fn save_and_load_by_another_writer() {
    let mut a = lane(1);
    a.apply_movements(&[mv("x", 4)], 1).unwrap();
    let mut hq = StockDoc::load(&a.core().save(), w("hq")).unwrap();
    assert_eq!(hq.stock("x"), 4);
    assert_eq!(hq.core().heads(), a.core().heads());
    assert!(
        hq.core_mut()
            .apply_changes(&a.core().changes_since(&[]))
            .is_ok()
    );
    let orders = crate::crdt::doc::SyncDoc::genesis(
        &DocId::new("s001", DocKind::Orders).unwrap(),
        1,
        w("hq"),
    )
    .unwrap();
    assert!(matches!(
        StockDoc::load(&orders.save(), w("hq")),
        Err(StockError::Doc(DocError::WrongKind { .. }))
    ));
}

#[test]
fn changes_of_another_epoch_or_store_wait_instead_of_applying() {
    let mut e1 = lane(1);
    let change = e1.apply_movements(&[mv("x", 1)], 1).unwrap().unwrap();
    let mut e2 = StockDoc::genesis("s001", 2, w("hq")).unwrap();
    let outcome = e2.core_mut().apply_changes(&[change.bytes]).unwrap();
    assert_eq!(outcome.queued, 1);
    assert_eq!(e2.stock("x"), 0);
}

#[test]
fn hq_accepts_only_allowed_writers_inside_their_own_scope() {
    let hq = StockDoc::genesis("s001", 1, w("hq")).unwrap();
    let allowed: BTreeSet<WriterId> = [w("s001.lane1"), w("s001.lane2")].into();
    let mut a = lane(1);
    let c1 = a.apply_movements(&[mv("x", 1)], 1).unwrap().unwrap();
    let c2 = a
        .apply_movements(&[mv("x", 1), mv("y", 2)], 2)
        .unwrap()
        .unwrap();
    assert_eq!(change_author(&c1.bytes).unwrap(), w("s001.lane1"));
    assert_eq!(
        hq.core().check_change(&c1.bytes, &allowed),
        Ok(w("s001.lane1"))
    );
    assert_eq!(
        hq.core().check_change(&c2.bytes, &allowed),
        Ok(w("s001.lane1"))
    );

    let mut foreign = StockDoc::genesis("s001", 1, w("s002.lane1")).unwrap();
    let c = foreign.apply_movements(&[mv("x", 1)], 1).unwrap().unwrap();
    assert_eq!(
        hq.core().check_change(&c.bytes, &allowed),
        Err(AuthError::WriterNotAllowed("s002.lane1".into()))
    );

    // lane2 forging an entry under lane1's key.
    let mut forger = lane(2);
    let forged = forger
        .core_mut()
        .commit::<StockError, _>(1, "forge", |tx| {
            let writers = crate::crdt::doc::map_at(tx, &ROOT, KEY_WRITERS).unwrap();
            tx.put_object(&writers, "s001.lane1", ObjType::Map)?;
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert!(matches!(
        hq.core().check_change(&forged.bytes, &allowed),
        Err(AuthError::OutOfScope { .. })
    ));
    // lane2 writing into lane1's objects.
    let mut intruder = lane(2);
    intruder.core_mut().apply_changes(&[&c1.bytes]).unwrap();
    let stock1 = intruder.stock_map(&w("s001.lane1"), None).unwrap();
    let intrusion = intruder
        .core_mut()
        .commit::<StockError, _>(2, "intrude", |tx| {
            tx.put(&stock1, "x", 1000_i64)?;
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert!(matches!(
        hq.core().check_change(&intrusion.bytes, &allowed),
        Err(AuthError::OutOfScope { .. })
    ));
    // A store writer setting the base, or writing the root.
    let mut base_writer = lane(2);
    let base = base_writer
        .write_base(&BTreeMap::from([("x".into(), 5)]), &BTreeMap::new(), 1)
        .unwrap()
        .unwrap();
    assert!(matches!(
        hq.core().check_change(&base.bytes, &allowed),
        Err(AuthError::OutOfScope { .. })
    ));
    let root = lane(2)
        .core_mut()
        .commit::<StockError, _>(1, "root", |tx| {
            tx.put(ROOT, "epoch", 99_i64)?;
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert!(matches!(
        hq.core().check_change(&root.bytes, &allowed),
        Err(AuthError::OutOfScope { .. })
    ));
    assert!(matches!(
        hq.core().check_change(b"junk", &allowed),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn settle_order_moves_each_unit_once() {
    let mut doc = lane(1);
    doc.apply_movements(&[mv("x", 10)], 1).unwrap();
    let lines = BTreeMap::from([("x".to_owned(), 3)]);
    assert!(
        doc.settle_order("hq:1", StockEffect::Reserved, &lines, 2)
            .unwrap()
            .is_some()
    );
    assert_eq!(doc.stock("x"), 10);
    doc.settle_order("hq:1", StockEffect::Removed, &lines, 3)
        .unwrap();
    assert_eq!(doc.stock("x"), 7);
    assert!(
        doc.settle_order("hq:1", StockEffect::Removed, &lines, 4)
            .unwrap()
            .is_none()
    );
    doc.settle_order("hq:1", StockEffect::Released, &lines, 5)
        .unwrap();
    assert_eq!(doc.stock("x"), 10, "a cancel after pick returns the units");
    doc.settle_order("hq:1", StockEffect::Sold, &lines, 6)
        .unwrap();
    assert_eq!(doc.stock("x"), 7);
    assert_eq!(doc.applied_order_effect("hq:1"), StockEffect::Sold);
}

/// `cargo test --release -- --ignored --nocapture perf_` prints µs per transaction.
#[test]
#[ignore = "benchmark: prints timings"]
fn perf_apply_movements_stays_flat() {
    const TXS: usize = 100_000;
    for (label, skus) in [("one hot SKU", 1_usize), ("10,000 SKUs", 10_000)] {
        let mut doc = lane(1);
        let mut change_bytes = 0_usize;
        let mut json_bytes = 0_usize;
        let mut window = std::time::Instant::now();
        for i in 0..TXS {
            let movement = mv(&format!("sku{:05}", i % skus), -1);
            json_bytes += serde_json::to_vec(&movement).unwrap().len();
            change_bytes += doc
                .apply_movements(&[movement], i as i64)
                .unwrap()
                .unwrap()
                .bytes
                .len();
            if i == 999 || i == TXS - 1 {
                let us = window.elapsed().as_micros() as f64 / 1000.0;
                println!("{label}: µs/tx at tx {}: {us:.1}", i + 1);
            }
            if i == TXS - 1001 {
                window = std::time::Instant::now();
            }
        }
        let bundle = doc.core().bundle_since(&[]).unwrap().len();
        println!(
            "{label}: one bundle of all {TXS} changes: {bundle} bytes, {:.2} bytes/movement",
            bundle as f64 / TXS as f64
        );
        let saved = doc.core().save();
        let start = std::time::Instant::now();
        let loaded = StockDoc::load(&saved, w("hq")).unwrap();
        println!(
            "{label}: bytes/movement change {:.1}, json {:.1}; saved doc {} bytes, loads in {:?}; levels {}",
            change_bytes as f64 / TXS as f64,
            json_bytes as f64 / TXS as f64,
            saved.len(),
            start.elapsed(),
            loaded.stock_levels().len()
        );
    }
}

#[test]
fn bundles_carry_a_backlog_and_corrupt_bundles_change_nothing() {
    let mut a = lane(1);
    let mut b = lane(2);
    b.apply_movements(&[mv("y", 1)], 1).unwrap();
    for i in 0..200 {
        a.apply_movements(&[mv(&format!("s{}", i % 7), -1)], i)
            .unwrap();
    }
    let bundle = a.core().bundle_since(&b.core().heads()).unwrap();
    let allowed: BTreeSet<WriterId> = [w("s001.lane1")].into();
    let hq = StockDoc::genesis("s001", 1, w("hq")).unwrap();
    assert_eq!(
        hq.core().check_bundle(&bundle, &allowed),
        Ok(allowed.clone())
    );
    let from_b = b.core().bundle_since(&[]).unwrap();
    assert!(matches!(
        hq.core().check_bundle(&from_b, &allowed),
        Err(AuthError::WriterNotAllowed(_))
    ));
    let mut corrupt = bundle.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x55;
    let heads = b.core().heads();
    assert!(b.core_mut().apply_bundle(&corrupt).is_err());
    assert_eq!(b.core().heads(), heads);
    assert!(b.core_mut().apply_bundle(&bundle[..mid]).is_err());
    assert_eq!(b.core().heads(), heads);
    b.core_mut().apply_bundle(&bundle).unwrap();
    let mut expected = a.stock_levels();
    expected.insert("y".into(), 1);
    assert_eq!(b.stock_levels(), expected);
}

/// A bundle that starts after changes the receiver lacks (a lost earlier message) is not
/// corrupt: its changes wait for their dependencies, and apply when the gap is filled.
#[test]
fn a_bundle_with_missing_dependencies_is_queued_not_refused() {
    let mut a = lane(1);
    for i in 0..10 {
        a.apply_movements(&[mv("x", -1)], i).unwrap();
    }
    let gap = a.core().bundle_since(&[]).unwrap();
    let mid = a.core().heads();
    for i in 10..15 {
        a.apply_movements(&[mv("x", -1)], i).unwrap();
    }
    let later = a.core().bundle_since(&mid).unwrap();
    let mut b = lane(2);
    let outcome = b.core_mut().apply_bundle(&later).unwrap();
    assert_eq!((outcome.applied, outcome.queued), (0, 5));
    assert!(!outcome.missing_deps.is_empty());
    assert_eq!(b.stock_levels().get("x"), None);
    let filled = b.core_mut().apply_bundle(&gap).unwrap();
    assert_eq!(filled.applied, 10);
    assert!(filled.missing_deps.is_empty());
    assert_eq!(b.stock_levels().get("x"), Some(&-15));
}

#[test]
fn levels_of_touched_keys_match_the_full_recompute() {
    let mut a = lane(1);
    let mut b = lane(2);
    a.apply_movements(&[mv("a", 5), mv("b#r", 2)], 1).unwrap();
    let from_b = b
        .apply_movements(&[mv("a", -1), mv("c", 7)], 2)
        .unwrap()
        .unwrap();
    a.core_mut().apply_changes(&[&from_b.bytes]).unwrap();
    let touched = crate::crdt::doc::touched_keys(&[&from_b.bytes]).unwrap();
    assert!(
        touched.contains("a") && touched.contains("c"),
        "{touched:?}"
    );
    let keys: BTreeSet<String> = ["a", "b#r", "c", "missing"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let partial = StockDoc::levels_of_keys(a.core(), &keys);
    let full = a.stock_levels();
    assert_eq!(partial.get("missing"), None);
    for key in ["a", "b#r", "c"] {
        assert_eq!(partial.get(key), full.get(key), "{key}");
    }
    assert_eq!(partial["a"], 4);
}
