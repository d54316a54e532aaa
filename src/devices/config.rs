//! The `[devices]` section: serial scanners and RFID readers.
//!
//! Ports are *not* checked for existence here: a scanner unplugged at boot is a runtime
//! condition (the driver retries and reports it in `/readyz`), not a configuration error.
//! A `profile` (see `hardware/profiles/`) supplies defaults; keys given explicitly win.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio_serial::{DataBits, Parity, StopBits};

use super::codec::barcode::{BarcodeFraming, DEFAULT_MAX_LEN};
use super::codec::{ReaderCommands, ReaderProtocol, Region};
use super::profiles::{self, Profile, ProfileKind};
use crate::gs1::RcnRegion;
use crate::settings::ConfigError;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDevices {
    /// Country layout of variable-measure (price/weight) EAN-13s: se, no, de, dk, gb, fi,
    /// baltics or none. Default none.
    pub rcn_region: Option<String>,
    #[serde(default)]
    pub scanners: Vec<RawScanner>,
    #[serde(default)]
    pub readers: Vec<RawReader>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawScanner {
    pub id: String,
    pub port: PathBuf,
    pub profile: Option<String>,
    pub baud: Option<u32>,
    pub data_bits: Option<u8>,
    pub parity: Option<String>,
    pub stop_bits: Option<u8>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub stx_etx: Option<bool>,
    pub max_len: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawReader {
    pub id: String,
    pub port: PathBuf,
    pub profile: Option<String>,
    pub protocol: Option<String>,
    pub baud: Option<u32>,
    pub data_bits: Option<u8>,
    pub parity: Option<String>,
    pub stop_bits: Option<u8>,
    pub region: Option<String>,
    pub power_cdbm: Option<u16>,
    pub antennas: Option<Vec<u8>>,
    pub rssi_enter_dbm: Option<i16>,
    pub absence_secs: Option<u64>,
    pub stall_secs: Option<u64>,
    pub poll_interval_ms: Option<u64>,
    #[serde(default)]
    pub exit: bool,
}

/// Validated device configuration.
#[derive(Debug, Clone, Default)]
pub struct DevicesConfig {
    pub rcn_region: Option<RcnRegion>,
    pub scanners: Vec<ScannerConfig>,
    pub readers: Vec<ReaderConfig>,
}

impl DevicesConfig {
    /// The region to interpret variable-measure barcodes with (`None` = opaque GTINs).
    pub fn rcn_region(&self) -> RcnRegion {
        self.rcn_region.unwrap_or(RcnRegion::None)
    }

    pub fn is_empty(&self) -> bool {
        self.scanners.is_empty() && self.readers.is_empty()
    }
}

/// How to open one serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    pub path: PathBuf,
    pub baud: u32,
    pub data_bits: DataBits,
    pub parity: Parity,
    pub stop_bits: StopBits,
}

#[derive(Debug, Clone)]
pub struct ScannerConfig {
    pub id: String,
    pub serial: SerialSettings,
    pub framing: BarcodeFraming,
    pub profile: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReaderConfig {
    pub id: String,
    pub serial: SerialSettings,
    pub protocol: ReaderProtocol,
    /// `None`: leave the reader's region as it is.
    pub region: Option<Region>,
    /// `None`: leave the reader's power as it is.
    pub power_centi_dbm: Option<u16>,
    /// Antenna ports whose reads count; empty = all.
    pub antennas: Vec<u8>,
    pub rssi_enter_dbm: i16,
    pub absence: Duration,
    /// An open port without a single frame for this long shows the reader as stalled.
    pub stall_after: Duration,
    /// Interval of inventory commands for polling protocols (Chafon).
    pub poll_interval: Duration,
    /// An exit gate: an unsold tag entering here raises an alert.
    pub exit: bool,
    pub profile: Option<String>,
}

const DEFAULT_RSSI_ENTER_DBM: i16 = -70;
/// Readers answer polls and probes within seconds; half a minute of nothing is a stall.
const DEFAULT_STALL_SECS: u64 = 30;
const DEFAULT_ABSENCE_SECS: u64 = 30;
const DEFAULT_POLL_INTERVAL_MS: u64 = 200;
const MAX_ID_LEN: usize = 32;
const MAX_ANTENNA: u8 = 16;

/// Builds the `ConfigError` for `key` (relative to `devices.`).
struct Keys<'a> {
    file: &'a Path,
    prefix: String,
}

impl Keys<'_> {
    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: format!("{}{key}", self.prefix),
            reason: reason.into(),
        }
    }
}

