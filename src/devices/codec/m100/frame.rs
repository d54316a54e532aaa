//! M100 framing: `BB | Type | Cmd | PL | Params | Checksum | 7E`, the additive checksum,
//! and the frame checker the resynchronising decoder uses.

use bytes::{Bytes, BytesMut};

use super::{END, HEADER, MAX_PARAMS, OVERHEAD, TYPE_COMMAND};
use crate::devices::codec::DecodeStats;
use crate::devices::codec::cursor::be_u16;
use crate::devices::codec::resync::{Probe, next_frame};

/// Low byte of the sum of Type ..= last param.
pub(super) fn checksum(type_to_last_param: &[u8]) -> u8 {
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

/// Checks the frame at the head of `buf`, accepting only the given frame types.
pub(super) fn probe(buf: &[u8], frame_types: &[u8]) -> Probe {
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
pub(super) fn frame_parts(frame: &[u8]) -> Option<(u8, u8, &[u8])> {
    let frame_type = *frame.get(1)?;
    let command = *frame.get(2)?;
    let params = frame.get(5..frame.len().checked_sub(2)?)?;
    Some((frame_type, command, params))
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
