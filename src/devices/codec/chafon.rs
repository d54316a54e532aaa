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

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::crc::crc16_mcrf4xx;
use super::resync::{Probe, decode_to_end, next_frame};
use super::{CodecError, CommandError, DecodeStats, ReaderEvent, ReaderInfo, Region, TagRead};

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

/// Response commands this decoder accepts as frame starts while resynchronising.
fn is_known_response_command(command: u8) -> bool {
    matches!(
        command,
        0x01..=0x0F | 0x10..=0x1F | 0x21..=0x28 | 0x2F | 0x33..=0x36 | 0x3F | 0x50..=0x55 | 0xEE
    )
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

/// Short description of a status byte, for log lines.
pub fn status_text(status: u8) -> &'static str {
    match status {
        0x00 => "success",
        0x01 => "inventory done",
        0x02 => "inventory scan time overflow",
        0x03 => "more frames follow",
        0x04 => "reader tag buffer full",
        0x13 => "saving parameters failed",
        0xF9 => "command execution error",
        0xFA => "poor communication with the tag",
        0xFB => "no tag operable",
        0xFC => "tag returned an error code",
        0xFD => "command length wrong",
        0xFE => "illegal command",
        0xFF => "parameter error",
        _ => "unknown status",
    }
}

// ---- encoding ---------------------------------------------------------------------------

fn append_crc(mut frame: Vec<u8>) -> Vec<u8> {
    let crc = crc16_mcrf4xx(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// Host→reader frame. Data is cut at 251 bytes, the most `Len` can describe.
pub fn encode_command(address: u8, command: u8, data: &[u8]) -> Vec<u8> {
    let data = data.get(..251).unwrap_or(data);
    let mut frame = Vec::with_capacity(data.len() + 5);
    frame.extend_from_slice(&[data.len() as u8 + 4, address, command]);
    frame.extend_from_slice(data);
    append_crc(frame)
}

/// Reader→host frame (simulator and tests). Data is cut at 250 bytes.
pub fn encode_response(address: u8, command: u8, status: u8, data: &[u8]) -> Vec<u8> {
    let data = data.get(..250).unwrap_or(data);
    let mut frame = Vec::with_capacity(data.len() + 6);
    frame.extend_from_slice(&[data.len() as u8 + 5, address, command, status]);
    frame.extend_from_slice(data);
    append_crc(frame)
}

pub fn encode_inventory(address: u8) -> Vec<u8> {
    encode_command(address, CMD_INVENTORY, &[])
}

pub fn encode_get_reader_info(address: u8) -> Vec<u8> {
    encode_command(address, CMD_GET_READER_INFO, &[])
}

/// Power is set in whole dBm (0..=30); centi-dBm are rounded to the nearest dBm.
pub fn encode_set_power(address: u8, centi_dbm: u16) -> Result<Vec<u8>, CommandError> {
    let dbm = centi_dbm.saturating_add(50) / 100;
    if dbm > u16::from(MAX_POWER_DBM) {
        return Err(CommandError::PowerOutOfRange {
            protocol: "chafon",
            requested: centi_dbm,
            min_centi_dbm: 0,
            max_centi_dbm: u16::from(MAX_POWER_DBM) * 100,
        });
    }
    Ok(encode_command(address, CMD_SET_POWER, &[dbm as u8]))
}

/// Selects the region's band with its full channel range.
pub fn encode_set_region(address: u8, region: Region) -> Result<Vec<u8>, CommandError> {
    let (band, top_channel) = band_for(region).ok_or(CommandError::UnsupportedRegion {
        protocol: "chafon",
        region,
    })?;
    let max_fre = ((band >> 2) << 6) | top_channel;
    let min_fre = (band & 0b11) << 6;
    Ok(encode_command(address, CMD_SET_REGION, &[max_fre, min_fre]))
}

/// Inventory scan time in units of 100 ms (readers treat 0..=2 as their default).
pub fn encode_set_scan_time(address: u8, units_100ms: u8) -> Vec<u8> {
    encode_command(address, CMD_SET_SCAN_TIME, &[units_100ms])
}

/// One tag entry of an inventory reply; `rssi` is only sent in the new layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    pub epc: Vec<u8>,
    pub rssi: u8,
}

/// Inventory reply in `layout` (`Auto` encodes as `Old`). Entries beyond what one frame
/// holds are left out: the caller splits them over several frames with status 0x03.
pub fn encode_inventory_response(
    address: u8,
    layout: ChafonLayout,
    status: u8,
    antenna_mask: u8,
    entries: &[InventoryEntry],
) -> Vec<u8> {
    let new_layout = layout == ChafonLayout::New;
    let mut data = Vec::new();
    if new_layout {
        data.push(antenna_mask);
    }
    data.push(0); // Num, patched below
    let mut count = 0u8;
    for entry in entries {
        let entry_len = entry.epc.len() + 1 + usize::from(new_layout);
        if data.len() + entry_len > 250 || count == u8::MAX {
            break;
        }
        data.push(entry.epc.len() as u8);
        data.extend_from_slice(&entry.epc);
        if new_layout {
            data.push(entry.rssi);
        }
        count += 1;
    }
    if let Some(num) = data.get_mut(usize::from(new_layout)) {
        *num = count;
    }
    encode_response(address, CMD_INVENTORY, status, &data)
}

/// How many entries [`encode_inventory_response`] fits in one frame.
pub fn entries_per_frame(layout: ChafonLayout, entries: &[InventoryEntry]) -> usize {
    let new_layout = layout == ChafonLayout::New;
    let mut used = 1 + usize::from(new_layout);
    entries
        .iter()
        .take_while(|entry| {
            used += entry.epc.len() + 1 + usize::from(new_layout);
            used <= 250
        })
        .count()
}

/// The reader-information block of a 0x21 reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChafonInfo {
    pub version: [u8; 2],
    pub reader_type: u8,
    pub protocols: u8,
    pub max_fre: u8,
    pub min_fre: u8,
    pub power_dbm: u8,
    pub scan_time_100ms: u8,
}

