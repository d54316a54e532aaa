//! `diag ports`: the serial ports of this box, with USB vendor/product ids so a technician
//! can tell the scanner from the RFID reader. Needs no running node.

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("cannot list serial ports: {0}")]
pub struct PortsError(String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortInfo {
    pub name: String,
    /// usb, pci, bluetooth or unknown.
    pub kind: &'static str,
    /// USB vendor id, 4 hex digits as `lsusb` shows it.
    pub vid: Option<String>,
    pub pid: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
}

pub fn list() -> Result<Vec<PortInfo>, PortsError> {
    let mut ports: Vec<PortInfo> = tokio_serial::available_ports()
        .map_err(|e| PortsError(e.to_string()))?
        .into_iter()
        .map(describe)
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ports)
}

fn describe(info: tokio_serial::SerialPortInfo) -> PortInfo {
    use tokio_serial::SerialPortType;
    let mut port = PortInfo {
        name: info.port_name,
        kind: "unknown",
        vid: None,
        pid: None,
        serial: None,
        manufacturer: None,
        product: None,
    };
    match info.port_type {
        SerialPortType::UsbPort(usb) => {
            port.kind = "usb";
            port.vid = Some(format!("{:04x}", usb.vid));
            port.pid = Some(format!("{:04x}", usb.pid));
            port.serial = usb.serial_number;
            port.manufacturer = usb.manufacturer;
            port.product = usb.product;
        }
        SerialPortType::PciPort => port.kind = "pci",
        SerialPortType::BluetoothPort => port.kind = "bluetooth",
        SerialPortType::Unknown => {}
    }
    port
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usb_ids_are_four_hex_digits() {
        let info = tokio_serial::SerialPortInfo {
            port_name: "/dev/ttyUSB0".into(),
            port_type: tokio_serial::SerialPortType::UsbPort(tokio_serial::UsbPortInfo {
                vid: 0x0403,
                pid: 0x6001,
                serial_number: Some("A10K".into()),
                manufacturer: Some("FTDI".into()),
                product: Some("FT232R".into()),
            }),
        };
        let port = describe(info);
        assert_eq!(port.vid.as_deref(), Some("0403"));
        assert_eq!(port.pid.as_deref(), Some("6001"));
        assert_eq!(port.kind, "usb");
        assert_eq!(port.manufacturer.as_deref(), Some("FTDI"));
    }
}
