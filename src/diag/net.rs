//! `diag net`: can this box reach HQ's broker? DNS, TCP, the TLS handshake with the
//! configured CA and client certificate (rustls, ring), and how long the certificates have
//! left. Runs without the daemon: it is what a technician tries when sync is down.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::style::Style;
use crate::tls::x509;
use crate::tls::{self, TlsFiles};

const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// Certificates closer than this to expiry are flagged.
const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "broker {0:?} is not a URL like mqtts://hq.example.com:8883 (schemes: mqtt, mqtts, tcp, ssl)"
    )]
    BadUrl(String),
}

/// Where the broker is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Parses `mqtts://host:port`, `mqtt://host`, or `host:port` (TLS by default: HQ requires it).
pub fn parse_broker(url: &str) -> Result<(String, u16, bool), NetError> {
    let bad = || NetError::BadUrl(url.to_string());
    let (tls, rest) = match url.split_once("://") {
        Some(("mqtts" | "ssl", rest)) => (true, rest),
        Some(("mqtt" | "tcp", rest)) => (false, rest),
        Some(_) => return Err(bad()),
        None => (true, url),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal is bracketed: [::1]:8883.
        Some((host, port)) if !port.contains(']') => {
            (host, port.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port, tls))
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetReport {
    pub broker: String,
    pub steps: Vec<Step>,
    pub ok: bool,
}

pub fn check(target: &Target) -> NetReport {
    let mut steps = Vec::new();
    let broker = format!(
        "{}://{}:{}",
        if target.tls { "mqtts" } else { "mqtt" },
        target.host,
        target.port
    );
    let addrs = timed(&mut steps, "dns", || resolve(&target.host, target.port));
    let tcp = addrs.and_then(|addrs| timed(&mut steps, "tcp", || connect(&addrs)));
    if let Some(tcp) = tcp
        && target.tls
    {
        timed(&mut steps, "tls", || handshake(target, tcp));
    }
    for (label, path) in [("ca", &target.ca), ("client cert", &target.cert)] {
        if let Some(path) = path {
            timed(&mut steps, &format!("{label} expiry"), || expiry(path));
        }
    }
    let ok = steps.iter().all(|s| s.ok);
    NetReport { broker, steps, ok }
}

/// Runs one step, records it, and passes its value on when it succeeded.
fn timed<T>(
    steps: &mut Vec<Step>,
    name: &str,
    step: impl FnOnce() -> Result<(T, String), String>,
) -> Option<T> {
    let started = Instant::now();
    let result = step();
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (ok, detail, value) = match result {
        Ok((value, detail)) => (true, detail, Some(value)),
        Err(detail) => (false, detail, None),
    };
    steps.push(Step {
        name: name.to_string(),
        ok,
        detail,
        ms,
    });
    value
}

fn resolve(host: &str, port: u16) -> Result<(Vec<SocketAddr>, String), String> {
    // getaddrinfo has no timeout of its own; a thread bounds the wait.
    let (tx, rx) = std::sync::mpsc::channel();
    let query = (host.to_string(), port);
    std::thread::spawn(move || {
        let _ = tx.send(query.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
    });
    match rx.recv_timeout(STEP_TIMEOUT) {
        Ok(Ok(addrs)) if !addrs.is_empty() => {
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            Ok((addrs, shown.join(", ")))
        }
        Ok(Ok(_)) => Err(format!("{host} has no address")),
        Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Err(_) => Err(format!("no DNS answer for {host} within {STEP_TIMEOUT:?}")),
    }
}

fn connect(addrs: &[SocketAddr]) -> Result<(TcpStream, String), String> {
    let mut failures = Vec::new();
    for addr in addrs {
        match TcpStream::connect_timeout(addr, STEP_TIMEOUT) {
            Ok(stream) => return Ok((stream, format!("connected to {addr}"))),
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    Err(failures.join("; "))
}

fn handshake(target: &Target, mut tcp: TcpStream) -> Result<((), String), String> {
    let config = client_config(target)?;
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| format!("{:?} is not a valid TLS server name: {e}", target.host))?;
    let mut tls = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(STEP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(STEP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)
            .map_err(|e| format!("handshake failed: {e}"))?;
    }
    // A rejected client certificate shows up as an alert after the handshake (TLS 1.3);
    // flushing one write surfaces it.
    let _ = tls.writer().flush();
    let _ = tls.complete_io(&mut tcp);
    let version = tls
        .protocol_version()
        .map_or("?".to_string(), |v| format!("{v:?}"));
    let suite = tls
        .negotiated_cipher_suite()
        .map_or("?".to_string(), |s| format!("{:?}", s.suite()));
    let peer_days = tls
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|der| x509::validity(der).ok())
        .map(|v| {
            format!(
                ", broker certificate expires in {} days",
                v.days_left(time::OffsetDateTime::now_utc())
            )
        })
        .unwrap_or_default();
    Ok(((), format!("{version} {suite}{peer_days}")))
}

fn client_config(target: &Target) -> Result<Arc<rustls::ClientConfig>, String> {
    let ca = target
        .ca
        .as_ref()
        .ok_or("no CA certificate given (--ca): the broker cannot be verified")?;
    match (&target.cert, &target.key) {
        (Some(cert), Some(key)) => tls::client_config(&TlsFiles {
            ca_cert: ca.clone(),
            client_cert_chain: cert.clone(),
            client_key: key.clone(),
        })
        .map_err(|e| e.to_string()),
        _ => server_only_config(ca),
    }
}

/// Verifies the broker without presenting a client certificate (to tell "broker
/// unreachable" apart from "our certificate is refused").
fn server_only_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in read_certificates(ca)? {
        roots
            .add(der)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn expiry(path: &Path) -> Result<((), String), String> {
    let now = time::OffsetDateTime::now_utc();
    let certs = read_certificates(path)?;
    let first = certs.first().ok_or("no certificate")?;
    let validity = x509::validity(first).map_err(|e| format!("{}: {e}", path.display()))?;
    let days = validity.days_left(now);
    let when = validity.not_after.date();
    if days < 0 {
        Err(format!("{} EXPIRED on {when}", path.display()))
    } else if validity.not_before > now {
        Err(format!(
            "{} is not valid before {} (check the clock)",
            path.display(),
            validity.not_before.date()
        ))
    } else if days < EXPIRY_WARNING_DAYS {
        Err(format!(
            "{} expires in {days} days ({when}): renew it",
            path.display()
        ))
    } else {
        Ok((
            (),
            format!("{} expires in {days} days ({when})", path.display()),
        ))
    }
}

pub fn render(report: &NetReport, style: Style) -> String {
    let mut out = format!("broker {}\n", style.heading(&report.broker));
    for step in &report.steps {
        let mark = if step.ok {
            style.good("ok  ")
        } else {
            style.bad("FAIL")
        };
        // The detail (paths, handshake) wraps under itself: every line fits 80 columns.
        let first = format!("  {mark} {:<18} ", step.name);
        let width = 2 + 4 + 1 + step.name.chars().count().max(18) + 1;
        let text = format!("{} ({} ms)", step.detail, step.ms);
        out.push_str(&super::style::wrap(&first, width, &text, 26));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker("mqtts://hq.example.com:8883").unwrap(),
            ("hq.example.com".into(), 8883, true)
        );
        assert_eq!(
            parse_broker("mqtt://10.0.0.5").unwrap(),
            ("10.0.0.5".into(), 1883, false)
        );
        assert_eq!(
            parse_broker("hq.example.com").unwrap(),
            ("hq.example.com".into(), 8883, true)
        );
        assert_eq!(
            parse_broker("mqtts://[::1]:9883").unwrap(),
            ("::1".into(), 9883, true)
        );
        for bad in [
            "http://x",
            "mqtts://",
            "mqtts://h:0",
            "mqtts://h:port",
            "mqtts://a/b:1",
        ] {
            assert!(parse_broker(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unreachable_port_fails_at_tcp() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let report = check(&Target {
            host: "127.0.0.1".into(),
            port,
            tls: true,
            ca: None,
            cert: None,
            key: None,
        });
        assert!(!report.ok);
        assert_eq!(
            report
                .steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["dns", "tcp"]
        );
        assert!(report.steps[0].ok);
    }
}
