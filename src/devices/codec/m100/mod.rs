//! MagicRF M100 / QM100 / YRM100 / JRD-4035 / R200 style modules ("BB … 7E"), PROTOCOLS.md §4a.
//!
//! ```text
//! BB | Type | Cmd | PL_MSB PL_LSB | Params[PL] | Checksum | 7E
//! Type 00 command (host→module), 01 response, 02 notification; Cmd FF = error response
//! Checksum = low byte of sum(Type ..= last param)
//! ```
//! 0xBB and 0x7E also occur inside parameters, so frames are delimited by `PL`, then the end
//! byte and checksum are verified; any failure drops one byte and the hunt for `BB` resumes.
//!
//! Files by role: `frame` (framing and checksum), `commands` (host→reader requests),
//! `replies` (reader→host frames, for the simulator and tests), `decode` (the decoder and the
//! reply parsers), `tests`.

mod commands;
mod decode;
mod frame;
mod replies;
#[cfg(test)]
mod tests;

pub use commands::{
    encode_get_info, encode_get_tx_power, encode_multi_poll, encode_set_region,
    encode_set_tx_power, encode_single_poll, encode_stop_multi_poll,
};
pub use decode::{M100Codec, parse_reader_frame, parse_tag_notification};
pub use frame::{HostCommand, encode_frame, next_host_command};
pub use replies::{
    encode_ack, encode_error, encode_info_response, encode_tag_notification,
    encode_tx_power_response,
};

const HEADER: u8 = 0xBB;
const END: u8 = 0x7E;
/// BB, Type, Cmd, PL(2) before the params; checksum and end byte after them.
const OVERHEAD: usize = 7;
/// Largest parameter block accepted. Real replies are < 64 bytes; a bigger PL is line noise
/// and waiting for it would stall the stream.
pub const MAX_PARAMS: usize = 255;
/// Largest frame the decoder ever waits for.
pub const MAX_FRAME: usize = MAX_PARAMS + OVERHEAD;

pub const TYPE_COMMAND: u8 = 0x00;
pub const TYPE_RESPONSE: u8 = 0x01;
pub const TYPE_NOTIFICATION: u8 = 0x02;

pub const CMD_GET_INFO: u8 = 0x03;
pub const CMD_SET_REGION: u8 = 0x07;
pub const CMD_GET_REGION: u8 = 0x08;
pub const CMD_SINGLE_POLL: u8 = 0x22;
pub const CMD_MULTI_POLL: u8 = 0x27;
pub const CMD_STOP_MULTI_POLL: u8 = 0x28;
pub const CMD_SET_TX_POWER: u8 = 0xB6;
pub const CMD_GET_TX_POWER: u8 = 0xB7;
pub const CMD_ERROR: u8 = 0xFF;

/// Error code 0x15: an inventory round found no tag ("INVENTORY_FAIL").
pub const ERR_INVENTORY_FAIL: u8 = 0x15;
/// First parameter of multi-poll; drivers name it RESERVED and always send 0x22.
const MULTI_POLL_RESERVED: u8 = 0x22;
/// Rounds requested by `start_inventory` (the documented 0x2710). The module stops after
/// that many rounds, so the driver re-issues the command when notifications stop.
pub const MULTI_POLL_ROUNDS: u16 = 10_000;
/// Power range the modules of this family accept, in centi-dBm.
pub const MAX_POWER_CENTI_DBM: u16 = 3300;

/// Which identification string `CMD_GET_INFO` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoKind {
    Hardware = 0x00,
    Software = 0x01,
    Manufacturer = 0x02,
}

impl InfoKind {
    fn from_code(code: u8) -> Option<Self> {
        match code {
            0x00 => Some(InfoKind::Hardware),
            0x01 => Some(InfoKind::Software),
            0x02 => Some(InfoKind::Manufacturer),
            _ => None,
        }
    }
}
