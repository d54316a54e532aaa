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
//! nothing is in the field; it is reported as [`ReaderEvent::KeepAlive`]. After a
//! synchronous Read Tag ID Multiple it means the round found nothing.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::crc::{crc16_genibus, crc16_thingmagic};
use super::{
    CodecError, CommandError, DecodeStats, Probe, ReaderEvent, ReaderInfo, Region, TagRead,
    decode_to_end, next_frame,
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

fn region_code(region: Region) -> u8 {
    match region {
        Region::In => 0x04,
        Region::Jp => 0x05,
        Region::Cn => 0x06,
        Region::Eu => 0x08, // EU3
        Region::Kr => 0x09, // KR2
        Region::Au => 0x0B,
        Region::Us => 0x0D, // NA2
    }
}

/// Short description of a status code, for log lines.
pub fn status_text(status: u16) -> &'static str {
    match status {
        0x0100 => "wrong number of data bytes",
        0x0101 => "invalid opcode",
        0x0102 => "unimplemented opcode",
        0x0103 => "power too high",
        0x0104 => "invalid frequency",
        0x0105 => "invalid parameter value",
        0x0106 => "power too low",
        0x0109 => "unimplemented feature",
        0x010A => "invalid baud rate",
        0x010B => "invalid region",
        0x0400 => "no tags found",
        0x0401 => "no protocol defined",
        0x0402 => "invalid protocol",
        0x0500 => "invalid frequency (AHAL)",
        0x0501 => "channel occupied",
        0x0502 => "transmitter on",
        0x0503 => "antenna not connected",
        0x0504 => "temperature exceeds limits, reader is throttling",
        0x0505 => "high return loss",
        0x0507 => "invalid antenna configuration",
        0x0601 => "tag buffer full",
        0x7F00 => "system unknown error",
        0x7F01 => "firmware assertion failed",
        _ => "unknown status",
    }
}

// ---- encoding ---------------------------------------------------------------------------

