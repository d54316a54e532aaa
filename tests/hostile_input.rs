//! Hostile input into every decoder, as proptests in the normal suite (the `fuzz/` crate runs
//! the same entry points under libFuzzer): serial scanner lines, the three RFID reader
//! protocols, EPC and GS1 decoding, sync payloads from peers, API request bodies.
//!
//! Properties: no panic; decoders' buffers stay bounded; a malformed sync payload is refused
//! without touching the document (heads, state and saved bytes unchanged); a batch with
//! one bad change applies nothing.

use bytes::BytesMut;
use proptest::prelude::*;
use storenode::api::json::{RequestBody, check_request};
use storenode::crdt::doc::WriterId;
use storenode::crdt::stock::{Movement, StockDoc};
use storenode::devices::codec::ChafonLayout;
use storenode::devices::codec::barcode::{BarcodeCodec, BarcodeFraming};
use storenode::devices::codec::chafon::ChafonCodec;
use storenode::devices::codec::m100::M100Codec;
use storenode::devices::codec::mercury::MercuryCodec;
use storenode::gs1::{self, RcnRegion};
use storenode::sync::payload::SyncMessage;
use tokio_util::codec::Decoder;

/// Generous bound on what a decoder may keep buffered between chunks: one maximal frame of
/// any of the protocols plus one chunk, far below "unbounded".
const MAX_BUFFERED: usize = 64 * 1024;

/// Feeds `data` in chunks of `chunk` bytes, decoding all it can after each.
fn drain<D: Decoder>(codec: &mut D, data: &[u8], chunk: usize) -> usize {
    let mut buf = BytesMut::new();
    let mut items = 0;
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Ok(Some(_)) = codec.decode(&mut buf) {
            items += 1;
        }
        assert!(
            buf.len() <= MAX_BUFFERED,
            "decoder buffered {} bytes",
            buf.len()
        );
    }
    let _ = codec.decode_eof(&mut buf);
    items
}

fn framings() -> [BarcodeFraming; 3] {
    [
        BarcodeFraming::default(),
        BarcodeFraming::lines(b"\r\n"),
        BarcodeFraming::stx_etx(b""),
    ]
}

fn regions() -> [RcnRegion; 3] {
    [RcnRegion::Germany, RcnRegion::Sweden, RcnRegion::Baltics]
}

fn writer(id: &str) -> WriterId {
    WriterId::new(id).expect("writer id")
}

/// A stock doc of store s1 with one sale from lane1, and a change from lane2 that lane1
/// has not seen yet (valid input to corrupt).
fn doc_and_peer_change() -> (StockDoc, Vec<u8>) {
    let mut doc = StockDoc::genesis("s1", 1, writer("s1.lane1")).expect("genesis");
    doc.apply_movements(
        &[Movement {
            sku: "MILK".into(),
            delta: -1,
        }],
        1_000,
    )
    .expect("local movement");
    let mut peer = StockDoc::genesis("s1", 1, writer("s1.lane2")).expect("peer genesis");
    let change = peer
        .apply_movements(
            &[Movement {
                sku: "SHIRT".into(),
                delta: -2,
            }],
            2_000,
        )
        .expect("peer movement")
        .expect("a change");
    (doc, change.bytes)
}

/// Everything observable about a doc: heads, stock and the saved bytes.
fn snapshot(doc: &StockDoc) -> (Vec<automerge::ChangeHash>, String, Vec<u8>) {
    (
        doc.core().heads(),
        format!("{:?}", doc.stock_levels()),
        doc.core().save(),
    )
}

