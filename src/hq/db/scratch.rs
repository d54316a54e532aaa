//! A throwaway PostgreSQL server in a temporary directory, on a free loopback port: for the
//! tests and `storenode bench hq`, which run HQ on a real PostgreSQL without touching the
//! machine's own clusters. Needs Debian's `postgresql` package (`initdb`, `pg_ctl`).
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
//! the package creates, and its commands run through `runuser`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")]
    NotInstalled,
    #[error("{step}: {reason}")]
    Step { step: &'static str, reason: String },
}

/// A running scratch cluster; stopped and deleted when dropped.
pub struct ScratchPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
    /// Server options beyond port, socket directory and address (TLS).
    extra_options: String,
}

impl ScratchPostgres {
    pub fn start() -> Result<Self, ScratchError> {
        Self::start_with(|_| Ok(String::new()))
    }

    /// A cluster that also accepts TLS, with this certificate and key (PEM files). They are
    /// copied into the cluster's directory, owned by the server's user, as PostgreSQL
    /// refuses a key that others can read.
    pub fn start_with_tls(cert: &Path, key: &Path) -> Result<Self, ScratchError> {
        Self::start_with(|cluster| {
            let dir = cluster.dir.path();
            let (own_cert, own_key) = (dir.join("server.pem"), dir.join("server.key"));
            std::fs::copy(cert, &own_cert).map_err(|e| step("copy certificate", &e))?;
            std::fs::copy(key, &own_key).map_err(|e| step("copy key", &e))?;
            std::fs::set_permissions(&own_key, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| step("chmod key", &e))?;
            if cluster.as_postgres {
                let status = Command::new("chown")
                    .arg("postgres:")
                    .args([&own_cert, &own_key])
                    .status()
                    .map_err(|e| step("chown", &e))?;
                if !status.success() {
                    return Err(step("chown", &status));
                }
            }
            Ok(format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                own_cert.display(),
                own_key.display()
            ))
        })
    }

    /// Creates and starts a cluster; `prepare` runs after `initdb` and returns more
    /// server options.
    fn start_with(
        prepare: impl FnOnce(&Self) -> Result<String, ScratchError>,
    ) -> Result<Self, ScratchError> {
        let bin = server_bin().ok_or(ScratchError::NotInstalled)?;
        let dir = tempfile::Builder::new()
            .prefix("storenode-pg-")
            .tempdir()
            .map_err(|e| step("temporary directory", &e))?;
        let as_postgres = std::fs::metadata("/proc/self")
            .map_err(|e| step("uid", &e))?
            .uid()
            == 0;
        if as_postgres {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .map_err(|e| step("chmod", &e))?;
        }
        let port = free_port()?;
        let mut cluster = Self {
            dir,
            bin,
            as_postgres,
            port,
            extra_options: String::new(),
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        cluster.extra_options = prepare(&cluster)?;
        cluster.restart()?;
        Ok(cluster)
    }

    /// A connection string to database `dbname` of this cluster.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }

    /// Creates an empty database and returns its connection string.
    pub fn create_database(&self, dbname: &str) -> Result<String, ScratchError> {
        let admin_url = self.url("postgres");
        let sql = format!("CREATE DATABASE \"{dbname}\"");
        // Its own thread: the blocking client may not run on an async worker, and tests call
        // this from both kinds of thread.
        std::thread::spawn(move || {
            let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls)
                .map_err(|e| step("connect", &e))?;
            admin
                .batch_execute(&sql)
                .map_err(|e| step("create database", &e))
        })
        .join()
        .map_err(|_| ScratchError::Step {
            step: "create database",
            reason: "the thread panicked".into(),
        })??;
        Ok(self.url(dbname))
    }

    /// Stops the server the way a crash would (tests of HQ surviving a restart).
    pub fn stop_immediately(&self) -> Result<(), ScratchError> {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&self) -> Result<(), ScratchError> {
        let data = self.data_dir();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}",
            self.port,
            self.dir.path().display(),
            self.extra_options
        );
        let log = format!("{}/server.log", self.dir.path().display());
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn run(&self, program: &'static str, args: &[&str]) -> Result<(), ScratchError> {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| step(program, &e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ScratchError::Step {
                step: program,
                reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

fn step(step: &'static str, e: &dyn std::fmt::Display) -> ScratchError {
    ScratchError::Step {
        step,
        reason: e.to_string(),
    }
}

/// The newest installed major version's `bin` directory.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            Path::new(&bin.join("initdb"))
                .exists()
                .then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn free_port() -> Result<u16, ScratchError> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| step("free port", &e))?;
    Ok(probe
        .local_addr()
        .map_err(|e| step("free port", &e))?
        .port())
}
