//! The scanner port's decoder: line mode and STX/ETX mode, bounded memory for overlong scans,
//! and counters of what was dropped. Encodes too, for the simulator.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::framing::{BarcodeFraming, Terminator};
use super::{CR, ETX, LF, STX};
use crate::devices::codec::CodecError;

/// One scan with framing removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarcodeFrame {
    pub data: Vec<u8>,
}

/// Counters of what the decoder dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BarcodeStats {
    pub frames: u64,
    /// Scans longer than `max_len`, dropped whole.
    pub overlong: u64,
    /// Bytes outside STX/ETX records that are not line endings or the record suffix.
    pub garbage_bytes: u64,
    /// STX records cut short by a new STX or by the end of the stream.
    pub unterminated: u64,
}

/// Decoder (and encoder, for the simulator) of one scanner port.
#[derive(Debug)]
pub struct BarcodeCodec {
    framing: BarcodeFraming,
    terminator: Terminator,
    /// Dropping the rest of an overlong scan until its delimiter shows up.
    discarding: bool,
    stats: BarcodeStats,
}

impl BarcodeCodec {
    pub fn new(framing: BarcodeFraming) -> Self {
        Self {
            terminator: framing.terminator(),
            framing,
            discarding: false,
            stats: BarcodeStats::default(),
        }
    }

    pub fn stats(&self) -> BarcodeStats {
        self.stats
    }

    pub fn framing(&self) -> &BarcodeFraming {
        &self.framing
    }

    /// Called by the driver after an idle gap: with no delimiter configured the buffered
    /// bytes are a whole scan; in the other modes they are an interrupted one and dropped.
    pub fn take_pending(&mut self, buf: &mut BytesMut) -> Option<BarcodeFrame> {
        self.discarding = false;
        if buf.is_empty() {
            return None;
        }
        let pending = buf.split();
        if self.framing.stx_etx || self.terminator != Terminator::None {
            self.stats.unterminated += 1;
            return None;
        }
        self.accept(&pending)
    }

    /// Turns a delimited scan into a frame, or counts why not.
    fn accept(&mut self, scan: &[u8]) -> Option<BarcodeFrame> {
        if scan.len() > self.framing.max_len {
            self.stats.overlong += 1;
            return None;
        }
        let data = scan
            .strip_prefix(self.framing.prefix.as_slice())
            .unwrap_or(scan);
        if data.is_empty() {
            return None;
        }
        self.stats.frames += 1;
        Some(BarcodeFrame {
            data: data.to_vec(),
        })
    }

    /// Position and length of the first terminator in `buf`.
    fn find_terminator(&self, buf: &[u8]) -> Option<(usize, usize)> {
        match self.terminator {
            Terminator::AnyLineEnd => buf
                .iter()
                .position(|&byte| byte == CR || byte == LF)
                .map(|at| (at, 1)),
            Terminator::Exact => {
                let suffix = self.framing.suffix.as_slice();
                buf.windows(suffix.len())
                    .position(|window| window == suffix)
                    .map(|at| (at, suffix.len()))
            }
            Terminator::None => None,
        }
    }

    fn decode_line(&mut self, buf: &mut BytesMut) -> Option<BarcodeFrame> {
        loop {
            let Some((at, terminator_len)) = self.find_terminator(buf) else {
                if buf.len() > self.framing.max_len + self.framing.suffix.len() {
                    // Keep memory bounded: drop now, and the rest up to the terminator later.
                    if !self.discarding {
                        self.stats.overlong += 1;
                    }
                    self.discarding = true;
                    buf.clear();
                }
                return None;
            };
            let line = buf.split_to(at);
            buf.advance(terminator_len);
            if std::mem::take(&mut self.discarding) {
                continue;
            }
            if let Some(frame) = self.accept(&line) {
                return Some(frame);
            }
        }
    }

    fn is_quiet(&self, byte: u8) -> bool {
        byte == CR || byte == LF || self.framing.suffix.contains(&byte)
    }

    fn skip_to_stx(&mut self, buf: &mut BytesMut) -> bool {
        let start = buf.iter().position(|&byte| byte == STX);
        let skipped = start.unwrap_or(buf.len());
        let noisy = buf
            .iter()
            .take(skipped)
            .filter(|&&byte| !self.is_quiet(byte))
            .count();
        self.stats.garbage_bytes += noisy as u64;
        buf.advance(skipped);
        start.is_some()
    }

    fn decode_stx(&mut self, buf: &mut BytesMut) -> Option<BarcodeFrame> {
        loop {
            if self.discarding {
                // Drop the overlong record's tail up to its ETX (or a new STX).
                match buf.iter().position(|&byte| byte == ETX || byte == STX) {
                    Some(at) => {
                        let is_etx = buf.get(at) == Some(&ETX);
                        buf.advance(if is_etx { at + 1 } else { at });
                        self.discarding = false;
                    }
                    None => {
                        buf.clear();
                        return None;
                    }
                }
            }
            if !self.skip_to_stx(buf) {
                return None;
            }
            let body = buf.get(1..).unwrap_or_default();
            match body.iter().position(|&byte| byte == ETX || byte == STX) {
                Some(at) if body.get(at) == Some(&STX) => {
                    self.stats.unterminated += 1;
                    buf.advance(at + 1);
                }
                Some(at) => {
                    let record = buf.split_to(at + 2);
                    if let Some(frame) = record.get(1..at + 1).and_then(|scan| self.accept(scan)) {
                        return Some(frame);
                    }
                }
                None => {
                    if body.len() > self.framing.max_len {
                        self.stats.overlong += 1;
                        self.discarding = true;
                        buf.clear();
                    }
                    return None;
                }
            }
        }
    }
}

impl Decoder for BarcodeCodec {
    type Item = BarcodeFrame;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BarcodeFrame>, CodecError> {
        Ok(if self.framing.stx_etx {
            self.decode_stx(buf)
        } else if self.terminator == Terminator::None {
            if buf.len() > self.framing.max_len {
                self.stats.overlong += 1;
                buf.clear();
            }
            None
        } else {
            self.decode_line(buf)
        })
    }

    /// At the end of the stream a trailing scan without delimiter is kept only when no
    /// delimiter is configured; otherwise it is an interrupted scan and dropped.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BarcodeFrame>, CodecError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if self.framing.stx_etx {
            let quiet = buf.iter().all(|&byte| self.is_quiet(byte));
            if !quiet {
                self.stats.unterminated += 1;
            }
            buf.clear();
            return Ok(None);
        }
        Ok(self.take_pending(buf))
    }
}

impl Encoder<BarcodeFrame> for BarcodeCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: BarcodeFrame, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&self.framing.frame(&frame.data));
        Ok(())
    }
}
