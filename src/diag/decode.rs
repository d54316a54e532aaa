//! `storenode diag decode [--json] VALUE... | -`: explains barcodes and EPCs for people.
//! Pure apart from reading stdin and writing stdout: no database, no running node.

use std::io::{BufRead, Write};

use serde_json::Value;

use crate::gs1::RcnRegion;
use crate::gs1::explain::explain;

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// One JSON object per value, each on its own line.
    #[arg(long)]
    pub json: bool,
    /// Country layout for variable-measure EAN-13s (se, no, de, dk, gb, fi, baltics, none).
    #[arg(long, default_value = "none")]
    pub rcn_region: String,
    /// Barcode data (an AIM prefix like `]C1` optional; GS as the byte 0x1D or the text
    /// `<GS>`) or EPC hex (`epc:` forces it). `-` reads one value per line from stdin.
    #[arg(required = true)]
    pub values: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("--rcn-region: {0}")]
    Region(#[from] crate::gs1::Gs1Error),
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

/// Explains every value (stdin lines in place of `-`) to `out`.
pub fn run(args: &DecodeArgs, stdin: impl BufRead, mut out: impl Write) -> Result<(), DecodeError> {
    let region: RcnRegion = args.rcn_region.parse()?;
    let mut stdin = Some(stdin);
    for value in &args.values {
        if value == "-" {
            // Stdin can be read once; a second `-` sees it empty.
            let Some(input) = stdin.take() else { continue };
            for line in input.split(b'\n') {
                let line = line.map_err(DecodeError::Stdin)?;
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\r');
                if !text.trim().is_empty() {
                    write_one(&mut out, text, region, args.json)?;
                }
            }
        } else {
            write_one(&mut out, value, region, args.json)?;
        }
    }
    out.flush().map_err(DecodeError::Output)
}

fn write_one(
    out: &mut impl Write,
    value: &str,
    region: RcnRegion,
    json: bool,
) -> Result<(), DecodeError> {
    let explained = explain(value, region);
    let text = if json {
        format!("{explained}\n")
    } else {
        human(value, &explained)
    };
    out.write_all(text.as_bytes()).map_err(DecodeError::Output)
}

/// The explanation as a few indented lines under the value.
pub fn human(value: &str, explained: &Value) -> String {
    let printable = value.replace('\u{1d}', "<GS>");
    let mut lines = vec![printable];
    let text = |key: &str| explained.get(key).and_then(Value::as_str);
    match text("kind") {
        Some("epc") => epc_lines(explained, &mut lines),
        _ => barcode_lines(explained, &mut lines),
    }
    let mut out = lines.join("\n  ");
    out.push('\n');
    out
}

fn epc_lines(explained: &Value, lines: &mut Vec<String>) {
    let text = |key: &str| explained.get(key).and_then(Value::as_str);
    let scheme = text("scheme").unwrap_or("unknown");
    if scheme == "unknown" {
        lines.push(format!(
            "EPC not decodable as GS1: {} (kept as raw hex {})",
            text("reason").unwrap_or("unknown header"),
            text("hex").unwrap_or("")
        ));
        return;
    }
    let filter = explained
        .get("filter")
        .map_or(String::new(), Value::to_string);
    lines.push(format!("EPC {scheme}, filter {filter}"));
    if let Some(gtin) = text("gtin14") {
        lines.push(format!(
            "GTIN-14 {gtin}, serial {}",
            text("serial").unwrap_or("?")
        ));
    }
    if let Some(sscc) = text("sscc") {
        lines.push(format!("SSCC {sscc}"));
    }
    if let Some(giai) = text("giai") {
        lines.push(format!("GIAI {giai}"));
    }
    if let Some(uri) = text("epc_uri") {
        lines.push(uri.to_owned());
    }
}

fn barcode_lines(explained: &Value, lines: &mut Vec<String>) {
    let text = |key: &str| explained.get(key).and_then(Value::as_str);
    let symbology = text("symbology").unwrap_or("no symbology identifier");
    let valid = explained.get("valid").and_then(Value::as_bool) == Some(true);
    lines.push(format!(
        "barcode, {symbology}, {}",
        if valid { "valid" } else { "INVALID" }
    ));
    if let Some(error) = text("error") {
        lines.push(format!("error: {error}"));
    }
    if let Some(gtin) = text("gtin14") {
        lines.push(format!("GTIN-14 {gtin}"));
    }
    if let Some(ai) = explained.get("ai").and_then(Value::as_object) {
        for (key, value) in ai {
            lines.push(format!("({key}) {}", value.as_str().unwrap_or_default()));
        }
    }
    if let Some(rcn) = explained.get("rcn") {
        lines.push(format!("variable measure: {rcn}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(values: &[&str], json: bool, stdin: &str) -> String {
        let args = DecodeArgs {
            json,
            rcn_region: "none".into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let mut out = Vec::new();
        run(&args, stdin.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_lines_one_per_value() {
        let out = decode(
            &["3074257BF7194E4000001A85", "-"],
            true,
            "5901234123458\n\n",
        );
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["gtin14"], "80614141123458");
        assert_eq!(lines[1]["valid"], false);
    }

    #[test]
    fn human_text_explains() {
        let out = decode(&["]C10107032069804988100329<GS>15210526"], false, "");
        assert!(out.contains("barcode, ]C1, valid"), "{out}");
        assert!(out.contains("(10) 0329"), "{out}");
        let epc = decode(&["E28011704000021D35AE4008"], false, "");
        assert!(epc.contains("not decodable as GS1"), "{epc}");
    }

    #[test]
    fn bad_region_is_an_error() {
        let args = DecodeArgs {
            json: true,
            rcn_region: "mars".into(),
            values: vec!["1".into()],
        };
        let err = run(&args, &b""[..], Vec::new()).unwrap_err();
        assert!(err.to_string().starts_with("--rcn-region"), "{err}");
    }
}
