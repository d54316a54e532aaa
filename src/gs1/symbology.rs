//! AIM / ISO/IEC 15424 symbology identifiers: `]` + code character +
//! modifier, sent by scanners before the data when "transmit AIM ID" is on.

use serde::Serialize;

/// A symbology identifier such as `]C1` (code `C`, modifier `1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Symbology {
    pub code: char,
    pub modifier: String,
}

/// What the data after the identifier holds, as far as GS1 is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gs1Content {
    /// A bare GTIN (EAN-13, UPC-A/E, EAN-8), possibly with an add-on.
    Gtin,
    /// A GS1 element string (FNC1 in first position).
    ElementString,
    /// Not GS1 by its symbology.
    None,
}

/// Code characters defined by ISO/IEC 15424 (plus `J`, DotCode).
const KNOWN_CODES: &str = "ABCDEFGHIJKLMNOPQRSTUXYZcdeopsz";

/// Splits a leading AIM identifier off `data`. Without a well-formed
/// identifier the data is returned whole.
pub fn split_aim(data: &[u8]) -> (Option<Symbology>, &[u8]) {
    let Some((&b']', rest)) = data.split_first() else {
        return (None, data);
    };
    let Some((&code, rest)) = rest.split_first() else {
        return (None, data);
    };
    let code = char::from(code);
    if !KNOWN_CODES.contains(code) {
        return (None, data);
    }
    let modifier_len = match (code, rest.first()) {
        // ]Y (system expansion): the first modifier digit d says d+1 characters.
        ('Y', Some(&d)) if d.is_ascii_digit() => usize::from(d - b'0') + 1,
        _ => 1,
    };
    let Some(modifier) = rest.get(..modifier_len) else {
        return (None, data);
    };
    if !modifier.iter().all(u8::is_ascii_alphanumeric) {
        return (None, data);
    }
    let symbology = Symbology {
        code,
        modifier: String::from_utf8_lossy(modifier).into_owned(),
    };
    (
        Some(symbology),
        rest.get(modifier_len..).unwrap_or_default(),
    )
}

impl Symbology {
    /// The identifier as transmitted, e.g. `"]C1"`.
    pub fn as_aim(&self) -> String {
        format!("]{}{}", self.code, self.modifier)
    }

    /// How GS1 data is carried under this identifier.
    pub fn gs1_content(&self) -> Gs1Content {
        match (self.code, self.modifier.as_str()) {
            ('E', "0" | "3" | "4") => Gs1Content::Gtin,
            ('C', "1") | ('e', "0" | "1" | "2") | ('d', "2") | ('Q', "3") | ('J', "1") => {
                Gs1Content::ElementString
            }
            _ => Gs1Content::None,
        }
    }

    /// True for GS1 symbologies: EAN/UPC (`]E0`, `]E3`, `]E4`) and those with
    /// FNC1 in first position (`]C1`, `]e0`-`]e2`, `]d2`, `]Q3`, `]J1`).
    pub fn is_gs1(&self) -> bool {
        self.gs1_content() != Gs1Content::None
    }

    /// Human name of the symbology, for logs and the diag CLI.
    pub fn name(&self) -> &'static str {
        let m = self.modifier.as_str();
        match self.code {
            'A' => "Code 39",
            'B' => "Telepen",
            'C' if m == "1" => "GS1-128",
            'C' => "Code 128",
            'D' => "Code One",
            'E' => match m {
                "0" => "EAN-13/UPC-A",
                "1" => "EAN/UPC 2-digit add-on",
                "2" => "EAN/UPC 5-digit add-on",
                "3" => "EAN-13/UPC-A with add-on",
                "4" => "EAN-8",
                _ => "EAN/UPC",
            },
            'F' => "Codabar",
            'G' => "Code 93",
            'H' => "Code 11",
            'I' if m == "1" => "ITF (check digit verified)",
            'I' => "ITF",
            'J' if m == "1" => "GS1 DotCode",
            'J' => "DotCode",
            'K' => "Code 16K",
            'L' => "PDF417",
            'M' => "MSI",
            'N' => "Anker",
            'O' => "Codablock",
            'P' => "Plessey",
            'Q' if m == "3" => "GS1 QR Code",
            'Q' => "QR Code",
            'R' | 'S' => "Straight 2 of 5",
            'T' => "Code 49",
            'U' => "MaxiCode",
            'X' => "Other",
            'Y' => "System expansion",
            'Z' => "Non-barcode",
            'c' => "Channel Code",
            'd' if m == "2" => "GS1 DataMatrix",
            'd' => "Data Matrix",
            'e' if m == "0" => "GS1 DataBar",
            'e' => "GS1 Composite",
            'o' => "OCR",
            'p' => "PosiCode",
            's' => "SuperCode",
            'z' => "Aztec",
            _ => "Unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(data: &[u8]) -> (Option<String>, &[u8]) {
        let (sym, rest) = split_aim(data);
        (sym.map(|s| s.as_aim()), rest)
    }

