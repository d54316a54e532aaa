//! Secrets out of a configuration file before it leaves the box in a support bundle.
//!
//! Works on the TOML text itself (not the loaded [`crate::config::Config`]) so a file that
//! does not load — the usual reason for a bundle — can still be sent. Values of secret keys
//! are replaced; `*_file` and `*_env` keys only name where a secret lives and are kept.

const REDACTED: &str = "<redacted>";

#[derive(Debug, thiserror::Error)]
#[error("configuration is not valid TOML, so it is left out of the bundle: {0}")]
pub struct RedactError(String);

/// The file with every secret value replaced by `<redacted>`.
pub fn redact_config(text: &str) -> Result<String, RedactError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| RedactError(e.message().to_string()))?;
    redact_table(&mut table);
    toml::to_string(&table).map_err(|e| RedactError(e.to_string()))
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "token",
        "password",
        "secret",
        "passphrase",
        "private_key",
        "key_pem",
    ]
    .iter()
    .any(|word| key == *word || key.ends_with(&format!("_{word}")))
}

fn redact_table(table: &mut toml::Table) {
    for (key, value) in table.iter_mut() {
        if is_secret_key(key) {
            *value = toml::Value::String(REDACTED.into());
        } else {
            redact_value(value);
        }
    }
}

fn redact_value(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => redact_table(table),
        toml::Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_paths_stay() {
        let text = r#"
[node]
store_id = "s1"
[[api.terminals]]
id = "pos1"
token = "supersecret-token-123"
[[api.terminals]]
id = "pos2"
token_file = "/etc/storenode/tokens/pos2"
[sync]
client_key = "/etc/storenode/certs/node.key"
mqtt_password = "hunter2"
"#;
        let out = redact_config(text).unwrap();
        assert!(!out.contains("supersecret"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("/etc/storenode/tokens/pos2"), "{out}");
        assert!(out.contains("/etc/storenode/certs/node.key"), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 2, "{out}");
    }

    #[test]
    fn broken_toml_is_an_error_not_a_leak() {
        let err = redact_config("token = \"abc").unwrap_err();
        assert!(!err.to_string().contains("abc"));
    }
}
