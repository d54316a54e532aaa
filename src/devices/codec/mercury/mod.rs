//! ThingMagic / JADAK Mercury embedded serial protocol (M6e, M7e, Nano), PROTOCOLS.md §4b.
//!
//! ```text
//! host→reader: FF | LEN | OPCODE | DATA[LEN] | CRC_HI CRC_LO
//! reader→host: FF | LEN | OPCODE | STATUS_HI STATUS_LO | DATA[LEN] | CRC_HI CRC_LO
//! CRC = ThingMagic nibble CRC over LEN ..= last data byte (not CRC-16/CCITT-FALSE)
//! ```
//! 0xFF is common inside data (e.g. metadata flags 0x01FF), so a false start can make the
//! decoder wait for up to one maximal frame (262 bytes) before the CRC rejects it; during
//! continuous reading the stream keeps flowing, so this resolves within a few records.
//!
//! Status 0x0400 ("no tags found") is what a continuous read sends about once a second when
//! nothing is in the field; it is reported as [`ReaderEvent::KeepAlive`](super::ReaderEvent::KeepAlive). After a
//! synchronous Read Tag ID Multiple it means the round found nothing.
//!
//! Files by role: `frame` (framing and CRC), `commands` (host→reader requests), `replies`
//! (reader→host frames, for the simulator and tests), `decode` (the decoder and the reply
//! parsers), `tests`.

mod commands;
mod decode;
mod frame;
mod replies;
#[cfg(test)]
mod tests;

pub use super::cursor::Cursor;
pub use commands::{
    encode_boot_firmware, encode_get_tag_buffer, encode_get_version, encode_read_tag_id_multiple,
    encode_set_protocol_gen2, encode_set_read_power, encode_set_region,
    encode_start_continuous_read, encode_stop_continuous_read,
};
pub use decode::{MercuryCodec, parse_reply, parse_tag_record, parse_version, status_text};
pub use frame::{HostCommand, encode_command, encode_reply, next_host_command};
pub use replies::{
    TagRecord, VersionInfo, encode_continuous_record, encode_keep_alive, encode_tag_buffer_reply,
    encode_version_reply,
};

const HEADER: u8 = 0xFF;
/// FF, LEN, OPCODE, STATUS(2) before the data and CRC(2) after it.
const REPLY_OVERHEAD: usize = 7;
/// FF, LEN, OPCODE before the data and CRC(2) after it.
const COMMAND_OVERHEAD: usize = 5;
/// LEN is one byte, which caps every frame.
pub const MAX_FRAME: usize = 255 + REPLY_OVERHEAD;

pub const OP_GET_VERSION: u8 = 0x03;
pub const OP_BOOT_FIRMWARE: u8 = 0x04;
pub const OP_READ_TAG_ID_MULTIPLE: u8 = 0x22;
pub const OP_GET_TAG_ID_BUFFER: u8 = 0x29;
pub const OP_MULTI_PROTOCOL_TAG_OP: u8 = 0x2F;
pub const OP_SET_READ_TX_POWER: u8 = 0x92;
pub const OP_SET_TAG_PROTOCOL: u8 = 0x93;
pub const OP_SET_REGION: u8 = 0x97;

pub const STATUS_OK: u16 = 0x0000;
pub const STATUS_NO_TAGS_FOUND: u16 = 0x0400;
pub const STATUS_TEMPERATURE_THROTTLE: u16 = 0x0504;

const PROTOCOL_GEN2: u8 = 0x05;
/// Read option bit: tag records carry metadata.
const OPTION_METADATA: u8 = 0x10;
/// Search flags sent by the continuous-read command (SparkFun's documented blob).
const CONTINUOUS_SEARCH_FLAGS: u16 = 0x001B;
/// Search flags of a synchronous Read Tag ID Multiple (the documented 500 ms vector).
const SYNC_SEARCH_FLAGS: u16 = 0x0013;
/// Reader's on-time per continuous-read cycle.
const CONTINUOUS_ON_TIME_MS: u16 = 1000;
/// Power range accepted by M6e-class modules (Nano tops out lower; the reader says so).
pub const MAX_POWER_CENTI_DBM: u16 = 3150;

/// Stream response types that follow the metadata flags in a streamed 0x22 reply.
const STREAM_END: u8 = 0x00;
const STREAM_TAG: u8 = 0x01;
const STREAM_STATUS: u8 = 0x02;

/// Which metadata fields precede the EPC in a tag record, in this order.
pub mod metadata {
    pub const READ_COUNT: u16 = 0x0001;
    pub const RSSI: u16 = 0x0002;
    pub const ANTENNA_ID: u16 = 0x0004;
    pub const FREQUENCY: u16 = 0x0008;
    pub const TIMESTAMP: u16 = 0x0010;
    pub const PHASE: u16 = 0x0020;
    pub const PROTOCOL: u16 = 0x0040;
    pub const DATA: u16 = 0x0080;
    pub const GPIO_STATUS: u16 = 0x0100;
    pub const ALL: u16 = 0x01FF;
}
