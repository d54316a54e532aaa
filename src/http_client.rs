//! The HTTP client of the command line (`privacy erase`, `hq catalog import`, the `hq`
//! commands of [`crate::hq::cli`]): reqwest
//! (hyper: chunked replies, keep-alive, redirects refused) over rustls with the ring
//! provider, trusting only the chain's CA, never the system's roots: HQ's certificate is
//! issued by the chain's own CA (`storenode provision`), and anything else answering is not
//! HQ. Plain `http://` is accepted only to a loopback address (demos, tests, a CLI on the
//! HQ box), so the admin token never crosses a network in clear.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Connecting to HQ; an answer may take longer (an erasure touches every store's data).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("{0:?}: expected https://host:port (or http:// to a loopback address)")]
    Url(String),
    #[error(
        "{0:?}: plain http:// would send the token in clear; use https:// (http:// is only for a loopback address)"
    )]
    PlainToRemote(String),
    #[error(
        "{0:?}: https:// needs the chain's CA certificate: give --ca-file, or a --config whose [hq] or [sync] section has ca_file"
    )]
    NoCa(String),
    #[error("CA certificate: {0}")]
    Ca(#[from] crate::tls::TlsError),
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    #[error("{url}: {source}")]
    Request { url: String, source: reqwest::Error },
}

/// A reply: status and body (decoded whatever the transfer encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// A client for one base URL (`https://hq.example:8443`) with a bearer token.
#[derive(Debug, Clone)]
pub struct HqClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Whether `host` (as in a URL) names this machine's loopback.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Splits `scheme://authority[/]` and checks the rules above; returns (https, base URL).
fn check_url(url: &str) -> Result<(bool, String), HttpClientError> {
    let bad = || HttpClientError::Url(url.to_owned());
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad());
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && port.parse::<u16>().is_ok() => host,
        _ if authority.starts_with('[') && authority.ends_with(']') => authority,
        _ if !authority.contains(':') => authority,
        _ => return Err(bad()),
    };
    if host.is_empty() {
        return Err(bad());
    }
    if !https && !is_loopback(host) {
        return Err(HttpClientError::PlainToRemote(url.to_owned()));
    }
    let scheme = if https { "https" } else { "http" };
    Ok((https, format!("{scheme}://{authority}")))
}

