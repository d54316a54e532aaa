//! The store's own Mosquitto (`provision --local-broker`): the shipped templates in
//! `config/mosquitto/` filled in for this store, so what provisioning writes and what the
//! sources ship cannot drift apart. Pure: text in, files to stage out.
//!
//! Layout under the Mosquitto directory (default `/etc/mosquitto`, Debian's, whose
//! `mosquitto.conf` includes `conf.d/` in name order):
//! - `conf.d/storenode-10-local.conf`: global settings and the loopback listener of the
//!   lanes on this box (the node itself), limited by `storenode/acl-local`;
//! - `conf.d/storenode-20-lanes.conf` (only with a listener certificate): the mutual-TLS
//!   listener of the lanes on the store's other boxes, with the chain's ACL `storenode/acl`;
//! - `conf.d/storenode-30-bridge.conf`: the bridge to HQ's broker with the store's
//!   certificate, a persistent session and queue, the store's topics only.
//!
//! These files are provisioning's, not a package's: no dpkg conffile is ever rewritten.

use std::path::PathBuf;

const LOCAL_TEMPLATE: &str = include_str!("../../config/mosquitto/store-local.conf");
const LANES_TEMPLATE: &str = include_str!("../../config/mosquitto/store-lanes.conf");
const BRIDGE_TEMPLATE: &str = include_str!("../../config/mosquitto/store-bridge.conf");
const ACL_TEMPLATE: &str = include_str!("../../config/mosquitto/acl");
/// Where the templates name the certificates and ACLs.
const TEMPLATE_DIR: &str = "/etc/mosquitto/storenode/";

pub const DEFAULT_DIR: &str = "/etc/mosquitto";
/// The loopback listener of the lanes on this box.
pub const DEFAULT_LOCAL_PORT: u16 = 1883;
/// The group Mosquitto reads its keys as (Mosquitto 2 loads them after dropping root).
pub const MOSQUITTO_USER: &str = "mosquitto";

/// What the store's broker is made of; every value already checked by the caller except
/// the HQ broker's address, which [`hq_address`] checks.
#[derive(Debug, Clone)]
pub struct BrokerPlan {
    /// Mosquitto's configuration directory (`/etc/mosquitto`).
    pub dir: PathBuf,
    pub tenant: String,
    pub store_id: String,
    /// `host:port` of HQ's broker, from `mqtts://host:port`.
    pub hq: String,
    pub local_port: u16,
    /// This box's server certificate and key for the lanes of other boxes.
    pub lanes: bool,
}

/// One file to write: where, what, mode, and whether Mosquitto's group must read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFile {
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub mode: u32,
    pub mosquitto_group: bool,
}

/// The PEM files the broker needs, in the order [`BrokerPlan::files`] takes them.
pub struct Pems<'a> {
    pub ca: &'a [u8],
    pub store_cert: &'a [u8],
    pub store_key: &'a [u8],
    /// `(cert, key)` of this box's listener for lanes of other boxes.
    pub lanes: Option<(&'a [u8], &'a [u8])>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "--local-broker bridges to HQ: it needs an mqtts:// --broker with --ca, --cert and --key"
    )]
    NeedsHq,
    #[error("{0:?}: HQ's broker must be mqtts://host:port (a host name or an IP address)")]
    BadAddress(String),
    #[error(
        "--lanes-cert and --lanes-key go together (this box's server certificate for the lanes of other boxes)"
    )]
    IncompleteLanes,
}

