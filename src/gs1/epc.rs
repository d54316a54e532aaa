//! EPC Tag Data Standard: binary EPCs from UHF RFID tags.
//!
//! Decoding never fails: anything that is not a supported, well-formed EPC
//! becomes [`Epc::Unknown`] with the raw hex (the tag's opaque identity) and
//! the reason, so a reader loop can always record what it saw.

mod bits;
mod encode;
pub mod pattern;

use serde::Serialize;

pub use encode::{encode_giai96, encode_sgtin96, encode_sgtin198, encode_sscc96};
pub use pattern::{EpcPattern, PatternError};

use super::Gs1Error;
use super::gtin::{Gtin14, check_digit};
use bits::{BitReader, GIAI_PARTITIONS, Partition, SGTIN_PARTITIONS, SSCC_PARTITIONS};

const HEADER_SGTIN96: u8 = 0x30;
const HEADER_SSCC96: u8 = 0x31;
const HEADER_GIAI96: u8 = 0x34;
const HEADER_SGTIN198: u8 = 0x36;

/// Headers [`decode_epc`] understands.
pub const SUPPORTED_HEADERS: [u8; 4] = [
    HEADER_SGTIN96,
    HEADER_SSCC96,
    HEADER_GIAI96,
    HEADER_SGTIN198,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SgtinScheme {
    Sgtin96,
    Sgtin198,
}

/// A decoded EPC. Every variant keeps `hex`, the EPC bytes as read
/// (uppercase), which is the lossless identity of the tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Epc {
    Sgtin {
        scheme: SgtinScheme,
        filter: u8,
        company_prefix: String,
        /// Indicator digit followed by the item reference, zero-padded.
        item_reference: String,
        serial: String,
        gtin14: Gtin14,
        hex: String,
    },
    Sscc {
        filter: u8,
        company_prefix: String,
        /// Extension digit followed by the serial reference, zero-padded.
        serial_reference: String,
        /// The 18-digit SSCC with check digit.
        sscc: String,
        hex: String,
    },
    Giai {
        filter: u8,
        company_prefix: String,
        asset_reference: String,
        hex: String,
    },
    Unknown {
        hex: String,
        reason: String,
    },
}

/// Decodes EPC bank bytes (without PC word or CRC). Bytes beyond the scheme's
/// length are accepted only if zero (padding in a larger EPC memory).
pub fn decode_epc(bytes: &[u8]) -> Epc {
    let hex = hex::encode_upper(bytes);
    match decode_known(bytes, &hex) {
        Ok(epc) => epc,
        Err(reason) => Epc::Unknown { hex, reason },
    }
}

/// Decodes an EPC given as hex; spaces and a `0x` prefix are allowed.
pub fn decode_epc_hex(s: &str) -> Result<Epc, Gs1Error> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = compact
        .strip_prefix("0x")
        .or_else(|| compact.strip_prefix("0X"))
        .unwrap_or(&compact);
    Ok(decode_epc(&hex::decode(digits)?))
}

fn decode_known(bytes: &[u8], hex: &str) -> Result<Epc, String> {
    let Some(&header) = bytes.first() else {
        return Err("empty EPC".to_string());
    };
    match header {
        HEADER_SGTIN96 => decode_sgtin(bytes, hex, SgtinScheme::Sgtin96),
        HEADER_SGTIN198 => decode_sgtin(bytes, hex, SgtinScheme::Sgtin198),
        HEADER_SSCC96 => decode_sscc(bytes, hex),
        HEADER_GIAI96 => decode_giai(bytes, hex),
        0x00 => Err("unprogrammed (header 0x00)".to_string()),
        // Many cheap tags report their TID (class identifier E2) as the EPC.
        0xE2 => Err("TID class E2, not an EPC".to_string()),
        other => Err(match tds_header_name(other) {
            Some(name) => format!("unsupported header 0x{other:02X} ({name})"),
            None => format!("unknown header 0x{other:02X}"),
        }),
    }
}

/// Names of the other headers of TDS table 14-1, for clearer reasons.
fn tds_header_name(header: u8) -> Option<&'static str> {
    let name = match header {
        0x2C => "GDTI-96",
        0x2D => "GSRN-96",
        0x2E => "GSRNP-96",
        0x2F => "USDoD-96",
        0x32 => "SGLN-96",
        0x33 => "GRAI-96",
        0x35 => "GID-96",
        0x37 => "GRAI-170",
        0x38 => "GIAI-202",
        0x39 => "SGLN-195",
        0x3A => "GDTI-113",
        0x3B => "ADI-var",
        0x3C => "CPI-96",
        0x3D => "CPI-var",
        0x3E => "GDTI-174",
        0x3F => "SGCN-96",
        0x40 => "ITIP-110",
        0x41 => "ITIP-212",
        _ => return None,
    };
    Some(name)
}

