//! MagicRF M100 / QM100 / YRM100 / JRD-4035 / R200 style modules ("BB … 7E"), PROTOCOLS.md §4a.
//!
//! ```text
//! BB | Type | Cmd | PL_MSB PL_LSB | Params[PL] | Checksum | 7E
//! Type 00 command (host→module), 01 response, 02 notification; Cmd FF = error response
//! Checksum = low byte of sum(Type ..= last param)
//! ```
//! 0xBB and 0x7E also occur inside parameters, so frames are delimited by `PL`, then the end
//! byte and checksum are verified; any failure drops one byte and the hunt for `BB` resumes.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::crc::crc16_genibus;
use super::cursor::be_u16;
use super::gen2::epc_len_from_pc;
use super::resync::{Probe, decode_to_end, next_frame};
use super::{CodecError, CommandError, DecodeStats, ReaderEvent, ReaderInfo, Region, TagRead};

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

fn region_code(region: Region) -> Option<u8> {
    match region {
        Region::Cn => Some(0x01), // China 920-925 MHz
        Region::Us => Some(0x02),
        Region::Eu => Some(0x03),
        Region::Kr => Some(0x06),
        Region::Jp | Region::Au | Region::In => None,
    }
}

fn region_from_code(code: u8) -> Option<Region> {
    match code {
        0x01 | 0x04 => Some(Region::Cn),
        0x02 => Some(Region::Us),
        0x03 => Some(Region::Eu),
        0x06 => Some(Region::Kr),
        _ => None,
    }
}

fn checksum(type_to_last_param: &[u8]) -> u8 {
    type_to_last_param
        .iter()
        .fold(0u8, |sum, &byte| sum.wrapping_add(byte))
}

/// Builds one frame. Params longer than [`MAX_PARAMS`] are cut there: no valid frame is longer.
pub fn encode_frame(frame_type: u8, command: u8, params: &[u8]) -> Vec<u8> {
    let params = params.get(..MAX_PARAMS).unwrap_or(params);
    let [pl_msb, pl_lsb] = (params.len() as u16).to_be_bytes();
    let mut frame = Vec::with_capacity(params.len() + OVERHEAD);
    frame.extend_from_slice(&[HEADER, frame_type, command, pl_msb, pl_lsb]);
    frame.extend_from_slice(params);
    let sum = checksum(frame.get(1..).unwrap_or_default());
    frame.extend_from_slice(&[sum, END]);
    frame
}

// ---- host → reader commands -------------------------------------------------------------

pub fn encode_single_poll() -> Vec<u8> {
    encode_frame(TYPE_COMMAND, CMD_SINGLE_POLL, &[])
}

pub fn encode_multi_poll(rounds: u16) -> Vec<u8> {
    let [hi, lo] = rounds.to_be_bytes();
    encode_frame(TYPE_COMMAND, CMD_MULTI_POLL, &[MULTI_POLL_RESERVED, hi, lo])
}

pub fn encode_stop_multi_poll() -> Vec<u8> {
    encode_frame(TYPE_COMMAND, CMD_STOP_MULTI_POLL, &[])
}

pub fn encode_get_info(kind: InfoKind) -> Vec<u8> {
    encode_frame(TYPE_COMMAND, CMD_GET_INFO, &[kind as u8])
}

pub fn encode_set_region(region: Region) -> Result<Vec<u8>, CommandError> {
    let code = region_code(region).ok_or(CommandError::UnsupportedRegion {
        protocol: "m100",
        region,
    })?;
    Ok(encode_frame(TYPE_COMMAND, CMD_SET_REGION, &[code]))
}

pub fn encode_get_tx_power() -> Vec<u8> {
    encode_frame(TYPE_COMMAND, CMD_GET_TX_POWER, &[])
}

pub fn encode_set_tx_power(centi_dbm: u16) -> Result<Vec<u8>, CommandError> {
    if centi_dbm > MAX_POWER_CENTI_DBM {
        return Err(CommandError::PowerOutOfRange {
            protocol: "m100",
            requested: centi_dbm,
            min_centi_dbm: 0,
            max_centi_dbm: MAX_POWER_CENTI_DBM,
        });
    }
    Ok(encode_frame(
        TYPE_COMMAND,
        CMD_SET_TX_POWER,
        &centi_dbm.to_be_bytes(),
    ))
}

// ---- reader → host frames (simulator and tests) -----------------------------------------

/// PC word for an EPC of this length with no UMI/XPC bits set (0x3000 for 96 bits).
pub fn pc_for_epc(epc: &[u8]) -> u16 {
    ((epc.len() / 2).min(31) as u16) << 11
}

