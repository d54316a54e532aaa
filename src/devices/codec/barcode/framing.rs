//! How a scanner port delimits scans: [`BarcodeFraming`] and the config strings it is built
//! from (suffix names, `hex:` bytes, literal prefixes).

use super::{CR, DEFAULT_MAX_LEN, ETX, LF, STX};

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

    pub(super) fn terminator(&self) -> Terminator {
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

/// What ends a scan in line mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Terminator {
    AnyLineEnd,
    Exact,
    None,
}