/// Checks the length and reads header, filter and partition.
fn open_scheme<'a>(
    bytes: &'a [u8],
    scheme: &str,
    bits: usize,
    table: &[Partition; 7],
) -> Result<(BitReader<'a>, u8, Partition), String> {
    let needed = bits.div_ceil(8);
    if bytes.len() < needed {
        return Err(format!(
            "truncated: {scheme} needs {needed} bytes, got {}",
            bytes.len()
        ));
    }
    if bytes
        .get(needed..)
        .is_some_and(|tail| tail.iter().any(|&b| b != 0))
    {
        return Err(format!("{scheme} followed by non-zero data"));
    }
    let mut reader = BitReader::new(bytes);
    let _header = reader.read(8);
    let filter = read_u8(&mut reader, 3)?;
    let partition_value = read_u8(&mut reader, 3)?;
    let partition = table
        .get(usize::from(partition_value))
        .copied()
        .ok_or_else(|| format!("bad partition {partition_value}"))?;
    Ok((reader, filter, partition))
}

fn read_u8(reader: &mut BitReader<'_>, bits: u32) -> Result<u8, String> {
    read_bits(reader, bits).and_then(|v| u8::try_from(v).map_err(|e| e.to_string()))
}

fn read_bits(reader: &mut BitReader<'_>, bits: u32) -> Result<u64, String> {
    reader.read(bits).ok_or_else(|| "truncated".to_string())
}

/// Reads a number and renders it with exactly `digits` digits; a value that
/// needs more digits is invalid (TDS decoding rule).
fn read_padded(
    reader: &mut BitReader<'_>,
    bits: u32,
    digits: usize,
    field: &str,
) -> Result<String, String> {
    let value = read_bits(reader, bits)?;
    let text = format!("{value:0>digits$}");
    if text.len() > digits {
        return Err(format!("{field} {value} has more than {digits} digits"));
    }
    Ok(text)
}

fn decode_sgtin(bytes: &[u8], hex: &str, scheme: SgtinScheme) -> Result<Epc, String> {
    let (name, bits) = match scheme {
        SgtinScheme::Sgtin96 => ("sgtin-96", 96),
        SgtinScheme::Sgtin198 => ("sgtin-198", 198),
    };
    let (mut reader, filter, part) = open_scheme(bytes, name, bits, &SGTIN_PARTITIONS)?;
    let company_prefix = read_padded(
        &mut reader,
        part.prefix_bits,
        part.prefix_digits,
        "company prefix",
    )?;
    let item_reference = read_padded(
        &mut reader,
        part.reference_bits,
        part.reference_digits,
        "item reference",
    )?;
    let serial = match scheme {
        SgtinScheme::Sgtin96 => read_bits(&mut reader, 38)?.to_string(),
        SgtinScheme::Sgtin198 => read_serial_chars(&mut reader)?,
    };
    let (indicator, item) = item_reference.split_at(1);
    let body = format!("{indicator}{company_prefix}{item}");
    let gtin14 = check_digit(&body)
        .and_then(|check| Gtin14::parse(&format!("{body}{check}")))
        .map_err(|e| e.to_string())?;
    Ok(Epc::Sgtin {
        scheme,
        filter,
        company_prefix,
        item_reference,
        serial,
        gtin14,
        hex: hex.to_string(),
    })
}

/// SGTIN-198 serial: 20 seven-bit characters, zero-terminated.
fn read_serial_chars(reader: &mut BitReader<'_>) -> Result<String, String> {
    let codes = (0..20)
        .map(|_| read_u8(reader, 7))
        .collect::<Result<Vec<u8>, String>>()?;
    let end = codes.iter().position(|&c| c == 0).unwrap_or(codes.len());
    let (serial, padding) = codes.split_at(end);
    if padding.iter().any(|&c| c != 0) {
        return Err("serial has data after its terminating zero".to_string());
    }
    if serial.is_empty() {
        return Err("empty serial".to_string());
    }
    serial
        .iter()
        .map(|&c| {
            let ch = char::from(c);
            if super::ai::is_cset82(ch) {
                Ok(ch)
            } else {
                Err(format!(
                    "serial character 0x{c:02X} is not in GS1 character set 82"
                ))
            }
        })
        .collect()
}

