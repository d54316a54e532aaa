//! The one path every API write takes: idempotency key, parse, durable write, metrics.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::auth::TerminalId;
use super::error::ApiError;
use crate::health::State;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::idempotency;
use crate::store::sales::WriteContext;

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A write request: the authenticated terminal, its headers, the request path and the raw
/// body (kept as bytes so the idempotency fingerprint covers exactly what was sent).
/// Extracted last, since it takes the body.
pub struct WriteRequest {
    terminal: TerminalId,
    headers: HeaderMap,
    path: String,
    body: Bytes,
}

impl FromRequest<AppState> for WriteRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let terminal = TerminalId::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let path = parts.uri.path().to_string();
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            terminal,
            headers: parts.headers,
            path,
            body,
        })
    }
}

impl WriteRequest {
    /// The terminal the request was authenticated as.
    pub fn terminal(&self) -> &str {
        &self.terminal.0
    }

    /// The body as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        super::json::parse(&self.body)
    }

    /// The body as `T`, or `T::default()` when there is none: empty, or JSON `null`.
    pub fn parse_or_empty<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() || self.body.trim_ascii() == b"null" {
            Ok(T::default())
        } else {
            self.parse()
        }
    }

    /// Runs `op` once per idempotency key, durably; see [`idempotent`].
    pub async fn run<T, F>(
        self,
        state: &AppState,
        op: F,
        observe: impl FnOnce(&Metrics, &T),
    ) -> Result<Response, ApiError>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Connection, &WriteContext<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        idempotent(
            state,
            self.terminal,
            &self.headers,
            &self.path,
            &self.body,
            op,
            observe,
        )
        .await
    }
}

/// Runs `op` once per idempotency key, durably; a replay returns the stored first answer.
/// `observe` sees the result of a write that really happened (not of a replay) after it is
/// durable, to count it in metrics.
async fn idempotent<T, F>(
    state: &AppState,
    terminal: TerminalId,
    headers: &HeaderMap,
    path: &str,
    body: &Bytes,
    op: F,
    observe: impl FnOnce(&Metrics, &T),
) -> Result<Response, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Connection, &WriteContext<'_>) -> Result<T, StoreError> + Send + 'static,
{
    let started = Instant::now();
    let key = idempotency_key(headers)?;
    let hash = idempotency::request_hash("POST", path, &canonical_body(body));
    let config = state.config.clone();
    let writer_id = state.store.writer_id().to_string();
    let pricing = state.store.pricing();
    let packer = state.store.answer_packer();
    let answer = state
        .store
        .write(move |conn| {
            let now = crate::clock::now_utc();
            let ctx = WriteContext {
                terminal: &terminal.0,
                writer_id: &writer_id,
                currency: &config.node.currency,
                tax: &config.tax,
                now: &now,
                pricing: Some(&pricing),
            };
            let mut produced = None;
            let answer = idempotency::run(conn, &packer, &terminal.0, &key, &hash, &now, |conn| {
                let result = op(conn, &ctx)?;
                let body = serde_json::to_string(&result).map_err(|e| {
                    StoreError::Inconsistent(format!("cannot encode the answer: {e}"))
                })?;
                produced = Some(result);
                Ok((StatusCode::CREATED.as_u16(), body))
            })?;
            Ok((answer, produced))
        })
        .await;
    state.metrics.write_latency.observe(started.elapsed());
    let answer = answer.map_err(|e| {
        if e.is_write_refusal() {
            state.metrics.writes_refused_disk.inc();
            // Not ready until a write goes through again (the next sale or the probe).
            let verdict = crate::probes::refused(&e.to_string(), state.store.path());
            if state.health.set("store", State::Down, verdict.detail, true) {
                tracing::error!(error = %e, "store refuses writes (disk full or read-only?); reads go on, retrying with each write");
            }
        }
        let api = ApiError::from(e);
        if api.status.is_server_error() {
            state.metrics.write_errors.inc();
        }
        api
    })?;
    let (answer, produced) = answer;
    if state.health.state("store") == Some(State::Down)
        && state.health.set("store", State::Ok, "writes resumed", true)
    {
        tracing::info!("store accepts writes again");
    }
    match produced {
        Some(result) => observe(&state.metrics, &result),
        None => state.metrics.idempotent_replays.inc(),
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if answer.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The body as the idempotency fingerprint sees it: JSON re-encoded with object keys sorted
/// and no whitespace, so a retry that serialises the same request differently (key order,
/// spacing) is the same request. A body that is not JSON (an empty one) is taken as sent.
pub fn canonical_body(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => {
            let mut out = Vec::with_capacity(body.len());
            write_canonical(&value, &mut out);
            out
        }
        Err(_) => body.to_vec(),
    }
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // Sorted here rather than relying on serde_json's map order, which a crate in the
        // tree may switch to insertion order (feature `preserve_order`).
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &serde_json::Value, out: &mut Vec<u8>) {
    // Writing a scalar `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let field = Some("Idempotency-Key".to_string());
    let value = headers.get(IDEMPOTENCY_HEADER).ok_or_else(|| {
        ApiError::bad_request(
            field.clone(),
            "header Idempotency-Key is required on every write",
        )
    })?;
    let key = value.to_str().map_err(|_| {
        ApiError::bad_request(field.clone(), "Idempotency-Key must be printable ASCII")
    })?;
    idempotency::check_key(key)
        .map_err(|reason| ApiError::bad_request(field, format!("Idempotency-Key {reason}")))?;
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::canonical_body;

    #[test]
    fn canonical_body_ignores_key_order_and_whitespace() {
        let a = canonical_body(br#"{"lines":[{"sku":"A","quantity":2}],"payments":[]}"#);
        let b = canonical_body(
            b"{ \"payments\": [],\n  \"lines\": [ {\"quantity\": 2, \"sku\": \"A\"} ] }",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            canonical_body(br#"{"lines":[{"sku":"A","quantity":3}],"payments":[]}"#)
        );
        assert_ne!(
            a,
            canonical_body(br#"{"payments":[],"lines":[{"quantity":2,"sku":"a"}]}"#)
        );
        assert_eq!(canonical_body(b""), b"");
    }
}
