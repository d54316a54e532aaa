//! Mercury framing: `FF | LEN | OPCODE | [STATUS] | DATA | CRC`, with the ThingMagic CRC
//! over LEN ..= last data byte, and the frame checker the resynchronising decoder uses.

use bytes::{Bytes, BytesMut};

use super::{COMMAND_OVERHEAD, HEADER, REPLY_OVERHEAD};
use crate::devices::codec::DecodeStats;
use crate::devices::codec::crc::crc16_thingmagic;
use crate::devices::codec::cursor::be_u16;
use crate::devices::codec::resync::{Probe, next_frame};

/// Appends the CRC over LEN ..= last data byte (everything after the FF header), high byte first.
fn append_crc(mut frame: Vec<u8>) -> Vec<u8> {
    let crc = crc16_thingmagic(frame.get(1..).unwrap_or_default());
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

/// Host→reader frame. Data beyond 255 bytes is cut: LEN cannot say more.
pub fn encode_command(opcode: u8, data: &[u8]) -> Vec<u8> {
    let data = data.get(..255).unwrap_or(data);
    let mut frame = Vec::with_capacity(data.len() + COMMAND_OVERHEAD);
    frame.extend_from_slice(&[HEADER, data.len() as u8, opcode]);
    frame.extend_from_slice(data);
    append_crc(frame)
}

/// Reader→host frame (simulator and tests).
pub fn encode_reply(opcode: u8, status: u16, data: &[u8]) -> Vec<u8> {
    let data = data.get(..255).unwrap_or(data);
    let mut frame = Vec::with_capacity(data.len() + REPLY_OVERHEAD);
    frame.extend_from_slice(&[HEADER, data.len() as u8, opcode]);
    frame.extend_from_slice(&status.to_be_bytes());
    frame.extend_from_slice(data);
    append_crc(frame)
}

/// Checks the frame at the head of `buf`; `overhead` is a reply's or a command's.
pub(super) fn probe(buf: &[u8], overhead: usize) -> Probe {
    let Some(&len) = buf.get(1) else {
        return Probe::Incomplete;
    };
    let total = usize::from(len) + overhead;
    let Some(frame) = buf.get(..total) else {
        return Probe::Incomplete;
    };
    let (Some(covered), Some(crc)) = (frame.get(1..total - 2), be_u16(frame, total - 2)) else {
        return Probe::Corrupt;
    };
    if crc16_thingmagic(covered) == crc {
        Probe::Frame(total)
    } else {
        Probe::Corrupt
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