fn decode_sscc(bytes: &[u8], hex: &str) -> Result<Epc, String> {
    let (mut reader, filter, part) = open_scheme(bytes, "sscc-96", 96, &SSCC_PARTITIONS)?;
    let company_prefix = read_padded(
        &mut reader,
        part.prefix_bits,
        part.prefix_digits,
        "company prefix",
    )?;
    let serial_reference = read_padded(
        &mut reader,
        part.reference_bits,
        part.reference_digits,
        "serial reference",
    )?;
    // The 24 reserved bits that follow are not checked: TDS gives them no
    // meaning, and rejecting a tag over them would hide a readable SSCC.
    let (extension, rest) = serial_reference.split_at(1);
    let body = format!("{extension}{company_prefix}{rest}");
    let check = check_digit(&body).map_err(|e| e.to_string())?;
    Ok(Epc::Sscc {
        filter,
        company_prefix,
        serial_reference,
        sscc: format!("{body}{check}"),
        hex: hex.to_string(),
    })
}

fn decode_giai(bytes: &[u8], hex: &str) -> Result<Epc, String> {
    let (mut reader, filter, part) = open_scheme(bytes, "giai-96", 96, &GIAI_PARTITIONS)?;
    let company_prefix = read_padded(
        &mut reader,
        part.prefix_bits,
        part.prefix_digits,
        "company prefix",
    )?;
    let asset_reference = read_bits(&mut reader, part.reference_bits)?.to_string();
    Ok(Epc::Giai {
        filter,
        company_prefix,
        asset_reference,
        hex: hex.to_string(),
    })
}

impl Epc {
    /// TDS scheme name: "sgtin-96", "sgtin-198", "sscc-96", "giai-96" or "unknown".
    pub fn scheme_name(&self) -> &'static str {
        match self {
            Epc::Sgtin {
                scheme: SgtinScheme::Sgtin96,
                ..
            } => "sgtin-96",
            Epc::Sgtin {
                scheme: SgtinScheme::Sgtin198,
                ..
            } => "sgtin-198",
            Epc::Sscc { .. } => "sscc-96",
            Epc::Giai { .. } => "giai-96",
            Epc::Unknown { .. } => "unknown",
        }
    }

    /// The EPC bytes as uppercase hex, exactly as read.
    pub fn hex(&self) -> &str {
        match self {
            Epc::Sgtin { hex, .. }
            | Epc::Sscc { hex, .. }
            | Epc::Giai { hex, .. }
            | Epc::Unknown { hex, .. } => hex,
        }
    }

    pub fn filter(&self) -> Option<u8> {
        match self {
            Epc::Sgtin { filter, .. } | Epc::Sscc { filter, .. } | Epc::Giai { filter, .. } => {
                Some(*filter)
            }
            Epc::Unknown { .. } => None,
        }
    }

    pub fn gtin14(&self) -> Option<&Gtin14> {
        match self {
            Epc::Sgtin { gtin14, .. } => Some(gtin14),
            _ => None,
        }
    }

    /// `urn:epc:id:sgtin:0614141.812345.6789` and the like; `None` for unknown.
    pub fn pure_identity_uri(&self) -> Option<String> {
        let (kind, fields) = self.uri_fields()?;
        Some(format!("urn:epc:id:{kind}:{fields}"))
    }

    /// `urn:epc:tag:sgtin-96:3.0614141.812345.6789`; `None` for unknown.
    pub fn tag_uri(&self) -> Option<String> {
        let (_, fields) = self.uri_fields()?;
        let filter = self.filter()?;
        Some(format!(
            "urn:epc:tag:{}:{filter}.{fields}",
            self.scheme_name()
        ))
    }

    fn uri_fields(&self) -> Option<(&'static str, String)> {
        match self {
            Epc::Sgtin {
                company_prefix,
                item_reference,
                serial,
                ..
            } => Some((
                "sgtin",
                format!("{company_prefix}.{item_reference}.{}", escape_uri(serial)),
            )),
            Epc::Sscc {
                company_prefix,
                serial_reference,
                ..
            } => Some(("sscc", format!("{company_prefix}.{serial_reference}"))),
            Epc::Giai {
                company_prefix,
                asset_reference,
                ..
            } => Some((
                "giai",
                format!("{company_prefix}.{}", escape_uri(asset_reference)),
            )),
            Epc::Unknown { .. } => None,
        }
    }
}

/// TDS escapes these GS1 characters in EPC URIs.
fn escape_uri(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => "%22".to_string(),
            '%' => "%25".to_string(),
            '&' => "%26".to_string(),
            '/' => "%2F".to_string(),
            '<' => "%3C".to_string(),
            '>' => "%3E".to_string(),
            '?' => "%3F".to_string(),
            other => other.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
