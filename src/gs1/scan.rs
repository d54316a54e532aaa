//! What one scanned barcode means: symbology, GTIN, AIs, variable measure.
//!
//! The input is one scan as delivered by the serial framing layer (prefix,
//! STX/ETX already removed); a trailing CR/LF is tolerated. The literal text
//! `<GS>` is accepted as the GS separator, for scanners remapped to print it
//! and for technicians typing values.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Gs1Error;
use super::ai::{ElementString, GS, parse_digital_link, parse_element_string};
use super::gtin::Gtin14;
use super::rcn::{Rcn, RcnRegion, parse_rcn};
use super::symbology::{Gs1Content, Symbology, split_aim};

/// The interpretation of one scan. `valid: false` means the data claims to
/// be GS1 but is malformed; `error` then says why. Valid data without a
/// GTIN is a non-GS1 label (e.g. an internal SKU in Code 39).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanContent {
    /// AIM identifier as sent, e.g. `"]C1"`.
    pub symbology: Option<String>,
    /// The whole input, printable: GS as `<GS>`, other control characters
    /// and invalid UTF-8 bytes as `<CR>`, `<LF>`, `<x1F>`...
    pub raw: String,
    pub gtin14: Option<Gtin14>,
    /// Element string AIs and values; empty for plain EAN/UPC.
    pub ai: BTreeMap<String, String>,
    pub rcn: Option<Rcn>,
    pub valid: bool,
    pub error: Option<String>,
}

/// What the payload turned out to be.
enum Reading {
    Gtin(Gtin14),
    Elements(ElementString),
    NotGs1,
}

/// Interprets one scanned barcode; never fails, see [`ScanContent::valid`].
pub fn interpret(data: &[u8], region: RcnRegion) -> ScanContent {
    let raw = printable(data);
    let normalized = replace_literal_gs(trim_line_end(data));
    let (symbology, payload) = split_aim(&normalized);
    let text = String::from_utf8_lossy(payload);
    let mut content = ScanContent {
        symbology: symbology.as_ref().map(Symbology::as_aim),
        raw,
        gtin14: None,
        ai: BTreeMap::new(),
        rcn: None,
        valid: true,
        error: None,
    };
    match read(symbology.as_ref(), &text) {
        Ok(Reading::Gtin(gtin)) => content.gtin14 = Some(gtin),
        Ok(Reading::Elements(elements)) => {
            content.gtin14 = elements.gtin();
            content.ai = elements
                .elements
                .into_iter()
                .map(|e| (e.ai, e.value))
                .collect();
        }
        Ok(Reading::NotGs1) => {}
        Err(e) => {
            content.valid = false;
            content.error = Some(e.to_string());
        }
    }
    if region != RcnRegion::None
        && let Some(gtin) = &content.gtin14
    {
        match parse_rcn(gtin.as_str(), region) {
            Ok(rcn) => content.rcn = rcn,
            Err(e) => {
                content.valid = false;
                content.error = Some(e.to_string());
            }
        }
    }
    content
}

fn read(symbology: Option<&Symbology>, text: &str) -> Result<Reading, Gs1Error> {
    let is_url =
        starts_with_ignore_case(text, "http://") || starts_with_ignore_case(text, "https://");
    let Some(symbology) = symbology else {
        return read_unidentified(text, is_url);
    };
    match symbology.gs1_content() {
        Gs1Content::Gtin => ean_upc_gtin(symbology, text).map(Reading::Gtin),
        Gs1Content::ElementString if is_url && symbology.code == 'Q' => {
            parse_digital_link(text).map(Reading::Elements)
        }
        Gs1Content::ElementString => parse_element_string(text).map(Reading::Elements),
        Gs1Content::None if is_url && symbology.code == 'Q' => optional_digital_link(text),
        Gs1Content::None if text.contains(GS) => parse_element_string(text).map(Reading::Elements),
        Gs1Content::None if symbology.code == 'I' && is_digits(text, 14) => {
            // ITF-14 on shipping cartons.
            Gtin14::parse(text).map(Reading::Gtin)
        }
        Gs1Content::None => Ok(Reading::NotGs1),
    }
}

/// No AIM identifier: decide from the data alone.
fn read_unidentified(text: &str, is_url: bool) -> Result<Reading, Gs1Error> {
    let gtin_length = [8, 12, 13, 14].iter().any(|&n| is_digits(text, n));
    if is_url {
        optional_digital_link(text)
    } else if gtin_length {
        Gtin14::parse(text).map(Reading::Gtin)
    } else if looks_like_element_string(text) {
        parse_element_string(text).map(Reading::Elements)
    } else {
        Ok(Reading::NotGs1)
    }
}

/// A URL in a QR code may be any web link; only one with a GS1 key path is
/// GS1 data (and then it must be valid).
fn optional_digital_link(text: &str) -> Result<Reading, Gs1Error> {
    match parse_digital_link(text) {
        Ok(elements) => Ok(Reading::Elements(elements)),
        Err(Gs1Error::NotDigitalLink(_)) => Ok(Reading::NotGs1),
        Err(e) => Err(e),
    }
}

/// Without a symbology identifier, only data that is unmistakably an element
/// string is parsed as one: it has a GS, or starts with a complete (00) SSCC
/// or (01)/(02) GTIN. Anything else may be an internal label.
fn looks_like_element_string(text: &str) -> bool {
    let digit_prefix = |n: usize| text.get(..n).is_some_and(|p| is_digits(p, n));
    text.contains(GS)
        || ((text.starts_with("01") || text.starts_with("02")) && digit_prefix(16))
        || (text.starts_with("00") && digit_prefix(20))
}

/// EAN/UPC data is a bare GTIN; `]E3` appends a 2- or 5-digit add-on.
fn ean_upc_gtin(symbology: &Symbology, text: &str) -> Result<Gtin14, Gs1Error> {
    let with_add_on = symbology.modifier == "3" && (is_digits(text, 15) || is_digits(text, 18));
    let gtin = if with_add_on {
        text.get(..13).unwrap_or(text)
    } else {
        text
    };
    Gtin14::parse(gtin)
}

fn is_digits(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit())
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn trim_line_end(data: &[u8]) -> &[u8] {
    let end = data
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |i| i + 1);
    data.get(..end).unwrap_or_default()
}

fn replace_literal_gs(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(b"<GS>") {
            out.push(0x1d);
            rest = after;
        } else if let Some((&b, after)) = rest.split_first() {
            out.push(b);
            rest = after;
        }
    }
    out
}

/// Renders scan bytes for logs and the API without losing anything.
fn printable(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\u{1d}' => out.push_str("<GS>"),
                '\r' => out.push_str("<CR>"),
                '\n' => out.push_str("<LF>"),
                '\u{2}' => out.push_str("<STX>"),
                '\u{3}' => out.push_str("<ETX>"),
                '\u{4}' => out.push_str("<EOT>"),
                '\u{1e}' => out.push_str("<RS>"),
                c if c.is_control() => out.push_str(&format!("<x{:02X}>", u32::from(c))),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("<x{b:02X}>"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