/// A tag notification as a module sends it during polling, with the tag CRC computed.
pub fn encode_tag_notification(rssi_dbm: i8, pc: u16, epc: &[u8]) -> Vec<u8> {
    let mut pc_epc = Vec::with_capacity(epc.len() + 2);
    pc_epc.extend_from_slice(&pc.to_be_bytes());
    pc_epc.extend_from_slice(epc);
    let tag_crc = crc16_genibus(&pc_epc);
    let mut params = Vec::with_capacity(pc_epc.len() + 3);
    params.push(u8::from_be_bytes(rssi_dbm.to_be_bytes()));
    params.extend_from_slice(&pc_epc);
    params.extend_from_slice(&tag_crc.to_be_bytes());
    encode_frame(TYPE_NOTIFICATION, CMD_SINGLE_POLL, &params)
}

pub fn encode_info_response(kind: InfoKind, text: &str) -> Vec<u8> {
    let mut params = vec![kind as u8];
    params.extend_from_slice(text.as_bytes());
    encode_frame(TYPE_RESPONSE, CMD_GET_INFO, &params)
}

pub fn encode_tx_power_response(centi_dbm: u16) -> Vec<u8> {
    encode_frame(TYPE_RESPONSE, CMD_GET_TX_POWER, &centi_dbm.to_be_bytes())
}

/// The "success" reply to a setter (param 0x00).
pub fn encode_ack(command: u8) -> Vec<u8> {
    encode_frame(TYPE_RESPONSE, command, &[0x00])
}

pub fn encode_error(code: u8) -> Vec<u8> {
    encode_frame(TYPE_RESPONSE, CMD_ERROR, &[code])
}

// ---- frame probing ----------------------------------------------------------------------

fn probe(buf: &[u8], frame_types: &[u8]) -> Probe {
    let Some(&frame_type) = buf.get(1) else {
        return Probe::Incomplete;
    };
    if !frame_types.contains(&frame_type) {
        return Probe::NotAFrame;
    }
    let Some(params_len) = be_u16(buf, 3).map(usize::from) else {
        return Probe::Incomplete;
    };
    if params_len > MAX_PARAMS {
        return Probe::Oversized;
    }
    let total = params_len + OVERHEAD;
    let Some(frame) = buf.get(..total) else {
        return Probe::Incomplete;
    };
    match (frame.get(1..total - 2), frame.get(total - 2), frame.last()) {
        (Some(summed), Some(&sum), Some(&END)) if checksum(summed) == sum => Probe::Frame(total),
        _ => Probe::Corrupt,
    }
}

/// Splits a verified frame into (type, command, params).
fn frame_parts(frame: &[u8]) -> Option<(u8, u8, &[u8])> {
    let frame_type = *frame.get(1)?;
    let command = *frame.get(2)?;
    let params = frame.get(5..frame.len().checked_sub(2)?)?;
    Some((frame_type, command, params))
}

// ---- decoding ---------------------------------------------------------------------------

/// Reader→host decoder. Keeps [`DecodeStats`]; never fails on bad data.
#[derive(Debug, Default)]
pub struct M100Codec {
    stats: DecodeStats,
    pending: VecDeque<ReaderEvent>,
}

impl M100Codec {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }
}

impl Decoder for M100Codec {
    type Item = ReaderEvent;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(Some(event));
        }
        while let Some(frame) = next_frame(
            buf,
            &mut self.stats,
            |byte| byte == HEADER,
            |head| probe(head, &[TYPE_RESPONSE, TYPE_NOTIFICATION]),
        ) {
            match parse_reader_frame(&frame) {
                Some(event) => return Ok(Some(event)),
                None => self.stats.unhandled += 1,
            }
        }
        Ok(None)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        decode_to_end(self, buf, |codec| &mut codec.stats)
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

/// A host→reader command, as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCommand {
    pub command: u8,
    pub params: Bytes,
}

