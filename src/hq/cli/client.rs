//! The connection of the `hq` API commands: which HQ, with which token and CA, and the calls
//! with HQ's refusals turned into errors that carry HQ's own message.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;

use super::print::Money;
use crate::http_client::{HqClient, HttpClientError, Reply, chain_ca};

/// The flags every `hq` API command takes (after any subcommand too).
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// HQ's API, e.g. https://hq.example.net:8443 (http:// only to a loopback address);
    /// without it, the HQ that --config configures (its `listen` and admin token).
    #[arg(long, global = true, value_name = "URL", requires = "token_file")]
    pub hq_url: Option<String>,
    /// CA certificate HQ's certificate must chain to (default: `ca_file` of --config).
    #[arg(long, global = true, value_name = "FILE", requires = "hq_url")]
    pub ca_file: Option<PathBuf>,
    /// File holding HQ's API bearer token (an admin client's), with --hq-url.
    #[arg(long, global = true, value_name = "FILE", requires = "hq_url")]
    pub token_file: Option<PathBuf>,
    /// Print HQ's answer (JSON) as it came, instead of the summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// Currency whose decimals amounts are printed with (default: `[node] currency` of
    /// --config, else EUR). HQ's answers carry minor units only.
    #[arg(long, global = true, value_name = "CODE", value_parser = currency_code)]
    pub currency: Option<String>,
}

/// An ISO 4217 alphabetic code, as `[node] currency` takes it.
fn currency_code(text: &str) -> Result<String, String> {
    if text.len() == 3 && text.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not an ISO 4217 code like EUR"))
    }
}

/// Why a command did not get what it asked HQ for.
#[derive(Debug, thiserror::Error)]
pub enum HqCliError {
    /// HQ refused: its status and the `message` of its error body.
    #[error("HQ answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("cannot reach HQ: {0}")]
    Unreachable(#[from] HttpClientError),
    #[error("HQ answered {status} with something that is not {what}: {detail}")]
    Unexpected {
        status: u16,
        what: &'static str,
        detail: String,
    },
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
}

/// One of HQ's answers: the body as sent and parsed.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub json: serde_json::Value,
}

impl Answer {
    /// The body as `T`; `what` names it in the error.
    pub fn parse<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, HqCliError> {
        serde_json::from_value(self.json.clone()).map_err(|e| HqCliError::Unexpected {
            status: self.status,
            what,
            detail: e.to_string(),
        })
    }
}

/// HQ's reply as an [`Answer`], or its refusal with HQ's message (the `message` of the
/// API's error body; the body itself when it has none).
pub fn answer(reply: Reply) -> Result<Answer, HqCliError> {
    let json = reply.json();
    if reply.is_success() {
        return Ok(Answer {
            status: reply.status,
            body: reply.body,
            json,
        });
    }
    let message = match (json["message"].as_str(), json["error"].as_str()) {
        (Some(m), _) => m.to_owned(),
        (None, Some(code)) => code.to_owned(),
        (None, None) if reply.body.trim().is_empty() => "no detail".to_owned(),
        (None, None) => reply.body.trim().chars().take(300).collect(),
    };
    Err(HqCliError::Refused {
        status: reply.status,
        message,
    })
}

/// A connected command: the client, whether to print HQ's raw answer, the money format.
#[derive(Debug, Clone)]
pub struct Api {
    client: HqClient,
    pub raw: bool,
    pub money: Money,
}