/// Host→reader frame. Data beyond 255 bytes is cut: LEN cannot say more.
pub fn encode_command(opcode: u8, data: &[u8]) -> Vec<u8> {
    let data = data.get(..255).unwrap_or(data);
    let mut frame = Vec::with_capacity(data.len() + COMMAND_OVERHEAD);
    frame.extend_from_slice(&[HEADER, data.len() as u8, opcode]);
    frame.extend_from_slice(data);
    let crc = crc16_thingmagic(frame.get(1..).unwrap_or_default());
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

/// Reader→host frame (simulator and tests).
pub fn encode_reply(opcode: u8, status: u16, data: &[u8]) -> Vec<u8> {
    let data = data.get(..255).unwrap_or(data);
    let mut frame = Vec::with_capacity(data.len() + REPLY_OVERHEAD);
    frame.extend_from_slice(&[HEADER, data.len() as u8, opcode]);
    frame.extend_from_slice(&status.to_be_bytes());
    frame.extend_from_slice(data);
    let crc = crc16_thingmagic(frame.get(1..).unwrap_or_default());
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

pub fn encode_get_version() -> Vec<u8> {
    encode_command(OP_GET_VERSION, &[])
}

pub fn encode_boot_firmware() -> Vec<u8> {
    encode_command(OP_BOOT_FIRMWARE, &[])
}

/// Every [`Region`] has a Mercury code, so this cannot fail; the `Result` keeps the
/// signature in line with the other protocols.
pub fn encode_set_region(region: Region) -> Result<Vec<u8>, CommandError> {
    Ok(encode_command(OP_SET_REGION, &[region_code(region)]))
}

pub fn encode_set_protocol_gen2() -> Vec<u8> {
    encode_command(OP_SET_TAG_PROTOCOL, &[0x00, PROTOCOL_GEN2])
}

pub fn encode_set_read_power(centi_dbm: u16) -> Result<Vec<u8>, CommandError> {
    if centi_dbm > MAX_POWER_CENTI_DBM {
        return Err(CommandError::PowerOutOfRange {
            protocol: "mercury",
            requested: centi_dbm,
            min_centi_dbm: 0,
            max_centi_dbm: MAX_POWER_CENTI_DBM,
        });
    }
    Ok(encode_command(
        OP_SET_READ_TX_POWER,
        &centi_dbm.to_be_bytes(),
    ))
}

/// Synchronous inventory for `timeout_ms`; tags are then fetched with [`encode_get_tag_buffer`].
pub fn encode_read_tag_id_multiple(timeout_ms: u16) -> Vec<u8> {
    let mut data = vec![0x00];
    data.extend_from_slice(&SYNC_SEARCH_FLAGS.to_be_bytes());
    data.extend_from_slice(&timeout_ms.to_be_bytes());
    encode_command(OP_READ_TAG_ID_MULTIPLE, &data)
}

pub fn encode_get_tag_buffer() -> Vec<u8> {
    let mut data = metadata::ALL.to_be_bytes().to_vec();
    data.push(0x00); // read options
    encode_command(OP_GET_TAG_ID_BUFFER, &data)
}

/// Continuous read: a multi-protocol tag op (0x2F, option 1 = continuous) wrapping a Gen2
/// Read Tag ID Multiple that streams one record per read with all metadata.
pub fn encode_start_continuous_read() -> Vec<u8> {
    let mut sub = vec![OP_READ_TAG_ID_MULTIPLE, OPTION_METADATA];
    sub.extend_from_slice(&CONTINUOUS_SEARCH_FLAGS.to_be_bytes());
    sub.extend_from_slice(&CONTINUOUS_ON_TIME_MS.to_be_bytes());
    sub.extend_from_slice(&metadata::ALL.to_be_bytes());
    // timeout 0 (run until stopped), option 1, sub-opcode, search flags 0, protocol, length.
    let mut data = vec![
        0x00,
        0x00,
        0x01,
        OP_READ_TAG_ID_MULTIPLE,
        0x00,
        0x00,
        PROTOCOL_GEN2,
    ];
    data.push(sub.len() as u8 - 1); // the length excludes the sub-opcode itself
    data.extend_from_slice(&sub);
    encode_command(OP_MULTI_PROTOCOL_TAG_OP, &data)
}

pub fn encode_stop_continuous_read() -> Vec<u8> {
    encode_command(OP_MULTI_PROTOCOL_TAG_OP, &[0x00, 0x00, 0x02])
}

/// The version block of an 0x03 reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionInfo {
    pub bootloader: [u8; 4],
    pub hardware: [u8; 4],
    pub firmware_date: [u8; 4],
    pub firmware: [u8; 4],
    pub protocols: u32,
}

pub fn encode_version_reply(version: &VersionInfo) -> Vec<u8> {
    let mut data = Vec::with_capacity(20);
    data.extend_from_slice(&version.bootloader);
    data.extend_from_slice(&version.hardware);
    data.extend_from_slice(&version.firmware_date);
    data.extend_from_slice(&version.firmware);
    data.extend_from_slice(&version.protocols.to_be_bytes());
    encode_reply(OP_GET_VERSION, STATUS_OK, &data)
}

/// One tag read with every metadata field (flags 0x01FF), Gen2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub read_count: u8,
    pub rssi_dbm: i8,
    /// TX port in the high nibble, RX port in the low nibble.
    pub antenna: u8,
    pub frequency_khz: u32,
    pub timestamp_ms: u32,
    pub phase: u16,
    pub gpio: u8,
    pub pc: u16,
    pub epc: Vec<u8>,
    pub tag_crc: u16,
}

impl TagRecord {
    /// A record whose tag CRC is the correct CRC-16/GENIBUS over PC + EPC.
    pub fn with_valid_crc(mut self) -> Self {
        self.tag_crc = crc16_genibus(&pc_epc_bytes(self.pc, &self.epc));
        self
    }

    fn encode_all_metadata(&self, out: &mut Vec<u8>) {
        out.push(self.read_count);
        out.push(u8::from_be_bytes(self.rssi_dbm.to_be_bytes()));
        out.push(self.antenna);
        out.extend_from_slice(&self.frequency_khz.to_be_bytes()[1..]);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.phase.to_be_bytes());
        out.push(PROTOCOL_GEN2);
        out.extend_from_slice(&[0x00, 0x00]); // no embedded data
        out.push(self.gpio);
        let epc_bits = ((self.epc.len() + 4) * 8) as u16; // PC + EPC + CRC
        out.extend_from_slice(&epc_bits.to_be_bytes());
        out.extend_from_slice(&self.pc.to_be_bytes());
        out.extend_from_slice(&self.epc);
        out.extend_from_slice(&self.tag_crc.to_be_bytes());
    }
}

