//! Pure device protocols: bytes in, values out, no I/O (sans-IO, like rumqttc's codecs).
//!
//! * [`barcode`]: serial barcode scanners (prefix / suffix / STX-ETX framing).
//! * [`m100`], [`mercury`], [`chafon`]: UHF RFID reader serial protocols.
//! * What the RFID protocols share has one home each: frame search and resynchronisation
//!   (`resync`), the checksums ([`crc`]), Gen2 PC/EPC handling ([`gen2`]) and bounds-checked
//!   reads of reply data (`cursor`).
//!
//! The RFID decoders share one policy: a serial line delivers noise, so bad data is *counted*
//! ([`DecodeStats`]) and skipped byte by byte until a valid frame lines up again. A decoder
//! only returns `Err` for real I/O errors, because `FramedRead` ends the stream on `Err`.
//! Partial frames are `Ok(None)` and the buffer never holds more than one maximal frame
//! while waiting.

pub mod barcode;
pub mod chafon;
pub mod crc;
mod cursor;
pub mod gen2;
pub mod m100;
pub mod mercury;
mod resync;
#[cfg(test)]
mod test_support;

use std::fmt;
use std::str::FromStr;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

pub use chafon::ChafonLayout;

/// The only error a device decoder returns: the transport failed. Malformed device data is
/// never an error (see the module docs).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("serial I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters kept by each RFID decoder; bad input shows up here instead of as errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames that passed length, end-marker and checksum checks.
    pub frames: u64,
    /// Candidate frames whose checksum or end marker was wrong.
    pub bad_checksum: u64,
    /// Bytes skipped while hunting for a frame start (includes the remains of rejected frames).
    pub garbage_bytes: u64,
    /// Headers announcing a frame longer than the protocol's cap.
    pub oversized: u64,
    /// Valid frames this decoder does not understand (unknown command, malformed payload).
    pub unhandled: u64,
}

/// One tag observation, independent of the reader protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRead {
    pub epc: Vec<u8>,
    /// Gen2 protocol-control word, when the reader reports it.
    pub pc: Option<u16>,
    pub rssi_dbm: Option<i16>,
    /// 1-based antenna port; 1 for single-port modules.
    pub antenna: u8,
    pub frequency_khz: Option<u32>,
    /// Whether the tag's CRC-16 over PC+EPC matched, when the reader passes it through.
    pub tag_crc_ok: Option<bool>,
}

/// What a reader says about itself; each protocol fills the fields it has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderInfo {
    pub firmware: Option<String>,
    pub hardware: Option<String>,
    pub manufacturer: Option<String>,
    pub power_centi_dbm: Option<u16>,
    pub region: Option<Region>,
    pub scan_time_ms: Option<u32>,
}

/// A protocol-independent reader→host event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    Tag(TagRead),
    Info(ReaderInfo),
    /// The reader accepted the command with this opcode.
    Ack {
        command: u8,
    },
    /// An inventory round ended without tags.
    NoTag,
    /// The reader rejected a command or reported a failure.
    Error {
        code: u16,
        message: String,
    },
    /// A non-fatal condition the reader reports while working (e.g. temperature throttling).
    Warning {
        code: u16,
        message: String,
    },
    /// The reader is alive (periodic status during continuous reading).
    KeepAlive,
}

/// Regulatory regions the daemon can ask a reader for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    Eu,
    Us,
    Cn,
    Jp,
    Kr,
    Au,
    In,
}

impl Region {
    pub const ALL: [Region; 7] = [
        Region::Eu,
        Region::Us,
        Region::Cn,
        Region::Jp,
        Region::Kr,
        Region::Au,
        Region::In,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Region::Eu => "eu",
            Region::Us => "us",
            Region::Cn => "cn",
            Region::Jp => "jp",
            Region::Kr => "kr",
            Region::Au => "au",
            Region::In => "in",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown region {0:?}; expected one of eu, us, cn, jp, kr, au, in")]
pub struct RegionParseError(pub String);

impl FromStr for Region {
    type Err = RegionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Region::ALL
            .into_iter()
            .find(|region| region.as_str().eq_ignore_ascii_case(wanted))
            .or(match wanted.to_ascii_lowercase().as_str() {
                "na" | "fcc" => Some(Region::Us),
                "etsi" => Some(Region::Eu),
                _ => None,
            })
            .ok_or_else(|| RegionParseError(s.to_owned()))
    }
}

/// The serial protocol spoken by a configured RFID reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderProtocol {
    M100,
    Mercury,
    Chafon(ChafonLayout),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reader protocol {0:?}; expected m100, mercury, chafon, chafon-new or chafon-auto")]
pub struct ProtocolParseError(pub String);

impl FromStr for ReaderProtocol {
    type Err = ProtocolParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "m100" => Ok(ReaderProtocol::M100),
            "mercury" | "thingmagic" => Ok(ReaderProtocol::Mercury),
            "chafon" => Ok(ReaderProtocol::Chafon(ChafonLayout::Old)),
            "chafon-new" => Ok(ReaderProtocol::Chafon(ChafonLayout::New)),
            "chafon-auto" => Ok(ReaderProtocol::Chafon(ChafonLayout::Auto)),
            _ => Err(ProtocolParseError(s.to_owned())),
        }
    }
}