impl RawDevices {
    pub fn validate(self, file: &Path) -> Result<DevicesConfig, ConfigError> {
        let top = Keys {
            file,
            prefix: "devices.".into(),
        };
        let rcn_region = self
            .rcn_region
            .as_deref()
            .map(|r| r.parse::<RcnRegion>())
            .transpose()
            .map_err(|e| top.invalid("rcn_region", e.to_string()))?;
        let mut seen_ids: Vec<String> = Vec::new();
        let mut scanners = Vec::with_capacity(self.scanners.len());
        for (i, raw) in self.scanners.into_iter().enumerate() {
            let keys = Keys {
                file,
                prefix: format!("devices.scanners[{i}]."),
            };
            check_unique_id(&keys, &raw.id, &mut seen_ids)?;
            scanners.push(raw.validate(&keys, file)?);
        }
        let mut readers = Vec::with_capacity(self.readers.len());
        for (i, raw) in self.readers.into_iter().enumerate() {
            let keys = Keys {
                file,
                prefix: format!("devices.readers[{i}]."),
            };
            check_unique_id(&keys, &raw.id, &mut seen_ids)?;
            readers.push(raw.validate(&keys, file)?);
        }
        Ok(DevicesConfig {
            rcn_region,
            scanners,
            readers,
        })
    }
}

/// Ids name the device in events, metrics and health, so they must be unique across
/// scanners and readers, and safe in Prometheus labels and log fields.
fn check_unique_id(keys: &Keys<'_>, id: &str, seen: &mut Vec<String>) -> Result<(), ConfigError> {
    let well_formed = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !well_formed {
        return Err(keys.invalid(
            "id",
            format!("{id:?} must be 1 to {MAX_ID_LEN} letters, digits, '-' or '_'"),
        ));
    }
    if seen.iter().any(|s| s == id) {
        return Err(keys.invalid("id", format!("{id:?} is used by another scanner or reader")));
    }
    seen.push(id.to_owned());
    Ok(())
}

fn load_profile(
    keys: &Keys<'_>,
    name: Option<&str>,
    kind: ProfileKind,
) -> Result<Option<Profile>, ConfigError> {
    name.map(|n| profiles::lookup(n, kind))
        .transpose()
        .map_err(|e| keys.invalid("profile", e.to_string()))
}

/// The raw serial keys of a port, each falling back to the profile, then to 8N1.
struct SerialKeys<'a> {
    port: &'a Path,
    baud: Option<u32>,
    data_bits: Option<u8>,
    parity: Option<&'a str>,
    stop_bits: Option<u8>,
    default_baud: u32,
}

