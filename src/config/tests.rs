use std::path::Path;

use super::*;

const MINIMAL: &str = r#"
[node]
store_id = "s001"
data_dir = "/tmp/sn"

[[api.terminals]]
id = "pos1"
token = "0123456789abcdef0123"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(Path::new("/etc/storenode/test.toml"), text)
}

#[test]
fn minimal_config_gets_defaults() {
    let config = load(MINIMAL).unwrap();
    assert_eq!(config.node.store_id, "s001");
    assert_eq!(config.node.writer_id(), "s001.node1");
    assert_eq!(config.database.path, Path::new("/tmp/sn/store.db"));
    assert_eq!(config.tax.rate_bp("standard"), Some(1900));
    assert_eq!(
        config.api.terminals[0].token.expose(),
        "0123456789abcdef0123"
    );
}

#[test]
fn unknown_key_names_file_key_and_line() {
    let text = MINIMAL.replace("data_dir", "colour = 1\ndata_dir");
    let err = load(&text).unwrap_err().to_string();
    assert!(err.starts_with("/etc/storenode/test.toml:4:"), "{err}");
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn wrong_type_names_the_key() {
    let text = format!("{MINIMAL}\n[database]\nmax_batch = \"many\"\n");
    let err = load(&text).unwrap_err().to_string();
    assert!(err.contains("key `database.max_batch`"), "{err}");
}

#[test]
fn bad_values_are_refused_with_reason() {
    let cases = [
        (
            "store_id = \"s001\"",
            "store_id = \"s/01\"",
            "node.store_id",
        ),
        ("[node]", "[node]\ncurrency = \"euro\"", "node.currency"),
        (
            "[[api.terminals]]",
            "[api]\nlisten = \"nowhere\"\n[[api.terminals]]",
            "api.listen",
        ),
        ("0123456789abcdef0123", "short", "api.terminals[0].token"),
    ];
    for (from, to, key) in cases {
        let err = load(&MINIMAL.replace(from, to)).unwrap_err().to_string();
        assert!(err.contains(&format!("key `{key}`")), "{key}: {err}");
    }
}

#[test]
fn token_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("pos2.token");
    std::fs::write(&token_path, "file-token-0123456789\n").unwrap();
    let text = format!(
        "{MINIMAL}\n[[api.terminals]]\nid = \"pos2\"\ntoken_file = \"{}\"\n",
        token_path.display()
    );
    let config = load(&text).unwrap();
    assert_eq!(
        config.api.terminals[1].token.expose(),
        "file-token-0123456789"
    );

    let text = format!(
        "{MINIMAL}\n[[api.terminals]]\nid = \"pos3\"\ntoken_env = \"STORENODE_TEST_UNSET_VAR\"\n"
    );
    let err = load(&text).unwrap_err().to_string();
    assert!(err.contains("STORENODE_TEST_UNSET_VAR is not set"), "{err}");
}

#[test]
fn duplicate_terminal_refused() {
    let text =
        format!("{MINIMAL}\n[[api.terminals]]\nid = \"pos1\"\ntoken = \"another-token-0123456\"\n");
    let err = load(&text).unwrap_err().to_string();
    assert!(err.contains("listed twice"), "{err}");
}

#[test]
fn explain_redacts_tokens() {
    let config = load(MINIMAL).unwrap();
    let text = config.explain();
    assert!(!text.contains("0123456789abcdef0123"), "{text}");
    assert!(text.contains("<redacted>"));
}

#[test]
fn demo_config_is_valid() {
    let config = Config::demo(Path::new("/tmp/demo"), "127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(config.api.terminals.len(), 1);
}

#[test]
fn example_config_in_repo_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/storenode.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The example reads tokens from a file and the environment; stand both in for the test.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("pos1");
    std::fs::write(&token, "example-token-pos1-0123").unwrap();
    let text = text
        .replace(
            "token_env = \"STORENODE_TOKEN_POS2\"",
            "token = \"example-token-pos2-0123\"",
        )
        .replace("/etc/storenode/tokens/pos1", &token.display().to_string());
    let config = Config::from_toml(&path, &text);
    assert!(config.is_ok(), "{:?}", config.err());
}

