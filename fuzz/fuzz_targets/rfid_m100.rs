#![no_main]
//! M100 / Magic RF reader frames.

use libfuzzer_sys::fuzz_target;
use storenode::devices::codec::m100::M100Codec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::drain(&mut M100Codec::new(), data);
});
