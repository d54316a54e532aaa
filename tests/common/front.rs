//! A front for HQ's API, as a reverse proxy (nginx, a load balancer) puts one there: it
//! forwards every request to the real HQ and answers with a chunked body (no
//! Content-Length), over plain HTTP or over TLS with the test PKI's server certificate
//! (127.0.0.1 / localhost, signed by the test CA).

// Each integration-test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub struct Front {
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub base: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
}

/// Accepts TCP connections and completes the TLS handshake (a failed handshake, e.g. a
/// client that does not trust the CA, is dropped and the next connection accepted).
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn acceptor(cert: &Path, key: &Path) -> TlsAcceptor {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).expect("server cert"),
    ))
    .collect::<Result<Vec<_>, _>>()
    .expect("server cert pem");
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).expect("server key"),
    ))
    .expect("server key pem")
    .expect("a server key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server identity");
    TlsAcceptor::from(Arc::new(config))
}

/// Forwards the request; answers with the same status and body, in two chunks.
async fn forward(State(up): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = up
        .http
        .request(parts.method, format!("{}{path}", up.base))
        .body(bytes);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = parts.headers.get(&name) {
            out = out.header(name, value);
        }
    }
    let Ok(answer) = out.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let body = answer.bytes().await.unwrap_or_default();
    let half = body.len() / 2;
    let chunks = [body.slice(..half), body.slice(half..)].map(Ok::<_, std::io::Error>);
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
}

impl Front {
    /// A front for `upstream` (`http://127.0.0.1:PORT`); over TLS when `tls` gives the
    /// server certificate and key.
    pub fn start(upstream: &str, tls: Option<(&Path, &Path)>) -> Front {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("front runtime");
        let state = Upstream {
            base: upstream.to_owned(),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let tcp = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind front");
        let port = tcp.local_addr().expect("front addr").port();
        let base = match tls {
            Some((cert, key)) => {
                let listener = TlsListener {
                    tcp,
                    acceptor: acceptor(cert, key),
                };
                runtime.spawn(async move { axum::serve(listener, app).await });
                format!("https://localhost:{port}")
            }
            None => {
                runtime.spawn(async move { axum::serve(tcp, app).await });
                format!("http://127.0.0.1:{port}")
            }
        };
        Front {
            base,
            runtime: Some(runtime),
        }
    }
}
