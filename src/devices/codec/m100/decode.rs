//! Reader→host decoding: [`M100Codec`] finds verified frames in the stream and the parsers
//! turn each into a protocol-independent [`ReaderEvent`].

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::frame::{frame_parts, probe};
use super::{
    CMD_ERROR, CMD_GET_INFO, CMD_GET_REGION, CMD_GET_TX_POWER, CMD_MULTI_POLL, CMD_SET_REGION,
    CMD_SET_TX_POWER, CMD_SINGLE_POLL, CMD_STOP_MULTI_POLL, ERR_INVENTORY_FAIL, HEADER, InfoKind,
    TYPE_NOTIFICATION, TYPE_RESPONSE,
};
use crate::devices::codec::crc::crc16_genibus;
use crate::devices::codec::cursor::be_u16;
use crate::devices::codec::gen2::epc_len_from_pc;
use crate::devices::codec::resync::{FrameEvents, decode_to_end};
use crate::devices::codec::{CodecError, DecodeStats, ReaderEvent, ReaderInfo, Region, TagRead};

fn region_from_code(code: u8) -> Option<Region> {
    match code {
        0x01 | 0x04 => Some(Region::Cn),
        0x02 => Some(Region::Us),
        0x03 => Some(Region::Eu),
        0x06 => Some(Region::Kr),
        _ => None,
    }
}

/// Reader→host decoder. Keeps [`DecodeStats`]; never fails on bad data.
#[derive(Debug, Default)]
pub struct M100Codec {
    events: FrameEvents,
}

impl M100Codec {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> DecodeStats {
        self.events.stats
    }
}

impl Decoder for M100Codec {
    type Item = ReaderEvent;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        Ok(self.events.next_event(
            buf,
            |byte| byte == HEADER,
            |head| probe(head, &[TYPE_RESPONSE, TYPE_NOTIFICATION]),
            |frame| parse_reader_frame(frame).into_iter().collect(),
        ))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        decode_to_end(self, buf, |codec| &mut codec.events.stats)
    }
}

/// Interprets one verified reader→host frame; `None` for frames we have no use for.
pub fn parse_reader_frame(frame: &[u8]) -> Option<ReaderEvent> {
    let (_, command, params) = frame_parts(frame)?;
    match command {
        CMD_SINGLE_POLL => parse_tag_notification(params).map(ReaderEvent::Tag),
        CMD_ERROR => Some(error_event(*params.first()?)),
        CMD_GET_INFO => parse_info(params).map(ReaderEvent::Info),
        CMD_GET_TX_POWER => Some(ReaderEvent::Info(ReaderInfo {
            power_centi_dbm: Some(be_u16(params, 0)?),
            ..ReaderInfo::default()
        })),
        CMD_GET_REGION => Some(ReaderEvent::Info(ReaderInfo {
            region: region_from_code(*params.first()?),
            ..ReaderInfo::default()
        })),
        CMD_SET_REGION | CMD_SET_TX_POWER | CMD_STOP_MULTI_POLL | CMD_MULTI_POLL => {
            Some(setter_reply(command, params))
        }
        _ => None,
    }
}

fn error_event(code: u8) -> ReaderEvent {
    if code == ERR_INVENTORY_FAIL {
        ReaderEvent::NoTag
    } else {
        ReaderEvent::Error {
            code: u16::from(code),
            message: format!("M100 module reported error code 0x{code:02X}"),
        }
    }
}

fn setter_reply(command: u8, params: &[u8]) -> ReaderEvent {
    match params.first() {
        None | Some(0x00) => ReaderEvent::Ack { command },
        Some(&status) => ReaderEvent::Error {
            code: u16::from(status),
            message: format!("M100 command 0x{command:02X} failed with status 0x{status:02X}"),
        },
    }
}

/// `RSSI(1) | PC(2) | EPC(N) | TagCRC(2)` with N from the PC word. Extra trailing bytes some
/// modules append are ignored; a PL too short for the announced EPC is malformed.
pub fn parse_tag_notification(params: &[u8]) -> Option<TagRead> {
    let rssi = i8::from_be_bytes([*params.first()?]);
    let pc = be_u16(params, 1)?;
    let epc_end = 3 + epc_len_from_pc(pc);
    let epc = params.get(3..epc_end)?;
    let tag_crc_ok = be_u16(params, epc_end).map(|crc| {
        // PC + EPC are contiguous in the params, right before the CRC.
        params
            .get(1..epc_end)
            .is_some_and(|pc_epc| crc16_genibus(pc_epc) == crc)
    });
    Some(TagRead {
        epc: epc.to_vec(),
        pc: Some(pc),
        rssi_dbm: Some(i16::from(rssi)),
        antenna: 1,
        frequency_khz: None,
        tag_crc_ok,
    })
}

fn parse_info(params: &[u8]) -> Option<ReaderInfo> {
    let (&kind, text) = params.split_first()?;
    let text = String::from_utf8_lossy(text)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_owned();
    let mut info = ReaderInfo::default();
    match InfoKind::from_code(kind)? {
        InfoKind::Hardware => info.hardware = Some(text),
        InfoKind::Software => info.firmware = Some(text),
        InfoKind::Manufacturer => info.manufacturer = Some(text),
    }
    Some(info)
}
