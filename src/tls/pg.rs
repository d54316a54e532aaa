//! TLS to PostgreSQL, configured the way libpq is: `sslmode`, `sslrootcert`, `sslcert` and
//! `sslkey` in HQ's connection string, so the string `psql` uses is the string HQ uses.
//!
//! The client library (tokio-postgres) knows only `sslmode=disable|prefer|require` and no
//! certificate files, so those four options are taken out of the string here and become a
//! rustls configuration. Unlike libpq, a certificate is never accepted unverified: `require`,
//! `verify-ca` and `verify-full` all check the chain against `sslrootcert` and the server's
//! name (or IP address) against the certificate, and need `sslrootcert`.
//!
//! The glue to tokio-postgres is ours rather than `tokio-postgres-rustls`: that crate's
//! current release brings ten more crates (x509-cert, der, spki, ...) for SCRAM channel
//! binding alone, and the ARM binary is at its size budget. Without channel binding the
//! password exchange is still SCRAM over a verified TLS session.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::config::SslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What is wrong with the TLS part of a connection string, or its files.
#[derive(Debug, thiserror::Error)]
pub enum PgTlsError {
    #[error(
        "sslmode={0} needs sslrootcert=FILE (the CA that signed the server's certificate): \
         storenode never uses TLS without verifying the server"
    )]
    NoRootCert(String),
    #[error("sslmode={0} is not one of disable, prefer, require, verify-ca, verify-full")]
    BadMode(String),
    #[error("give sslcert and sslkey together")]
    HalfIdentity,
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Files(#[from] crate::tls::TlsError),
    #[error("the connection string: {0}")]
    Parse(#[source] postgres::Error),
    #[error("{0}")]
    Connect(#[source] postgres::Error),
}

/// A connection string with its TLS options understood.
pub struct PgTarget {
    pub config: postgres::Config,
    tls: Option<TlsOptions>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TlsOptions {
    root_cert: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
}

/// The four libpq options taken out of a connection string, and the rest of it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Split {
    rest: String,
    mode: Option<String>,
    root_cert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl PgTarget {
    /// Parses `conn` (key/value or `postgres://` URL form). Reads no file.
    pub fn parse(conn: &str) -> Result<Self, PgTlsError> {
        let split = split(conn)?;
        let mut config: postgres::Config = split.rest.parse().map_err(PgTlsError::Parse)?;
        let identity = match (split.cert, split.key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(PgTlsError::HalfIdentity),
        };
        let mode = split.mode.unwrap_or_else(|| "prefer".into());
        let tls = match (mode.as_str(), split.root_cert) {
            ("disable", _) => None,
            ("prefer", None) => None,
            ("prefer", Some(root_cert)) => Some(TlsOptions {
                root_cert,
                identity,
            }),
            ("require" | "verify-ca" | "verify-full", Some(root_cert)) => {
                config.ssl_mode(SslMode::Require);
                Some(TlsOptions {
                    root_cert,
                    identity,
                })
            }
            ("require" | "verify-ca" | "verify-full", None) => {
                return Err(PgTlsError::NoRootCert(mode));
            }
            _ => return Err(PgTlsError::BadMode(mode)),
        };
        if tls.is_none() {
            config.ssl_mode(SslMode::Disable);
        }
        Ok(Self { config, tls })
    }

    /// Connects, over TLS when the string asks for it (reading the certificate files now).
    pub fn connect(&self) -> Result<postgres::Client, PgTlsError> {
        match &self.tls {
            None => self
                .config
                .connect(postgres::NoTls)
                .map_err(PgTlsError::Connect),
            Some(options) => {
                let identity = options
                    .identity
                    .as_ref()
                    .map(|(cert, key)| (cert.as_path(), key.as_path()));
                let client = crate::tls::verifying_client_config(&options.root_cert, identity)?;
                self.config
                    .connect(MakeRustls(client))
                    .map_err(PgTlsError::Connect)
            }
        }
    }
}

fn split(conn: &str) -> Result<Split, PgTlsError> {
    let trimmed = conn.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        split_url(trimmed)
    } else {
        split_key_values(trimmed)
    }
}

/// Takes one of the four options; `false` when `key` is another one.
fn take(split: &mut Split, key: &str, value: String) -> bool {
    let slot = match key {
        "sslmode" => {
            split.mode = Some(value);
            return true;
        }
        "sslrootcert" => &mut split.root_cert,
        "sslcert" => &mut split.cert,
        "sslkey" => &mut split.key,
        _ => return false,
    };
    *slot = Some(PathBuf::from(value));
    true
}

fn split_key_values(conn: &str) -> Result<Split, PgTlsError> {
    let mut split = Split::default();
    let mut kept = Vec::new();
    for (key, value) in key_values(conn)? {
        if !take(&mut split, &key, value.clone()) {
            kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    split.rest = kept.join(" ");
    Ok(split)
}

/// libpq's `key = value` pairs; a value may be quoted with `'` and escape with `\`.
fn key_values(conn: &str) -> Result<Vec<(String, String)>, PgTlsError> {
    let mut pairs = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(PgTlsError::Syntax(format!(
                "expected '=' after {key:?} in the connection string"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.extend(chars.next()),
                Some('\'') if quoted => break,
                Some(c) if !quoted && c.is_whitespace() => break,
                Some(c) => value.push(c),
                None if quoted => {
                    return Err(PgTlsError::Syntax(format!(
                        "unterminated quoted value of {key:?} in the connection string"
                    )));
                }
                None => break,
            }
        }
        pairs.push((key, value));
    }
}

fn split_url(conn: &str) -> Result<Split, PgTlsError> {
    let mut split = Split::default();
    let Some((base, query)) = conn.split_once('?') else {
        split.rest = conn.to_owned();
        return Ok(split);
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !take(&mut split, key, percent_decode(value)?) {
            kept.push(pair);
        }
    }
    split.rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(split)
}

fn percent_decode(text: &str) -> Result<String, PgTlsError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgTlsError::Syntax(format!("bad %-escape in {text:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgTlsError::Syntax(format!("{text:?} is not UTF-8")))
}

/// tokio-postgres' TLS hooks over tokio-rustls.
#[derive(Clone)]
struct MakeRustls(Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            server: ServerName::try_from(host.to_owned())?,
        })
    }
}

struct RustlsConnect {
    config: Arc<ClientConfig>,
    server: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            connector
                .connect(self.server, stream)
                .await
                .map(|tls| RustlsStream(Box::new(tls)))
        })
    }
}

struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_form_loses_only_the_tls_options() {
        let split = split(
            "host=db.hq port=5432 sslmode=verify-full sslrootcert='/etc/pg ca.pem' \
             user=hq password='it\\'s' sslcert=/c sslkey=/k",
        )
        .unwrap();
        assert_eq!(split.mode.as_deref(), Some("verify-full"));
        assert_eq!(split.root_cert, Some(PathBuf::from("/etc/pg ca.pem")));
        assert_eq!(split.cert, Some(PathBuf::from("/c")));
        assert_eq!(split.key, Some(PathBuf::from("/k")));
        assert_eq!(
            split.rest,
            "host='db.hq' port='5432' user='hq' password='it\\'s'"
        );
        let config: postgres::Config = split.rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn url_form_loses_only_the_tls_options() {
        let split = split(
            "postgres://hq@db.hq/hq?sslmode=require&application_name=hq&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(split.mode.as_deref(), Some("require"));
        assert_eq!(split.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(split.rest, "postgres://hq@db.hq/hq?application_name=hq");
    }

    #[test]
    fn verified_modes_need_a_root_certificate() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let err = PgTarget::parse(&format!("host=db sslmode={mode}"))
                .err()
                .unwrap();
            assert!(
                err.to_string().contains("needs sslrootcert"),
                "{mode}: {err}"
            );
        }
    }

    #[test]
    fn modes_map_to_the_client_library() {
        let plain = PgTarget::parse("host=db user=hq").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        let required = PgTarget::parse("host=db sslmode=verify-full sslrootcert=/ca").unwrap();
        assert_eq!(required.config.get_ssl_mode(), SslMode::Require);
        assert!(required.tls.is_some());
        let preferred = PgTarget::parse("host=db sslrootcert=/ca").unwrap();
        assert_eq!(preferred.config.get_ssl_mode(), SslMode::Prefer);
        assert!(matches!(
            PgTarget::parse("host=db sslmode=allow"),
            Err(PgTlsError::BadMode(_))
        ));
        assert!(matches!(
            PgTarget::parse("host=db sslmode=require sslrootcert=/ca sslcert=/c"),
            Err(PgTlsError::HalfIdentity)
        ));
        assert!(matches!(
            PgTarget::parse("host=db sslrootcert='/ca"),
            Err(PgTlsError::Syntax(_))
        ));
    }
}
