#![no_main]
//! MQTT topic names as the broker delivers them (a peer chooses what it publishes to).

use libfuzzer_sys::fuzz_target;
use storenode::sync::topics;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(topic) = topics::parse(text) {
        let _ = (topic.is_retained(), topic.tenant(), topic.scope());
    }
});
