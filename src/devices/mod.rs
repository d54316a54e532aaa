//! Serial barcode scanners and UHF RFID readers: pure codecs, presence tracking, simulators,
//! and the drivers that run each configured port.

pub mod codec;
pub mod config;
pub mod presence;
pub mod sim;
