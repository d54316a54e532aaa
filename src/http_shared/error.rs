//! HTTP errors of the store's API and HQ's: one JSON shape ([`ErrorBody`]), one code per
//! status ([`code_of`]). Replies that axum or tower-http make themselves (405, 413, a
//! rejected path, the timeout's 503) get the same shape from [`json_errors`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u64>,
}

/// Every error reply of the API.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `unprocessable`,
    /// `rate_limited`, `unavailable`, `internal`.
    error: &'a str,
    /// What was wrong, for a person.
    message: &'a str,
    /// The request field at fault (a JSON path such as `lines[0].quantity`, a query
    /// parameter or a header), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn bad_request(field: Option<String>, message: impl Into<String>) -> Self {
        Self {
            field,
            ..Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// An error whose code is its status's ([`code_of`]).
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, code_of(status), message)
    }

    /// The reply's body, as the JSON object it is sent as.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(ErrorBody {
            error: self.code,
            message: &self.message,
            field: self.field.as_deref(),
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            field: self.field.as_deref(),
        };
        let json = serde_json::to_string(&body)
            .unwrap_or_else(|_| String::from("{\"error\":\"internal\"}"));
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The error code of a status, for errors not made with a code of their own.
pub fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Longest plain-text rejection kept as the message (axum's are one line).
const MAX_REJECTION_TEXT: usize = 4096;

/// Gives an error reply that is not JSON yet (axum's 405 and its extractors' rejections,
/// the body limit's 413, the timeout's empty 503) the API's JSON shape, keeping its status
/// and headers (`Allow`, `Retry-After`) and its text as the message.
pub async fn json_errors(response: Response) -> Response {
    let mut reply = as_json_error(response).await;
    if reply.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The refused body was never read, so the connection closes after this reply; saying
        // so keeps a till's HTTP client from reusing it for its next request, which would
        // then fail as an incomplete message.
        reply.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    reply
}

async fn as_json_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut reply = ApiError::new(status, code_of(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            reply.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The refused body was never read, so the connection closes after this reply; saying
        // so keeps a till's HTTP client from reusing it for its next request, which would
        // then fail as an incomplete message.
        reply.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn plain_text_rejections_become_the_json_shape() {
        let plain = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
            "",
        )
            .into_response();
        let reply = json_errors(plain).await;
        assert_eq!(reply.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(reply.headers()[header::CONTENT_TYPE], "application/json");
        let body = body_of(reply).await;
        assert_eq!(body["error"], "method_not_allowed");
        assert_eq!(body["message"], "method not allowed");

        let too_big = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let body = body_of(json_errors(too_big).await).await;
        assert_eq!(body["error"], "payload_too_large");
        assert_eq!(body["message"], "length limit exceeded");
        // The unread body ends the connection: the client is told not to reuse it.
        let too_big = json_errors((StatusCode::PAYLOAD_TOO_LARGE, "too big").into_response()).await;
        assert_eq!(too_big.headers()[header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn json_and_success_replies_pass_unchanged() {
        let ok = (StatusCode::OK, "metrics text").into_response();
        let reply = json_errors(ok).await;
        assert_eq!(reply.status(), StatusCode::OK);
        let api = ApiError::bad_request(Some("limit".into()), "limit: give 1 to 1000");
        let body = body_of(json_errors(api.into_response()).await).await;
        assert_eq!(body["field"], "limit");
    }
}
