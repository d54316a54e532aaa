//! What a provisioning asks for, from the command line or a provisioning file, and how it
//! lands in the configuration: keys provisioning owns are set, everything else in an
//! existing file (comments, hand-written sections, other terminals) stays. Pure.

use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use super::udev::Wanted;

/// A provisioning file (e.g. `/boot/firmware/storenode-provision.toml`); paths are relative
/// to the file. Every key is optional here; the command line wins over the file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionFile {
    pub store_id: Option<String>,
    pub tenant: Option<String>,
    pub node_id: Option<String>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub currency: Option<String>,
    pub broker: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub terminals: Vec<String>,
    pub catalog: Option<PathBuf>,
    /// This box runs the store's own Mosquitto, bridged to `broker` (HQ's).
    pub local_broker: Option<bool>,
    pub local_broker_port: Option<u16>,
    /// This box's server certificate and key for the lanes of the store's other boxes.
    pub lanes_cert: Option<PathBuf>,
    pub lanes_key: Option<PathBuf>,
    /// The configuration's `[devices]` section as is, plus `usb_serial` per device.
    pub devices: Option<toml::Table>,
}

impl ProvisionFile {
    pub fn parse(text: &str, file: &Path) -> Result<Self, String> {
        let mut parsed: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        let base = file.parent().unwrap_or(Path::new("."));
        for path in [
            &mut parsed.ca,
            &mut parsed.cert,
            &mut parsed.key,
            &mut parsed.catalog,
            &mut parsed.lanes_cert,
            &mut parsed.lanes_key,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        Ok(parsed)
    }
}

/// `[devices]` for the configuration (with `usb_serial` taken out, and `port` pointing at
/// the udev name of each device that had one) and the devices to write udev rules for.
pub fn split_devices(devices: &toml::Table) -> (toml::Table, Vec<Wanted>) {
    let mut config = devices.clone();
    let mut wanted = Vec::new();
    for kind in ["scanners", "readers"] {
        let Some(list) = config.get_mut(kind).and_then(|v| v.as_array_mut()) else {
            continue;
        };
        for entry in list.iter_mut().filter_map(|e| e.as_table_mut()) {
            let serial = entry.remove("usb_serial");
            let id = entry.get("id").and_then(|v| v.as_str()).map(str::to_string);
            if let (Some(serial), Some(id)) = (serial.as_ref().and_then(|s| s.as_str()), id) {
                entry.insert(
                    "port".into(),
                    toml::Value::String(super::udev::device_path(&id)),
                );
                wanted.push(Wanted {
                    id,
                    usb_serial: serial.to_string(),
                });
            }
        }
    }
    (config, wanted)
}

/// The values provisioning sets in the configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub tenant: String,
    pub store_id: String,
    /// `None`: keep what the file says, or the default for a new file.
    pub node_id: Option<String>,
    pub data_dir: Option<String>,
    pub currency: Option<String>,
    pub listen: Option<String>,
    /// Terminal id and its token file.
    pub terminals: Vec<(String, String)>,
    pub broker: Option<String>,
    /// `[ca, cert, key]` as the configuration names them.
    pub tls: Option<[String; 3]>,
    pub devices: Option<toml::Table>,
}

const HEADER: &str = "# Written by `storenode provision`; every key is explained in\n\
# /usr/share/doc/storenode/storenode.example.toml. Check with: storenode config check\n\
# Re-provisioning keeps your comments, other sections and terminals.\n";

fn set_default(table: &mut Table, key: &str, wanted: Option<&str>, default: &str) {
    match wanted {
        Some(v) => {
            table.insert(key, value(v));
        }
        None if !table.contains_key(key) => {
            table.insert(key, value(default));
        }
        None => {}
    }
}

/// `[key]` of `doc` as a standard table (made one when missing or written inline).
fn section<'a>(doc: &'a mut Table, key: &str) -> &'a mut Table {
    let item = doc.entry(key).or_insert(Item::Table(Table::new()));
    if !item.is_table() {
        let inline = item.as_inline_table().cloned().unwrap_or_default();
        *item = Item::Table(inline.into_table());
    }
    let Item::Table(table) = item else {
        unreachable!("the item was just made a table")
    };
    table
}