impl Api {
    /// The client `conn` asks for: `--hq-url` with `--token-file` (and the chain's CA for
    /// https), else the HQ of `config_file`.
    pub fn connect(conn: &Connection, config_file: &Path) -> anyhow::Result<Self> {
        let client = match &conn.hq_url {
            Some(url) => {
                let token_file = conn
                    .token_file
                    .as_ref()
                    .context("--hq-url needs --token-file")?;
                let token = std::fs::read_to_string(token_file)
                    .with_context(|| format!("token file {}", token_file.display()))?;
                let ca = conn.ca_file.clone().or_else(|| chain_ca(config_file));
                HqClient::new(url, &token, ca.as_deref()).context("--hq-url")?
            }
            None => {
                let config = crate::sync::config::load_hq(config_file).with_context(
                    || "no --hq-url: the HQ to talk to comes from --config, which must be HQ's",
                )?;
                super::super::local_client(&config)?
            }
        };
        let currency = conn
            .currency
            .clone()
            .or_else(|| config_currency(config_file))
            .unwrap_or_else(|| "EUR".to_owned());
        Ok(Self {
            client,
            raw: conn.json,
            money: Money::of(&currency),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, HqCliError> {
        answer(self.client.get(path).await?)
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Answer, HqCliError> {
        answer(self.client.post_json(path, body).await?)
    }

    pub async fn post_empty(&self, path: &str) -> Result<Answer, HqCliError> {
        answer(self.client.post_empty(path).await?)
    }

    pub async fn put(&self, path: &str, body: &serde_json::Value) -> Result<Answer, HqCliError> {
        answer(self.client.put_json(path, body).await?)
    }

    /// What to print for `answer`: HQ's body with `--json`, else `human` of it as `T`.
    pub fn show<T: DeserializeOwned>(
        &self,
        answer: &Answer,
        what: &'static str,
        human: impl FnOnce(&T) -> String,
    ) -> Result<String, HqCliError> {
        if self.raw {
            return Ok(raw(answer));
        }
        Ok(human(&answer.parse(what)?))
    }
}

/// HQ's body as it came, on its own line.
pub fn raw(answer: &Answer) -> String {
    format!("{}\n", answer.body.trim_end())
}

/// `[node] currency` of a configuration file, read loosely (only that key), as
/// [`chain_ca`] reads the CA: the store's currency when the CLI runs on a store's box.
fn config_currency(config_file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config_file).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let code = table.get("node")?.get("currency")?.as_str()?;
    currency_code(code).ok()
}

/// The JSON of `file` (`-`: standard input).
pub fn read_json(file: &Path) -> Result<serde_json::Value, HqCliError> {
    let name = file.display().to_string();
    let failed = |reason: String| HqCliError::File {
        file: name.clone(),
        reason,
    };
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| failed(e.to_string()))?;
        text
    } else {
        std::fs::read_to_string(file).map_err(|e| failed(e.to_string()))?
    };
    serde_json::from_str(&text).map_err(|e| failed(format!("not JSON: {e}")))
}

/// `text` as one path segment of a URL: RFC 3986 unreserved characters as they are, every
/// other byte percent-encoded (an id with `/`, `?` or a space stays one segment).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_owned(),
        }
    }

    #[test]
    fn a_refusal_carries_hqs_message() {
        let err = answer(reply(
            404,
            r#"{"error":"not_found","message":"no such coupon"}"#,
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "HQ answered 404: no such coupon");
        let err = answer(reply(502, "bad gateway")).unwrap_err();
        assert_eq!(err.to_string(), "HQ answered 502: bad gateway");
        let err = answer(reply(401, "")).unwrap_err();
        assert_eq!(err.to_string(), "HQ answered 401: no detail");
        let ok = answer(reply(201, r#"{"promotion":"p1"}"#)).unwrap();
        assert_eq!(ok.json["promotion"], "p1");
    }

    #[test]
    fn segments_stay_one_segment() {
        assert_eq!(segment("milk-3for2"), "milk-3for2");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(segment("(8018)1"), "%288018%291");
        assert_eq!(segment("ö"), "%C3%B6");
    }

    #[test]
    fn currency_comes_from_the_flag_or_the_config() {
        assert!(currency_code("eur").is_err() && currency_code("EURO").is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.toml");
        std::fs::write(&file, "[node]\ncurrency = \"JPY\"\n").unwrap();
        assert_eq!(config_currency(&file).as_deref(), Some("JPY"));
        std::fs::write(&file, "[hq]\ntenant = \"acme\"\n").unwrap();
        assert_eq!(config_currency(&file), None);
    }
}
