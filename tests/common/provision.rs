//! A store box as `storenode provision --local-broker` sets it up: the real binary writes
//! the node's configuration and the box's Mosquitto conf.d (loopback listener on a free
//! port, bridge to HQ's broker) into a temporary directory, as it would under `/etc`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::node::{binary, free_port};
use super::pki::ClientCert;

/// A provisioned store box: its directory (removed on drop), the Mosquitto conf.d written
/// into it, and the port of the box broker's loopback listener.
pub struct StoreBox {
    pub dir: tempfile::TempDir,
    pub conf_d: PathBuf,
    pub local_port: u16,
}

/// The certificate and key of the listener for the lanes on the store's other boxes
/// (`--lanes-cert`, `--lanes-key`).
pub struct LanesListener<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// Runs `storenode provision --local-broker` for store `store` of `tenant`, bridged to HQ's
/// broker on `hq_port` with the store's certificate `cert`, with the lanes' TLS listener
/// when `lanes` is given. The service user does not exist, so provision changes no owner.
pub fn provision_local_broker(
    store: &str,
    tenant: &str,
    hq_port: u16,
    cert: &ClientCert,
    lanes: Option<LanesListener<'_>>,
) -> StoreBox {
    let dir = tempfile::tempdir().expect("box dir");
    let local_port = free_port();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let mut command = Command::new(binary());
    command
        .args(["provision", "--store-id", store, "--tenant", tenant])
        .args(["--broker", &format!("mqtts://127.0.0.1:{hq_port}")])
        .arg("--ca")
        .arg(&cert.ca_cert)
        .arg("--cert")
        .arg(&cert.cert)
        .arg("--key")
        .arg(&cert.key)
        .args([
            "--local-broker",
            "--local-broker-port",
            &local_port.to_string(),
        ])
        .args(["--mosquitto-dir", &path("mosquitto")])
        .args(["--out", &path("etc/storenode.toml")])
        .args(["--data-dir", &path("state"), "--udev-dir", &path("udev")])
        .args(["--owner", "no-such-user-storenode-test"]);
    if let Some(lanes) = lanes {
        command
            .arg("--lanes-cert")
            .arg(lanes.cert)
            .arg("--lanes-key")
            .arg(lanes.key);
    }
    let out = command.output().expect("run storenode provision");
    assert!(
        out.status.success(),
        "provision failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let conf_d = dir.path().join("mosquitto/conf.d");
    StoreBox {
        dir,
        conf_d,
        local_port,
    }
}
