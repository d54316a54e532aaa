//! Reader→host decoding: [`ChafonCodec`] finds verified frames in the stream and the parsers
//! turn each into protocol-independent [`ReaderEvent`]s, choosing the inventory layout.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::frame::probe;
use super::{
    CMD_GET_READER_INFO, CMD_INVENTORY, CMD_SET_ADDRESS, CMD_SET_BAUD_RATE, CMD_SET_POWER,
    CMD_SET_REGION, CMD_SET_SCAN_TIME, ChafonInfo, ChafonLayout, MIN_RESPONSE_LEN,
    STATUS_BUFFER_FULL, STATUS_INVENTORY_DONE, STATUS_MORE_FRAMES, STATUS_NO_TAG, STATUS_OK,
    STATUS_SCAN_TIME_OVERFLOW, rssi_from_raw,
};
use crate::devices::codec::resync::{FrameEvents, decode_to_end};
use crate::devices::codec::{CodecError, DecodeStats, ReaderEvent, ReaderInfo, TagRead};

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

/// Reader→host decoder. Keeps [`DecodeStats`]; never fails on bad data.
#[derive(Debug)]
pub struct ChafonCodec {
    replies: ReplyParser,
    events: FrameEvents,
}

impl ChafonCodec {
    pub fn new(layout: ChafonLayout) -> Self {
        Self {
            replies: ReplyParser {
                layout,
                auto_guess: ChafonLayout::Old,
            },
            events: FrameEvents::default(),
        }
    }

    pub fn stats(&self) -> DecodeStats {
        self.events.stats
    }

    /// The layout in use: the configured one, or Auto's current conclusion.
    pub fn effective_layout(&self) -> ChafonLayout {
        match self.replies.layout {
            ChafonLayout::Auto => self.replies.auto_guess,
            fixed => fixed,
        }
    }
}

/// Turns verified frames into events. Stateful only for `Auto`, which remembers the layout
/// last proven unambiguous.
#[derive(Debug)]
struct ReplyParser {
    layout: ChafonLayout,
    /// The layout `Auto` falls back to when a reply fits both.
    auto_guess: ChafonLayout,
}

impl ReplyParser {
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
        let replies = &mut self.replies;
        Ok(self.events.next_event(
            buf,
            |len| len >= MIN_RESPONSE_LEN,
            |head| probe(head, MIN_RESPONSE_LEN, true),
            |frame| replies.parse_frame(frame),
        ))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        decode_to_end(self, buf, |codec| &mut codec.events.stats)
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
