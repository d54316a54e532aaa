#![no_main]
//! Chafon reader frames, in each inventory layout.

use libfuzzer_sys::fuzz_target;
use storenode::devices::codec::ChafonLayout;
use storenode::devices::codec::chafon::ChafonCodec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let layout = match which % 3 {
        0 => ChafonLayout::Old,
        1 => ChafonLayout::New,
        _ => ChafonLayout::Auto,
    };
    common::drain(&mut ChafonCodec::new(layout), rest);
});