    #[test]
    fn vectors_from_protocols_1_5() {
        assert_eq!(
            split(b"]E05901234123457"),
            (Some("]E0".into()), &b"5901234123457"[..])
        );
        assert_eq!(
            split(b"]E496385074"),
            (Some("]E4".into()), &b"96385074"[..])
        );
        assert_eq!(
            split(b"]C10107032069804988100329\x1d15210526"),
            (
                Some("]C1".into()),
                &b"0107032069804988100329\x1d15210526"[..]
            )
        );
        assert_eq!(
            split(b"]e00100123456789012"),
            (Some("]e0".into()), &b"0100123456789012"[..])
        );
        assert_eq!(
            split(b"]Q3https://example.com/01/614141123452"),
            (
                Some("]Q3".into()),
                &b"https://example.com/01/614141123452"[..]
            )
        );
    }

    #[test]
    fn no_identifier() {
        assert_eq!(split(b"5901234123457"), (None, &b"5901234123457"[..]));
        assert_eq!(split(b"]"), (None, &b"]"[..]));
        assert_eq!(split(b"]C"), (None, &b"]C"[..]));
        assert_eq!(split(b"]W1abc"), (None, &b"]W1abc"[..]));
        assert_eq!(split(b"]C\x1dabc"), (None, &b"]C\x1dabc"[..]));
        assert_eq!(split(b""), (None, &b""[..]));
    }

    #[test]
    fn y_modifier_length_is_digit_plus_one() {
        let (sym, rest) = split_aim(b"]Y2ABdata");
        assert_eq!(sym.unwrap().modifier, "2AB");
        assert_eq!(rest, b"data");
        let (sym, rest) = split_aim(b"]Y0data");
        assert_eq!(sym.unwrap().modifier, "0");
        assert_eq!(rest, b"data");
        assert_eq!(split(b"]Y5AB"), (None, &b"]Y5AB"[..]));
    }

    #[test]
    fn gs1_classification_and_names() {
        let sym = |s: &[u8]| split_aim(s).0.unwrap();
        for gs1 in [
            &b"]C1"[..],
            b"]e0",
            b"]e1",
            b"]e2",
            b"]d2",
            b"]Q3",
            b"]J1",
            b"]E0",
            b"]E3",
            b"]E4",
        ] {
            assert!(sym(gs1).is_gs1(), "{}", sym(gs1).as_aim());
        }
        for other in [&b"]C0"[..], b"]A0", b"]E1", b"]d1", b"]Q1", b"]I1"] {
            assert!(!sym(other).is_gs1(), "{}", sym(other).as_aim());
        }
        assert_eq!(sym(b"]C1").name(), "GS1-128");
        assert_eq!(sym(b"]E0").name(), "EAN-13/UPC-A");
        assert_eq!(sym(b"]E4").name(), "EAN-8");
        assert_eq!(sym(b"]A0").name(), "Code 39");
        assert_eq!(sym(b"]d2").name(), "GS1 DataMatrix");
    }

    proptest! {
        #[test]
        fn never_panics_and_loses_nothing(data in prop::collection::vec(any::<u8>(), 0..12)) {
            let (sym, rest) = split_aim(&data);
            let prefix = sym.map(|s| s.as_aim()).unwrap_or_default();
            prop_assert_eq!([prefix.as_bytes(), rest].concat(), data);
        }
    }
}
