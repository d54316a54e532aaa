//! `diag probe PORT`: finds the baud rate and protocol of an unknown device.
//!
//! At each common baud rate it first listens (a scanner sends a line when a barcode is
//! scanned), then asks each RFID protocol for the reader's version and sees which decoder
//! understands the answer. The decoders are the daemon's own (`crate::devices::codec`).
//! The detection is pure ([`detect_scanner`], [`detect_reader`]); [`run`] does the I/O.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use tokio_util::codec::Decoder;

use crate::devices::codec::barcode::{BarcodeCodec, BarcodeFraming};
use crate::devices::codec::{
    ChafonLayout, ReaderCodec, ReaderCommands, ReaderEvent, ReaderProtocol,
};

pub const BAUDS: [u32; 5] = [9600, 19200, 38400, 57600, 115_200];
const REPLY_WINDOW: Duration = Duration::from_millis(600);
const READ_SLICE: Duration = Duration::from_millis(50);
/// Bytes kept per listening window; a scanner line is far shorter.
const MAX_CAPTURE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "{port} is in use by the running storenode ({component}); stop it first (systemctl stop storenode) or watch it with `storenode diag tail`"
    )]
    HeldByNode { port: String, component: String },
    #[error("{port} is busy: another program holds it (the running storenode?)")]
    Busy { port: String },
    #[error("cannot open {port}: {reason}")]
    Open { port: String, reason: String },
    #[error("{port}: {source}")]
    Io {
        port: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub baud: u32,
    /// "scanner" or "rfid".
    pub device: &'static str,
    /// "lines", "stx-etx", or the reader protocol (m100, mercury, chafon).
    pub protocol: String,
    /// What was seen: scanned codes, or the reader's answer.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// How long to listen for scans at each baud rate.
    pub listen: Duration,
    /// Only listen; never send a command to the device.
    pub listen_only: bool,
}

/// Scans in `bytes`, if they look like a scanner's output at the right baud rate: whole
/// frames of printable text. Wrong baud rates produce garbage, which fails this test.
pub fn detect_scanner(bytes: &[u8]) -> Option<(String, Vec<String>)> {
    for (name, framing) in [
        ("stx-etx", BarcodeFraming::stx_etx(b"")),
        ("lines", BarcodeFraming::default()),
    ] {
        let mut codec = BarcodeCodec::new(framing);
        let mut buf = BytesMut::from(bytes);
        let mut scans = Vec::new();
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            scans.push(frame.data);
        }
        let printable = |data: &Vec<u8>| {
            !data.is_empty()
                && data
                    .iter()
                    .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == 0x1d)
        };
        if !scans.is_empty() && scans.iter().all(printable) {
            let shown = scans
                .iter()
                .map(|s| String::from_utf8_lossy(s).replace('\u{1d}', "<GS>"))
                .collect();
            return Some((name.to_string(), shown));
        }
    }
    None
}

/// The reader's answer decoded with `protocol`, if that decoder recognises a frame in it.
pub fn detect_reader(protocol: ReaderProtocol, bytes: &[u8]) -> Option<Vec<String>> {
    let mut codec = ReaderCodec::new(protocol);
    let mut buf = BytesMut::from(bytes);
    let mut events = Vec::new();
    while let Ok(Some(event)) = codec.decode(&mut buf) {
        events.push(describe(&event));
    }
    (!events.is_empty()).then_some(events)
}

