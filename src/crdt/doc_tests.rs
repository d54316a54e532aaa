use super::*;

fn w(id: &str) -> WriterId {
    WriterId::new(id).unwrap()
}

fn stock_id() -> DocId {
    DocId::new("s001", DocKind::Stock).unwrap()
}

#[test]
fn writer_ids_are_validated_and_round_trip_through_actors() {
    assert!(WriterId::new("").is_err());
    assert!(WriterId::new("S001").is_err());
    assert!(WriterId::new("~genesis").is_err());
    assert!(WriterId::new(&"a".repeat(65)).is_err());
    let lane = w("s001.lane1");
    assert_eq!(WriterId::from_actor(&lane.actor()).unwrap(), lane);
    assert!(WriterId::from_actor(&ActorId::from(GENESIS_ACTOR)).is_err());
}

#[test]
fn two_independent_geneses_are_identical() {
    let a = SyncDoc::genesis(&stock_id(), 3, w("s001.lane1")).unwrap();
    let b = SyncDoc::genesis(&stock_id(), 3, w("s001.lane2")).unwrap();
    assert_eq!(a.heads(), b.heads());
    assert_eq!(a.heads().len(), 1);
    let other_epoch = SyncDoc::genesis(&stock_id(), 4, w("s001.lane1")).unwrap();
    assert_ne!(a.heads(), other_epoch.heads());
    let other_store =
        SyncDoc::genesis(&DocId::new("s002", DocKind::Stock).unwrap(), 3, w("hq")).unwrap();
    assert_ne!(a.heads(), other_store.heads());
}

#[test]
fn load_recovers_identity_and_own_sequence() {
    let mut a = SyncDoc::genesis(&stock_id(), 7, w("s001.lane1")).unwrap();
    let first = a
        .commit::<DocError, _>(1, "t", |tx| {
            tx.put(ROOT, "x", 1_i64)?;
            Ok(())
        })
        .unwrap()
        .unwrap();
    let mut b = SyncDoc::load(&a.save(), w("s001.lane1")).unwrap();
    assert_eq!(b.id(), &stock_id());
    assert_eq!(b.epoch(), 7);
    let second = b
        .commit::<DocError, _>(2, "t", |tx| {
            tx.put(ROOT, "x", 2_i64)?;
            Ok(())
        })
        .unwrap()
        .unwrap();
    // A peer with the first change accepts the second: the sequence continued.
    let mut peer = SyncDoc::genesis(&stock_id(), 7, w("s001.lane2")).unwrap();
    peer.apply_changes(&[first.bytes, second.bytes]).unwrap();
    assert_eq!(peer.heads(), b.heads());
}

#[test]
fn load_rejects_foreign_documents_and_garbage() {
    let mut foreign = Automerge::new();
    foreign.transaction().commit();
    assert!(matches!(
        SyncDoc::load(&foreign.save(), w("hq")),
        Err(DocError::NotOurDocument(_))
    ));
    assert!(matches!(
        SyncDoc::load(b"not automerge", w("hq")),
        Err(DocError::Load(_))
    ));
}

#[test]
fn a_change_with_any_flipped_bit_is_refused_and_applies_nothing() {
    // Regression (found by tests/hostile_input.rs): automerge does not check a change's
    // checksum, so a flipped actor byte used to be applied as another writer's change.
    let mut author = SyncDoc::genesis(&stock_id(), 1, w("s001.lane2")).unwrap();
    let change = author
        .commit::<DocError, _>(1, "t", |tx| {
            tx.put(ROOT, "x", 1_i64)?;
            Ok(())
        })
        .unwrap()
        .unwrap();
    let allowed = [w("s001.lane2")].into_iter().collect();
    for index in 0..change.bytes.len() {
        let mut bad = change.bytes.clone();
        bad[index] ^= 0x01;
        let mut peer = SyncDoc::genesis(&stock_id(), 1, w("s001.lane1")).unwrap();
        let before = peer.heads();
        assert!(peer.apply_changes(&[bad.clone()]).is_err(), "byte {index}");
        assert_eq!(peer.heads(), before, "byte {index}");
        assert!(peer.check_change(&bad, &allowed).is_err(), "byte {index}");
    }
    let mut peer = SyncDoc::genesis(&stock_id(), 1, w("s001.lane1")).unwrap();
    assert_eq!(peer.apply_changes(&[change.bytes]).unwrap().applied, 1);
}

#[test]
fn hash_hex_round_trips() {
    let doc = SyncDoc::genesis(&stock_id(), 0, w("hq")).unwrap();
    let head = doc.heads()[0];
    assert_eq!(hash_from_hex(&hash_to_hex(&head)), Some(head));
    assert_eq!(hash_from_hex("zz"), None);
}

