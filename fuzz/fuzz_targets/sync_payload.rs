#![no_main]
//! A sync payload from a peer: decoded, then its changes or bundle applied to a throwaway
//! stock document. A refused payload must leave the document exactly as it was; a decoded
//! message must encode back to an equal message.

use libfuzzer_sys::fuzz_target;
use storenode::crdt::doc::WriterId;
use storenode::crdt::stock::StockDoc;
use storenode::sync::payload::SyncMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = SyncMessage::decode(data) else {
        return;
    };
    let encoded = message.encode().expect("a decoded message encodes");
    assert_eq!(SyncMessage::decode(&encoded).as_ref(), Ok(&message));
    let writer = WriterId::new("s1.lane1").expect("writer id");
    let mut doc = StockDoc::genesis("s1", 1, writer).expect("genesis");
    let before = (doc.core().heads(), doc.core().save());
    let refused = match &message {
        SyncMessage::Changes { changes, .. } => doc.core_mut().apply_changes(changes).is_err(),
        SyncMessage::Bundle { bundle, .. } => doc.core_mut().apply_bundle(bundle).is_err(),
        _ => false,
    };
    if refused {
        assert_eq!((doc.core().heads(), doc.core().save()), before);
    }
});
