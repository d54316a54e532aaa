//! A simulated serial barcode scanner: EAN-13, EAN-8 and GS1-128 scans in the port's
//! framing, sometimes after line noise.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::devices::codec::barcode::{BarcodeFraming, STX};
use crate::gs1;

/// Group separator: FNC1 inside a GS1-128 scan.
pub(super) const GS: u8 = 0x1D;

fn random_digits(rng: &mut StdRng, count: usize) -> Vec<u8> {
    (0..count)
        .map(|_| b'0' + rng.random_range(0..10u8))
        .collect()
}

/// `digits` (ASCII '0'..='9') followed by their GS1 mod-10 check digit.
pub(super) fn with_check_digit(mut digits: Vec<u8>) -> Vec<u8> {
    // Only ASCII digits are generated here, so gs1 always finds a check digit (0..=9).
    if let Ok(check) = gs1::check_digit(&String::from_utf8_lossy(&digits)) {
        digits.push(b'0' + check);
    }
    digits
}

/// A serial barcode scanner: EAN-13, EAN-8 and GS1-128 (GTIN, expiry, lot, serial with GS).
#[derive(Debug)]
pub struct ScannerSim {
    framing: BarcodeFraming,
    aim_ids: bool,
    noise_ratio: f64,
    rng: StdRng,
    emitted: Vec<Vec<u8>>,
}

impl ScannerSim {
    pub fn new(framing: BarcodeFraming, aim_ids: bool, noise_ratio: f64, seed: u64) -> Self {
        Self {
            framing,
            aim_ids,
            noise_ratio: noise_ratio.clamp(0.0, 1.0),
            rng: StdRng::seed_from_u64(seed),
            emitted: Vec::new(),
        }
    }

    /// Payloads of every scan emitted so far, as a decoder should return them.
    pub fn emitted(&self) -> &[Vec<u8>] {
        &self.emitted
    }

    /// One scan's payload (symbology identifier included when AIM ids are on).
    pub fn next_scan(&mut self) -> Vec<u8> {
        let (aim, body) = match self.rng.random_range(0..10) {
            0..=4 => (
                &b"]E0"[..],
                with_check_digit(random_digits(&mut self.rng, 12)),
            ),
            5 | 6 => (
                &b"]E4"[..],
                with_check_digit(random_digits(&mut self.rng, 7)),
            ),
            _ => (&b"]C1"[..], self.gs1_128()),
        };
        let mut scan = if self.aim_ids {
            aim.to_vec()
        } else {
            Vec::new()
        };
        scan.extend_from_slice(&body);
        scan
    }

    fn gs1_128(&mut self) -> Vec<u8> {
        let mut gtin = vec![b'0'];
        gtin.extend(random_digits(&mut self.rng, 12));
        let mut out = b"01".to_vec();
        out.extend(with_check_digit(gtin));
        let (year, month, day) = (
            self.rng.random_range(25..35u8),
            self.rng.random_range(1..13u8),
            self.rng.random_range(1..29u8),
        );
        out.extend_from_slice(format!("17{year:02}{month:02}{day:02}10").as_bytes());
        let lot_len = self.rng.random_range(1..9);
        out.extend((0..lot_len).map(|_| {
            let pick = self.rng.random_range(0..36u8);
            if pick < 10 {
                b'0' + pick
            } else {
                b'A' + pick - 10
            }
        }));
        // The lot is variable length and not last, so FNC1 arrives as GS.
        out.push(GS);
        out.extend_from_slice(b"21");
        let serial_len = self.rng.random_range(4..11);
        out.extend(random_digits(&mut self.rng, serial_len));
        out
    }

    /// The bytes of one scan as they arrive on the wire, sometimes preceded by noise.
    pub fn next_chunk(&mut self) -> Vec<u8> {
        let mut chunk = Vec::new();
        if self.rng.random_bool(self.noise_ratio) {
            if self.framing.stx_etx {
                // Line noise between records; never STX.
                let count = self.rng.random_range(1..4);
                chunk.extend((0..count).map(|_| self.rng.random_range(0x20..0x7Fu8)));
            } else {
                // Scanners emit stray blank lines (e.g. a CR-only trigger); decoders skip them.
                chunk.extend_from_slice(b"\r\n");
            }
        }
        debug_assert!(!chunk.contains(&STX));
        let scan = self.next_scan();
        chunk.extend(self.framing.frame(&scan));
        self.emitted.push(scan);
        chunk
    }
}