fn pc_epc_bytes(pc: u16, epc: &[u8]) -> Vec<u8> {
    let mut bytes = pc.to_be_bytes().to_vec();
    bytes.extend_from_slice(epc);
    bytes
}

/// A streamed continuous-read record, as in the corrected 47-byte vector of §4b.
pub fn encode_continuous_record(record: &TagRecord) -> Vec<u8> {
    let mut data = vec![OPTION_METADATA];
    data.extend_from_slice(&CONTINUOUS_SEARCH_FLAGS.to_be_bytes());
    data.extend_from_slice(&metadata::ALL.to_be_bytes());
    data.push(STREAM_TAG);
    record.encode_all_metadata(&mut data);
    encode_reply(OP_READ_TAG_ID_MULTIPLE, STATUS_OK, &data)
}

/// A Get Tag ID Buffer reply holding `records` (all metadata).
pub fn encode_tag_buffer_reply(records: &[TagRecord]) -> Vec<u8> {
    let mut data = metadata::ALL.to_be_bytes().to_vec();
    data.push(0x00); // read options
    data.push(records.len().min(255) as u8);
    for record in records.iter().take(255) {
        record.encode_all_metadata(&mut data);
    }
    encode_reply(OP_GET_TAG_ID_BUFFER, STATUS_OK, &data)
}

/// The keep-alive a continuous read sends when no tag is in the field.
pub fn encode_keep_alive() -> Vec<u8> {
    encode_reply(OP_READ_TAG_ID_MULTIPLE, STATUS_NO_TAGS_FOUND, &[])
}

// ---- frame probing ----------------------------------------------------------------------

fn probe(buf: &[u8], overhead: usize) -> Probe {
    let Some(&len) = buf.get(1) else {
        return Probe::Incomplete;
    };
    let total = usize::from(len) + overhead;
    let Some(frame) = buf.get(..total) else {
        return Probe::Incomplete;
    };
    let (Some(covered), Some(crc)) = (frame.get(1..total - 2), super::be_u16(frame, total - 2))
    else {
        return Probe::Corrupt;
    };
    if crc16_thingmagic(covered) == crc {
        Probe::Frame(total)
    } else {
        Probe::Corrupt
    }
}

// ---- decoding ---------------------------------------------------------------------------

/// Reader→host decoder. Keeps [`DecodeStats`]; never fails on bad data.
#[derive(Debug, Default)]
pub struct MercuryCodec {
    stats: DecodeStats,
    pending: VecDeque<ReaderEvent>,
}

impl MercuryCodec {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }
}

impl Decoder for MercuryCodec {
    type Item = ReaderEvent;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let Some(frame) = next_frame(
                buf,
                &mut self.stats,
                |byte| byte == HEADER,
                |head| probe(head, REPLY_OVERHEAD),
            ) else {
                return Ok(None);
            };
            let events = parse_reply(&frame);
            if events.is_empty() {
                self.stats.unhandled += 1;
            }
            self.pending.extend(events);
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        decode_to_end(self, buf, |codec| &mut codec.stats)
    }
}

/// Interprets one verified reader→host frame. Empty when the frame is of no use to us.
pub fn parse_reply(frame: &[u8]) -> Vec<ReaderEvent> {
    let (Some(&opcode), Some(status), Some(data)) = (
        frame.get(2),
        super::be_u16(frame, 3),
        frame.get(5..frame.len().saturating_sub(2)),
    ) else {
        return Vec::new();
    };
    if status != STATUS_OK {
        return vec![status_event(opcode, status)];
    }
    match opcode {
        OP_GET_VERSION => parse_version(data)
            .map(|version| ReaderEvent::Info(version_info(&version)))
            .into_iter()
            .collect(),
        OP_READ_TAG_ID_MULTIPLE => parse_read_multiple(data).into_iter().collect(),
        OP_GET_TAG_ID_BUFFER => parse_tag_buffer(data),
        OP_BOOT_FIRMWARE
        | OP_MULTI_PROTOCOL_TAG_OP
        | OP_SET_READ_TX_POWER
        | OP_SET_TAG_PROTOCOL
        | OP_SET_REGION => vec![ReaderEvent::Ack { command: opcode }],
        _ => Vec::new(),
    }
}

