//! Serial barcode scanners (RS-232 / USB-CDC), PROTOCOLS.md §1.
//!
//! A scanner sends `[STX] [prefix] data [ETX] [suffix]`. Two framings are supported:
//!
//! * **Line mode** (`stx_etx = false`): a scan ends with the configured suffix. When the
//!   suffix is any line ending (CR, LF or CRLF), *any* of CR, LF or CRLF ends a scan: scanners
//!   get reprogrammed in the field and a CR-only scanner on a CRLF-configured port must not
//!   glue every scan together. The LF of a CRLF then ends an empty line, which is skipped.
//! * **STX/ETX mode**: a scan is whatever lies between STX (0x02) and ETX (0x03); the
//!   configured suffix is the record suffix after ETX and is ignored, as are line endings
//!   between records. Other bytes before STX are counted as garbage. A new STX before the
//!   ETX means the ETX was lost: the partial scan is dropped.
//!
//! With neither a suffix nor STX/ETX nothing delimits a scan; the driver must detect the
//! inter-scan gap and call [`BarcodeCodec::take_pending`].
//!
//! The frame keeps everything between the delimiters except the prefix: symbology
//! identifiers and GS (0x1D) field separators are interpreted elsewhere.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::CodecError;

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
const CR: u8 = b'\r';
const LF: u8 = b'\n';
/// Longest scan accepted by default; 2D codes reach a few kB, 1D codes are < 100 bytes.
pub const DEFAULT_MAX_LEN: usize = 4096;

/// A configuration string that does not describe a valid framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error(
        "unknown scanner suffix {0:?}; expected cr, lf, crlf, tab, space, eot, none or hex:<bytes>"
    )]
    UnknownSuffix(String),
    #[error("invalid hex in {0:?}: {1}")]
    BadHex(String, String),
    #[error("max_len must be at least 1")]
    ZeroMaxLen,
}

/// How a scanner port delimits scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarcodeFraming {
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
    pub stx_etx: bool,
    pub max_len: usize,
}