fn describe(event: &ReaderEvent) -> String {
    match event {
        ReaderEvent::Info(info) => {
            let parts: Vec<String> = [
                info.manufacturer
                    .as_ref()
                    .map(|m| format!("manufacturer {m}")),
                info.hardware.as_ref().map(|h| format!("hardware {h}")),
                info.firmware.as_ref().map(|f| format!("firmware {f}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!("reader info: {}", parts.join(", "))
        }
        ReaderEvent::Tag(tag) => format!("tag {}", hex::encode_upper(&tag.epc)),
        ReaderEvent::Ack { command } => format!("acknowledged command 0x{command:02x}"),
        ReaderEvent::Error { code, message } => format!("error 0x{code:04x}: {message}"),
        other => format!("{other:?}"),
    }
}

const READER_PROTOCOLS: [ReaderProtocol; 3] = [
    ReaderProtocol::M100,
    ReaderProtocol::Mercury,
    ReaderProtocol::Chafon(ChafonLayout::Auto),
];

/// Probes `port` at each baud rate until something answers.
pub fn run(
    port: &str,
    options: ProbeOptions,
    mut progress: impl FnMut(&str),
) -> Result<Option<Detection>, ProbeError> {
    if !Path::new(port).exists() {
        return Err(ProbeError::Open {
            port: port.to_string(),
            reason: "no such device (see `storenode diag ports`)".into(),
        });
    }
    for baud in BAUDS {
        let mut serial = open(port, baud)?;
        progress(&format!(
            "{baud} baud: listening {:?} for scans…",
            options.listen
        ));
        let heard = capture(&mut *serial, port, options.listen)?;
        if let Some((framing, scans)) = detect_scanner(&heard) {
            return Ok(Some(Detection {
                baud,
                device: "scanner",
                protocol: framing,
                evidence: scans,
            }));
        }
        if options.listen_only {
            continue;
        }
        for protocol in READER_PROTOCOLS {
            progress(&format!(
                "{baud} baud: asking a {protocol} reader for its version…"
            ));
            let _ = serial.clear(tokio_serial::ClearBuffer::Input);
            serial
                .write_all(&protocol.get_firmware())
                .map_err(|source| ProbeError::Io {
                    port: port.to_string(),
                    source,
                })?;
            let answer = capture(&mut *serial, port, REPLY_WINDOW)?;
            if let Some(events) = detect_reader(protocol, &answer) {
                return Ok(Some(Detection {
                    baud,
                    device: "rfid",
                    protocol: protocol.to_string(),
                    evidence: events,
                }));
            }
        }
    }
    Ok(None)
}

fn open(port: &str, baud: u32) -> Result<Box<dyn tokio_serial::SerialPort>, ProbeError> {
    // serialport opens ports exclusively (TIOCEXCL): a port the node holds answers "busy".
    tokio_serial::new(port, baud)
        .timeout(READ_SLICE)
        .open()
        .map_err(|e| {
            let busy = matches!(
                e.kind,
                tokio_serial::ErrorKind::Io(std::io::ErrorKind::ResourceBusy)
            ) || e.description.contains("busy");
            if busy {
                ProbeError::Busy {
                    port: port.to_string(),
                }
            } else {
                ProbeError::Open {
                    port: port.to_string(),
                    reason: e.to_string(),
                }
            }
        })
}

/// Everything the device sends during `window` (bounded by [`MAX_CAPTURE`]).
fn capture(
    serial: &mut dyn tokio_serial::SerialPort,
    port: &str,
    window: Duration,
) -> Result<Vec<u8>, ProbeError> {
    let started = Instant::now();
    let mut heard = Vec::new();
    let mut chunk = [0u8; 512];
    while started.elapsed() < window && heard.len() < MAX_CAPTURE {
        match serial.read(&mut chunk) {
            Ok(n) => heard.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(ProbeError::Io {
                    port: port.to_string(),
                    source,
                });
            }
        }
    }
    Ok(heard)
}

/// Refuses a port named by one of the running node's health components.
pub fn check_not_held(
    port: &str,
    components: &std::collections::BTreeMap<String, crate::control::protocol::ComponentView>,
) -> Result<(), ProbeError> {
    let canonical = std::fs::canonicalize(port).ok();
    let mentions = |detail: &str| {
        detail.split_whitespace().any(|word| {
            let word = word.trim_matches(|c: char| c == ',' || c == ';' || c == '(' || c == ')');
            word == port
                || canonical
                    .as_deref()
                    .is_some_and(|c| std::fs::canonicalize(word).ok().as_deref() == Some(c))
        })
    };
    match components.iter().find(|(_, c)| mentions(&c.detail)) {
        Some((name, _)) => Err(ProbeError::HeldByNode {
            port: port.to_string(),
            component: name.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::codec::m100;

    #[test]
    fn scanner_lines_are_recognised() {
        let (framing, scans) = detect_scanner(b"4006381333931\r\n5901234123457\r\n").unwrap();
        assert_eq!(framing, "lines");
        assert_eq!(scans, vec!["4006381333931", "5901234123457"]);
    }

    #[test]
    fn stx_etx_records_are_recognised() {
        let (framing, scans) = detect_scanner(b"\x0296385074\x03").unwrap();
        assert_eq!(framing, "stx-etx");
        assert_eq!(scans, vec!["96385074"]);
    }

    #[test]
    fn wrong_baud_garbage_is_not_a_scanner() {
        assert!(detect_scanner(&[0xf0, 0x80, 0x0d, 0x0a, 0xfe, 0x00, 0x0d, 0x0a]).is_none());
        assert!(detect_scanner(b"").is_none());
    }

    #[test]
    fn an_m100_answer_is_recognised_by_its_decoder_only() {
        let answer = m100::encode_info_response(m100::InfoKind::Software, "V2.3.5");
        let events = detect_reader(ReaderProtocol::M100, &answer).unwrap();
        assert!(events.iter().any(|e| e.contains("V2.3.5")), "{events:?}");
        assert!(detect_reader(ReaderProtocol::Mercury, &answer).is_none());
    }

    #[test]
    fn a_port_named_by_a_component_is_refused() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(
            "device.scanner1".to_string(),
            crate::control::protocol::ComponentView {
                state: "ok".into(),
                detail: "reading /dev/ttyUSB7 at 9600 baud".into(),
                since: String::new(),
                critical: false,
            },
        );
        assert!(matches!(
            check_not_held("/dev/ttyUSB7", &map),
            Err(ProbeError::HeldByNode { .. })
        ));
        assert!(check_not_held("/dev/ttyUSB8", &map).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = detect_scanner(&bytes);
            for protocol in READER_PROTOCOLS {
                let _ = detect_reader(protocol, &bytes);
            }
        }
    }
}