impl ChafonInfo {
    pub fn region(&self) -> Option<Region> {
        region_for_band(((self.max_fre >> 6) << 2) | (self.min_fre >> 6))
    }
}

pub fn encode_reader_info_response(address: u8, info: &ChafonInfo) -> Vec<u8> {
    let [major, minor] = info.version;
    let data = [
        major,
        minor,
        info.reader_type,
        info.protocols,
        info.max_fre,
        info.min_fre,
        info.power_dbm,
        info.scan_time_100ms,
    ];
    encode_response(address, CMD_GET_READER_INFO, STATUS_OK, &data)
}

// ---- frame probing ----------------------------------------------------------------------

fn probe(buf: &[u8], min_len: u8, check_command: bool) -> Probe {
    let Some(&len) = buf.first() else {
        return Probe::Incomplete;
    };
    if len < min_len {
        return Probe::NotAFrame;
    }
    let Some(&command) = buf.get(2) else {
        return Probe::Incomplete;
    };
    if check_command && !is_known_response_command(command) {
        return Probe::NotAFrame;
    }
    let total = usize::from(len) + 1;
    let Some(frame) = buf.get(..total) else {
        return Probe::Incomplete;
    };
    match (frame.get(..total - 2), frame.get(total - 2..)) {
        (Some(covered), Some(&[lsb, msb]))
            if crc16_mcrf4xx(covered) == u16::from_le_bytes([lsb, msb]) =>
        {
            Probe::Frame(total)
        }
        _ => Probe::Corrupt,
    }
}

// ---- decoding ---------------------------------------------------------------------------

/// Reader→host decoder. Keeps [`DecodeStats`]; never fails on bad data.
#[derive(Debug)]
pub struct ChafonCodec {
    layout: ChafonLayout,
    /// The layout `Auto` falls back to when a reply fits both.
    auto_guess: ChafonLayout,
    stats: DecodeStats,
    pending: VecDeque<ReaderEvent>,
}