/// What a node does with a payload from a peer: decode, then apply changes or a bundle.
/// Returns whether the payload was accepted.
fn receive(doc: &mut StockDoc, payload: &[u8]) -> bool {
    match SyncMessage::decode(payload) {
        Ok(SyncMessage::Changes { changes, .. }) => doc.core_mut().apply_changes(&changes).is_ok(),
        Ok(SyncMessage::Bundle { bundle, .. }) => doc.core_mut().apply_bundle(&bundle).is_ok(),
        Ok(_) => true,
        Err(_) => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn barcode_lines_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..64) {
        for framing in framings() {
            drain(&mut BarcodeCodec::new(framing), &data, chunk);
        }
    }

    #[test]
    fn rfid_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..64) {
        drain(&mut M100Codec::new(), &data, chunk);
        drain(&mut MercuryCodec::new(), &data, chunk);
        for layout in [ChafonLayout::Old, ChafonLayout::New, ChafonLayout::Auto] {
            drain(&mut ChafonCodec::new(layout), &data, chunk);
        }
    }

    #[test]
    fn epc_decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64), text in "\\PC{0,80}") {
        let epc = gs1::decode_epc(&data);
        let _ = (epc.pure_identity_uri(), epc.tag_uri(), epc.filter(), epc.gtin14());
        let _ = gs1::decode_epc_hex(&text);
        let _ = gs1::decode_epc_hex(&hex::encode(&data));
    }

    #[test]
    fn gs1_strings_never_panic(text in "\\PC{0,120}", ai_like in "[0-9()\\x1d]{0,80}") {
        for s in [&text, &ai_like] {
            let _ = gs1::parse_element_string(s);
            let _ = gs1::parse_human_readable(s);
            let _ = gs1::parse_digital_link(s);
            let _ = gs1::parse_digital_link(&format!("https://id.gs1.org/01/{s}"));
        }
    }

    #[test]
    fn scan_interpretation_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        for region in regions() {
            let _ = gs1::interpret(&data, region);
        }
        let mut aim = b"]C1".to_vec();
        aim.extend_from_slice(&data);
        let _ = gs1::interpret(&aim, RcnRegion::Germany);
    }

    #[test]
    fn arbitrary_sync_payloads_never_panic_nor_touch_state(payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (mut doc, _) = doc_and_peer_change();
        let before = snapshot(&doc);
        let accepted = receive(&mut doc, &payload);
        if !accepted {
            prop_assert_eq!(snapshot(&doc), before, "a refused payload changed the document");
        } else {
            // Random bytes never carry a valid automerge change: nothing may be applied.
            prop_assert_eq!(snapshot(&doc).0, before.0);
        }
    }

    #[test]
    fn structured_garbage_in_a_sync_envelope_changes_nothing(
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 1..4),
        as_bundle in any::<bool>(),
    ) {
        // A well-formed envelope around bytes that are not automerge changes.
        let doc_id = storenode::crdt::doc::DocId::new("s1", storenode::crdt::doc::DocKind::Stock).expect("doc id");
        // An empty bundle is a valid "nothing new"; anything else here is garbage.
        let empty_bundle = as_bundle && garbage.iter().all(Vec::is_empty);
        let message = if as_bundle {
            SyncMessage::Bundle { doc: doc_id, epoch: 1, bundle: garbage.concat() }
        } else {
            SyncMessage::Changes { doc: doc_id, epoch: 1, changes: garbage }
        };
        let payload = message.encode().expect("encode");
        let (mut doc, _) = doc_and_peer_change();
        let before = snapshot(&doc);
        let accepted = receive(&mut doc, &payload);
        prop_assert!(!accepted || empty_bundle, "garbage changes were accepted");
        prop_assert_eq!(snapshot(&doc), before);
    }

    #[test]
    fn a_corrupted_peer_change_is_refused_and_applies_nothing(index in any::<prop::sample::Index>(), flip in 1u8..=255, truncate in any::<bool>()) {
        let (mut doc, change) = doc_and_peer_change();
        let mut bad = change.clone();
        let at = index.index(bad.len());
        if truncate {
            bad.truncate(at);
        } else {
            bad[at] ^= flip;
        }
        let before = snapshot(&doc);
        // The good change first: all or nothing, so it must not be applied either.
        let result = doc.core_mut().apply_changes(&[change.clone(), bad]);
        prop_assert!(result.is_err(), "a corrupted change was accepted");
        prop_assert_eq!(snapshot(&doc), before);
        // HQ's authorisation check refuses it too, without panicking.
        let allowed = [writer("s1.lane2")].into_iter().collect();
        let mut truncated = change.clone();
        truncated.truncate(at);
        prop_assert!(doc.core().check_change(&truncated, &allowed).is_err());
    }

    #[test]
    fn api_request_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..1024), text in "\\PC{0,200}") {
        for bytes in [body.as_slice(), text.as_bytes()] {
            for kind in RequestBody::ALL {
                if let Err(e) = check_request(kind, bytes) {
                    prop_assert!(e.status.is_client_error(), "{kind:?}: {}", e.status);
                    prop_assert!(!e.message.is_empty(), "{kind:?}: empty message");
                }
            }
        }
    }
}

#[test]
fn a_valid_peer_change_is_accepted_once() {
    // The control case of the properties above: the uncorrupted change applies, once.
    let (mut doc, change) = doc_and_peer_change();
    let before = doc.core().heads();
    let outcome = doc
        .core_mut()
        .apply_changes(std::slice::from_ref(&change))
        .expect("valid change");
    assert_eq!(outcome.applied, 1);
    assert_ne!(doc.core().heads(), before);
    assert_eq!(doc.stock("SHIRT"), -2);
    let again = doc.core_mut().apply_changes(&[change]).expect("replay");
    assert_eq!(again.duplicates, 1);
    assert_eq!(
        doc.stock("SHIRT"),
        -2,
        "a replayed change is not counted twice"
    );
}
