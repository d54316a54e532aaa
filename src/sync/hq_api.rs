//! The `[hq]` keys of HQ's HTTP API: who may call it (`[[hq.clients]]`, each a name, a
//! role and a token; the single `hq.token` stays, as an admin client) and HTTPS
//! (`[hq.http_tls]`, a certificate and its key). Validated into [`ApiClient`]s and
//! [`HttpTls`] when the file is loaded.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::settings::{ConfigError, Secret};

/// Tokens shorter than this are refused (as the store's terminal tokens are).
pub const MIN_TOKEN_LEN: usize = 16;

/// What a client of HQ's API may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The web shop: read stock and orders, quote, place and cancel orders.
    Web,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Web => "web",
            Role::Admin => "admin",
        }
    }
}

/// One client of HQ's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// Named in HQ's log (never the token).
    pub name: String,
    pub role: Role,
    pub token: Secret,
}

impl ApiClient {
    /// The client of the single `hq.token`: `admin`, with every right.
    pub fn admin(token: Secret) -> Self {
        Self {
            name: "admin".to_owned(),
            role: Role::Admin,
            token,
        }
    }
}

/// HQ's HTTPS certificate (PEM, optionally followed by intermediates) and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `[[hq.clients]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: String,
    /// `web` or `admin`.
    pub role: String,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// `[hq.http_tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One of `token`, `token_env`, `token_file` (relative to the config file), trimmed.
pub struct TokenSource<'a> {
    pub token: Option<&'a str>,
    pub token_env: Option<&'a str>,
    pub token_file: Option<&'a Path>,
}

impl TokenSource<'_> {
    fn given(&self) -> bool {
        self.token.is_some() || self.token_env.is_some() || self.token_file.is_some()
    }

    /// The token; `key` names the config key in errors (`hq.token`, `hq.clients[0].token`).
    fn read(&self, file: &Path, key: &str) -> Result<Secret, ConfigError> {
        let text = match (self.token, self.token_env, self.token_file) {
            (Some(t), None, None) => t.to_owned(),
            (None, Some(var), None) => std::env::var(var).map_err(|_| {
                invalid(
                    file,
                    &format!("{key}_env"),
                    format!("environment variable {var} is not set"),
                )
            })?,
            (None, None, Some(path)) => {
                let path = resolve(file, path);
                std::fs::read_to_string(&path).map_err(|e| {
                    invalid(
                        file,
                        &format!("{key}_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?
            }
            _ => {
                return Err(invalid(
                    file,
                    key,
                    "give exactly one of token, token_env, token_file".into(),
                ));
            }
        };
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(invalid(
                file,
                key,
                format!("must be at least {MIN_TOKEN_LEN} characters"),
            ));
        }
        Ok(Secret::new(token))
    }
}

/// The clients: `hq.token` (if given) as `admin`, then `[[hq.clients]]`. At least one; names
/// and tokens unique.
pub fn clients(
    file: &Path,
    legacy: TokenSource<'_>,
    raw: Vec<RawClient>,
) -> Result<Vec<ApiClient>, ConfigError> {
    let mut out: Vec<ApiClient> = Vec::new();
    if legacy.given() || raw.is_empty() {
        out.push(ApiClient::admin(legacy.read(file, "hq.token")?));
    }
    for (i, client) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("hq.clients[{i}].{field}");
        if client.name.trim().is_empty() || out.iter().any(|c| c.name == client.name) {
            return Err(invalid(
                file,
                &key("name"),
                format!("{:?} is empty or listed twice", client.name),
            ));
        }
        let role = match client.role.as_str() {
            "web" => Role::Web,
            "admin" => Role::Admin,
            other => {
                return Err(invalid(
                    file,
                    &key("role"),
                    format!("{other:?} is not a role: web or admin"),
                ));
            }
        };
        let token = TokenSource {
            token: client.token.as_deref(),
            token_env: client.token_env.as_deref(),
            token_file: client.token_file.as_deref(),
        }
        .read(file, &key("token"))?;
        if out.iter().any(|c| c.token == token) {
            return Err(invalid(
                file,
                &key("token"),
                "two clients share one token".into(),
            ));
        }
        out.push(ApiClient {
            name: client.name,
            role,
            token,
        });
    }
    Ok(out)
}

/// `[hq.http_tls]`, its files read and checked now (exit 2 at start rather than a server
/// that cannot shake hands).
pub fn http_tls(file: &Path, raw: Option<RawHttpTls>) -> Result<Option<HttpTls>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let tls = HttpTls {
        cert_file: resolve(file, &raw.cert_file),
        key_file: resolve(file, &raw.key_file),
    };
    crate::tls::server_config(&tls.cert_file, &tls.key_file).map_err(|e| {
        let key = match &e {
            crate::tls::TlsError::NoPrivateKey { .. } => "key_file",
            crate::tls::TlsError::Read { path, .. } | crate::tls::TlsError::BadPem { path, .. }
                if *path == tls.key_file =>
            {
                "key_file"
            }
            _ => "cert_file",
        };
        invalid(file, &format!("hq.http_tls.{key}"), e.to_string())
    })?;
    Ok(Some(tls))
}

fn invalid(file: &Path, key: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_path_buf(),
        key: key.to_owned(),
        reason,
    }
}

fn resolve(file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    file.parent().unwrap_or(Path::new(".")).join(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: TokenSource<'static> = TokenSource {
        token: None,
        token_env: None,
        token_file: None,
    };

    fn raw(name: &str, role: &str, token: &str) -> RawClient {
        RawClient {
            name: name.into(),
            role: role.into(),
            token: Some(token.into()),
            token_env: None,
            token_file: None,
        }
    }

    #[test]
    fn the_single_token_is_admin_and_clients_come_with_roles() {
        let file = Path::new("/etc/storenode/hq.toml");
        let legacy = TokenSource {
            token: Some("admin-token-0123456789"),
            ..NONE
        };
        let got = clients(
            file,
            legacy,
            vec![raw("shop", "web", "web-token-0123456789")],
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].name.as_str(), got[0].role), ("admin", Role::Admin));
        assert_eq!((got[1].name.as_str(), got[1].role), ("shop", Role::Web));
        // Clients alone are enough.
        let only = clients(file, NONE, vec![raw("shop", "web", "web-token-0123456789")]).unwrap();
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn bad_clients_are_refused_naming_the_key() {
        let file = Path::new("/etc/storenode/hq.toml");
        let err = |clients_: Vec<RawClient>| clients(file, NONE, clients_).unwrap_err().to_string();
        assert!(err(vec![raw("a", "root", "token-0123456789ab")]).contains("hq.clients[0].role"));
        assert!(err(vec![raw("a", "web", "short")]).contains("hq.clients[0].token"));
        let twice = err(vec![
            raw("a", "web", "token-0123456789ab"),
            raw("b", "admin", "token-0123456789ab"),
        ]);
        assert!(twice.contains("share one token"), "{twice}");
        assert!(
            clients(file, NONE, Vec::new())
                .unwrap_err()
                .to_string()
                .contains("hq.token")
        );
    }

    #[test]
    fn a_token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hq.toml");
        std::fs::write(dir.path().join("shop.token"), "web-token-0123456789\n").unwrap();
        let client = RawClient {
            token: None,
            token_file: Some("shop.token".into()),
            ..raw("shop", "web", "")
        };
        let got = clients(&file, NONE, vec![client]).unwrap();
        assert_eq!(got[0].token.expose(), "web-token-0123456789");
    }
}
