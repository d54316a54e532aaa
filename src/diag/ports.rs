//! `diag ports`: the serial ports of this box, with USB vendor/product ids so a technician
//! can tell the scanner from the RFID reader. Needs no running node.

use serde::Serialize;

use super::style::Style;

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

pub fn render(ports: &[PortInfo], style: Style) -> String {
    if ports.is_empty() {
        return "no serial ports found (is the scanner or reader plugged in? see `dmesg | tail`)\n"
            .into();
    }
    let mut out = String::new();
    let width = ports.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for port in ports {
        let ids = match (&port.vid, &port.pid) {
            (Some(vid), Some(pid)) => format!("{vid}:{pid}"),
            _ => "-".into(),
        };
        let label: Vec<&str> = [&port.manufacturer, &port.product]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let serial = port
            .serial
            .as_deref()
            .map(|s| format!(" serial {s}"))
            .unwrap_or_default();
        // Manufacturer, product and serial wrap under themselves within 80 columns.
        let pad = " ".repeat(width.saturating_sub(port.name.len()));
        let first = format!(
            "{}{pad}  {:<9}  {:<9}  ",
            style.heading(&port.name),
            port.kind,
            ids
        );
        let text = format!("{}{serial}", label.join(" "));
        out.push_str(&super::style::wrap(&first, width + 24, &text, width + 24));
    }
    out
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
        let text = render(&[port], Style::plain());
        assert!(
            text.contains("/dev/ttyUSB0  usb        0403:6001  FTDI FT232R"),
            "{text}"
        );
    }

    #[test]
    fn no_ports_is_explained() {
        assert!(render(&[], Style::plain()).starts_with("no serial ports found"));
    }
}
