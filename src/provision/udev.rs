//! Serial-number udev rules for the devices a provisioning names: each device entry with a
//! `usb_serial` gets a stable `/dev/storenode/<id>` whatever USB port it is plugged into,
//! and the configuration points at that name. Pure: the devices found (`diag ports`) and
//! the wanted ones in, the rules text and notes out.

use std::fmt::Write as _;

use crate::devices::ports::PortInfo;

/// A device the provisioning wants: its configuration id and USB serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub id: String,
    pub usb_serial: String,
}

/// Where the rules go on the box.
pub const RULES_FILE: &str = "99-storenode-serial.rules";

/// The stable device name udev creates for `id`.
pub fn device_path(id: &str) -> String {
    format!("/dev/storenode/{id}")
}

/// The rules, and a note for each wanted device not plugged in now (its rule is written
/// anyway: it applies once the device is connected) and each USB port nobody asked for.
pub fn rules(wanted: &[Wanted], found: &[PortInfo]) -> (String, Vec<String>) {
    let mut out = String::from(
        "# Written by `storenode provision`: stable names for this store's serial devices,\n\
         # matched by USB serial number. Re-run provisioning to change them.\n\
         SUBSYSTEM!=\"tty\", GOTO=\"storenode_serial_end\"\n",
    );
    let mut notes = Vec::new();
    for device in wanted {
        let port = found
            .iter()
            .find(|p| p.serial.as_deref() == Some(device.usb_serial.as_str()));
        let vendor = port
            .and_then(|p| p.vid.as_deref())
            .map(|vid| format!(", ATTRS{{idVendor}}==\"{vid}\""))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "SUBSYSTEMS==\"usb\"{vendor}, ATTRS{{serial}}==\"{}\", SYMLINK+=\"storenode/{}\", GROUP=\"dialout\", MODE=\"0660\"",
            escape(&device.usb_serial),
            device.id
        );
        match port {
            Some(p) => notes.push(format!(
                "{} is {} (serial {})",
                device.id, p.name, device.usb_serial
            )),
            None => notes.push(format!(
                "{}: no device with USB serial {} is plugged in now; its rule applies once it is",
                device.id, device.usb_serial
            )),
        }
    }
    for port in found {
        let known = port
            .serial
            .as_ref()
            .is_some_and(|s| wanted.iter().any(|w| &w.usb_serial == s));
        if port.kind == "usb" && !known {
            notes.push(format!(
                "found {} ({}:{} serial {}) not in the provisioning: add it under [devices] with usb_serial to name it",
                port.name,
                port.vid.as_deref().unwrap_or("?"),
                port.pid.as_deref().unwrap_or("?"),
                port.serial.as_deref().unwrap_or("none")
            ));
        }
    }
    out.push_str("LABEL=\"storenode_serial_end\"\n");
    (out, notes)
}

/// udev strings cannot hold a quote or a backslash; serial numbers never need them.
fn escape(value: &str) -> String {
    value.chars().filter(|c| *c != '"' && *c != '\\').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, serial: Option<&str>) -> PortInfo {
        PortInfo {
            name: name.into(),
            kind: "usb",
            vid: Some("0c2e".into()),
            pid: Some("0b61".into()),
            serial: serial.map(Into::into),
            manufacturer: None,
            product: None,
        }
    }

    #[test]
    fn a_rule_per_wanted_device_with_its_vendor_when_found() {
        let wanted = [
            Wanted {
                id: "scanner0".into(),
                usb_serial: "19012B0123".into(),
            },
            Wanted {
                id: "door".into(),
                usb_serial: "A50285BI".into(),
            },
        ];
        let found = [
            port("/dev/ttyACM0", Some("19012B0123")),
            port("/dev/ttyACM1", Some("OTHER")),
        ];
        let (text, notes) = rules(&wanted, &found);
        assert!(text.contains("ATTRS{idVendor}==\"0c2e\", ATTRS{serial}==\"19012B0123\", SYMLINK+=\"storenode/scanner0\""), "{text}");
        assert!(
            text.contains("ATTRS{serial}==\"A50285BI\", SYMLINK+=\"storenode/door\""),
            "{text}"
        );
        assert!(
            notes.iter().any(|n| n.contains("scanner0 is /dev/ttyACM0")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("door: no device")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("found /dev/ttyACM1")),
            "{notes:?}"
        );
    }

    #[test]
    fn quotes_cannot_break_out_of_a_rule() {
        let wanted = [Wanted {
            id: "s".into(),
            usb_serial: "a\", RUN+=\"/bin/sh".into(),
        }];
        let (text, _) = rules(&wanted, &[]);
        assert!(!text.contains("RUN+=\"/bin/sh"), "{text}");
    }
}