/// Takes the next complete host→reader command frame off `buf`, skipping noise.
pub fn next_host_command(buf: &mut BytesMut) -> Option<HostCommand> {
    let mut ignored = DecodeStats::default();
    let frame = next_frame(
        buf,
        &mut ignored,
        |byte| byte == HEADER,
        |head| probe(head, &[TYPE_COMMAND]),
    )?;
    let (_, command, params) = frame_parts(&frame)?;
    Some(HostCommand {
        command,
        params: Bytes::copy_from_slice(params),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::codec::test_support::{bytes, decode_all};
    use proptest::prelude::*;

    const CANONICAL: &str =
        "BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E";
    const YRM100: &str = "BB 02 22 00 11 D6 34 00 E2 80 11 70 40 00 02 1D 35 AE 40 08 D4 44 C4 7E";
    const TDS: &str = "BB 02 22 00 11 C9 30 00 30 74 25 7B F7 19 4E 40 00 00 1A 85 AA F9 52 7E";

    #[test]
    fn command_vectors_byte_for_byte() {
        assert_eq!(
            encode_get_info(InfoKind::Hardware),
            bytes("BB 00 03 00 01 00 04 7E")
        );
        assert_eq!(encode_single_poll(), bytes("BB 00 22 00 00 22 7E"));
        assert_eq!(
            encode_multi_poll(10_000),
            bytes("BB 00 27 00 03 22 27 10 83 7E")
        );
        assert_eq!(encode_stop_multi_poll(), bytes("BB 00 28 00 00 28 7E"));
        assert_eq!(
            encode_set_region(Region::Eu).unwrap(),
            bytes("BB 00 07 00 01 03 0B 7E")
        );
        assert_eq!(
            encode_set_region(Region::Us).unwrap(),
            bytes("BB 00 07 00 01 02 0A 7E")
        );
        assert_eq!(encode_get_tx_power(), bytes("BB 00 B7 00 00 B7 7E"));
        assert_eq!(
            encode_set_tx_power(2000).unwrap(),
            bytes("BB 00 B6 00 02 07 D0 8F 7E")
        );
        assert!(encode_set_tx_power(5000).is_err());
        assert!(encode_set_region(Region::Jp).is_err());
    }

    #[test]
    fn reply_vectors_decode() {
        let mut codec = M100Codec::new();
        assert_eq!(
            decode_all(&mut codec, &bytes("BB 01 28 00 01 00 2A 7E")),
            vec![ReaderEvent::Ack { command: 0x28 }]
        );
        assert_eq!(
            decode_all(&mut codec, &bytes("BB 01 B7 00 02 0A 28 EC 7E")),
            vec![ReaderEvent::Info(ReaderInfo {
                power_centi_dbm: Some(2600),
                ..ReaderInfo::default()
            })]
        );
        assert_eq!(
            decode_all(&mut codec, &bytes("BB 01 FF 00 01 15 16 7E")),
            vec![ReaderEvent::NoTag]
        );
        assert_eq!(codec.stats().frames, 3);
        assert_eq!(codec.stats().bad_checksum, 0);
    }

    #[test]
    fn reader_side_encoders_match_vectors() {
        assert_eq!(
            encode_ack(CMD_STOP_MULTI_POLL),
            bytes("BB 01 28 00 01 00 2A 7E")
        );
        assert_eq!(
            encode_tx_power_response(2600),
            bytes("BB 01 B7 00 02 0A 28 EC 7E")
        );
        assert_eq!(encode_error(0x15), bytes("BB 01 FF 00 01 15 16 7E"));
        let epc = bytes("30751FEB705C5904E3D50D70");
        assert_eq!(encode_tag_notification(-55, 0x3400, &epc), bytes(CANONICAL));
        let epc = bytes("E28011704000021D35AE4008");
        assert_eq!(encode_tag_notification(-42, 0x3400, &epc), bytes(YRM100));
        let epc = bytes("3074257BF7194E4000001A85");
        assert_eq!(encode_tag_notification(-55, 0x3000, &epc), bytes(TDS));
    }

    #[test]
    fn canonical_notification_decodes() {
        let events = decode_all(&mut M100Codec::new(), &bytes(CANONICAL));
        assert_eq!(
            events,
            vec![ReaderEvent::Tag(TagRead {
                epc: bytes("30751FEB705C5904E3D50D70"),
                pc: Some(0x3400),
                rssi_dbm: Some(-55),
                antenna: 1,
                frequency_khz: None,
                tag_crc_ok: Some(true),
            })]
        );
    }

    #[test]
    fn yrm100_and_tds_notifications_decode() {
        let mut input = bytes(YRM100);
        input.extend(bytes(TDS));
        let events = decode_all(&mut M100Codec::new(), &input);
        let [ReaderEvent::Tag(first), ReaderEvent::Tag(second)] = events.as_slice() else {
            panic!("expected two tags, got {events:?}");
        };
        assert_eq!(first.rssi_dbm, Some(-42));
        assert_eq!(first.epc, bytes("E28011704000021D35AE4008"));
        assert_eq!(first.tag_crc_ok, Some(true));
        assert_eq!(second.pc, Some(0x3000));
        assert_eq!(second.tag_crc_ok, Some(true));
    }

    #[test]
    fn wrong_public_checksum_is_rejected_and_fixed_one_accepted() {
        // Module-info reply "M100 26dBm V1.0": one doc prints checksum 0x22, the right one is 0x92.
        let wrong = bytes("BB 01 03 00 10 00 4D 31 30 30 20 32 36 64 42 6D 20 56 31 2E 30 22 7E");
        let right = bytes("BB 01 03 00 10 00 4D 31 30 30 20 32 36 64 42 6D 20 56 31 2E 30 92 7E");
        let mut codec = M100Codec::new();
        assert!(decode_all(&mut codec, &wrong).is_empty());
        assert_eq!(codec.stats().bad_checksum, 1);
        assert_eq!(codec.stats().frames, 0);
        assert_eq!(
            decode_all(&mut codec, &right),
            vec![ReaderEvent::Info(ReaderInfo {
                hardware: Some("M100 26dBm V1.0".into()),
                ..ReaderInfo::default()
            })]
        );
        assert_eq!(
            encode_info_response(InfoKind::Hardware, "M100 26dBm V1.0"),
            right
        );
    }

    #[test]
    fn software_version_and_region_replies_decode() {
        let mut input = bytes("BB 01 03 00 07 01 56 32 2E 33 2E 31 54 7E");
        input.extend(bytes("BB 01 08 00 01 03 0D 7E"));
        let events = decode_all(&mut M100Codec::new(), &input);
        assert_eq!(
            events,
            vec![
                ReaderEvent::Info(ReaderInfo {
                    firmware: Some("V2.3.1".into()),
                    ..ReaderInfo::default()
                }),
                ReaderEvent::Info(ReaderInfo {
                    region: Some(Region::Eu),
                    ..ReaderInfo::default()
                }),
            ]
        );
    }

    #[test]
    fn tag_crc_mismatch_is_flagged_not_dropped() {
        let mut frame = bytes(CANONICAL);
        frame[20] ^= 0xFF; // tag CRC low byte
        let len = frame.len();
        frame[len - 2] = checksum(&frame[1..len - 2]);
        let events = decode_all(&mut M100Codec::new(), &frame);
        assert!(matches!(
            events.as_slice(),
            [ReaderEvent::Tag(TagRead {
                tag_crc_ok: Some(false),
                ..
            })]
        ));
    }

    #[test]
    fn garbage_before_and_between_frames_is_skipped() {
        let mut input = bytes("00 7E BB BB 13 37");
        input.extend(bytes(CANONICAL));
        input.extend(bytes("BB 7E 55"));
        input.extend(bytes(YRM100));
        let mut codec = M100Codec::new();
        let events = decode_all(&mut codec, &input);
        assert_eq!(events.len(), 2);
        assert_eq!(codec.stats().garbage_bytes, 9);
    }

    #[test]
    fn corrupted_checksum_then_good_frame() {
        let mut bad = bytes(CANONICAL);
        bad[22] ^= 0x01;
        bad.extend(bytes(YRM100));
        let mut codec = M100Codec::new();
        let events = decode_all(&mut codec, &bad);
        assert_eq!(events.len(), 1);
        assert_eq!(codec.stats().bad_checksum, 1);
        assert_eq!(codec.stats().frames, 1);
    }

    #[test]
    fn oversized_length_is_counted_and_skipped() {
        let mut input = bytes("BB 02 22 FF FF");
        input.extend(bytes(CANONICAL));
        let mut codec = M100Codec::new();
        assert_eq!(decode_all(&mut codec, &input).len(), 1);
        assert_eq!(codec.stats().oversized, 1);
    }

    #[test]
    fn split_at_every_boundary() {
        let mut stream = bytes(CANONICAL);
        stream.extend(bytes(YRM100));
        for cut in 0..=stream.len() {
            let mut codec = M100Codec::new();
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
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn host_commands_are_parsed_for_the_simulator() {
        let mut buf = BytesMut::from(&bytes("00 BB 00 B6 00 02 07 D0 8F 7E BB 00 22")[..]);
        let command = next_host_command(&mut buf).unwrap();
        assert_eq!(command.command, CMD_SET_TX_POWER);
        assert_eq!(&command.params[..], &[0x07, 0xD0]);
        assert_eq!(next_host_command(&mut buf), None);
        assert_eq!(buf.len(), 3, "partial command kept");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_nor_overfill(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..32)) {
            let mut codec = M100Codec::new();
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
        fn notification_round_trip(rssi in any::<i8>(), words in 0usize..=31, seed in any::<u8>()) {
            let epc: Vec<u8> = (0..words * 2).map(|i| seed.wrapping_add(i as u8)).collect();
            let pc = pc_for_epc(&epc);
            let frame = encode_tag_notification(rssi, pc, &epc);
            let events = decode_all(&mut M100Codec::new(), &frame);
            prop_assert_eq!(events, vec![ReaderEvent::Tag(TagRead {
                epc, pc: Some(pc), rssi_dbm: Some(i16::from(rssi)), antenna: 1,
                frequency_khz: None, tag_crc_ok: Some(true),
            })]);
        }
    }
}