fn serial_settings(
    keys: &Keys<'_>,
    file: &Path,
    raw: SerialKeys<'_>,
    profile: Option<&Profile>,
) -> Result<SerialSettings, ConfigError> {
    let from_profile = profile.map(|p| &p.serial);
    if raw.port.as_os_str().is_empty() {
        return Err(keys.invalid("port", "must name the serial device, e.g. /dev/ttyACM0"));
    }
    let baud = raw
        .baud
        .or(from_profile.and_then(|s| s.baud))
        .unwrap_or(raw.default_baud);
    if !(300..=4_000_000).contains(&baud) {
        return Err(keys.invalid("baud", format!("{baud} is not between 300 and 4000000")));
    }
    let data_bits = match raw
        .data_bits
        .or(from_profile.and_then(|s| s.data_bits))
        .unwrap_or(8)
    {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        8 => DataBits::Eight,
        other => return Err(keys.invalid("data_bits", format!("{other} is not 5, 6, 7 or 8"))),
    };
    let parity_text = raw
        .parity
        .or(from_profile.and_then(|s| s.parity.as_deref()))
        .unwrap_or("none");
    let parity = match parity_text.to_ascii_lowercase().as_str() {
        "none" => Parity::None,
        "odd" => Parity::Odd,
        "even" => Parity::Even,
        _ => {
            return Err(keys.invalid(
                "parity",
                format!("{parity_text:?} is not none, odd or even"),
            ));
        }
    };
    let stop_bits = match raw
        .stop_bits
        .or(from_profile.and_then(|s| s.stop_bits))
        .unwrap_or(1)
    {
        1 => StopBits::One,
        2 => StopBits::Two,
        other => return Err(keys.invalid("stop_bits", format!("{other} is not 1 or 2"))),
    };
    Ok(SerialSettings {
        path: resolve(file, raw.port),
        baud,
        data_bits,
        parity,
        stop_bits,
    })
}

/// Relative paths are relative to the config file's directory, like every other path.
fn resolve(file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    file.parent().unwrap_or(Path::new(".")).join(path)
}

impl RawScanner {
    fn validate(self, keys: &Keys<'_>, file: &Path) -> Result<ScannerConfig, ConfigError> {
        let profile = load_profile(keys, self.profile.as_deref(), ProfileKind::Scanner)?;
        let serial = serial_settings(
            keys,
            file,
            SerialKeys {
                port: &self.port,
                baud: self.baud,
                data_bits: self.data_bits,
                parity: self.parity.as_deref(),
                stop_bits: self.stop_bits,
                default_baud: 9600,
            },
            profile.as_ref(),
        )?;
        let framing_defaults = profile.as_ref().map(|p| &p.framing);
        let prefix = self
            .prefix
            .or_else(|| framing_defaults.and_then(|f| f.prefix.clone()))
            .unwrap_or_default();
        let suffix = self
            .suffix
            .or_else(|| framing_defaults.and_then(|f| f.suffix.clone()))
            .unwrap_or_else(|| "crlf".into());
        let stx_etx = self
            .stx_etx
            .or(framing_defaults.and_then(|f| f.stx_etx))
            .unwrap_or(false);
        let max_len = self.max_len.unwrap_or(DEFAULT_MAX_LEN);
        let framing = BarcodeFraming::from_config(&prefix, &suffix, stx_etx, max_len)
            .map_err(|e| keys.invalid(framing_key(&e), e.to_string()))?;
        Ok(ScannerConfig {
            id: self.id,
            serial,
            framing,
            profile: self.profile,
        })
    }
}

/// Which key a framing error is about.
fn framing_key(error: &super::codec::barcode::FramingError) -> &'static str {
    use super::codec::barcode::FramingError;
    match error {
        FramingError::UnknownSuffix(_) => "suffix",
        FramingError::BadHex(..) => "prefix/suffix",
        FramingError::ZeroMaxLen => "max_len",
    }
}

