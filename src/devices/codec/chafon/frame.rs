//! Chafon framing: `Len | Adr | Cmd | [Status] | Data | CRC`, with CRC-16/MCRF4XX over
//! Len ..= last data byte sent least significant byte first, and the frame checker the
//! resynchronising decoder uses. There is no start byte: a plausible `Len` starts a frame.

use bytes::{Bytes, BytesMut};

use super::MIN_COMMAND_LEN;
use crate::devices::codec::DecodeStats;
use crate::devices::codec::crc::crc16_mcrf4xx;
use crate::devices::codec::resync::{Probe, next_frame};

/// Response commands this decoder accepts as frame starts while resynchronising.
fn is_known_response_command(command: u8) -> bool {
    matches!(
        command,
        0x01..=0x0F | 0x10..=0x1F | 0x21..=0x28 | 0x2F | 0x33..=0x36 | 0x3F | 0x50..=0x55 | 0xEE
    )
}

/// Appends the CRC over the whole frame so far, least significant byte first.
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

/// Checks the frame at the head of `buf`; replies must also carry a known response command.
pub(super) fn probe(buf: &[u8], min_len: u8, check_command: bool) -> Probe {
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
