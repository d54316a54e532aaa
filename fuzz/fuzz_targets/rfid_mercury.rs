#![no_main]
//! ThingMagic Mercury reader frames.

use libfuzzer_sys::fuzz_target;
use storenode::devices::codec::mercury::MercuryCodec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::drain(&mut MercuryCodec::new(), data);
});