/// `host:port` of an `mqtts://` broker URL, refusing anything that could carry other text
/// into Mosquitto's configuration (it is written there verbatim).
pub fn hq_address(broker: &str) -> Result<String, BrokerError> {
    let bad = || BrokerError::BadAddress(broker.to_string());
    let rest = broker
        .strip_prefix("mqtts://")
        .ok_or(BrokerError::NeedsHq)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if !host_ok || port == 0 {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

impl BrokerPlan {
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.join("conf.d")
    }

    /// Where the certificates and ACLs go.
    pub fn secrets_dir(&self) -> PathBuf {
        self.dir.join("storenode")
    }

    /// The templates' paths, pointed at [`Self::secrets_dir`].
    fn paths(&self, text: &str) -> String {
        let dir = format!("{}/", self.secrets_dir().display());
        text.replace(TEMPLATE_DIR, &dir)
    }

    pub fn local_conf(&self) -> String {
        self.paths(&LOCAL_TEMPLATE.replace("LOCAL_PORT", &self.local_port.to_string()))
    }

    pub fn lanes_conf(&self) -> String {
        self.paths(LANES_TEMPLATE)
    }

    pub fn bridge_conf(&self) -> String {
        self.paths(
            &BRIDGE_TEMPLATE
                .replace("TENANT_ID", &self.tenant)
                .replace("STORE_ID", &self.store_id)
                .replace("HQ_BROKER", &self.hq),
        )
    }

    /// The chain's ACL for this tenant (the lanes' TLS listener, as at HQ's broker).
    pub fn acl(&self) -> String {
        ACL_TEMPLATE.replace("TENANT_ID", &self.tenant)
    }

    /// The loopback listener's ACL: what the store's certificate may do at HQ's broker,
    /// for an anonymous client. The chain's `pattern` lines become `topic` lines with the
    /// store id for `%u`; HQ's `user hq` block is left out.
    pub fn local_acl(&self) -> String {
        let mut out = String::from(
            "# Written by `storenode provision`: the loopback listener's ACL, the chain's\n\
             # (config/mosquitto/acl) for this store's certificate, for anonymous clients.\n",
        );
        for line in self.acl().lines() {
            let line = line.trim();
            if line.starts_with("user ") {
                break;
            }
            if let Some(rule) = line.strip_prefix("pattern ") {
                out.push_str("topic ");
                out.push_str(&rule.replace("%u", &self.store_id));
                out.push('\n');
            }
        }
        out
    }

    /// Every file of the store's broker, in the order they are staged.
    pub fn files(&self, pems: &Pems) -> Vec<BrokerFile> {
        let conf = |name: &str, text: String| BrokerFile {
            path: self.conf_dir().join(name),
            data: text.into_bytes(),
            mode: 0o644,
            mosquitto_group: false,
        };
        let secret = |name: &str, data: &[u8], mode: u32| BrokerFile {
            path: self.secrets_dir().join(name),
            data: data.to_vec(),
            mode,
            mosquitto_group: mode == 0o640,
        };
        let mut files = vec![
            secret("ca.pem", pems.ca, 0o644),
            secret("store.pem", pems.store_cert, 0o644),
            secret("store.key", pems.store_key, 0o640),
            secret("acl-local", self.local_acl().as_bytes(), 0o644),
        ];
        if let (true, Some((cert, key))) = (self.lanes, pems.lanes) {
            files.push(secret("server.pem", cert, 0o644));
            files.push(secret("server.key", key, 0o640));
            files.push(secret("acl", self.acl().as_bytes(), 0o644));
            files.push(conf("storenode-20-lanes.conf", self.lanes_conf()));
        }
        files.push(conf("storenode-10-local.conf", self.local_conf()));
        files.push(conf("storenode-30-bridge.conf", self.bridge_conf()));
        files
    }

    /// What this box's own node sets as `[sync] broker`.
    pub fn node_broker(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.local_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(lanes: bool) -> BrokerPlan {
        BrokerPlan {
            dir: PathBuf::from("/tmp/mq"),
            tenant: "acme".into(),
            store_id: "s042".into(),
            hq: "hq.acme.example:8883".into(),
            local_port: 1884,
            lanes,
        }
    }

    const PEMS: Pems = Pems {
        ca: b"ca",
        store_cert: b"cert",
        store_key: b"key",
        lanes: Some((b"server", b"server key")),
    };

    #[test]
    fn hq_address_takes_host_and_port_of_mqtts_only() {
        assert_eq!(
            hq_address("mqtts://hq.acme.example:8883").unwrap(),
            "hq.acme.example:8883"
        );
        assert_eq!(
            hq_address("mqtts://10.0.2.2:18883").unwrap(),
            "10.0.2.2:18883"
        );
        assert!(matches!(
            hq_address("mqtt://127.0.0.1:1883"),
            Err(BrokerError::NeedsHq)
        ));
        for bad in [
            "mqtts://hq:0",
            "mqtts://:8883",
            "mqtts://hq",
            "mqtts://hq\nlistener 1:8883",
            "mqtts://hq x:8883",
        ] {
            assert!(
                matches!(hq_address(bad), Err(BrokerError::BadAddress(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_bridge_is_the_shipped_template_filled_in() {
        let text = plan(false).bridge_conf();
        for placeholder in ["TENANT_ID", "STORE_ID", "HQ_BROKER", TEMPLATE_DIR] {
            assert!(
                !text.contains(placeholder),
                "{placeholder} left in:\n{text}"
            );
        }
        assert!(text.contains("address hq.acme.example:8883\n"), "{text}");
        assert!(text.contains("cleansession false\n"), "{text}");
        assert!(text.contains("bridge_keyfile /tmp/mq/storenode/store.key\n"));
        assert!(text.contains("topic storenode/v1/acme/s042/changes/# out 1\n"));
        assert!(text.contains("topic storenode/v1/acme/hq/heads/s042/# in 1\n"));
        // Only this store's topics go out.
        for line in text.lines().filter(|l| l.ends_with(" out 1")) {
            assert!(line.starts_with("topic storenode/v1/acme/s042/"), "{line}");
        }
    }

    #[test]
    fn the_loopback_listener_allows_the_stores_own_topics_only() {
        let plan = plan(false);
        let local = plan.local_conf();
        assert!(local.contains("listener 1884 127.0.0.1\n"), "{local}");
        assert!(local.contains("acl_file /tmp/mq/storenode/acl-local\n"));
        let acl = plan.local_acl();
        assert!(!acl.contains("%u") && !acl.contains("pattern") && !acl.contains("user"));
        assert!(acl.contains("topic readwrite storenode/v1/acme/s042/changes/#\n"));
        assert!(acl.contains("topic write storenode/v1/acme/s042/pii/s042/#\n"));
        assert!(acl.contains("topic read storenode/v1/acme/hq/heads/s042/#\n"));
        // HQ's rights (read every store, answer every writer) are not the store's.
        assert!(!acl.contains("storenode/v1/acme/#"), "{acl}");
        assert!(!acl.contains("+/resp"), "{acl}");
    }

    #[test]
    fn files_keys_are_private_to_mosquittos_group_and_lanes_only_when_asked() {
        let without = plan(false).files(&PEMS);
        let names: Vec<_> = without
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "/tmp/mq/storenode/ca.pem",
                "/tmp/mq/storenode/store.pem",
                "/tmp/mq/storenode/store.key",
                "/tmp/mq/storenode/acl-local",
                "/tmp/mq/conf.d/storenode-10-local.conf",
                "/tmp/mq/conf.d/storenode-30-bridge.conf",
            ]
        );
        let with = plan(true).files(&PEMS);
        assert_eq!(with.len(), without.len() + 4);
        for file in &with {
            let key = file.path.extension().is_some_and(|e| e == "key");
            assert_eq!(file.mode == 0o640, key, "{}", file.path.display());
            assert_eq!(file.mosquitto_group, key, "{}", file.path.display());
        }
        let lanes = plan(true).lanes_conf();
        assert!(
            lanes.contains("certfile /tmp/mq/storenode/server.pem\n"),
            "{lanes}"
        );
        assert!(lanes.contains("acl_file /tmp/mq/storenode/acl\n"));
    }
}