fn status_event(opcode: u8, status: u16) -> ReaderEvent {
    match status {
        STATUS_NO_TAGS_FOUND => ReaderEvent::KeepAlive,
        STATUS_TEMPERATURE_THROTTLE => ReaderEvent::Warning {
            code: status,
            message: status_text(status).to_owned(),
        },
        _ => ReaderEvent::Error {
            code: status,
            message: format!(
                "Mercury opcode 0x{opcode:02X} failed: {} (0x{status:04X})",
                status_text(status)
            ),
        },
    }
}

pub fn parse_version(data: &[u8]) -> Option<VersionInfo> {
    let mut cursor = Cursor::new(data);
    Some(VersionInfo {
        bootloader: cursor.array()?,
        hardware: cursor.array()?,
        firmware_date: cursor.array()?,
        firmware: cursor.array()?,
        protocols: cursor.u32()?,
    })
}

fn dotted(bytes: &[u8; 4]) -> String {
    let [a, b, c, d] = bytes;
    format!("{a:02X}.{b:02X}.{c:02X}.{d:02X}")
}

fn version_info(version: &VersionInfo) -> ReaderInfo {
    ReaderInfo {
        firmware: Some(format!(
            "{} ({})",
            dotted(&version.firmware),
            hex::encode(version.firmware_date)
        )),
        hardware: Some(dotted(&version.hardware)),
        manufacturer: Some("ThingMagic".to_owned()),
        ..ReaderInfo::default()
    }
}

/// A 0x22 reply is either a streamed record (option has the metadata bit) or, after a
/// synchronous read, the number of tags found.
fn parse_read_multiple(data: &[u8]) -> Option<ReaderEvent> {
    let mut cursor = Cursor::new(data);
    let option = cursor.u8()?;
    if option & OPTION_METADATA == 0 {
        // Synchronous reply: option, search flags, then a 1- or 4-byte count.
        return Some(ReaderEvent::Ack {
            command: OP_READ_TAG_ID_MULTIPLE,
        });
    }
    let _search_flags = cursor.u16()?;
    let flags = cursor.u16()?;
    match cursor.u8()? {
        STREAM_TAG => parse_tag_record(&mut cursor, flags).map(ReaderEvent::Tag),
        STREAM_STATUS => Some(ReaderEvent::KeepAlive),
        STREAM_END => Some(ReaderEvent::Ack {
            command: OP_READ_TAG_ID_MULTIPLE,
        }),
        _ => None,
    }
}

fn parse_tag_buffer(data: &[u8]) -> Vec<ReaderEvent> {
    let mut cursor = Cursor::new(data);
    let (Some(flags), Some(_read_options), Some(count)) = (cursor.u16(), cursor.u8(), cursor.u8())
    else {
        return Vec::new();
    };
    if count == 0 {
        return vec![ReaderEvent::NoTag];
    }
    (0..count)
        .map_while(|_| parse_tag_record(&mut cursor, flags))
        .map(ReaderEvent::Tag)
        .collect()
}

/// One tag record: the metadata named by `flags`, in flag order, then EPC length in bits
/// (PC + EPC + CRC for Gen2), PC (+ XPC words), EPC and tag CRC.
pub fn parse_tag_record(cursor: &mut Cursor<'_>, flags: u16) -> Option<TagRead> {
    let has = |flag: u16| flags & flag != 0;
    if has(metadata::READ_COUNT) {
        cursor.u8()?;
    }
    let rssi_dbm = if has(metadata::RSSI) {
        Some(i16::from(i8::from_be_bytes([cursor.u8()?])))
    } else {
        None
    };
    let antenna = if has(metadata::ANTENNA_ID) {
        antenna_port(cursor.u8()?)
    } else {
        1
    };
    let frequency_khz = if has(metadata::FREQUENCY) {
        Some(cursor.u24()?)
    } else {
        None
    };
    if has(metadata::TIMESTAMP) {
        cursor.u32()?;
    }
    if has(metadata::PHASE) {
        cursor.u16()?;
    }
    let protocol = if has(metadata::PROTOCOL) {
        Some(cursor.u8()?)
    } else {
        None
    };
    if has(metadata::DATA) {
        let bits = cursor.u16()?;
        cursor.take(usize::from(bits).div_ceil(8))?;
    }
    if has(metadata::GPIO_STATUS) {
        cursor.u8()?;
    }
    let id_bytes = usize::from(cursor.u16()?).div_ceil(8);
    let id_and_crc = cursor.take(id_bytes)?;
    let (id, crc) = id_and_crc.split_at_checked(id_bytes.checked_sub(2)?)?;
    let tag_crc = u16::from_be_bytes([*crc.first()?, *crc.get(1)?]);
    let (pc, epc) = if protocol == Some(PROTOCOL_GEN2) {
        split_pc(id)?
    } else {
        (None, id)
    };
    Some(TagRead {
        epc: epc.to_vec(),
        pc,
        rssi_dbm,
        antenna,
        frequency_khz,
        // The tag CRC covers everything the tag backscattered before it: PC, XPC, EPC.
        tag_crc_ok: pc.map(|_| crc16_genibus(id) == tag_crc),
    })
}