impl Default for BarcodeFraming {
    /// CRLF-terminated lines, the most common factory setting.
    fn default() -> Self {
        Self {
            prefix: Vec::new(),
            suffix: vec![CR, LF],
            stx_etx: false,
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

impl BarcodeFraming {
    /// Lines ended by `suffix` (see the module docs for the line-ending leniency).
    pub fn lines(suffix: &[u8]) -> Self {
        Self {
            suffix: suffix.to_vec(),
            ..Self::default()
        }
    }

    /// STX … ETX records followed by an optional record suffix.
    pub fn stx_etx(record_suffix: &[u8]) -> Self {
        Self {
            suffix: record_suffix.to_vec(),
            stx_etx: true,
            ..Self::default()
        }
    }

    /// Builds a framing from config strings: `prefix` per [`parse_prefix`], `suffix` per
    /// [`parse_suffix`].
    pub fn from_config(
        prefix: &str,
        suffix: &str,
        stx_etx: bool,
        max_len: usize,
    ) -> Result<Self, FramingError> {
        if max_len == 0 {
            return Err(FramingError::ZeroMaxLen);
        }
        Ok(Self {
            prefix: parse_prefix(prefix)?,
            suffix: parse_suffix(suffix)?,
            stx_etx,
            max_len,
        })
    }

    /// The bytes a scanner with this framing sends for `data` (simulator and tests).
    pub fn frame(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + self.prefix.len() + self.suffix.len() + 2);
        if self.stx_etx {
            out.push(STX);
        }
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(data);
        if self.stx_etx {
            out.push(ETX);
        }
        out.extend_from_slice(&self.suffix);
        out
    }

    fn terminator(&self) -> Terminator {
        if self.suffix.is_empty() {
            Terminator::None
        } else if self.suffix.iter().all(|&byte| byte == CR || byte == LF) {
            Terminator::AnyLineEnd
        } else {
            Terminator::Exact
        }
    }
}

/// Suffix names: `cr`, `lf`, `crlf`, `tab`, `space`, `eot`, `none` (or empty), `hex:0d0a`.
pub fn parse_suffix(value: &str) -> Result<Vec<u8>, FramingError> {
    named_bytes(value)
        .transpose()
        .unwrap_or_else(|| Err(FramingError::UnknownSuffix(value.to_owned())))
}

/// A prefix is a suffix name, `hex:…`, or else the literal text the scanner sends.
pub fn parse_prefix(value: &str) -> Result<Vec<u8>, FramingError> {
    named_bytes(value)
        .transpose()
        .unwrap_or_else(|| Ok(value.as_bytes().to_vec()))
}

/// `Ok(Some)` for a known name or hex, `Ok(None)` for anything else.
fn named_bytes(value: &str) -> Result<Option<Vec<u8>>, FramingError> {
    let trimmed = value.trim();
    if let Some(hex_digits) = trimmed
        .strip_prefix("hex:")
        .or_else(|| trimmed.strip_prefix("HEX:"))
    {
        let compact: String = hex_digits.chars().filter(|c| !c.is_whitespace()).collect();
        return hex::decode(&compact)
            .map(Some)
            .map_err(|err| FramingError::BadHex(value.to_owned(), err.to_string()));
    }
    Ok(match trimmed.to_ascii_lowercase().as_str() {
        "" | "none" => Some(Vec::new()),
        "cr" => Some(vec![CR]),
        "lf" => Some(vec![LF]),
        "crlf" => Some(vec![CR, LF]),
        "tab" => Some(vec![b'\t']),
        "space" => Some(vec![b' ']),
        "eot" => Some(vec![0x04]),
        _ => None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminator {
    AnyLineEnd,
    Exact,
    None,
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(codec: &mut BarcodeCodec, input: &[u8]) -> Vec<Vec<u8>> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            out.push(frame.data);
        }
        while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
            out.push(frame.data);
        }
        out
    }

    fn crlf() -> BarcodeCodec {
        BarcodeCodec::new(BarcodeFraming::lines(b"\r\n"))
    }

    const GS1_128: &[u8] = b"]C10107032069804988100329\x1d15210526";

    #[test]
    fn documented_byte_streams() {
        let vectors: [(&[u8], &[u8]); 3] = [
            (b"]E05901234123457\r\n", b"]E05901234123457"),
            (b"]E496385074\r", b"]E496385074"),
            (
                b"]C10107032069804988100329\x1d15210526\r\n",
                b"]C10107032069804988100329\x1d15210526",
            ),
        ];
        for (wire, scan) in vectors {
            assert_eq!(decode_all(&mut crlf(), wire), vec![scan.to_vec()]);
        }
        let stx = hex::decode("0235393031323334313233343537030D").unwrap();
        let mut codec = BarcodeCodec::new(BarcodeFraming::stx_etx(b"\r"));
        assert_eq!(
            decode_all(&mut codec, &stx),
            vec![b"5901234123457".to_vec()]
        );
        assert_eq!(codec.stats().garbage_bytes, 0);
    }

    #[test]
    fn any_line_ending_ends_a_scan_when_configured_for_crlf() {
        let input = b"111\r222\n333\r\n\r\n\n444\r\n";
        assert_eq!(
            decode_all(&mut crlf(), input),
            vec![
                b"111".to_vec(),
                b"222".to_vec(),
                b"333".to_vec(),
                b"444".to_vec()
            ]
        );
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut codec = crlf();
        let mut buf = BytesMut::from(&b"]E0590123"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"4123457\r\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(BarcodeFrame {
                data: b"]E05901234123457".to_vec()
            })
        );
    }