#[test]
fn order_ids_belong_to_their_prefix_writer() {
    let lane = w("s001.lane1");
    assert!(order_id_belongs_to("s001.lane1:42", &lane));
    assert!(!order_id_belongs_to("s001.lane1:", &lane));
    assert!(!order_id_belongs_to("s001.lane12:4", &lane));
    assert!(!order_id_belongs_to("hq:4", &lane));
}

/// A small deterministic generator (the test must not depend on a seed it cannot print).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % n as u64).unwrap()
    }
}

/// The vendored automerge (`vendor/automerge`) applies a change to a few keys of a large map
/// by seeking to those keys instead of walking the whole map. Three writers edit one map
/// concurrently (puts, deletes, overwrites of each other's keys, counters); an observer
/// applies every change alone as it comes (the seek), in an order that queues some; a
/// second observer applies them all in one batch (the walk); the first's save is loaded
/// again. All must hold the same values and conflicts (with their op ids) for every key.
#[test]
fn applying_changes_to_a_few_keys_of_a_large_map_equals_the_whole_walk() {
    let mut rng = Lcg(7);
    let actors = ["aa", "bb", "cc"].map(|a| ActorId::from(a.as_bytes()));
    let mut first = Automerge::new().with_actor(actors[0].clone());
    let mut tx = first.transaction();
    let map = tx.put_object(ROOT, "m", ObjType::Map).unwrap();
    let counters = tx.put_object(ROOT, "c", ObjType::Map).unwrap();
    tx.put(&counters, "n", ScalarValue::counter(0)).unwrap();
    tx.commit();
    // A long history on 1,000 keys, so that later changes take the seek.
    for round in 0..30_i64 {
        let mut tx = first.transaction();
        for k in 0..1000 {
            tx.put(&map, format!("k{k:04}"), round).unwrap();
        }
        tx.commit();
    }
    let mut writers: Vec<Automerge> = actors
        .iter()
        .map(|a| first.fork().with_actor(a.clone()))
        .collect();
    let mut observer = first.fork();
    let mut made: Vec<Change> = Vec::new();
    let mut pending: Vec<Change> = Vec::new();
    for step in 0..400_i64 {
        let w = rng.below(writers.len());
        let doc = &mut writers[w];
        let mut tx = doc.transaction();
        for _ in 0..1 + rng.below(4) {
            let key = format!("k{:04}", rng.below(1010));
            match rng.below(6) {
                0 => tx.delete(&map, key.as_str()).unwrap(),
                1 => tx.put(&map, key.as_str(), format!("s{step}")).unwrap(),
                2 => tx.increment(&counters, "n", 1).unwrap(),
                _ => tx.put(&map, key.as_str(), step).unwrap(),
            }
        }
        let (hash, _) = tx.commit();
        // Only deletes of keys that were never there: no change.
        let Some(hash) = hash else { continue };
        let change = doc.get_change_by_hash(&hash).unwrap();
        made.push(change.clone());
        pending.push(change);
        // Writers sometimes catch up with each other: later edits overwrite earlier ones,
        // the rest stay concurrent (conflicts).
        if rng.below(5) == 0 {
            let (a, b) = (rng.below(writers.len()), rng.below(writers.len()));
            if a != b {
                let theirs = writers[b].get_changes(&[]);
                writers[a].apply_changes(theirs).unwrap();
            }
        }
        // The observer gets changes one at a time, sometimes the newest before older ones.
        if rng.below(3) == 0 {
            pending.reverse();
            for change in pending.drain(..) {
                observer.apply_changes([change]).unwrap();
            }
        }
    }
    for change in pending.drain(..) {
        observer.apply_changes([change]).unwrap();
    }
    let mut batched = first.fork();
    batched.apply_changes(made).unwrap();
    assert_eq!(observer.get_missing_deps(&[]), Vec::new());
    assert_eq!(observer.get_heads(), batched.get_heads());
    for k in 0..1010 {
        let key = format!("k{k:04}");
        assert_eq!(
            observer.get_all(&map, key.as_str()).unwrap(),
            batched.get_all(&map, key.as_str()).unwrap(),
            "{key}"
        );
    }
    assert_eq!(
        observer
            .get(&counters, "n")
            .unwrap()
            .map(|(v, _)| v.into_owned()),
        batched
            .get(&counters, "n")
            .unwrap()
            .map(|(v, _)| v.into_owned())
    );
    assert_eq!(observer.stats().num_ops, batched.stats().num_ops);
    // The observer's operations as stored (successors included) rebuild the same document.
    let reloaded = Automerge::load(&observer.save()).unwrap();
    assert_eq!(reloaded.get_heads(), batched.get_heads());
    for k in 0..1010 {
        let key = format!("k{k:04}");
        assert_eq!(
            reloaded.get_all(&map, key.as_str()).unwrap(),
            batched.get_all(&map, key.as_str()).unwrap(),
            "{key} after a reload"
        );
    }
}