/// The rustls configuration of the client: the chain's CA only, ring provider.
fn tls_config(ca_file: &Path) -> Result<rustls::ClientConfig, HttpClientError> {
    let roots = crate::tls::load_roots(ca_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(HttpClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl HqClient {
    /// A client for `url`; `ca_file` is required for `https://` (and unused for loopback
    /// `http://`).
    pub fn new(url: &str, token: &str, ca_file: Option<&Path>) -> Result<Self, HttpClientError> {
        let (https, base) = check_url(url)?;
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REPLY_TIMEOUT)
            // A redirect could send the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            // No proxy from the environment: HQ is reached directly, with its own CA.
            .no_proxy();
        let builder = if https {
            let ca = ca_file.ok_or_else(|| HttpClientError::NoCa(url.to_owned()))?;
            builder
                .use_preconfigured_tls(tls_config(ca)?)
                .https_only(true)
        } else {
            builder
        };
        let http = builder.build().map_err(|source| HttpClientError::Request {
            url: base.clone(),
            source,
        })?;
        Ok(Self {
            http,
            base,
            token: token.trim().to_owned(),
        })
    }

    /// An HTTPS client for the API this box itself listens on with TLS, trusting exactly
    /// its own certificate `cert_file` (pinned: the certificate names HQ's public host, not
    /// the loopback address dialled).
    pub fn own_tls_listener(
        addr: std::net::SocketAddr,
        token: &str,
        cert_file: &Path,
    ) -> Result<Self, HttpClientError> {
        let base = format!("https://{addr}");
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REPLY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .use_preconfigured_tls(crate::tls::pinned_client_config(cert_file)?)
            .https_only(true)
            .build()
            .map_err(|source| HttpClientError::Request {
                url: base.clone(),
                source,
            })?;
        Ok(Self {
            http,
            base,
            token: token.trim().to_owned(),
        })
    }

    /// A plain-HTTP client for the API this box itself listens on (`addr` from its own
    /// configuration, so the connection does not leave the machine).
    pub fn own_listener(addr: std::net::SocketAddr, token: &str) -> Result<Self, HttpClientError> {
        let base = format!("http://{addr}");
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REPLY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|source| HttpClientError::Request {
                url: base.clone(),
                source,
            })?;
        Ok(Self {
            http,
            base,
            token: token.trim().to_owned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST {base}{path}` with a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, HttpClientError> {
        self.send(self.http.post(self.url(path)).json(body), path)
            .await
    }

    /// `GET {base}{path}`.
    pub async fn get(&self, path: &str) -> Result<Reply, HttpClientError> {
        self.send(self.http.get(self.url(path)), path).await
    }

    /// `PUT {base}{path}` with a JSON body.
    pub async fn put_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, HttpClientError> {
        self.send(self.http.put(self.url(path)).json(body), path)
            .await
    }

    /// `POST {base}{path}` without a body (an action such as ending a promotion).
    pub async fn post_empty(&self, path: &str) -> Result<Reply, HttpClientError> {
        self.send(self.http.post(self.url(path)), path).await
    }

    /// `POST {base}{path}` with any body, e.g. `reqwest::Body::wrap_stream(…)` for a large
    /// upload sent as it is produced (chunked).
    pub async fn post_body(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<Reply, HttpClientError> {
        let request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request, path).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<Reply, HttpClientError> {
        let failed = |source| HttpClientError::Request {
            url: self.url(path),
            source,
        };
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(failed)?;
        Ok(Reply { status, body })
    }
}

/// The chain's CA named by a configuration file: `[hq] ca_file` or `[sync] ca_file`,
/// relative to the file. Read loosely (only that key), so a CLI on any box of the chain
/// finds it without the rest of the file having to validate here.
pub fn chain_ca(config_file: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config_file).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let ca = ["hq", "sync"]
        .iter()
        .find_map(|section| table.get(*section)?.get("ca_file")?.as_str())?;
    let ca = PathBuf::from(ca);
    Some(if ca.is_absolute() {
        ca
    } else {
        config_file.parent().unwrap_or(Path::new(".")).join(ca)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_rules() {
        for (url, base) in [
            ("http://127.0.0.1:8443/", "http://127.0.0.1:8443"),
            ("http://localhost:80", "http://localhost:80"),
            ("http://[::1]:8090", "http://[::1]:8090"),
            ("https://hq.example.net:8443", "https://hq.example.net:8443"),
            ("https://hq.example.net", "https://hq.example.net"),
        ] {
            assert_eq!(check_url(url).unwrap().1, base, "{url}");
        }
        for url in ["http://10.0.0.5:8443", "http://hq.example.net:80"] {
            assert!(
                matches!(check_url(url), Err(HttpClientError::PlainToRemote(_))),
                "{url}"
            );
        }
        for url in [
            "ftp://hq",
            "hq:8443",
            "https://",
            "https://hq/x",
            "https://u@hq:1",
            "https://hq:99999",
        ] {
            assert!(
                matches!(check_url(url), Err(HttpClientError::Url(_))),
                "{url}"
            );
        }
        assert!(matches!(
            HqClient::new("https://hq:8443", "t", None),
            Err(HttpClientError::NoCa(_))
        ));
    }

    #[test]
    fn the_ca_comes_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hq.toml");
        std::fs::write(&file, "[hq]\nca_file = \"pki/ca.pem\"\n").unwrap();
        assert_eq!(chain_ca(&file), Some(dir.path().join("pki/ca.pem")));
        std::fs::write(&file, "[sync]\nca_file = \"/etc/storenode/ca.pem\"\n").unwrap();
        assert_eq!(
            chain_ca(&file),
            Some(PathBuf::from("/etc/storenode/ca.pem"))
        );
        std::fs::write(&file, "[node]\n").unwrap();
        assert_eq!(chain_ca(&file), None);
    }
}
