#![no_main]
//! Serial barcode scanner lines, under the three framings.

use libfuzzer_sys::fuzz_target;
use storenode::devices::codec::barcode::{BarcodeCodec, BarcodeFraming};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let framing = match which % 3 {
        0 => BarcodeFraming::default(),
        1 => BarcodeFraming::lines(b"\r\n"),
        _ => BarcodeFraming::stx_etx(b""),
    };
    common::drain(&mut BarcodeCodec::new(framing), rest);
});
