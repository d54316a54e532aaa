//! Field operations against the real binary: every `storenode diag` command talking to a
//! running node over its control socket, the "not running" answer, the socket's mode,
//! provisioning, the systemd units, the watchdog, and the .deb's contents.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::node::{NodeProcess, binary, config_text, free_port};

fn storenode(config: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run storenode")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a diag command that must succeed and print JSON.
fn diag_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["diag"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = storenode(config, &all);
    assert!(
        out.status.success(),
        "diag {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn socket_of(node: &NodeProcess) -> PathBuf {
    node.dir.path().join("control.sock")
}

#[test]
fn status_reports_version_store_and_components() {
    let node = NodeProcess::start();
    let status = diag_json(&node.config, &["status"]);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["store_id"], "s1");
    assert_eq!(status["ready"], true);
    assert_eq!(status["components"]["store"]["state"], "ok");
    assert!(status["db_bytes"].as_u64().unwrap_or(0) > 0, "{status}");
    assert!(
        status["metrics"]["storenode_sales_total"].is_number(),
        "{status}"
    );

    let human = storenode(&node.config, &["diag", "status"]);
    assert!(human.status.success());
    let human = text(&human.stdout);
    assert!(
        human.contains("storenode") && human.contains("ready"),
        "{human}"
    );
    assert!(!human.contains('\x1b'), "no colour into a pipe: {human}");
}

#[test]
fn control_socket_is_group_only() {
    let node = NodeProcess::start();
    let mode = std::fs::metadata(socket_of(&node))
        .expect("control socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn not_running_is_said_clearly_with_exit_code_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("storenode.toml");
    std::fs::write(&config, config_text(dir.path(), free_port(), "")).expect("config");
    for command in [
        &["diag", "status"][..],
        &["diag", "db", "check"],
        &["diag", "sync"],
        &["diag", "tail", "--seconds", "1"],
    ] {
        let out = storenode(&config, command);
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        let expected = format!(
            "storenode is not running (no control socket at {})",
            dir.path().join("control.sock").display()
        );
        assert!(
            text(&out.stderr).contains(&expected),
            "{command:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn db_check_backup_and_restore() {
    let mut node = NodeProcess::start();
    let check = diag_json(&node.config, &["db", "check"]);
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["integrity"][0], "ok");

    let sale = node.client().post(
        "/v1/sales",
        "ops-sale-1",
        &serde_json::json!({
            "lines": [{"sku": "MILK", "quantity": 1}],
            "payments": [{"method": "cash", "amount_minor": 500}]
        }),
    );
    assert_eq!(sale.status, 201, "{}", sale.body);

    let backup_path = node.dir.path().join("backup.db");
    let backup_arg = backup_path.to_str().expect("utf-8 path");
    let backup = diag_json(&node.config, &["db", "backup", "--out", backup_arg]);
    assert_eq!(backup["quick_check"], "ok");
    assert!(backup_path.exists());

    // While the node runs, only it may touch the database.
    let refused = storenode(&node.config, &["diag", "restore", backup_arg]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("storenode is running"),
        "{}",
        text(&refused.stderr)
    );
    let offline = storenode(&node.config, &["diag", "db", "backup", "--offline"]);
    assert!(!offline.status.success());

    // A second sale after the backup disappears with the restore.
    let later = node.client().post(
        "/v1/sales",
        "ops-sale-2",
        &serde_json::json!({
            "lines": [{"sku": "MILK", "quantity": 1}],
            "payments": [{"method": "cash", "amount_minor": 500}]
        }),
    );
    assert_eq!(later.status, 201);
    let second_id = later.body["sale_id"].as_str().expect("sale id").to_string();
    assert!(node.terminate().is_some_and(|s| s.success()));

    let restored = diag_json(&node.config, &["restore", backup_arg]);
    let kept = restored["previous_kept_at"].as_str().expect("old db kept");
    assert!(Path::new(kept).exists());
    node.spawn();
    let gone = node.client().get(&format!("/v1/sales/{second_id}"));
    assert_eq!(gone.status, 404, "{}", gone.body);
}

#[test]
fn sync_says_not_configured_on_a_standalone_store() {
    let node = NodeProcess::start();
    let out = storenode(&node.config, &["diag", "sync"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("sync not configured"),
        "{}",
        text(&out.stdout)
    );
    let json = diag_json(&node.config, &["sync"]);
    assert_eq!(json["configured"], false);
}

#[test]
fn tail_streams_until_its_time_is_up() {
    let node = NodeProcess::start();
    let started = Instant::now();
    let out = storenode(&node.config, &["diag", "tail", "--seconds", "1", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Bounded: the command ended by itself (generous bound, not a timing assertion).
    assert!(started.elapsed() < Duration::from_secs(30));
    for line in text(&out.stdout).lines() {
        let item: serde_json::Value = serde_json::from_str(line).expect("tail lines are JSON");
        assert!(item["type"].is_string());
    }
}

#[test]
fn bundle_has_redacted_config_status_and_no_tokens() {
    let node = NodeProcess::start();
    let out_path = node.dir.path().join("bundle.tar.gz");
    let summary = diag_json(
        &node.config,
        &["bundle", "--out", out_path.to_str().expect("utf-8")],
    );
    let files: Vec<String> = summary["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    for expected in ["versions.txt", "config.toml", "status.json", "metrics.json"] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} missing: {files:?}"
        );
    }
    let file = std::fs::File::open(&out_path).expect("bundle written");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().expect("a tar.gz") {
        let mut entry = entry.expect("entry");
        let mut content = String::new();
        std::io::Read::read_to_string(&mut entry, &mut content).expect("text");
        assert!(!content.contains(common::node::TOKEN_POS1), "token leaked");
        assert!(!content.contains(common::node::TOKEN_POS2), "token leaked");
    }
}

#[test]
fn ports_probe_and_net_work_without_a_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("storenode.toml");
    std::fs::write(&config, config_text(dir.path(), free_port(), "")).expect("config");

    let ports = diag_json(&config, &["ports"]);
    assert!(ports.is_array());

    let probe = storenode(&config, &["diag", "probe", "/dev/ttyNOSUCH9"]);
    assert_eq!(probe.status.code(), Some(1));
    assert!(
        text(&probe.stderr).contains("no such device"),
        "{}",
        text(&probe.stderr)
    );

    let closed = free_port().to_string();
    let broker = format!("mqtts://127.0.0.1:{closed}");
    let net = storenode(&config, &["diag", "net", "--broker", &broker, "--json"]);
    assert_eq!(net.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&net.stdout).expect("json report");
    assert_eq!(report["steps"][0]["name"], "dns");
    assert_eq!(report["steps"][0]["ok"], true);
    assert_eq!(report["steps"][1]["name"], "tcp");
    assert_eq!(report["steps"][1]["ok"], false);

    let unconfigured = storenode(&config, &["diag", "net"]);
    assert_eq!(unconfigured.status.code(), Some(1));
    assert!(text(&unconfigured.stderr).contains("sync not configured"));
}

#[test]
fn provisioned_config_passes_config_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("etc/storenode.toml");
    let state = dir.path().join("state");
    let provision = Command::new(binary())
        .args([
            "provision",
            "--store-id",
            "s042",
            "--tenant",
            "acme",
            "--node-id",
            "lane2",
        ])
        .args([
            "--token-for",
            "pos1",
            "--token-for",
            "hh1",
            "--listen",
            "127.0.0.1:8080",
        ])
        .args(["--owner", "no-such-user-for-tests"])
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(&state)
        .output()
        .expect("run provision");
    assert!(provision.status.success(), "{}", text(&provision.stderr));
    let printed = text(&provision.stdout);
    let token_line = printed
        .lines()
        .find(|l| l.trim_start().starts_with("pos1"))
        .expect("token printed once");
    let token = token_line.split_whitespace().nth(1).expect("token");
    let stored = std::fs::read_to_string(dir.path().join("etc/tokens/pos1")).expect("token file");
    assert_eq!(stored.trim(), token);

    let check = storenode(&out, &["config", "check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let explained = text(&check.stdout);
    assert!(explained.contains("store s042"), "{explained}");
    assert!(
        !explained.contains(token),
        "config check must not show tokens"
    );

    let again = Command::new(binary())
        .args([
            "provision",
            "--store-id",
            "s042",
            "--tenant",
            "acme",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run provision");
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("--force"));
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn systemd_units_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: systemd-analyze not installed; units not verified (CI installs systemd)");
        return;
    }
    let out = Command::new(repo().join("systemd/verify.sh"))
        .arg(binary())
        .output()
        .expect("run verify.sh");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn deb_package_contents() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        eprintln!("note: dpkg-deb not installed; package not built");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let build = Command::new(repo().join("cross/deb/build-deb.sh"))
        .args(["native", "--binary", binary(), "--out"])
        // A debug binary is large; compressing it would only slow the test down.
        .env("DEB_COMPRESSION", "none")
        .arg(dir.path())
        .output()
        .expect("run build-deb.sh");
    if !repo().join("hardware/99-storenode.rules").exists() {
        // The rules come from the devices work; without them the build must say why.
        assert!(!build.status.success());
        assert!(
            text(&build.stderr).contains("99-storenode.rules"),
            "{}",
            text(&build.stderr)
        );
        eprintln!("note: hardware/99-storenode.rules missing; package contents not checked");
        return;
    }
    assert!(build.status.success(), "{}", text(&build.stderr));
    let deb = text(&build.stdout).trim().to_string();

    let listing = Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .expect("dpkg-deb -c");
    let listing = text(&listing.stdout);
    for path in [
        "./usr/bin/storenode",
        "./lib/systemd/system/storenode.service",
        "./lib/systemd/system/storenode-hq.service",
        "./lib/systemd/system/storenode-provision.service",
        // Not a conffile: `provision` writes /etc/storenode/storenode.toml, so dpkg never
        // owns it and an upgrade never stops at the conffile prompt.
        "./usr/share/storenode/storenode.example.toml",
        "./lib/udev/rules.d/99-storenode.rules",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{listing}"
        );
    }
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x root/root") && l.ends_with("./usr/bin/storenode")),
        "{listing}"
    );

    let info = Command::new("dpkg-deb")
        .args(["-I", &deb])
        .output()
        .expect("dpkg-deb -I");
    let info = text(&info.stdout);
    assert!(info.contains("Package: storenode"), "{info}");
    assert!(
        info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "{script} missing:\n{info}");
    }
    assert!(
        !listing.contains("./etc/storenode/"),
        "the package must ship nothing under /etc/storenode (the node rewrites it):\n{listing}"
    );
    assert!(!info.contains("conffiles"), "{info}");
}

/// Under systemd the node says READY=1 and, with a watchdog, pings WATCHDOG=1 while its
/// store answers. A datagram socket stands in for systemd.
#[test]
fn notifies_ready_and_pings_the_watchdog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let config = dir.path().join("storenode.toml");
    std::fs::write(&config, config_text(dir.path(), free_port(), "")).expect("config");
    let mut child = Command::new(binary())
        .args(["--config", config.to_str().expect("utf-8"), "run"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start node");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // Bounded: at most 50 messages or the read timeout.
    for _ in 0..50 {
        match notify.recv(&mut buf) {
            Ok(n) => seen.push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or_default())),
            Err(_) => break,
        }
        if seen.contains("READY=1") && seen.contains("WATCHDOG=1") {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("READY=1"), "{seen}");
    assert!(seen.contains("STATUS=serving on"), "{seen}");
    assert!(seen.contains("WATCHDOG=1"), "{seen}");
}