#[test]
fn store_id_hq_is_reserved() {
    for id in ["hq", "HQ"] {
        let err = load(&MINIMAL.replace("\"s001\"", &format!("\"{id}\"")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("node.store_id") && err.contains("reserved"),
            "{err}"
        );
    }
}

#[test]
fn time_zone_is_an_iana_name_default_utc() {
    assert_eq!(
        load(MINIMAL).unwrap().node.time_zone,
        jiff::tz::TimeZone::UTC
    );
    let berlin = MINIMAL.replace("data_dir", "time_zone = \"Europe/Berlin\"\ndata_dir");
    let config = load(&berlin).unwrap();
    assert_eq!(config.node.time_zone.iana_name(), Some("Europe/Berlin"));
    assert!(config.explain().contains("time zone Europe/Berlin"));
    let err = load(&MINIMAL.replace("data_dir", "time_zone = \"+02:00x\"\ndata_dir"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("node.time_zone"), "{err}");
}

use proptest::prelude::Strategy as _;

/// The numeric keys of a node's and HQ's configuration, where a value goes.
const NUMBER_KEYS: &[(&str, &str)] = &[
    ("api", "max_body_bytes"),
    ("api", "request_timeout_ms"),
    ("api", "rate_per_terminal"),
    ("api", "burst_per_terminal"),
    ("database", "max_batch"),
    ("database", "idempotency_retention_hours"),
    ("sync", "resend_interval_ms"),
    ("sync", "reconnect_max_ms"),
    ("sync", "online_escrow_units"),
    ("hq", "epoch_interval_s"),
    ("hq", "safety_stock"),
    ("hq", "documents_in_memory"),
];

proptest::proptest! {
    // Whatever number (or not-a-number) a key is given, loading answers Ok or a
    // configuration error; it never panics, and a validated HQ interval is one the clock
    // can add.
    #[test]
    fn no_number_in_the_file_panics(
        key in 0..NUMBER_KEYS.len(),
        value in proptest::prop_oneof![
            proptest::num::i64::ANY.prop_map(|n| n.to_string()),
            proptest::num::u64::ANY.prop_map(|n| n.to_string()),
            proptest::num::f64::ANY.prop_map(|f| format!("{f:?}")),
            proptest::prelude::Just("nan".to_string()),
            proptest::prelude::Just("-inf".to_string()),
            proptest::prelude::Just("18446744073709551615".to_string()),
            "\"[ -~]{0,8}\"",
        ],
    ) {
        let (section, name) = NUMBER_KEYS[key];
        let body = match section {
            "sync" => "broker = \"mqtt://127.0.0.1:1883\"\n",
            "hq" => "token = \"0123456789abcdef0\"\nbroker = \"mqtt://127.0.0.1:1883\"\n",
            _ => "",
        };
        let text = format!("{MINIMAL}\n[{section}]\n{body}{name} = {value}\n");
        if let Some(every) = load(&text).ok().and_then(|c| c.hq).and_then(|h| h.epoch_interval) {
            proptest::prop_assert!(std::time::Instant::now().checked_add(every * 2).is_some());
        }
        let hq = format!("[hq]\ntoken = \"0123456789abcdef0\"\nbroker = \"mqtt://127.0.0.1:1883\"\n{name} = {value}\n");
        let parsed: Result<crate::sync::config::HqFile, _> = toml::from_str(&hq);
        if let Ok(file) = parsed {
            let _ = file.hq.validate(Path::new("/etc/storenode/hq.toml"));
        }
    }

    // Any text at all: an error naming the file, never a panic.
    #[test]
    fn any_text_loads_or_is_refused(text in "[\\[\\]a-z_=\"0-9. \n-]{0,200}") {
        let _ = load(&text);
        let _ = load(&format!("{MINIMAL}{text}"));
    }
}

#[test]
fn hq_database_tls_without_a_ca_is_refused_naming_the_key() {
    let hq = |database: &str| {
        let text = format!(
            "[hq]\ntoken = \"0123456789abcdef0\"\nbroker = \"mqtt://127.0.0.1:1883\"\ndatabase = \"{database}\"\n"
        );
        let file: crate::sync::config::HqFile = toml::from_str(&text).unwrap();
        file.hq.validate(Path::new("/etc/storenode/hq.toml"))
    };
    let err = hq("host=db.hq dbname=hq sslmode=verify-full")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hq.database") && err.contains("sslrootcert"),
        "{err}"
    );
    assert!(hq("host=db.hq dbname=hq sslmode=verify-full sslrootcert=/etc/ca.pem").is_ok());
    assert!(hq("host=db.hq dbname=hq").is_ok());
}

#[test]
fn idempotency_answers_are_kept_a_week_unless_configured() {
    let week = std::time::Duration::from_secs(7 * 24 * 3600);
    assert_eq!(load(MINIMAL).unwrap().database.idempotency_retention, week);
    let day = format!("{MINIMAL}\n[database]\nidempotency_retention_hours = 24\n");
    assert_eq!(
        load(&day).unwrap().database.idempotency_retention,
        std::time::Duration::from_secs(24 * 3600)
    );
    let never = format!("{MINIMAL}\n[database]\nidempotency_retention_hours = 0\n");
    let err = load(&never).unwrap_err().to_string();
    assert!(
        err.contains("database.idempotency_retention_hours"),
        "{err}"
    );
}
