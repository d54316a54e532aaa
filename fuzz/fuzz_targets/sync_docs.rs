#![no_main]
//! A sync payload from a peer applied to the documents `sync_payload` does not cover: the
//! orders document (orders and transfers) and the catalog. A refused payload must leave the
//! document as it was; whatever was applied must read back without a panic (the node reads
//! orders, transfers and catalog items out of documents peers wrote).

use libfuzzer_sys::fuzz_target;
use storenode::crdt::doc::{SyncDoc, WriterId};
use storenode::crdt::catalog::CatalogDoc;
use storenode::crdt::orders::OrdersDoc;
use storenode::sync::payload::SyncMessage;

/// Applies the message's changes or bundle; returns whether the document refused them.
fn apply(core: &mut SyncDoc, message: &SyncMessage) -> bool {
    let before = (core.heads(), core.save());
    let refused = match message {
        SyncMessage::Changes { changes, .. } => core.apply_changes(changes).is_err(),
        SyncMessage::Bundle { bundle, .. } => core.apply_bundle(bundle).is_err(),
        _ => false,
    };
    if refused {
        assert_eq!(
            (core.heads(), core.save()),
            before,
            "a refused payload changed the doc"
        );
    }
    refused
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(message) = SyncMessage::decode(rest) else {
        return;
    };
    let writer = WriterId::new("s1.lane1").expect("writer id");
    if which % 2 == 0 {
        let mut doc = OrdersDoc::genesis("s1", 1, writer).expect("genesis");
        if !apply(doc.core_mut(), &message) {
            for id in doc.order_ids() {
                let _ = (doc.facts(&id), doc.events(&id), doc.state(&id));
            }
            for id in doc.transfer_ids() {
                let _ = (doc.transfer_facts(&id), doc.transfer_events(&id));
                let _ = (doc.transfer_received(&id), doc.transfer_state(&id));
            }
        }
    } else {
        let mut doc = CatalogDoc::genesis(1, writer).expect("genesis");
        if !apply(doc.core_mut(), &message) {
            let _ = doc.items();
        }
    }
});
