//! rustls configurations built from PEM files: the client side of mutual TLS with the
//! broker ([`client_config`]) and the server side of HQ's HTTPS API ([`server_config`]).
//!
//! The crypto provider is passed explicitly (ring), never installed process-wide: no
//! global state, and the aws-lc-rs provider (which does not cross-build for armv7) is
//! never needed. There is deliberately no way to turn certificate verification off: test
//! setups generate a CA (see `tests/common/pki.rs`) instead.

/// TLS to PostgreSQL (HQ's database), from libpq's options in the connection string.
#[cfg(feature = "hq")]
pub mod pg;
pub mod x509;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// PEM files that identify this node to the broker and the broker to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) the broker's certificate must chain to.
    pub ca_cert: PathBuf,
    /// This node's certificate, optionally followed by intermediates.
    pub client_cert_chain: PathBuf,
    /// The private key of the client certificate (PKCS#8, PKCS#1 or SEC1).
    pub client_key: PathBuf,
}

/// What went wrong building the TLS configuration; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid PEM: {source}", path.display())]
    BadPem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} contains no PEM certificate (expected a \"BEGIN CERTIFICATE\" block)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} contains no private key (expected a PKCS#8, PKCS#1 or SEC1 PEM block)", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("CA certificate in {} was rejected: {source}", path.display())]
    BadCaCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("client certificate {} and key {} do not form a usable identity: {source}", cert.display(), key.display())]
    BadClientIdentity {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("server certificate {} and key {} do not form a usable identity: {source}", cert.display(), key.display())]
    BadServerIdentity {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS protocol versions unsupported by the ring provider: {0}")]
    Provider(rustls::Error),
}

/// Builds a client configuration that verifies the broker against `files.ca_cert` and
/// presents `files.client_cert_chain` / `files.client_key` as this node's identity.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = load_roots(&files.ca_cert)?;
    let chain = load_certificates(&files.client_cert_chain)?;
    let key = load_private_key(&files.client_key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|source| TlsError::BadClientIdentity {
            cert: files.client_cert_chain.clone(),
            key: files.client_key.clone(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// A client configuration that verifies the server against the CA certificate(s) in `ca`
/// (chain and name) and, when `identity` is given, presents that certificate and key:
/// HQ's connection to PostgreSQL (`sslrootcert`, `sslcert`, `sslkey`).
pub fn verifying_client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = load_roots(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certificates(cert)?, load_private_key(key)?)
            .map_err(|source| TlsError::BadClientIdentity {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?,
    };
    Ok(Arc::new(config))
}

/// A server configuration presenting `cert` (the server's certificate, optionally followed
/// by intermediates) and its `key`; clients are not asked for certificates (HQ's API
/// authenticates them by bearer token). HTTP/1.1 only, as the server speaks.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certificates(cert)?;
    let private = load_private_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|source| TlsError::BadServerIdentity {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that trusts exactly the first certificate of `cert` (HQ's own,
/// pinned): for the CLI on the HQ box calling its own HTTPS listener on loopback, where the
/// certificate's names (HQ's public host name) cannot match the address dialled.
pub fn pinned_client_config(cert: &Path) -> Result<ClientConfig, TlsError> {
    let pinned =
        load_certificates(cert)?
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::NoCertificate {
                path: cert.to_owned(),
            })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        cert: pinned,
        algorithms: provider.signature_verification_algorithms,
    });
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Accepts the one pinned certificate (its signatures still checked), nothing else.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut reader = open(path)?;
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::BadPem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The CA certificate(s) of `path` as a root store (also the CLI's HTTPS client, `crate::http_client`).
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(path)? {
        roots
            .add(cert)
            .map_err(|source| TlsError::BadCaCertificate {
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(roots)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut reader = open(path)?;
    rustls_pemfile::private_key(&mut reader)
        .map_err(|source| TlsError::BadPem {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: path.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Fixture {
        _dir: tempfile::TempDir,
        files: TlsFiles,
        other_key: PathBuf,
    }

    /// A CA and a client certificate signed by it, plus an unrelated key.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client_cert = rcgen::CertificateParams::new(vec!["s1".to_owned()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();

        let files = TlsFiles {
            ca_cert: dir.path().join("ca.pem"),
            client_cert_chain: dir.path().join("client.pem"),
            client_key: dir.path().join("client.key"),
        };
        let other = dir.path().join("other.key");
        fs::write(&files.ca_cert, ca_cert.pem()).unwrap();
        fs::write(&files.client_cert_chain, client_cert.pem()).unwrap();
        fs::write(&files.client_key, client_key.serialize_pem()).unwrap();
        fs::write(&other, other_key.serialize_pem()).unwrap();
        Fixture {
            _dir: dir,
            files,
            other_key: other,
        }
    }

    #[test]
    fn builds_from_valid_files() {
        let f = fixture();
        let config = client_config(&f.files).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn missing_file_is_named() {
        let mut f = fixture();
        f.files.ca_cert = f.files.ca_cert.with_file_name("nope.pem");
        let err = client_config(&f.files).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn key_file_given_as_certificate_says_no_certificate() {
        let mut f = fixture();
        f.files.client_cert_chain = f.files.client_key.clone();
        let err = client_config(&f.files).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("client.key"), "{err}");
    }

    #[test]
    fn certificate_given_as_key_says_no_key() {
        let mut f = fixture();
        f.files.client_key = f.files.client_cert_chain.clone();
        let err = client_config(&f.files).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
    }

    #[test]
    fn key_not_matching_certificate_is_refused() {
        let mut f = fixture();
        f.files.client_key = f.other_key.clone();
        let err = client_config(&f.files).unwrap_err();
        assert!(matches!(err, TlsError::BadClientIdentity { .. }), "{err}");
    }

    #[test]
    fn server_config_builds_and_refuses_a_foreign_key() {
        let f = fixture();
        assert!(server_config(&f.files.client_cert_chain, &f.files.client_key).is_ok());
        let err = server_config(&f.files.client_cert_chain, &f.other_key).unwrap_err();
        assert!(matches!(err, TlsError::BadServerIdentity { .. }), "{err}");
    }

    #[test]
    fn garbage_in_ca_file_is_not_a_certificate() {
        let f = fixture();
        fs::write(&f.files.ca_cert, "hello\n").unwrap();
        let err = client_config(&f.files).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}
