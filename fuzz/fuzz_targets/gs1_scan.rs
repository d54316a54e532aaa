#![no_main]
//! What a scanned barcode means (AIM prefix, GTIN, RCN, GS1 data), for several regions.

use libfuzzer_sys::fuzz_target;
use storenode::gs1::{self, RcnRegion};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let region = match which % 4 {
        0 => RcnRegion::Germany,
        1 => RcnRegion::Sweden,
        2 => RcnRegion::UnitedKingdom,
        _ => RcnRegion::Baltics,
    };
    let _ = gs1::interpret(rest, region);
});
