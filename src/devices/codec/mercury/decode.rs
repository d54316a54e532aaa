//! Reader→host decoding: [`MercuryCodec`] finds verified frames in the stream and the
//! parsers turn each into protocol-independent [`ReaderEvent`]s.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::frame::probe;
use super::{
    HEADER, OP_BOOT_FIRMWARE, OP_GET_TAG_ID_BUFFER, OP_GET_VERSION, OP_MULTI_PROTOCOL_TAG_OP,
    OP_READ_TAG_ID_MULTIPLE, OP_SET_READ_TX_POWER, OP_SET_REGION, OP_SET_TAG_PROTOCOL,
    OPTION_METADATA, PROTOCOL_GEN2, REPLY_OVERHEAD, STATUS_NO_TAGS_FOUND, STATUS_OK,
    STATUS_TEMPERATURE_THROTTLE, STREAM_END, STREAM_STATUS, STREAM_TAG, VersionInfo, metadata,
};
use crate::devices::codec::crc::crc16_genibus;
use crate::devices::codec::cursor::{Cursor, be_u16};
use crate::devices::codec::gen2::split_pc;
use crate::devices::codec::resync::{FrameEvents, decode_to_end};
use crate::devices::codec::{CodecError, DecodeStats, ReaderEvent, ReaderInfo, TagRead};

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

/// Reader→host decoder. Keeps [`DecodeStats`]; never fails on bad data.
#[derive(Debug, Default)]
pub struct MercuryCodec {
    events: FrameEvents,
}

impl MercuryCodec {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> DecodeStats {
        self.events.stats
    }
}

impl Decoder for MercuryCodec {
    type Item = ReaderEvent;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        Ok(self.events.next_event(
            buf,
            |byte| byte == HEADER,
            |head| probe(head, REPLY_OVERHEAD),
            parse_reply,
        ))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        decode_to_end(self, buf, |codec| &mut codec.events.stats)
    }
}

/// Interprets one verified reader→host frame. Empty when the frame is of no use to us.
pub fn parse_reply(frame: &[u8]) -> Vec<ReaderEvent> {
    let (Some(&opcode), Some(status), Some(data)) = (
        frame.get(2),
        be_u16(frame, 3),
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

/// 1-based port: the TX nibble, else the RX nibble, else 1.
pub(super) fn antenna_port(byte: u8) -> u8 {
    match (byte >> 4, byte & 0x0F) {
        (0, 0) => 1,
        (0, rx) => rx,
        (tx, _) => tx,
    }
}