impl fmt::Display for ReaderProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReaderProtocol::M100 => "m100",
            ReaderProtocol::Mercury => "mercury",
            ReaderProtocol::Chafon(ChafonLayout::Old) => "chafon",
            ReaderProtocol::Chafon(ChafonLayout::New) => "chafon-new",
            ReaderProtocol::Chafon(ChafonLayout::Auto) => "chafon-auto",
        })
    }
}

/// A host command that cannot be expressed in the reader's protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{protocol} readers have no code for region {region}")]
    UnsupportedRegion {
        protocol: &'static str,
        region: Region,
    },
    #[error(
        "{protocol} readers accept {min_centi_dbm}..={max_centi_dbm} centi-dBm, got {requested}"
    )]
    PowerOutOfRange {
        protocol: &'static str,
        requested: u16,
        min_centi_dbm: u16,
        max_centi_dbm: u16,
    },
}

/// Host→reader frames the daemon's driver needs, per protocol.
pub trait ReaderCommands {
    /// Frames to send once after opening the port, before anything else.
    fn init_sequence(&self) -> Vec<Vec<u8>>;
    /// Starts reading. For polling protocols (see [`ReaderCommands::stop_inventory`]) this is
    /// one inventory round and must be re-sent at an interval.
    fn start_inventory(&self) -> Vec<u8>;
    /// `None` for protocols without a continuous mode (Chafon): the driver polls with
    /// `start_inventory` at an interval longer than the reader's scan time instead.
    fn stop_inventory(&self) -> Option<Vec<u8>>;
    fn set_power(&self, centi_dbm: u16) -> Result<Vec<u8>, CommandError>;
    fn set_region(&self, region: Region) -> Result<Vec<u8>, CommandError>;
    fn get_firmware(&self) -> Vec<u8>;
    /// True when the driver must keep sending `start_inventory` to keep reading.
    fn needs_polling(&self) -> bool {
        self.stop_inventory().is_none()
    }
}

impl ReaderCommands for ReaderProtocol {
    fn init_sequence(&self) -> Vec<Vec<u8>> {
        match self {
            ReaderProtocol::M100 => Vec::new(),
            // A Mercury module may power up in its bootloader; booting an already running
            // firmware is harmless, and every read needs the Gen2 protocol selected.
            ReaderProtocol::Mercury => vec![
                mercury::encode_boot_firmware(),
                mercury::encode_set_protocol_gen2(),
            ],
            ReaderProtocol::Chafon(_) => Vec::new(),
        }
    }

    fn start_inventory(&self) -> Vec<u8> {
        match self {
            ReaderProtocol::M100 => m100::encode_multi_poll(m100::MULTI_POLL_ROUNDS),
            ReaderProtocol::Mercury => mercury::encode_start_continuous_read(),
            ReaderProtocol::Chafon(_) => chafon::encode_inventory(chafon::BROADCAST),
        }
    }

    fn stop_inventory(&self) -> Option<Vec<u8>> {
        match self {
            ReaderProtocol::M100 => Some(m100::encode_stop_multi_poll()),
            ReaderProtocol::Mercury => Some(mercury::encode_stop_continuous_read()),
            ReaderProtocol::Chafon(_) => None,
        }
    }

    fn set_power(&self, centi_dbm: u16) -> Result<Vec<u8>, CommandError> {
        match self {
            ReaderProtocol::M100 => m100::encode_set_tx_power(centi_dbm),
            ReaderProtocol::Mercury => mercury::encode_set_read_power(centi_dbm),
            ReaderProtocol::Chafon(_) => chafon::encode_set_power(chafon::BROADCAST, centi_dbm),
        }
    }

    fn set_region(&self, region: Region) -> Result<Vec<u8>, CommandError> {
        match self {
            ReaderProtocol::M100 => m100::encode_set_region(region),
            ReaderProtocol::Mercury => mercury::encode_set_region(region),
            ReaderProtocol::Chafon(_) => chafon::encode_set_region(chafon::BROADCAST, region),
        }
    }

