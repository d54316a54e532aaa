//! Chafon / UHFReader18 / CF-RU5102 / ZK-RFID102 family, PROTOCOLS.md §4c.
//!
//! ```text
//! command:  Len | Adr | Cmd   | Data[]          | CRC_LSB CRC_MSB    Len = len(Data) + 4
//! response: Len | Adr | reCmd | Status | Data[] | CRC_LSB CRC_MSB    Len = len(Data) + 5
//! CRC-16/MCRF4XX (preset 0xFFFF, reflected poly 0x8408) over Len ..= last data byte
//! ```
//! There is no start byte, so resynchronisation tries every offset: a candidate needs a
//! plausible `Len` (>= 5), a known `reCmd` and a matching CRC. These readers only answer
//! commands (no continuous mode): the driver polls with [`encode_inventory`].
//!
//! Inventory replies come in two layouts that must be configured per port
//! ([`ChafonLayout`]): the original one (`Num, {EPCLen, EPC}*`) and the newer firmware's
//! (`Ant, Num, {EPCLen, EPC, RSSI}*`). `Auto` parses a reply both ways and keeps the one that
//! consumes the data exactly with even (whole-word) EPC lengths; when both fit, the layout
//! last proven unambiguous is used (the original layout until then). Real one-tag replies
//! are never ambiguous, so Auto settles on the first inventory that finds a tag.
//!
//! Files by role: `frame` (framing and CRC), `commands` (host→reader requests), `replies`
//! (reader→host frames, for the simulator and tests), `decode` (the decoder and the reply
//! parsers), `tests`. The band and RSSI encodings both directions share are here.

mod commands;
mod decode;
mod frame;
mod replies;
#[cfg(test)]
mod tests;

pub use commands::{
    encode_get_reader_info, encode_inventory, encode_set_power, encode_set_region,
    encode_set_scan_time,
};
pub use decode::{ChafonCodec, parse_inventory, parse_reader_info, status_text};
pub use frame::{HostCommand, encode_command, encode_response, next_host_command};
pub use replies::{
    ChafonInfo, InventoryEntry, encode_inventory_response, encode_reader_info_response,
    entries_per_frame, entry_for,
};

use super::Region;

/// Address every reader answers to.
pub const BROADCAST: u8 = 0xFF;
/// Len is one byte, so no frame exceeds 256 bytes.
pub const MAX_FRAME: usize = 256;
const MIN_RESPONSE_LEN: u8 = 5;
const MIN_COMMAND_LEN: u8 = 4;

pub const CMD_INVENTORY: u8 = 0x01;
pub const CMD_GET_READER_INFO: u8 = 0x21;
pub const CMD_SET_REGION: u8 = 0x22;
pub const CMD_SET_ADDRESS: u8 = 0x24;
pub const CMD_SET_SCAN_TIME: u8 = 0x25;
pub const CMD_SET_BAUD_RATE: u8 = 0x28;
pub const CMD_SET_POWER: u8 = 0x2F;

pub const STATUS_OK: u8 = 0x00;
/// Inventory finished within the scan time.
pub const STATUS_INVENTORY_DONE: u8 = 0x01;
/// Scan time ran out before every tag was inventoried.
pub const STATUS_SCAN_TIME_OVERFLOW: u8 = 0x02;
/// More inventory frames follow this one.
pub const STATUS_MORE_FRAMES: u8 = 0x03;
/// The reader's tag buffer is full; some tags were not reported.
pub const STATUS_BUFFER_FULL: u8 = 0x04;
pub const STATUS_NO_TAG: u8 = 0xFB;

pub const MAX_POWER_DBM: u8 = 30;

/// Inventory reply layout of a Chafon reader's firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChafonLayout {
    /// `Num, {EPCLen, EPC}*` (UHFReader18 manual V2.0).
    #[default]
    Old,
    /// `Ant, Num, {EPCLen, EPC, RSSI}*` (UR-series firmware v1.14 and UHFReader288 style).
    New,
    /// Decide per reply where only one layout fits (see the module docs).
    Auto,
}

/// Frequency band codes carried in the top two bits of MaxFre (high pair) and MinFre (low pair).
fn band_for(region: Region) -> Option<(u8, u8)> {
    // (band code, highest channel index)
    match region {
        Region::Cn => Some((0b0001, 19)), // Chinese band 2: 920.125 + N * 0.25 MHz
        Region::Us => Some((0b0010, 49)), // 902.75 + N * 0.5 MHz
        Region::Kr => Some((0b0011, 31)), // 917.1 + N * 0.2 MHz
        Region::Eu => Some((0b0100, 14)), // 865.1 + N * 0.2 MHz (newer firmware)
        Region::Jp | Region::Au | Region::In => None,
    }
}

fn region_for_band(band: u8) -> Option<Region> {
    match band {
        0b0001 => Some(Region::Cn),
        0b0010 => Some(Region::Us),
        0b0011 => Some(Region::Kr),
        0b0100 => Some(Region::Eu),
        _ => None,
    }
}

/// The RSSI byte is an unsigned magnitude (captures show 0x5A..0x69); we report it as
/// negative dBm. Vendor documents do not state the unit; treat it as relative strength.
fn rssi_from_raw(raw: u8) -> i16 {
    -i16::from(raw)
}

fn rssi_to_raw(rssi_dbm: i16) -> u8 {
    u8::try_from(rssi_dbm.saturating_neg().clamp(0, 255)).unwrap_or(u8::MAX)
}