/// Splits PC (+ XPC_W1 when PC bit 9 is set, + XPC_W2 when XPC_W1 bit 15 is set) off the EPC.
fn split_pc(id: &[u8]) -> Option<(Option<u16>, &[u8])> {
    let pc = super::be_u16(id, 0)?;
    let mut skip = 2;
    if pc & 0x0200 != 0 {
        let xpc_w1 = super::be_u16(id, 2)?;
        skip += if xpc_w1 & 0x8000 != 0 { 4 } else { 2 };
    }
    Some((Some(pc), id.get(skip..)?))
}

/// 1-based port: the TX nibble, else the RX nibble, else 1.
fn antenna_port(byte: u8) -> u8 {
    match (byte >> 4, byte & 0x0F) {
        (0, 0) => 1,
        (0, rx) => rx,
        (tx, _) => tx,
    }
}

/// Bounds-checked big-endian reads over a byte slice.
#[derive(Debug)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(count)?;
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[byte]| byte)
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u24(&mut self) -> Option<u32> {
        self.array::<3>()
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
}

/// A host→reader command, as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCommand {
    pub opcode: u8,
    pub data: Bytes,
}

/// Takes the next complete host→reader command off `buf`, skipping noise.
pub fn next_host_command(buf: &mut BytesMut) -> Option<HostCommand> {
    let mut ignored = DecodeStats::default();
    let frame = next_frame(
        buf,
        &mut ignored,
        |byte| byte == HEADER,
        |head| probe(head, COMMAND_OVERHEAD),
    )?;
    Some(HostCommand {
        opcode: *frame.get(2)?,
        data: frame.slice(3..frame.len().checked_sub(2)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::codec::test_support::{bytes, decode_all};
    use proptest::prelude::*;

    const RECORD: &str =
        "FF 28 22 00 00 10 00 1B 01 FF 01 01 C4 11 0E 16 40 00 00 01 27 00 00 05 00 00 0F 00 80
        30 00 00 00 00 00 00 00 00 00 00 00 15 45 E9 4A 56 1D";

    fn documented_record() -> TagRecord {
        TagRecord {
            read_count: 1,
            rssi_dbm: -60,
            antenna: 0x11,
            frequency_khz: 923_200,
            timestamp_ms: 0x127,
            phase: 0,
            gpio: 0x0F,
            pc: 0x3000,
            epc: bytes("000000000000000000001545"),
            tag_crc: 0xE94A,
        }
    }

    #[test]
    fn command_vectors_byte_for_byte() {
        assert_eq!(encode_get_version(), bytes("FF 00 03 1D 0C"));
        assert_eq!(encode_boot_firmware(), bytes("FF 00 04 1D 0B"));
        assert_eq!(
            encode_set_region(Region::Us).unwrap(),
            bytes("FF 01 97 0D 4B B0")
        );
        assert_eq!(encode_set_protocol_gen2(), bytes("FF 02 93 00 05 51 7D"));
        assert_eq!(
            encode_read_tag_id_multiple(500),
            bytes("FF 05 22 00 00 13 01 F4 2B 19")
        );
        assert_eq!(encode_get_tag_buffer(), bytes("FF 03 29 01 FF 00 1B 03"));
        assert_eq!(
            encode_start_continuous_read(),
            bytes("FF 10 2F 00 00 01 22 00 00 05 07 22 10 00 1B 03 E8 01 FF DD 2B")
        );
        assert_eq!(
            encode_stop_continuous_read(),
            bytes("FF 03 2F 00 00 02 5E 86")
        );
        assert_eq!(
            encode_set_read_power(2000).unwrap()[..5],
            bytes("FF 02 92 07 D0")[..]
        );
        assert!(encode_set_read_power(4000).is_err());
    }

    #[test]
    fn corrected_continuous_record_decodes() {
        let frame = bytes(RECORD);
        assert_eq!(frame.len(), 47);
        let events = decode_all(&mut MercuryCodec::new(), &frame);
        assert_eq!(
            events,
            vec![ReaderEvent::Tag(TagRead {
                epc: bytes("000000000000000000001545"),
                pc: Some(0x3000),
                rssi_dbm: Some(-60),
                antenna: 1,
                frequency_khz: Some(923_200),
                tag_crc_ok: Some(true),
            })]
        );
    }

    #[test]
    fn continuous_record_encoder_reproduces_vector() {
        assert_eq!(
            encode_continuous_record(&documented_record()),
            bytes(RECORD)
        );
        assert_eq!(documented_record().with_valid_crc(), documented_record());
    }

    #[test]
    fn sparkfun_record_one_byte_short_is_not_a_frame() {
        // The printed example lacks one 00 of the EPC: 46 bytes where LEN 0x28 needs 47.
        let mut short = bytes(RECORD);
        short.remove(31);
        assert_eq!(short.len(), 46);
        let mut codec = MercuryCodec::new();
        assert!(decode_all(&mut codec, &short).is_empty());
        assert_eq!(codec.stats().frames, 0);
        // Followed by more traffic, the short record's LEN swallows a byte of the next frame,
        // fails its CRC, and the decoder resynchronises onto the good frame.
        let mut codec = MercuryCodec::new();
        short.extend(bytes(RECORD));
        let events = decode_all(&mut codec, &short);
        assert_eq!(events.len(), 1);
        assert!(codec.stats().bad_checksum >= 1);
    }

    #[test]
    fn keep_alive_throttle_and_errors() {
        let mut input = encode_keep_alive();
        input.extend(encode_reply(OP_READ_TAG_ID_MULTIPLE, 0x0504, &[]));
        input.extend(encode_reply(OP_SET_REGION, 0x0105, &[]));
        let events = decode_all(&mut MercuryCodec::new(), &input);
        assert_eq!(events[0], ReaderEvent::KeepAlive);
        assert!(matches!(
            events[1],
            ReaderEvent::Warning { code: 0x0504, .. }
        ));
        let ReaderEvent::Error { code, message } = &events[2] else {
            panic!("{events:?}");
        };
        assert_eq!(*code, 0x0105);
        assert!(message.contains("invalid parameter value"), "{message}");
    }

    #[test]
    fn version_reply_decodes() {
        let version = VersionInfo {
            bootloader: [0x12, 0x08, 0x00, 0x30],
            hardware: [0x18, 0x00, 0x00, 0x01],
            firmware_date: [0x20, 0x15, 0x04, 0x20],
            firmware: [0x01, 0x09, 0x00, 0x02],
            protocols: 0x10,
        };
        let frame = encode_version_reply(&version);
        assert_eq!(frame[1], 20);
        assert_eq!(parse_version(&frame[5..25]), Some(version));
        let events = decode_all(&mut MercuryCodec::new(), &frame);
        let [ReaderEvent::Info(info)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(info.firmware.as_deref(), Some("01.09.00.02 (20150420)"));
        assert_eq!(info.hardware.as_deref(), Some("18.00.00.01"));
    }

    #[test]
    fn tag_buffer_reply_yields_every_tag() {
        let second = TagRecord {
            epc: bytes("3074257BF7194E4000001A85"),
            antenna: 0x22,
            ..documented_record()
        }
        .with_valid_crc();
        let frame = encode_tag_buffer_reply(&[documented_record(), second]);
        let events = decode_all(&mut MercuryCodec::new(), &frame);
        assert_eq!(events.len(), 2);
        let ReaderEvent::Tag(tag) = &events[1] else {
            panic!("{events:?}");
        };
        assert_eq!(tag.antenna, 2);
        assert_eq!(tag.tag_crc_ok, Some(true));
        let empty = encode_tag_buffer_reply(&[]);
        assert_eq!(
            decode_all(&mut MercuryCodec::new(), &empty),
            vec![ReaderEvent::NoTag]
        );
    }

    #[test]
    fn sync_read_reply_and_acks() {
        let mut input = encode_reply(OP_READ_TAG_ID_MULTIPLE, 0, &[0x00, 0x00, 0x13, 0x05]);
        input.extend(encode_reply(
            OP_MULTI_PROTOCOL_TAG_OP,
            0,
            &[0x00, 0x00, 0x02],
        ));
        let events = decode_all(&mut MercuryCodec::new(), &input);
        assert_eq!(
            events,
            vec![
                ReaderEvent::Ack { command: 0x22 },
                ReaderEvent::Ack { command: 0x2F }
            ]
        );
    }

    #[test]
    fn garbage_and_corruption_resync() {
        let mut input = bytes("FF FF 00 12 FF 01");
        input.extend(bytes(RECORD));
        let mut corrupt = bytes(RECORD);
        corrupt[46] ^= 0x40;
        input.extend(corrupt);
        input.extend(bytes("13 37"));
        input.extend(bytes(RECORD));
        let mut codec = MercuryCodec::new();
        assert_eq!(decode_all(&mut codec, &input).len(), 2);
        assert!(codec.stats().bad_checksum >= 1);
        assert_eq!(codec.stats().frames, 2);
    }

    #[test]
    fn split_at_every_boundary() {
        let mut stream = bytes(RECORD);
        stream.extend(encode_keep_alive());
        for cut in 0..=stream.len() {
            let mut codec = MercuryCodec::new();
            let mut buf = BytesMut::from(&stream[..cut]);
            let mut events = Vec::new();
            while let Some(event) = codec.decode(&mut buf).unwrap() {
                events.push(event);
            }
            buf.extend_from_slice(&stream[cut..]);
            while let Some(event) = codec.decode(&mut buf).unwrap() {
                events.push(event);
            }
            assert_eq!(events.len(), 2, "cut at {cut}");
        }
    }

    #[test]
    fn host_commands_are_parsed_for_the_simulator() {
        let mut buf = BytesMut::from(&encode_stop_continuous_read()[..]);
        buf.extend_from_slice(&encode_get_version()[..3]);
        let command = next_host_command(&mut buf).unwrap();
        assert_eq!(command.opcode, OP_MULTI_PROTOCOL_TAG_OP);
        assert_eq!(&command.data[..], &[0x00, 0x00, 0x02]);
        assert_eq!(next_host_command(&mut buf), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_nor_overfill(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..80), 0..32)) {
            let mut codec = MercuryCodec::new();
            let mut buf = BytesMut::new();
            for chunk in chunks {
                buf.extend_from_slice(&chunk);
                while codec.decode(&mut buf).unwrap().is_some() {}
                prop_assert!(buf.len() < MAX_FRAME);
            }
            while codec.decode_eof(&mut buf).unwrap().is_some() {}
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_valid_frames_never_panic(opcode in any::<u8>(), status in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..255)) {
            // Well-framed but arbitrary payloads exercise the payload parsers.
            let _ = decode_all(&mut MercuryCodec::new(), &encode_reply(opcode, status, &data));
        }

        #[test]
        fn record_round_trip(rssi in any::<i8>(), ant in 0x11u8..=0x44, freq in 860_000u32..960_000,
            words in 1usize..=15, seed in any::<u8>()) {
            let epc: Vec<u8> = (0..words * 2).map(|i| seed.wrapping_mul(i as u8 + 1)).collect();
            let record = TagRecord {
                rssi_dbm: rssi, antenna: ant, frequency_khz: freq, epc: epc.clone(),
                pc: ((words as u16) << 11), ..documented_record()
            }.with_valid_crc();
            let events = decode_all(&mut MercuryCodec::new(), &encode_continuous_record(&record));
            prop_assert_eq!(events, vec![ReaderEvent::Tag(TagRead {
                epc, pc: Some(record.pc), rssi_dbm: Some(i16::from(rssi)),
                antenna: antenna_port(ant), frequency_khz: Some(freq), tag_crc_ok: Some(true),
            })]);
        }
    }
}
