//! `diag ports`: the serial ports the box sees, as a technician reads them.

use super::style::Style;
use crate::devices::ports::PortInfo;

/// One line per port (wrapped within 80 columns).
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
    fn a_usb_port_shows_its_ids_and_label() {
        let port = PortInfo {
            name: "/dev/ttyUSB0".into(),
            kind: "usb",
            vid: Some("0403".into()),
            pid: Some("6001".into()),
            serial: Some("A10K".into()),
            manufacturer: Some("FTDI".into()),
            product: Some("FT232R".into()),
        };
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