impl ChafonCodec {
    pub fn new(layout: ChafonLayout) -> Self {
        Self {
            layout,
            auto_guess: ChafonLayout::Old,
            stats: DecodeStats::default(),
            pending: VecDeque::new(),
        }
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// The layout in use: the configured one, or Auto's current conclusion.
    pub fn effective_layout(&self) -> ChafonLayout {
        match self.layout {
            ChafonLayout::Auto => self.auto_guess,
            fixed => fixed,
        }
    }

    fn parse_frame(&mut self, frame: &[u8]) -> Vec<ReaderEvent> {
        let (Some(&command), Some(&status), Some(data)) = (
            frame.get(2),
            frame.get(3),
            frame.get(4..frame.len().saturating_sub(2)),
        ) else {
            return Vec::new();
        };
        match command {
            CMD_INVENTORY => self.inventory_events(status, data),
            CMD_GET_READER_INFO if status == STATUS_OK => parse_reader_info(data)
                .map(|info| vec![ReaderEvent::Info(reader_info(&info))])
                .unwrap_or_default(),
            _ if status != STATUS_OK => vec![error_event(command, status)],
            CMD_SET_REGION | CMD_SET_ADDRESS | CMD_SET_SCAN_TIME | CMD_SET_BAUD_RATE
            | CMD_SET_POWER => vec![ReaderEvent::Ack { command }],
            _ => Vec::new(),
        }
    }

    fn inventory_events(&mut self, status: u8, data: &[u8]) -> Vec<ReaderEvent> {
        match status {
            STATUS_NO_TAG => vec![ReaderEvent::NoTag],
            STATUS_INVENTORY_DONE
            | STATUS_SCAN_TIME_OVERFLOW
            | STATUS_MORE_FRAMES
            | STATUS_BUFFER_FULL => {
                let Some(tags) = self.parse_inventory(data) else {
                    return Vec::new();
                };
                let mut events: Vec<ReaderEvent> = tags.into_iter().map(ReaderEvent::Tag).collect();
                if events.is_empty() && status != STATUS_MORE_FRAMES {
                    events.push(ReaderEvent::NoTag);
                }
                if status == STATUS_BUFFER_FULL {
                    events.push(ReaderEvent::Warning {
                        code: u16::from(status),
                        message: status_text(status).to_owned(),
                    });
                }
                events
            }
            _ => vec![error_event(CMD_INVENTORY, status)],
        }
    }

    fn parse_inventory(&mut self, data: &[u8]) -> Option<Vec<TagRead>> {
        match self.layout {
            ChafonLayout::Auto => {
                let old = parse_inventory(data, ChafonLayout::Old).filter(|t| whole_words(t));
                let new = parse_inventory(data, ChafonLayout::New).filter(|t| whole_words(t));
                match (old, new) {
                    (Some(tags), None) => {
                        self.auto_guess = ChafonLayout::Old;
                        Some(tags)
                    }
                    (None, Some(tags)) => {
                        self.auto_guess = ChafonLayout::New;
                        Some(tags)
                    }
                    (Some(old), Some(new)) => Some(match self.auto_guess {
                        ChafonLayout::New => new,
                        _ => old,
                    }),
                    (None, None) => None,
                }
            }
            fixed => parse_inventory(data, fixed),
        }
    }
}

impl Decoder for ChafonCodec {
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
                |len| len >= MIN_RESPONSE_LEN,
                |head| probe(head, MIN_RESPONSE_LEN, true),
            ) else {
                return Ok(None);
            };
            let events = self.parse_frame(&frame);
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

fn whole_words(tags: &[TagRead]) -> bool {
    tags.iter().all(|tag| tag.epc.len() % 2 == 0)
}

fn error_event(command: u8, status: u8) -> ReaderEvent {
    ReaderEvent::Error {
        code: u16::from(status),
        message: format!(
            "Chafon command 0x{command:02X} failed: {} (0x{status:02X})",
            status_text(status)
        ),
    }
}

/// Parses inventory data in one layout; `None` unless the entries consume it exactly.
pub fn parse_inventory(data: &[u8], layout: ChafonLayout) -> Option<Vec<TagRead>> {
    let new_layout = layout == ChafonLayout::New;
    let (antenna, rest) = if new_layout {
        let (&mask, rest) = data.split_first()?;
        (antenna_from_mask(mask), rest)
    } else {
        (1, data)
    };
    let (&count, mut rest) = rest.split_first()?;
    let mut tags = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (&epc_len, after_len) = rest.split_first()?;
        let (epc, after_epc) = after_len.split_at_checked(usize::from(epc_len))?;
        let rssi_dbm = if new_layout {
            let (&raw, after_rssi) = after_epc.split_first()?;
            rest = after_rssi;
            Some(rssi_from_raw(raw))
        } else {
            rest = after_epc;
            None
        };
        tags.push(TagRead {
            epc: epc.to_vec(),
            pc: None,
            rssi_dbm,
            antenna,
            frequency_khz: None,
            tag_crc_ok: None,
        });
    }
    rest.is_empty().then_some(tags)
}

