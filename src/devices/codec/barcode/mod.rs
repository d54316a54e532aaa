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
//!
//! Files by role: `framing` (how a port delimits scans, from its config strings), `decode`
//! (the decoder, and the encoder the simulator uses), `tests`.

mod decode;
mod framing;
#[cfg(test)]
mod tests;

pub use decode::{BarcodeCodec, BarcodeFrame, BarcodeStats};
pub use framing::{BarcodeFraming, FramingError, parse_prefix, parse_suffix};

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
const CR: u8 = b'\r';
const LF: u8 = b'\n';
/// Longest scan accepted by default; 2D codes reach a few kB, 1D codes are < 100 bytes.
pub const DEFAULT_MAX_LEN: usize = 4096;
