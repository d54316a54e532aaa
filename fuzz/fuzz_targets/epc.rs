#![no_main]
//! EPC bank contents (binary and hex), and everything derived from a decoded EPC.

use libfuzzer_sys::fuzz_target;
use storenode::gs1;

fuzz_target!(|data: &[u8]| {
    let epc = gs1::decode_epc(data);
    let _ = (
        epc.pure_identity_uri(),
        epc.tag_uri(),
        epc.filter(),
        epc.gtin14(),
    );
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gs1::decode_epc_hex(text);
    }
});
