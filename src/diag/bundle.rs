//! `diag bundle`: everything support asks for, in one `.tar.gz` a technician can mail.
//!
//! Contents: the configuration with secrets redacted (token files and key files are never
//! read), recent logs from journald, the node's status, metrics and sync state (when it
//! runs), serial ports and versions. Anything that cannot be collected is listed in
//! `NOTES.txt` instead of failing the bundle: a half-broken box is when bundles are made.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::control::Client;
use crate::control::protocol::{Command, StatusReport, SyncReport};

const JOURNAL_LINES: &str = "2000";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot write bundle {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One file of the bundle.
struct Entry {
    name: &'static str,
    data: Vec<u8>,
}

/// What went into a bundle and what was left out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BundleSummary {
    pub path: PathBuf,
    pub files: Vec<&'static str>,
    pub notes: Vec<String>,
}

pub fn create(config_file: &Path, socket: &Path, out: &Path) -> Result<BundleSummary, BundleError> {
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    entries.push(Entry {
        name: "versions.txt",
        data: versions().into_bytes(),
    });
    match std::fs::read_to_string(config_file) {
        Ok(text) => match super::redact::redact_config(&text) {
            Ok(redacted) => entries.push(Entry {
                name: "config.toml",
                data: redacted.into_bytes(),
            }),
            Err(e) => notes.push(e.to_string()),
        },
        Err(e) => notes.push(format!("configuration {}: {e}", config_file.display())),
    }
    collect_from_node(socket, &mut entries, &mut notes);
    match journal() {
        Ok(log) => entries.push(Entry {
            name: "journal.txt",
            data: log,
        }),
        Err(note) => notes.push(note),
    }
    match crate::devices::ports::list() {
        Ok(ports) => entries.push(json_entry("ports.json", &ports)),
        Err(e) => notes.push(e.to_string()),
    }
    if !notes.is_empty() {
        let mut text = notes.join("\n");
        text.push('\n');
        entries.push(Entry {
            name: "NOTES.txt",
            data: text.into_bytes(),
        });
    }
    write_archive(out, &entries)?;
    Ok(BundleSummary {
        path: out.to_path_buf(),
        files: entries.iter().map(|e| e.name).collect(),
        notes,
    })
}

fn json_entry<T: serde::Serialize>(name: &'static str, value: &T) -> Entry {
    Entry {
        name,
        data: serde_json::to_vec_pretty(value).unwrap_or_default(),
    }
}

fn collect_from_node(socket: &Path, entries: &mut Vec<Entry>, notes: &mut Vec<String>) {
    let status =
        Client::connect(socket).and_then(|c| c.call::<StatusReport>(Command::Status, CALL_TIMEOUT));
    match status {
        Ok(status) => {
            entries.push(json_entry("metrics.json", &status.metrics));
            entries.push(json_entry("status.json", &status));
        }
        Err(e) => {
            notes.push(format!("status and metrics left out: {e}"));
            return;
        }
    }
    match Client::connect(socket).and_then(|c| c.call::<SyncReport>(Command::Sync, CALL_TIMEOUT)) {
        Ok(sync) => entries.push(json_entry("sync.json", &sync)),
        Err(e) => notes.push(format!("sync state left out: {e}")),
    }
}

fn journal() -> Result<Vec<u8>, String> {
    let output = Process::new("journalctl")
        .args([
            "-u",
            "storenode",
            "-n",
            JOURNAL_LINES,
            "--no-pager",
            "-o",
            "short-iso",
        ])
        .output()
        .map_err(|e| format!("logs left out: journalctl not available ({e})"))?;
    if !output.status.success() {
        return Err(format!(
            "logs left out: journalctl failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

fn versions() -> String {
    let read =
        |path: &str| std::fs::read_to_string(path).unwrap_or_else(|e| format!("({path}: {e})\n"));
    format!(
        "storenode {} ({}-{})\ncontrol protocol {}\nschema {}\n\n# /proc/version\n{}\n# /etc/os-release\n{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        crate::control::protocol::PROTOCOL_VERSION,
        crate::store::SCHEMA_VERSION,
        read("/proc/version"),
        read("/etc/os-release"),
    )
}

fn write_archive(out: &Path, entries: &[Entry]) -> Result<(), BundleError> {
    let write_err = |source| BundleError::Write {
        path: out.to_path_buf(),
        source,
    };
    let file = File::create(out).map_err(write_err)?;
    let mut archive = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        archive
            .append_data(
                &mut header,
                format!("storenode-bundle/{}", entry.name),
                entry.data.as_slice(),
            )
            .map_err(write_err)?;
    }
    archive
        .into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|file| file.sync_all())
        .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn bundle_without_a_node_notes_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("storenode.toml");
        std::fs::write(&config, "[node]\nstore_id = \"s1\"\n[[api.terminals]]\nid = \"pos1\"\ntoken = \"do-not-ship-this-token\"\n").unwrap();
        let out = dir.path().join("b.tar.gz");
        let summary = create(&config, &dir.path().join("none.sock"), &out).unwrap();
        assert!(summary.files.contains(&"config.toml"));
        assert!(
            summary.notes.iter().any(|n| n.contains("not running")),
            "{:?}",
            summary.notes
        );

        let mut archive =
            tar::Archive::new(flate2::read::GzDecoder::new(File::open(&out).unwrap()));
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            assert!(!text.contains("do-not-ship-this-token"));
            names.push(entry.path().unwrap().display().to_string());
        }
        assert!(
            names.contains(&"storenode-bundle/versions.txt".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"storenode-bundle/NOTES.txt".to_string()),
            "{names:?}"
        );
    }
}