impl RawReader {
    fn validate(self, keys: &Keys<'_>, file: &Path) -> Result<ReaderConfig, ConfigError> {
        let profile = load_profile(keys, self.profile.as_deref(), ProfileKind::Reader)?;
        let protocol_text = self
            .protocol
            .as_deref()
            .or(profile.as_ref().and_then(|p| p.protocol.as_deref()))
            .ok_or_else(|| {
                keys.invalid(
                    "protocol",
                    "required (m100, mercury, chafon, chafon-new or chafon-auto), or give a reader profile",
                )
            })?;
        let protocol: ReaderProtocol =
            protocol_text
                .parse()
                .map_err(|e: super::codec::ProtocolParseError| {
                    keys.invalid("protocol", e.to_string())
                })?;
        let default_baud = match protocol {
            ReaderProtocol::Chafon(_) => 57_600,
            ReaderProtocol::M100 | ReaderProtocol::Mercury => 115_200,
        };
        let serial = serial_settings(
            keys,
            file,
            SerialKeys {
                port: &self.port,
                baud: self.baud,
                data_bits: self.data_bits,
                parity: self.parity.as_deref(),
                stop_bits: self.stop_bits,
                default_baud,
            },
            profile.as_ref(),
        )?;
        let region = self.region_checked(keys, protocol)?;
        let power_centi_dbm = self.power_checked(keys, protocol, profile.as_ref())?;
        let poll_interval = self.poll_interval_checked(keys, protocol)?;
        let antennas = self.antennas.unwrap_or_default();
        if let Some(bad) = antennas.iter().find(|a| !(1..=MAX_ANTENNA).contains(*a)) {
            return Err(keys.invalid(
                "antennas",
                format!("antenna {bad} is not a port number 1 to {MAX_ANTENNA}"),
            ));
        }
        let rssi_enter_dbm = self.rssi_enter_dbm.unwrap_or(DEFAULT_RSSI_ENTER_DBM);
        if !(-120..=0).contains(&rssi_enter_dbm) {
            return Err(keys.invalid(
                "rssi_enter_dbm",
                format!("{rssi_enter_dbm} dBm is not between -120 and 0"),
            ));
        }
        let absence_secs = self.absence_secs.unwrap_or(DEFAULT_ABSENCE_SECS);
        if !(1..=86_400).contains(&absence_secs) {
            return Err(keys.invalid("absence_secs", "must be between 1 and 86400"));
        }
        let stall_secs = self.stall_secs.unwrap_or(DEFAULT_STALL_SECS);
        if !(1..=86_400).contains(&stall_secs) {
            return Err(keys.invalid("stall_secs", "must be between 1 and 86400"));
        }
        Ok(ReaderConfig {
            id: self.id,
            serial,
            protocol,
            region,
            power_centi_dbm,
            antennas,
            rssi_enter_dbm,
            absence: Duration::from_secs(absence_secs),
            stall_after: Duration::from_secs(stall_secs),
            poll_interval,
            exit: self.exit,
            profile: self.profile,
        })
    }

    fn region_checked(
        &self,
        keys: &Keys<'_>,
        protocol: ReaderProtocol,
    ) -> Result<Option<Region>, ConfigError> {
        let Some(text) = self.region.as_deref() else {
            return Ok(None);
        };
        let region: Region = text
            .parse()
            .map_err(|e: super::codec::RegionParseError| keys.invalid("region", e.to_string()))?;
        protocol
            .set_region(region)
            .map_err(|e| keys.invalid("region", e.to_string()))?;
        Ok(Some(region))
    }

    fn power_checked(
        &self,
        keys: &Keys<'_>,
        protocol: ReaderProtocol,
        profile: Option<&Profile>,
    ) -> Result<Option<u16>, ConfigError> {
        let Some(power) = self.power_cdbm else {
            return Ok(None);
        };
        protocol
            .set_power(power)
            .map_err(|e| keys.invalid("power_cdbm", e.to_string()))?;
        if let Some(max) = profile.and_then(|p| p.reader.max_power_cdbm)
            && power > max
        {
            return Err(keys.invalid(
                "power_cdbm",
                format!("{power} is above this model's maximum of {max} centi-dBm"),
            ));
        }
        Ok(Some(power))
    }

    fn poll_interval_checked(
        &self,
        keys: &Keys<'_>,
        protocol: ReaderProtocol,
    ) -> Result<Duration, ConfigError> {
        let Some(ms) = self.poll_interval_ms else {
            return Ok(Duration::from_millis(DEFAULT_POLL_INTERVAL_MS));
        };
        if !protocol.needs_polling() {
            return Err(keys.invalid(
                "poll_interval_ms",
                format!("{protocol} readers read continuously; remove this key"),
            ));
        }
        if !(20..=60_000).contains(&ms) {
            return Err(keys.invalid("poll_interval_ms", "must be between 20 and 60000"));
        }
        Ok(Duration::from_millis(ms))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