/// The terminals already in `existing` with their token file (`None`: inline or env).
pub fn existing_terminals(existing: &DocumentMut) -> Vec<(String, Option<String>)> {
    existing
        .get("api")
        .and_then(|api| api.get("terminals"))
        .and_then(Item::as_array_of_tables)
        .map(|list| {
            list.iter()
                .filter_map(|t| {
                    let id = t.get("id")?.as_str()?.to_string();
                    let file = t
                        .get("token_file")
                        .and_then(Item::as_str)
                        .map(str::to_string);
                    Some((id, file))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `existing` (or a new file) with `settings` applied.
pub fn apply(existing: Option<DocumentMut>, settings: &Settings) -> DocumentMut {
    let mut doc = existing.unwrap_or_else(|| {
        let mut doc = DocumentMut::new();
        doc.decor_mut().set_prefix(HEADER);
        doc
    });
    let root = doc.as_table_mut();
    let node = section(root, "node");
    node.insert("tenant", value(&settings.tenant));
    node.insert("store_id", value(&settings.store_id));
    set_default(node, "node_id", settings.node_id.as_deref(), "node1");
    set_default(
        node,
        "data_dir",
        settings.data_dir.as_deref(),
        "/var/lib/storenode",
    );
    set_default(node, "currency", settings.currency.as_deref(), "EUR");
    let api = section(root, "api");
    set_default(api, "listen", settings.listen.as_deref(), "0.0.0.0:8080");
    if !api.contains_key("terminals") && !settings.terminals.is_empty() {
        api.insert("terminals", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    if let Some(list) = api
        .get_mut("terminals")
        .and_then(Item::as_array_of_tables_mut)
    {
        for (id, file) in &settings.terminals {
            let present = list
                .iter()
                .any(|t| t.get("id").and_then(Item::as_str) == Some(id));
            if !present {
                let mut table = Table::new();
                table.insert("id", value(id));
                table.insert("token_file", value(file));
                list.push(table);
            }
        }
    }
    if let Some(broker) = &settings.broker {
        let sync = section(root, "sync");
        sync.insert("broker", value(broker));
        if let Some([ca, cert, key]) = &settings.tls {
            sync.insert("ca_file", value(ca));
            sync.insert("cert_file", value(cert));
            sync.insert("key_file", value(key));
        } else if broker.starts_with("mqtt://") {
            // A loopback broker (the store's own): no TLS, so no stale files named.
            for key in ["ca_file", "cert_file", "key_file"] {
                sync.remove(key);
            }
        }
    }
    if let Some(devices) = &settings.devices
        && let Ok(table) = toml::to_string(&toml::Value::Table(devices.clone()))
            .map_err(|e| e.to_string())
            .and_then(|text| text.parse::<DocumentMut>().map_err(|e| e.to_string()))
    {
        root.insert("devices", Item::Table(table.as_table().clone()));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            tenant: "acme".into(),
            store_id: "s042".into(),
            terminals: vec![("pos3".into(), "/etc/storenode/tokens/pos3".into())],
            ..Settings::default()
        }
    }

    const HAND_WRITTEN: &str = r#"# my notes about this box
[node]
tenant = "acme"
store_id = "s042"
node_id = "lane7"

[api]
listen = "127.0.0.1:9000"

[[api.terminals]]
id = "pos1"
token_file = "/etc/storenode/tokens/pos1"

# the scanner at the door
[[devices.scanners]]
id = "scanner0"
port = "/dev/ttyACM0"
"#;

    #[test]
    fn re_provisioning_keeps_comments_sections_terminals_and_hand_edits() {
        let existing: DocumentMut = HAND_WRITTEN.parse().unwrap();
        let text = apply(Some(existing), &settings()).to_string();
        for kept in [
            "# my notes about this box",
            "# the scanner at the door",
            "[[devices.scanners]]",
            "node_id = \"lane7\"",
            "listen = \"127.0.0.1:9000\"",
            "id = \"pos1\"",
        ] {
            assert!(text.contains(kept), "{kept} lost:\n{text}");
        }
        assert!(text.contains("id = \"pos3\""), "{text}");
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["api"]["terminals"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_new_file_gets_defaults() {
        let text = apply(None, &settings()).to_string();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["node"]["node_id"].as_str(), Some("node1"));
        assert_eq!(table["api"]["listen"].as_str(), Some("0.0.0.0:8080"));
        assert!(
            text.starts_with("# Written by `storenode provision`"),
            "{text}"
        );
    }

    #[test]
    fn devices_with_usb_serials_get_udev_names() {
        let devices: toml::Table = r#"
[[scanners]]
id = "scanner0"
port = "/dev/ttyACM0"
usb_serial = "19012B0123"
[[readers]]
id = "door"
port = "/dev/ttyUSB0"
protocol = "m100"
"#
        .parse()
        .unwrap();
        let (config, wanted) = split_devices(&devices);
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[0].id, "scanner0");
        let scanner = &config["scanners"].as_array().unwrap()[0];
        assert_eq!(scanner["port"].as_str(), Some("/dev/storenode/scanner0"));
        assert!(scanner.get("usb_serial").is_none());
        let reader = &config["readers"].as_array().unwrap()[0];
        assert_eq!(reader["port"].as_str(), Some("/dev/ttyUSB0"));
    }

    #[test]
    fn file_paths_are_relative_to_the_file() {
        let parsed = ProvisionFile::parse(
            "store_id = \"s1\"\ncert = \"s1.pem\"\nterminals = [\"pos1\"]\n",
            Path::new("/boot/firmware/storenode-provision.toml"),
        )
        .unwrap();
        assert_eq!(parsed.cert, Some(PathBuf::from("/boot/firmware/s1.pem")));
        assert!(ProvisionFile::parse("nonsense = 1", Path::new("/x")).is_err());
    }
}
