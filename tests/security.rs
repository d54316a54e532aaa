//! Security checks against the real binary: tokens never reach the log, TLS verification
//! cannot be switched off by configuration, support bundles carry no secret.
//!
//! Covered elsewhere (not repeated here):
//! * constant-time token comparison: unit tests in `src/api/auth.rs`;
//! * a store with valid credentials cannot write another store's data: the broker's ACL
//!   denies it (`tests/sync_security.rs`,
//!   `a_store_writing_another_stores_topic_is_denied_and_sees_it`) and HQ checks every
//!   change's author and reach (`SyncDoc::check_change`, unit tests in `src/crdt/doc_tests.rs`
//!   and `src/hq`);
//! * the control socket is mode 0660: `tests/ops.rs`, `control_socket_is_group_only`.

mod common;

use std::process::Command;

use common::node::{NodeProcess, TOKEN_POS1, TOKEN_POS2, binary, config_text, free_port};
use common::pki::Pki;
use serde_json::json;

fn config_check(extra: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("storenode.toml");
    std::fs::write(&path, config_text(dir.path(), free_port(), extra)).expect("config");
    let out = Command::new(binary())
        .args(["--config", path.to_str().expect("utf-8"), "config", "check"])
        .output()
        .expect("config check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn tokens_never_reach_the_log() {
    let near_miss = format!("{}x", &TOKEN_POS1[..TOKEN_POS1.len() - 1]);
    let node = NodeProcess::start_with("");
    let api = node.client();
    // Successes with both terminals, a write, failures with a near-miss, a prefix, a
    // garbage scheme and an overlong token.
    assert_eq!(api.get("/v1/items/MILK").status, 200);
    assert_eq!(
        api.post(
            "/v1/receipts",
            "sec-r1",
            &json!({ "lines": [{ "sku": "MILK", "quantity": 1 }] })
        )
        .status,
        201
    );
    assert_eq!(
        node.client()
            .with_token(TOKEN_POS2)
            .get("/v1/stock/MILK")
            .status,
        200
    );
    let long = "L".repeat(5000);
    for bad in [near_miss.as_str(), &TOKEN_POS1[..10], long.as_str()] {
        assert_eq!(
            node.client().with_token(bad).get("/v1/items/MILK").status,
            401
        );
    }
    let basic = api
        .http
        .get(format!("{}/v1/items/MILK", node.base))
        .header("authorization", format!("Basic {TOKEN_POS1}"))
        .send()
        .expect("GET");
    assert_eq!(basic.status().as_u16(), 401);
    let log = node.log();
    assert!(
        log.contains("missing or invalid bearer token"),
        "failures are logged: {log}"
    );
    for secret in [TOKEN_POS1, TOKEN_POS2, near_miss.as_str(), long.as_str()] {
        assert!(!log.contains(secret), "a token reached the log");
    }
}

#[test]
fn tls_verification_cannot_be_switched_off_by_configuration() {
    let pki = Pki::new("security");
    let client = pki.client("s1");
    let tls_files = format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        client.ca_cert.display(),
        client.cert.display(),
        client.key.display()
    );
    // The control case: mutual TLS to a remote broker is accepted.
    let (code, text) = config_check(&format!(
        "[sync]\nbroker = \"mqtts://broker.example.com:8883\"\n{tls_files}"
    ));
    assert_eq!(code, Some(0), "{text}");

    // No key turns verification off: every plausible spelling is an unknown key.
    for key in [
        "insecure = true",
        "tls_verify = false",
        "verify = false",
        "skip_verify = true",
        "danger_accept_invalid_certs = true",
        "allow_insecure = true",
    ] {
        let (code, text) = config_check(&format!(
            "[sync]\nbroker = \"mqtts://broker.example.com:8883\"\n{tls_files}{key}\n"
        ));
        assert_eq!(code, Some(2), "{key} accepted: {text}");
        let name = key.split(' ').next().unwrap_or_default();
        assert!(
            text.contains(name),
            "{key}: the error names the key: {text}"
        );
    }

    // Plain MQTT leaves the machine: refused. Loopback only.
    for broker in [
        "mqtt://broker.example.com:1883",
        "mqtt://10.0.0.1:1883",
        "mqtt://[2001:db8::1]:1883",
    ] {
        let (code, text) = config_check(&format!("[sync]\nbroker = \"{broker}\"\n"));
        assert_eq!(code, Some(2), "{broker} accepted: {text}");
        assert!(text.contains("sync.broker"), "{broker}: {text}");
    }
    let (code, text) = config_check("[sync]\nbroker = \"mqtt://127.0.0.1:1883\"\n");
    assert_eq!(
        code,
        Some(0),
        "loopback plain MQTT is for tests and the demo: {text}"
    );

    // mqtts:// without the client certificate and CA: refused, not "TLS without checks".
    let (code, text) = config_check("[sync]\nbroker = \"mqtts://broker.example.com:8883\"\n");
    assert_eq!(code, Some(2), "{text}");
}

#[test]
fn support_bundles_carry_no_token_and_no_key() {
    let pki = Pki::new("bundle");
    let client = pki.client("s1");
    let key_text = std::fs::read_to_string(&client.key).expect("client key");
    let key_body: String = key_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    // Sync to a broker that is not there: the node runs, and its config names the key.
    let broker_port = free_port();
    let node = NodeProcess::start_with(&format!(
        "[sync]\nbroker = \"mqtts://127.0.0.1:{broker_port}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        client.ca_cert.display(),
        client.cert.display(),
        client.key.display()
    ));
    // Auth traffic first, so logs and metrics have had a chance to see the tokens.
    assert_eq!(node.client().get("/v1/items/MILK").status, 200);
    assert_eq!(
        node.client()
            .with_token("wrong-token-xyz")
            .get("/v1/items/MILK")
            .status,
        401
    );
    let out_path = node.dir.path().join("bundle.tar.gz");
    let out = Command::new(binary())
        .args([
            "--config",
            node.config.to_str().expect("utf-8"),
            "diag",
            "bundle",
            "--out",
            out_path.to_str().expect("utf-8"),
        ])
        .output()
        .expect("diag bundle");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::File::open(&out_path).expect("bundle written");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut names = Vec::new();
    let mut config_seen = false;
    for entry in archive.entries().expect("a tar.gz") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read entry");
        let content = String::from_utf8_lossy(&bytes);
        for secret in [TOKEN_POS1, TOKEN_POS2, "wrong-token-xyz", key_body.as_str()] {
            assert!(!content.contains(secret), "{name} leaks a secret");
        }
        assert!(!content.contains("PRIVATE KEY"), "{name} holds a key file");
        if name.ends_with("config.toml") {
            config_seen = true;
            assert!(content.contains("<redacted>"), "{content}");
            // Where the key lives may be named; its contents never are.
            assert!(content.contains("key_file"), "{content}");
        }
        names.push(name);
    }
    assert!(config_seen, "the bundle has the redacted config: {names:?}");
}
