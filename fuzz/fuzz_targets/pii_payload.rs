#![no_main]
//! Customer-data messages (a customer, an erasure tombstone, a cleared retained message)
//! between lanes and HQ. A decoded payload must encode back to an equal payload.

use libfuzzer_sys::fuzz_target;
use storenode::domain::customer::PiiPayload;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = PiiPayload::decode(data) {
        let again = PiiPayload::decode(&payload.encode()).expect("re-encoded payload decodes");
        assert_eq!(again, payload);
    }
});
