//! Bad files and commands are refused as a whole, with the exit code that tells systemd and
//! scripts what happened (2: configuration or usage, 3: database), never half-accepted and
//! never a panic. The real binary on temporary files.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::node::{CATALOG_CSV, binary, config_text, free_port};

fn storenode(config: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run storenode")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A store config in a temporary directory, with `extra` appended.
fn store_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let config = dir.join("storenode.toml");
    std::fs::write(&config, config_text(dir, free_port(), extra)).expect("write config");
    config
}

#[test]
fn an_empty_database_file_is_refused_with_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = store_config(dir.path(), "");
    std::fs::write(dir.path().join("store.db"), b"").expect("empty db");
    let catalog = dir.path().join("catalog.csv");
    std::fs::write(&catalog, CATALOG_CSV).expect("write catalog");
    let catalog = catalog.to_str().unwrap_or_default();
    // `run` is bounded: before the fix it started as an empty store and kept running.
    let mut run = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait run") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = run.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert_eq!(status.and_then(|s| s.code()), Some(3), "run: {stderr}");
    assert!(stderr.contains("empty (0 bytes)"), "{stderr}");
    let out = storenode(&config, &["catalog", "import", catalog]);
    assert_eq!(out.status.code(), Some(3), "import: {}", text(&out));
    assert!(text(&out).contains("empty (0 bytes)"), "{}", text(&out));
    assert_eq!(
        std::fs::metadata(dir.path().join("store.db"))
            .map(|m| m.len())
            .ok(),
        Some(0),
        "left as it was"
    );
}

#[test]
fn certificate_faults_stop_config_check_and_run_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = common::pki::Pki::new("refusals");
    let client = pki.client("s1");
    let sync = |ca: &Path, cert: &Path, key: &Path| {
        format!(
            "[sync]\nbroker = \"mqtts://127.0.0.1:{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            free_port(),
            ca.display(),
            cert.display(),
            key.display()
        )
    };
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write garbage");
    let missing = dir.path().join("missing.pem");
    for (extra, key) in [
        (sync(&missing, &client.cert, &client.key), "sync.ca_file"),
        (sync(&garbage, &client.cert, &client.key), "sync.ca_file"),
        (
            sync(&client.ca_cert, &missing, &client.key),
            "sync.cert_file",
        ),
        (
            sync(&client.ca_cert, &client.cert, &garbage),
            "sync.key_file",
        ),
        // A key that is not the certificate's.
        (
            sync(&client.ca_cert, &client.cert, pki.server_key()),
            "sync.cert_file",
        ),
    ] {
        let config = store_config(dir.path(), &extra);
        for command in ["config check", "run"] {
            let args: Vec<&str> = command.split(' ').collect();
            let out = storenode(&config, &args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {key}: {}",
                text(&out)
            );
            assert!(text(&out).contains(key), "{command}: {}", text(&out));
        }
    }
    // The good files pass.
    let good = store_config(
        dir.path(),
        &sync(&client.ca_cert, &client.cert, &client.key),
    );
    let out = storenode(&good, &["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn reserved_ids_and_unusable_numbers_are_configuration_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = store_config(dir.path(), "");
    let hq_store = std::fs::read_to_string(&config)
        .expect("read config")
        .replacen("store_id = \"s1\"", "store_id = \"hq\"", 1);
    std::fs::write(&config, hq_store).expect("write config");
    let out = storenode(&config, &["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("node.store_id"), "{}", text(&out));

    let zone = store_config(dir.path(), "").with_file_name("zone.toml");
    std::fs::write(
        &zone,
        config_text(dir.path(), free_port(), "").replacen(
            "node_id = \"lane1\"",
            "node_id = \"lane1\"\ntime_zone = \"Mars/Olympus\"",
            1,
        ),
    )
    .expect("write config");
    let out = storenode(&zone, &["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("node.time_zone"), "{}", text(&out));

    // HQ: an epoch interval the clock cannot add panicked at start.
    let hq = dir.path().join("hq.toml");
    std::fs::write(
        &hq,
        format!(
            "[hq]\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\ntoken = \"hq-token-0123456789abcdef\"\nbroker = \"mqtt://127.0.0.1:{}\"\nepoch_interval_s = 18446744073709551615\n",
            dir.path().display(),
            free_port(),
            free_port()
        ),
    )
    .expect("write hq config");
    let out = storenode(&hq, &["hq"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("hq.epoch_interval_s"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));

    // CLI numbers: a usage error (exit 2) naming the flag, not a panic.
    for seconds in ["-1", "nan", "inf", "1e30"] {
        let out = Command::new(binary())
            .args(["diag", "simulate", "scanner", "--pty-link"])
            .arg(dir.path().join("pty"))
            .arg(format!("--seconds={seconds}"))
            .output()
            .expect("run simulate");
        assert_eq!(out.status.code(), Some(2), "{seconds}: {}", text(&out));
        assert!(text(&out).contains("--seconds"), "{}", text(&out));
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
}

/// `catalog import` of `csv` (written to a file): the process output.
fn import(config: &Path, csv: &str, extra: &[&str]) -> Output {
    let file = config.with_file_name("import.csv");
    std::fs::write(&file, csv).expect("write csv");
    let mut args = vec!["catalog", "import", file.to_str().unwrap_or_default()];
    args.extend_from_slice(extra);
    storenode(config, &args)
}

fn sku_of(config: &Path, gtin14: &str) -> Option<String> {
    let db = config.with_file_name("store.db");
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.query_row(
        "SELECT sku FROM item_gtin WHERE gtin14 = ?1",
        [gtin14],
        |r| r.get(0),
    )
    .ok()
}

#[test]
fn catalog_import_refuses_moves_headerless_files_and_other_currencies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = store_config(dir.path(), "");
    let out = import(&config, CATALOG_CSV, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let header = CATALOG_CSV.lines().next().unwrap_or_default();

    // Milk's barcode given to another SKU: refused, the move listed, nothing imported.
    let moving = format!("{header}\nOATMILK,Oat milk 1 l,149,EUR,reduced,false,4006381333931\n");
    let out = import(&config, &moving, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("GTIN 04006381333931 moves from SKU MILK to SKU OATMILK"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("--move-gtins"), "{}", text(&out));
    assert_eq!(sku_of(&config, "04006381333931").as_deref(), Some("MILK"));
    // Meant: with --move-gtins it moves, and says so.
    let out = import(&config, &moving, &["--move-gtins"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("GTIN 04006381333931 moves from SKU MILK to SKU OATMILK"),
        "{}",
        text(&out)
    );
    assert_eq!(
        sku_of(&config, "04006381333931").as_deref(),
        Some("OATMILK")
    );

    // No header row: refused (it took the first item for a header and imported nothing).
    let headerless = "TEA,Green tea,299,EUR,reduced,false,5901234123457\n";
    let out = import(&config, headerless, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no header row"), "{}", text(&out));
    // Another currency than the store's (EUR).
    let dollars = format!("{header}\nTEA,Green tea,299,USD,reduced,false,\n");
    let out = import(&config, &dollars, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("currency USD is not the store's EUR"),
        "{}",
        text(&out)
    );
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).expect("open db");
    let tea: i64 = conn
        .query_row("SELECT COUNT(*) FROM item WHERE sku = 'TEA'", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(tea, 0, "nothing half-imported");
}
