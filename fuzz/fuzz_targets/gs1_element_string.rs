#![no_main]
//! GS1 element strings (FNC1-separated and human-readable) and Digital Link URIs.

use libfuzzer_sys::fuzz_target;
use storenode::gs1;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gs1::parse_element_string(text);
    let _ = gs1::parse_human_readable(text);
    let _ = gs1::parse_digital_link(text);
});
