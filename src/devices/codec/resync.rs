//! Finding frames in a noisy serial stream, shared by the RFID decoders: each protocol says
//! which byte may start a frame and what its checker makes of the bytes at the head
//! ([`Probe`]); the hunt, the counting and the end-of-stream policy are the same for all.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::{CodecError, DecodeStats, ReaderEvent};

/// What a protocol's frame checker says about the bytes at the head of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// Not enough bytes yet to decide.
    Incomplete,
    /// The head byte cannot start a frame of this protocol.
    NotAFrame,
    /// The header announces a frame longer than the cap.
    Oversized,
    /// A complete candidate whose checksum or end marker is wrong.
    Corrupt,
    /// A valid frame of this many bytes.
    Frame(usize),
}

/// Finds the next valid frame at the head of `buf`, discarding (and counting) whatever
/// cannot be one. Rejections drop a single byte, so a real frame hidden behind a false start
/// is still found.
pub(super) fn next_frame(
    buf: &mut BytesMut,
    stats: &mut DecodeStats,
    can_start: impl Fn(u8) -> bool,
    probe: impl Fn(&[u8]) -> Probe,
) -> Option<Bytes> {
    loop {
        let skip = buf
            .iter()
            .position(|&byte| can_start(byte))
            .unwrap_or(buf.len());
        if skip > 0 {
            stats.garbage_bytes += skip as u64;
            buf.advance(skip);
        }
        if buf.is_empty() {
            return None;
        }
        match probe(buf) {
            Probe::Incomplete => return None,
            Probe::NotAFrame => stats.garbage_bytes += 1,
            Probe::Oversized => stats.oversized += 1,
            Probe::Corrupt => stats.bad_checksum += 1,
            Probe::Frame(len) => {
                stats.frames += 1;
                return Some(buf.split_to(len).freeze());
            }
        }
        buf.advance(1);
    }
}

/// What every RFID decoder keeps between calls: its counters, and the events of a frame
/// that carried more than one (a tag buffer, an inventory reply) not yet handed out.
#[derive(Debug, Default)]
pub(super) struct FrameEvents {
    pub stats: DecodeStats,
    pending: VecDeque<ReaderEvent>,
}

impl FrameEvents {
    /// The next event: a pending one, else the events of the next valid frame `parse`
    /// understands. A valid frame that yields no event is counted as unhandled.
    pub fn next_event(
        &mut self,
        buf: &mut BytesMut,
        can_start: impl Fn(u8) -> bool,
        probe: impl Fn(&[u8]) -> Probe,
        mut parse: impl FnMut(&[u8]) -> Vec<ReaderEvent>,
    ) -> Option<ReaderEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let frame = next_frame(buf, &mut self.stats, &can_start, &probe)?;
            let events = parse(&frame);
            if events.is_empty() {
                self.stats.unhandled += 1;
            }
            self.pending.extend(events);
        }
    }
}

/// End-of-stream policy shared by the RFID decoders: a trailing partial frame can never
/// complete, so skip it byte by byte (a real frame may sit behind a false start) instead of
/// failing the stream the way tokio-util's default `decode_eof` would.
pub(super) fn decode_to_end<D>(
    decoder: &mut D,
    buf: &mut BytesMut,
    stats: impl Fn(&mut D) -> &mut DecodeStats,
) -> Result<Option<ReaderEvent>, CodecError>
where
    D: Decoder<Item = ReaderEvent, Error = CodecError>,
{
    loop {
        if let Some(event) = decoder.decode(buf)? {
            return Ok(Some(event));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        stats(decoder).garbage_bytes += 1;
        buf.advance(1);
    }
}