/// The RSSI byte is an unsigned magnitude (captures show 0x5A..0x69); we report it as
/// negative dBm. Vendor documents do not state the unit; treat it as relative strength.
fn rssi_from_raw(raw: u8) -> i16 {
    -i16::from(raw)
}

fn rssi_to_raw(rssi_dbm: i16) -> u8 {
    u8::try_from(rssi_dbm.saturating_neg().clamp(0, 255)).unwrap_or(u8::MAX)
}

/// Lowest set bit of the antenna mask as a 1-based port; 1 when no bit is set.
fn antenna_from_mask(mask: u8) -> u8 {
    if mask == 0 {
        1
    } else {
        mask.trailing_zeros() as u8 + 1
    }
}

pub fn parse_reader_info(data: &[u8]) -> Option<ChafonInfo> {
    let fields: &[u8; 8] = data.get(..8)?.try_into().ok()?;
    let [
        major,
        minor,
        reader_type,
        protocols,
        max_fre,
        min_fre,
        power_dbm,
        scan_time,
    ] = *fields;
    Some(ChafonInfo {
        version: [major, minor],
        reader_type,
        protocols,
        max_fre,
        min_fre,
        power_dbm,
        scan_time_100ms: scan_time,
    })
}

fn reader_info(info: &ChafonInfo) -> ReaderInfo {
    let [major, minor] = info.version;
    ReaderInfo {
        firmware: Some(format!("{major}.{minor:02}")),
        hardware: Some(format!("type 0x{:02X}", info.reader_type)),
        manufacturer: None,
        power_centi_dbm: Some(u16::from(info.power_dbm) * 100),
        region: info.region(),
        scan_time_ms: Some(u32::from(info.scan_time_100ms) * 100),
    }
}

/// Helper for simulators: the entry a tag read becomes in an inventory reply.
pub fn entry_for(epc: &[u8], rssi_dbm: i16) -> InventoryEntry {
    InventoryEntry {
        epc: epc.to_vec(),
        rssi: rssi_to_raw(rssi_dbm),
    }
}

/// A host→reader command, as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCommand {
    pub address: u8,
    pub command: u8,
    pub data: Bytes,
}

