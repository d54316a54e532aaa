//! Test PKI: a CA, a broker certificate for 127.0.0.1/localhost and client certificates
//! whose CN is the identity the broker ACL sees (store id, or `hq`). All X.509 v3 with
//! key usages set, because rustls refuses v1 certificates and webpki checks EKUs.
//! PEM files live in a temporary directory that disappears with the [`Pki`].

// Each integration-test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM paths for one client identity.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The CA that signed this client (what the client should trust for the broker too).
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl Pki {
    /// A fresh CA (its name includes `label`, handy in broker logs) and a broker certificate.
    pub fn new(label: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("storenode-pki-")
            .tempdir()
            .expect("create PKI temp dir");
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("storenode test CA {label}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let ca_path = dir.path().join("ca.pem");
        fs::write(&ca_path, ca_cert.pem()).expect("write CA cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let mut pki = Pki {
            server_cert: dir.path().join("server.pem"),
            server_key: dir.path().join("server.key"),
            dir,
            issuer,
            ca_cert: ca_path,
        };
        pki.write_server_cert();
        pki
    }

    fn write_server_cert(&mut self) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign server cert");
        fs::write(&self.server_cert, cert.pem()).expect("write server cert");
        fs::write(&self.server_key, key.serialize_pem()).expect("write server key");
    }

    /// A client certificate with CN = `common_name`, signed by this CA.
    pub fn client(&self, common_name: &str) -> ClientCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate client key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign client cert");
        let cert_path = self.dir.path().join(format!("client-{common_name}.pem"));
        let key_path = self.dir.path().join(format!("client-{common_name}.key"));
        fs::write(&cert_path, cert.pem()).expect("write client cert");
        fs::write(&key_path, key.serialize_pem()).expect("write client key");
        ClientCert {
            ca_cert: self.ca_cert.clone(),
            cert: cert_path,
            key: key_path,
        }
    }

    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    pub fn server_cert(&self) -> &Path {
        &self.server_cert
    }

    pub fn server_key(&self) -> &Path {
        &self.server_key
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
