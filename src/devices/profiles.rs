//! Device model profiles: the serial settings and protocol of each supported scanner or
//! reader model, kept as TOML in `hardware/profiles/` and compiled into the binary so a
//! config can say `profile = "yrm100"` instead of repeating baud, parity and protocol.

use serde::Deserialize;

/// Every profile shipped in `hardware/profiles/`, by file stem.
const BUILTIN: &[(&str, &str)] = &[
    (
        "generic-scanner-9600",
        include_str!("../../hardware/profiles/generic-scanner-9600.toml"),
    ),
    (
        "honeywell-4820i",
        include_str!("../../hardware/profiles/honeywell-4820i.toml"),
    ),
    (
        "stx-etx-scanner",
        include_str!("../../hardware/profiles/stx-etx-scanner.toml"),
    ),
    (
        "yrm100",
        include_str!("../../hardware/profiles/yrm100.toml"),
    ),
    (
        "thingmagic-m6e-nano",
        include_str!("../../hardware/profiles/thingmagic-m6e-nano.toml"),
    ),
    (
        "chafon-uhfreader18",
        include_str!("../../hardware/profiles/chafon-uhfreader18.toml"),
    ),
    (
        "chafon-ur-new",
        include_str!("../../hardware/profiles/chafon-ur-new.toml"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    Scanner,
    Reader,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub model: String,
    pub kind: ProfileKind,
    /// Reader protocol name, as in `[[devices.readers]] protocol`.
    pub protocol: Option<String>,
    #[serde(default)]
    pub usb: UsbIds,
    #[serde(default)]
    pub serial: ProfileSerial,
    #[serde(default)]
    pub framing: ProfileFraming,
    #[serde(default)]
    pub reader: ProfileReader,
}

/// USB ids for the udev rules; documentation only (the daemon opens paths).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbIds {
    pub vendor_id: Option<String>,
    pub product_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSerial {
    pub baud: Option<u32>,
    pub data_bits: Option<u8>,
    pub parity: Option<String>,
    pub stop_bits: Option<u8>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFraming {
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub stx_etx: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileReader {
    /// The module's maximum transmit power; a configured power above it is refused.
    pub max_power_cdbm: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile {name:?}; known profiles: {known}")]
    Unknown { name: String, known: String },
    #[error("profile {name:?} is for a {actual}, not a {wanted}")]
    WrongKind {
        name: String,
        actual: &'static str,
        wanted: &'static str,
    },
    /// A broken built-in file: caught by the unit test, reported rather than panicking.
    #[error("built-in profile {name:?} is malformed: {reason}")]
    Malformed { name: String, reason: String },
}

impl ProfileKind {
    fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Scanner => "scanner",
            ProfileKind::Reader => "reader",
        }
    }
}

/// Names of all built-in profiles, for messages and `diag`.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// The built-in profile `name`, checked to be of `kind`.
pub fn lookup(name: &str, kind: ProfileKind) -> Result<Profile, ProfileError> {
    let (_, text) = BUILTIN
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| ProfileError::Unknown {
            name: name.to_owned(),
            known: names().join(", "),
        })?;
    let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Malformed {
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    if profile.kind != kind {
        return Err(ProfileError::WrongKind {
            name: name.to_owned(),
            actual: profile.kind.as_str(),
            wanted: kind.as_str(),
        });
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::codec::ReaderProtocol;

    #[test]
    fn every_builtin_profile_parses_and_readers_name_a_protocol() {
        for (name, text) in BUILTIN {
            let profile: Profile = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            match profile.kind {
                ProfileKind::Reader => {
                    let protocol = profile.protocol.as_deref().expect("reader protocol");
                    protocol.parse::<ReaderProtocol>().unwrap();
                }
                ProfileKind::Scanner => assert!(profile.protocol.is_none(), "{name}"),
            }
            assert!(profile.serial.baud.is_some(), "{name}: baud");
        }
    }

    #[test]
    fn lookup_checks_name_and_kind() {
        assert!(lookup("yrm100", ProfileKind::Reader).is_ok());
        let wrong = lookup("yrm100", ProfileKind::Scanner).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "profile \"yrm100\" is for a reader, not a scanner"
        );
        let unknown = lookup("nope", ProfileKind::Reader).unwrap_err();
        assert!(unknown.to_string().contains("honeywell-4820i"), "{unknown}");
    }
}