/// Takes the next complete host→reader command off `buf`, skipping noise.
pub fn next_host_command(buf: &mut BytesMut) -> Option<HostCommand> {
    let mut ignored = DecodeStats::default();
    let frame = next_frame(
        buf,
        &mut ignored,
        |len| len >= MIN_COMMAND_LEN,
        |head| probe(head, MIN_COMMAND_LEN, false),
    )?;
    Some(HostCommand {
        address: *frame.get(1)?,
        command: *frame.get(2)?,
        data: frame.slice(3..frame.len().checked_sub(2)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::codec::test_support::{bytes, decode_all};
    use proptest::prelude::*;

    fn epcs(events: &[ReaderEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|event| match event {
                ReaderEvent::Tag(tag) => Some(hex::encode_upper(&tag.epc)),
                _ => None,
            })
            .collect()
    }

    const CAPTURE_1: &str = "15 00 01 03 01 01 0C E2 80 68 94 00 00 40 0A 9D 22 A9 EB 5C 70 D2";
    const CAPTURE_2: &str = "15 00 01 03 01 01 0C 30 34 B7 08 AC 39 7E 00 00 00 06 49 42 1A B7";
    const OLD_ONE_TAG: &str = "13 00 01 01 01 0C 30 74 25 7B F7 19 4E 40 00 00 1A 85 93 82";
    const NEW_ONE_TAG: &str = "15 00 01 01 01 01 0C 30 74 25 7B F7 19 4E 40 00 00 1A 85 5C 7F BB";
    const NO_TAG: &str = "05 00 01 FB F2 3D";

    #[test]
    fn command_vectors_byte_for_byte() {
        assert_eq!(encode_get_reader_info(BROADCAST), bytes("04 FF 21 19 95"));
        assert_eq!(encode_inventory(BROADCAST), bytes("04 FF 01 1B B4"));
        assert_eq!(encode_inventory(0x00), bytes("04 00 01 DB 4B"));
        assert_eq!(encode_get_reader_info(0x00), bytes("04 00 21 D9 6A"));
        assert_eq!(encode_response(0x00, 0x01, 0xFB, &[]), bytes(NO_TAG));
    }

    #[test]
    fn setters_encode_documented_layouts() {
        let power = encode_set_power(0x00, 2600).unwrap();
        assert_eq!(&power[..4], &[0x05, 0x00, 0x2F, 26]);
        assert!(encode_set_power(0x00, 3100).is_err());
        let region = encode_set_region(0x00, Region::Us).unwrap();
        assert_eq!(&region[..5], &[0x06, 0x00, 0x22, 49, 0x80]);
        let region = encode_set_region(0x00, Region::Eu).unwrap();
        assert_eq!(&region[..5], &[0x06, 0x00, 0x22, 0x40 | 14, 0x00]);
        assert!(encode_set_region(0x00, Region::Jp).is_err());
        assert_eq!(
            &encode_set_scan_time(0x00, 10)[..4],
            &[0x05, 0x00, 0x25, 10]
        );
    }

    #[test]
    fn captured_new_layout_frames_decode() {
        let mut input = bytes(CAPTURE_1);
        input.extend(bytes(CAPTURE_2));
        let mut codec = ChafonCodec::new(ChafonLayout::New);
        let events = decode_all(&mut codec, &input);
        assert_eq!(
            epcs(&events),
            vec!["E28068940000400A9D22A9EB", "3034B708AC397E0000000649"]
        );
        let ReaderEvent::Tag(tag) = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(tag.rssi_dbm, Some(-0x5C));
        assert_eq!(tag.antenna, 1);
        assert_eq!(codec.stats().frames, 2);
    }

    #[test]
    fn old_and_new_one_tag_vectors_decode_in_their_layout() {
        let old = decode_all(
            &mut ChafonCodec::new(ChafonLayout::Old),
            &bytes(OLD_ONE_TAG),
        );
        assert_eq!(epcs(&old), vec!["3074257BF7194E4000001A85"]);
        let new = decode_all(
            &mut ChafonCodec::new(ChafonLayout::New),
            &bytes(NEW_ONE_TAG),
        );
        assert_eq!(epcs(&new), vec!["3074257BF7194E4000001A85"]);
        // The wrong layout does not invent tags: the frame is counted as unhandled.
        let mut codec = ChafonCodec::new(ChafonLayout::Old);
        assert!(epcs(&decode_all(&mut codec, &bytes(NEW_ONE_TAG))).is_empty());
        assert_eq!(codec.stats().unhandled, 1);
    }

    #[test]
    fn auto_layout_detects_each_vector() {
        let mut codec = ChafonCodec::new(ChafonLayout::Auto);
        assert_eq!(epcs(&decode_all(&mut codec, &bytes(NEW_ONE_TAG))).len(), 1);
        assert_eq!(codec.effective_layout(), ChafonLayout::New);
        assert_eq!(epcs(&decode_all(&mut codec, &bytes(OLD_ONE_TAG))).len(), 1);
        assert_eq!(codec.effective_layout(), ChafonLayout::Old);
    }

    #[test]
    fn encoders_reproduce_vectors() {
        let epc = bytes("3074257BF7194E4000001A85");
        let entry = InventoryEntry { epc, rssi: 0x5C };
        assert_eq!(
            encode_inventory_response(0, ChafonLayout::Old, 1, 1, std::slice::from_ref(&entry)),
            bytes(OLD_ONE_TAG)
        );
        assert_eq!(
            encode_inventory_response(0, ChafonLayout::New, 1, 1, &[entry]),
            bytes(NEW_ONE_TAG)
        );
    }

    #[test]
    fn no_tag_and_status_errors() {
        let mut input = bytes(NO_TAG);
        input.extend(encode_response(0, CMD_SET_POWER, 0xFF, &[]));
        input.extend(encode_response(0, CMD_SET_POWER, STATUS_OK, &[]));
        let events = decode_all(&mut ChafonCodec::new(ChafonLayout::Old), &input);
        assert_eq!(events[0], ReaderEvent::NoTag);
        assert!(
            matches!(&events[1], ReaderEvent::Error { code: 0xFF, message } if message.contains("parameter error"))
        );
        assert_eq!(
            events[2],
            ReaderEvent::Ack {
                command: CMD_SET_POWER
            }
        );
    }

    #[test]
    fn reader_info_round_trip() {
        let info = ChafonInfo {
            version: [3, 1],
            reader_type: 0x09,
            protocols: 0x03,
            max_fre: 49,
            min_fre: 0x80,
            power_dbm: 26,
            scan_time_100ms: 10,
        };
        let events = decode_all(
            &mut ChafonCodec::new(ChafonLayout::Old),
            &encode_reader_info_response(0, &info),
        );
        assert_eq!(
            events,
            vec![ReaderEvent::Info(ReaderInfo {
                firmware: Some("3.01".into()),
                hardware: Some("type 0x09".into()),
                manufacturer: None,
                power_centi_dbm: Some(2600),
                region: Some(Region::Us),
                scan_time_ms: Some(1000),
            })]
        );
    }

    #[test]
    fn resync_after_garbage_and_bad_crc() {
        let mut input = bytes("00 01 FF 7E 13");
        input.extend(bytes(CAPTURE_1));
        let mut corrupt = bytes(CAPTURE_2);
        corrupt[10] ^= 0x01;
        input.extend(corrupt);
        input.extend(bytes(CAPTURE_2));
        let mut codec = ChafonCodec::new(ChafonLayout::New);
        let events = decode_all(&mut codec, &input);
        assert_eq!(epcs(&events).len(), 2);
        assert!(codec.stats().bad_checksum >= 1);
    }

    #[test]
    fn split_at_every_boundary() {
        let mut stream = bytes(CAPTURE_1);
        stream.extend(bytes(NO_TAG));
        stream.extend(bytes(CAPTURE_2));
        for cut in 0..=stream.len() {
            let mut codec = ChafonCodec::new(ChafonLayout::New);
            let mut buf = BytesMut::from(&stream[..cut]);
            let mut events = Vec::new();
            while let Some(event) = codec.decode(&mut buf).unwrap() {
                events.push(event);
            }
            buf.extend_from_slice(&stream[cut..]);
            while let Some(event) = codec.decode(&mut buf).unwrap() {
                events.push(event);
            }
            assert_eq!(events.len(), 3, "cut at {cut}");
        }
    }

    #[test]
    fn host_commands_are_parsed_for_the_simulator() {
        let mut buf = BytesMut::from(&bytes("00 04 FF 01 1B B4 04 00")[..]);
        let command = next_host_command(&mut buf).unwrap();
        assert_eq!((command.address, command.command), (0xFF, CMD_INVENTORY));
        assert_eq!(next_host_command(&mut buf), None);
        assert_eq!(buf.len(), 2);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_nor_overfill(layout in prop_oneof![
                Just(ChafonLayout::Old), Just(ChafonLayout::New), Just(ChafonLayout::Auto)],
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..32)) {
            let mut codec = ChafonCodec::new(layout);
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
        fn arbitrary_valid_frames_never_panic(command in any::<u8>(), status in any::<u8>(),
            data in proptest::collection::vec(any::<u8>(), 0..250)) {
            let frame = encode_response(0, command, status, &data);
            let _ = decode_all(&mut ChafonCodec::new(ChafonLayout::Auto), &frame);
        }

        #[test]
        fn inventory_round_trip(new_layout in any::<bool>(), epcs_in in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..=31).prop_map(|mut v| { v.truncate(v.len() / 2 * 2); v }), 0..12),
            rssi in any::<u8>()) {
            let layout = if new_layout { ChafonLayout::New } else { ChafonLayout::Old };
            let entries: Vec<InventoryEntry> =
                epcs_in.iter().map(|epc| InventoryEntry { epc: epc.clone(), rssi }).collect();
            let fitted = entries_per_frame(layout, &entries);
            let frame = encode_inventory_response(0, layout, STATUS_INVENTORY_DONE, 1, &entries);
            let events = decode_all(&mut ChafonCodec::new(layout), &frame);
            let decoded: Vec<Vec<u8>> = events.iter().filter_map(|event| match event {
                ReaderEvent::Tag(tag) => Some(tag.epc.clone()), _ => None }).collect();
            prop_assert_eq!(decoded, epcs_in[..fitted].to_vec());
        }
    }
}
