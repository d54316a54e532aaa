//! A real Mosquitto broker per test, on a free loopback port, killed on drop.
//!
//! `Mosquitto::start(MosquittoOptions::plain())` gives an anonymous TCP listener;
//! `MosquittoOptions::mtls(&pki, tenant)` a mutual-TLS listener using the test PKI and the
//! project's ACL (`config/mosquitto/acl` with `TENANT_ID` replaced by the test's tenant).
//! Persistence is on, in the broker's own temp dir, and survives [`Mosquitto::restart`].
//!
//! The helpers are synchronous (std::process, std::net) and bounded: starting waits at most
//! [`READY_TIMEOUT`] for the port. Call them from a multi-threaded tokio test.

// Each integration-test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::Pki;

pub const MOSQUITTO_BIN: &str = "/usr/sbin/mosquitto";
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const START_ATTEMPTS: usize = 5;
/// Same limit as config/mosquitto/mosquitto.conf.
pub const MAX_PACKET_SIZE: u32 = 262_144;

/// The mTLS part of a broker configuration.
#[derive(Debug, Clone)]
pub struct MtlsOptions {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Replaces `TENANT_ID` in the project's ACL file.
    pub tenant: String,
}

#[derive(Debug, Clone, Default)]
pub struct MosquittoOptions {
    /// `None`: plain TCP, anonymous, no ACL.
    pub mtls: Option<MtlsOptions>,
    /// Appended to the generated configuration (a bridge section, say).
    pub extra: String,
    /// A Mosquitto conf.d as `storenode provision --local-broker` writes it and the port of
    /// the listener in it: the helper then writes no listener of its own (as Debian's
    /// mosquitto.conf) and includes that directory.
    pub conf_d: Option<(PathBuf, u16)>,
}

impl MosquittoOptions {
    pub fn plain() -> MosquittoOptions {
        MosquittoOptions {
            mtls: None,
            extra: String::new(),
            conf_d: None,
        }
    }

    pub fn mtls(pki: &Pki, tenant: &str) -> MosquittoOptions {
        MosquittoOptions {
            mtls: Some(MtlsOptions {
                ca_cert: pki.ca_cert().to_owned(),
                server_cert: pki.server_cert().to_owned(),
                server_key: pki.server_key().to_owned(),
                tenant: tenant.to_owned(),
            }),
            extra: String::new(),
            conf_d: None,
        }
    }
}

pub struct Mosquitto {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(opts: MosquittoOptions) -> Mosquitto {
        assert!(
            Path::new(MOSQUITTO_BIN).exists(),
            "{MOSQUITTO_BIN} not found: these tests need a real Mosquitto broker. \
             `.ci/run` installs it (apt-get install -y mosquitto)."
        );
        let dir = tempfile::Builder::new()
            .prefix("storenode-mosquitto-")
            .tempdir()
            .expect("create broker temp dir");
        fs::create_dir_all(dir.path().join("data")).expect("create persistence dir");
        if let Some(mtls) = &opts.mtls {
            write_acl(dir.path(), &mtls.tenant);
        }
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = opts
                .conf_d
                .as_ref()
                .map_or_else(free_port, |(_, port)| *port);
            write_config(dir.path(), port, &opts);
            match spawn_broker(dir.path(), port) {
                Ok(child) => {
                    return Mosquitto {
                        dir,
                        port,
                        child: Some(child),
                    };
                }
                // Most likely someone else took the port between probe and bind.
                Err(failure) => last_failure = failure,
            }
        }
        panic!("mosquitto did not start after {START_ATTEMPTS} attempts: {last_failure}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Everything the broker logged so far (it logs to a file in its temp dir).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Graceful stop (SIGTERM, so persistence is saved), then SIGKILL after a bound.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Crash: SIGKILL, no chance to save persistence. [`Self::restart`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same port with the same persistence directory.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match spawn_broker(self.dir.path(), self.port) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(failure) if Instant::now() >= deadline => {
                    panic!("mosquitto did not restart on port {}: {failure}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// Starts mosquitto with `dir/mosquitto.conf` and waits until `port` accepts.
fn spawn_broker(dir: &Path, port: u16) -> Result<Child, String> {
    let log_path = dir.join("mosquitto.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|err| format!("open broker log: {err}"))?;
    let log_err = log
        .try_clone()
        .map_err(|err| format!("clone broker log: {err}"))?;
    let mut child = Command::new(MOSQUITTO_BIN)
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|err| format!("spawn {MOSQUITTO_BIN}: {err}"))?;
    let read_log = || fs::read_to_string(&log_path).unwrap_or_default();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "mosquitto exited with {status}; log:\n{}",
                read_log()
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "port {port} not accepting after {READY_TIMEOUT:?}; log:\n{}",
        read_log()
    ))
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port nobody listens on right now (the OS picks it; we release it at once).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn project_acl_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto/acl")
}

fn write_acl(dir: &Path, tenant: &str) {
    let template = fs::read_to_string(project_acl_path()).expect("read config/mosquitto/acl");
    assert!(
        template.contains("TENANT_ID"),
        "ACL template has no TENANT_ID"
    );
    fs::write(dir.join("acl"), template.replace("TENANT_ID", tenant)).expect("write acl");
}

fn write_config(dir: &Path, port: u16, opts: &MosquittoOptions) {
    let data = dir.join("data");
    let mut conf = format!(
        "# generated by tests/common/mosquitto.rs\n\
         # Keep root when run as root (no effect otherwise): the temp dirs are not readable\n\
         # by the `mosquitto` user the broker would switch to.\n\
         user root\n\
         persistence true\n\
         persistence_location {data}/\n\
         max_packet_size {MAX_PACKET_SIZE}\n\
         log_dest stderr\n\
         log_type all\n",
        data = data.display(),
    );
    match (&opts.conf_d, &opts.mtls) {
        (Some((conf_d, _)), _) => conf.push_str(&format!("include_dir {}\n", conf_d.display())),
        (None, None) => conf.push_str(&format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n"
        )),
        (None, Some(mtls)) => conf.push_str(&format!(
            "listener {port} 127.0.0.1\n\
             cafile {}\n\
             certfile {}\n\
             keyfile {}\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             allow_anonymous false\n\
             acl_file {}\n",
            mtls.ca_cert.display(),
            mtls.server_cert.display(),
            mtls.server_key.display(),
            dir.join("acl").display(),
        )),
    }
    conf.push_str(&opts.extra);
    fs::write(dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
}
