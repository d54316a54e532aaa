#![no_main]
//! EPCIS event batches a store sends HQ, and HQ's acknowledgements. A decoded batch must
//! encode to bytes that decode to the same batch.

use libfuzzer_sys::fuzz_target;
use storenode::epcis::batch::{Ack, Batch};

/// The cap HQ uses is larger; any cap exercises the check.
const MAX: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = Batch::decode(data, MAX) {
        let again = Batch::decode(&batch.encode(), usize::MAX).expect("re-encoded batch decodes");
        assert_eq!(again, batch);
    }
    if let Ok(ack) = Ack::decode(data) {
        assert!(Ack::decode(&ack.encode()).is_ok());
    }
});