    #[test]
    fn gs_inside_data_is_kept() {
        let mut framed = GS1_128.to_vec();
        framed.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&mut crlf(), &framed), vec![GS1_128.to_vec()]);
    }

    #[test]
    fn overlong_lines_are_dropped_up_to_the_next_terminator() {
        let framing = BarcodeFraming {
            max_len: 8,
            ..BarcodeFraming::lines(b"\r\n")
        };
        let mut codec = BarcodeCodec::new(framing);
        let mut buf = BytesMut::from(&b"1234567890123"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty(), "memory is bounded while discarding");
        buf.extend_from_slice(b"4567\r\nOK\r\n123456789\r\n");
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            out.push(frame.data);
        }
        assert_eq!(out, vec![b"OK".to_vec()]);
        assert_eq!(codec.stats().overlong, 2);
    }

    #[test]
    fn stx_mode_skips_stray_bytes_and_record_suffix() {
        let mut codec = BarcodeCodec::new(BarcodeFraming::stx_etx(b"\r"));
        let input = b"zz\x02AAA\x03\r\n\x02BBB\x03\r";
        assert_eq!(
            decode_all(&mut codec, input),
            vec![b"AAA".to_vec(), b"BBB".to_vec()]
        );
        assert_eq!(codec.stats().garbage_bytes, 2);
    }

    #[test]
    fn stx_mode_lost_etx_drops_partial_scan() {
        let mut codec = BarcodeCodec::new(BarcodeFraming::stx_etx(b""));
        assert_eq!(
            decode_all(&mut codec, b"\x02lost\x02kept\x03"),
            vec![b"kept".to_vec()]
        );
        assert_eq!(codec.stats().unterminated, 1);
    }

    #[test]
    fn prefix_is_stripped_inside_stx() {
        let framing = BarcodeFraming {
            prefix: b"#".to_vec(),
            ..BarcodeFraming::stx_etx(b"\r\n")
        };
        let wire = framing.frame(b"]E496385074");
        assert_eq!(wire, b"\x02#]E496385074\x03\r\n");
        assert_eq!(
            decode_all(&mut BarcodeCodec::new(framing), &wire),
            vec![b"]E496385074".to_vec()]
        );
    }

    #[test]
    fn tab_and_custom_hex_suffixes() {
        let mut tab = BarcodeCodec::new(BarcodeFraming::from_config("", "tab", false, 64).unwrap());
        assert_eq!(
            decode_all(&mut tab, b"A\tB\t"),
            vec![b"A".to_vec(), b"B".to_vec()]
        );
        let mut eot =
            BarcodeCodec::new(BarcodeFraming::from_config("", "hex:04", false, 64).unwrap());
        assert_eq!(decode_all(&mut eot, b"A\r\x04"), vec![b"A\r".to_vec()]);
    }

    #[test]
    fn no_delimiter_uses_idle_gap() {
        let mut codec = BarcodeCodec::new(BarcodeFraming::lines(b""));
        let mut buf = BytesMut::from(&b"5901234123457"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(
            codec.take_pending(&mut buf),
            Some(BarcodeFrame {
                data: b"5901234123457".to_vec()
            })
        );
    }

    #[test]
    fn config_strings() {
        assert_eq!(parse_suffix("CRLF").unwrap(), b"\r\n");
        assert_eq!(parse_suffix("hex:0d0a").unwrap(), b"\r\n");
        assert_eq!(parse_suffix("none").unwrap(), b"");
        assert!(matches!(
            parse_suffix("semicolon"),
            Err(FramingError::UnknownSuffix(_))
        ));
        assert!(matches!(
            parse_suffix("hex:0g"),
            Err(FramingError::BadHex(..))
        ));
        assert_eq!(parse_prefix("SCAN:").unwrap(), b"SCAN:");
        assert_eq!(
            BarcodeFraming::from_config("", "cr", false, 0),
            Err(FramingError::ZeroMaxLen)
        );
    }

    #[test]
    fn encoder_round_trip() {
        let mut codec = BarcodeCodec::new(BarcodeFraming::stx_etx(b"\r"));
        let mut buf = BytesMut::new();
        codec
            .encode(
                BarcodeFrame {
                    data: GS1_128.to_vec(),
                },
                &mut buf,
            )
            .unwrap();
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(BarcodeFrame {
                data: GS1_128.to_vec()
            })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_nor_overfill(stx in any::<bool>(),
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..32)) {
            let framing = BarcodeFraming { stx_etx: stx, max_len: 40, ..BarcodeFraming::lines(b"\r\n") };
            let mut codec = BarcodeCodec::new(framing);
            let mut buf = BytesMut::new();
            for chunk in chunks {
                buf.extend_from_slice(&chunk);
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    prop_assert!(!frame.data.is_empty() && frame.data.len() <= 40);
                }
                prop_assert!(buf.len() <= 42);
            }
            while codec.decode_eof(&mut buf).unwrap().is_some() {}
        }

        #[test]
        fn frame_round_trip(stx in any::<bool>(), scans in proptest::collection::vec(
            proptest::collection::vec(0x1Du8..0x7F, 1..30), 1..10)) {
            let framing = BarcodeFraming { stx_etx: stx, ..BarcodeFraming::lines(b"\r\n") };
            let wire: Vec<u8> = scans.iter().flat_map(|scan| framing.frame(scan)).collect();
            prop_assert_eq!(decode_all(&mut BarcodeCodec::new(framing), &wire), scans);
        }
    }
}
