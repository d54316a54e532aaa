#![no_main]
//! Every API request body, parsed as the routes parse it. Refusals must be 4xx with a
//! message.

use libfuzzer_sys::fuzz_target;
use storenode::api::json::{RequestBody, check_request};

fuzz_target!(|data: &[u8]| {
    for kind in RequestBody::ALL {
        if let Err(e) = check_request(kind, data) {
            assert!(e.status.is_client_error(), "{kind:?}: {}", e.status);
            assert!(!e.message.is_empty(), "{kind:?}: empty message");
        }
    }
});
