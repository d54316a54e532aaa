//! Simulated devices: byte streams a real scanner or RFID reader would send, for the
//! simulator CLI and for tests (including a driver talking to a simulated reader on a
//! pseudo-terminal). Deterministic for a given seed.
//!
//! Noise never forms a frame start (0xBB for M100, 0xFF for Mercury, a length byte >= 5
//! for Chafon, STX for scanners), so a correct decoder yields *exactly* the valid reads
//! counted here. Corrupted frames (a flipped checksum byte) are not counted. The codecs'
//! own tests cover arbitrary garbage.
//!
//! One file per simulated device kind: `scanner` (barcode scanners) and `rfid` (UHF readers,
//! with one file per reader protocol for its command replies).

mod rfid;
mod scanner;
#[cfg(test)]
mod tests;

pub use rfid::{RfidSim, sample_epcs};
pub use scanner::ScannerSim;
