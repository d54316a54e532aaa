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