    fn get_firmware(&self) -> Vec<u8> {
        match self {
            ReaderProtocol::M100 => m100::encode_get_info(m100::InfoKind::Software),
            ReaderProtocol::Mercury => mercury::encode_get_version(),
            ReaderProtocol::Chafon(_) => chafon::encode_get_reader_info(chafon::BROADCAST),
        }
    }
}

/// One decoder for whichever protocol a port is configured with.
#[derive(Debug)]
pub enum ReaderCodec {
    M100(m100::M100Codec),
    Mercury(mercury::MercuryCodec),
    Chafon(chafon::ChafonCodec),
}

impl ReaderCodec {
    pub fn new(protocol: ReaderProtocol) -> Self {
        match protocol {
            ReaderProtocol::M100 => ReaderCodec::M100(m100::M100Codec::new()),
            ReaderProtocol::Mercury => ReaderCodec::Mercury(mercury::MercuryCodec::new()),
            ReaderProtocol::Chafon(layout) => ReaderCodec::Chafon(chafon::ChafonCodec::new(layout)),
        }
    }

    pub fn stats(&self) -> DecodeStats {
        match self {
            ReaderCodec::M100(codec) => codec.stats(),
            ReaderCodec::Mercury(codec) => codec.stats(),
            ReaderCodec::Chafon(codec) => codec.stats(),
        }
    }
}

impl Decoder for ReaderCodec {
    type Item = ReaderEvent;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        match self {
            ReaderCodec::M100(codec) => codec.decode(buf),
            ReaderCodec::Mercury(codec) => codec.decode(buf),
            ReaderCodec::Chafon(codec) => codec.decode(buf),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<ReaderEvent>, CodecError> {
        match self {
            ReaderCodec::M100(codec) => codec.decode_eof(buf),
            ReaderCodec::Mercury(codec) => codec.decode_eof(buf),
            ReaderCodec::Chafon(codec) => codec.decode_eof(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_from_config_strings() {
        assert_eq!("m100".parse(), Ok(ReaderProtocol::M100));
        assert_eq!("Mercury".parse(), Ok(ReaderProtocol::Mercury));
        assert_eq!(
            "chafon".parse(),
            Ok(ReaderProtocol::Chafon(ChafonLayout::Old))
        );
        assert_eq!(
            "chafon-new".parse(),
            Ok(ReaderProtocol::Chafon(ChafonLayout::New))
        );
        assert!("llrp".parse::<ReaderProtocol>().is_err());
        for protocol in ["m100", "mercury", "chafon", "chafon-new", "chafon-auto"] {
            let parsed: ReaderProtocol = protocol.parse().unwrap();
            assert_eq!(parsed.to_string(), protocol);
        }
    }

    #[test]
    fn regions_parse_case_insensitively() {
        assert_eq!("EU".parse(), Ok(Region::Eu));
        assert_eq!(" us ".parse(), Ok(Region::Us));
        assert_eq!("fcc".parse(), Ok(Region::Us));
        let err = "mars".parse::<Region>().unwrap_err();
        assert!(err.to_string().contains("mars"));
        for region in Region::ALL {
            assert_eq!(region.as_str().parse(), Ok(region));
        }
    }

    #[test]
    fn command_vectors_per_protocol() {
        assert_eq!(
            ReaderProtocol::M100.start_inventory(),
            hex::decode("BB00270003222710837E").unwrap()
        );
        assert_eq!(
            ReaderProtocol::M100.stop_inventory(),
            Some(hex::decode("BB00280000287E").unwrap())
        );
        assert_eq!(
            ReaderProtocol::Mercury.start_inventory(),
            hex::decode("FF102F0000012200000507221000 1B03E801FFDD2B".replace(' ', "")).unwrap()
        );
        let chafon = ReaderProtocol::Chafon(ChafonLayout::New);
        assert_eq!(chafon.start_inventory(), hex::decode("04FF011BB4").unwrap());
        assert_eq!(chafon.stop_inventory(), None);
        assert!(chafon.needs_polling());
        assert!(!ReaderProtocol::Mercury.needs_polling());
        assert_eq!(chafon.get_firmware(), hex::decode("04FF211995").unwrap());
    }

    #[test]
    fn unsupported_region_is_an_error_not_a_guess() {
        let err = ReaderProtocol::M100.set_region(Region::Au).unwrap_err();
        assert!(matches!(err, CommandError::UnsupportedRegion { .. }));
        assert!(ReaderProtocol::Mercury.set_region(Region::Au).is_ok());
    }
}
