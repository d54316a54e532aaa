//! Bearer tokens per terminal, compared in constant time, and a per-terminal rate limit.
//!
//! Tokens are hashed (SHA-256) at start and the presented token's hash is compared with every
//! terminal's hash with `subtle`, so neither the length nor the position of a mismatch leaks
//! through timing. Tokens never reach a log line: only the terminal id does.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::Terminal;
use crate::http_shared::limits::{TokenBucket, too_many};

/// The terminal a request was authenticated as.
#[derive(Debug, Clone)]
pub struct TerminalId(pub String);

pub struct Auth {
    terminals: Vec<(String, [u8; 32])>,
    buckets: HashMap<String, TokenBucket>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    pub fn new(terminals: &[Terminal], rate_per_sec: u32, burst: u32) -> Self {
        Self {
            terminals: terminals
                .iter()
                .map(|t| (t.id.clone(), digest(t.token.expose())))
                .collect(),
            buckets: terminals
                .iter()
                .map(|t| (t.id.clone(), TokenBucket::new(rate_per_sec, burst)))
                .collect(),
        }
    }

    /// The terminal whose token this is. Every terminal is compared, match or not.
    pub fn authenticate(&self, token: &str) -> Option<&str> {
        let presented = digest(token);
        let mut found = None;
        for (id, expected) in &self.terminals {
            if bool::from(expected.ct_eq(&presented)) {
                found = Some(id.as_str());
            }
        }
        found
    }

    /// Takes one request from the terminal's bucket; `Err(seconds)` to wait when empty.
    /// One terminal flooding the API uses up its own bucket only; others are unaffected.
    pub fn admit(&self, terminal: &str) -> Result<(), u64> {
        match self.buckets.get(terminal) {
            Some(bucket) => bucket.take(),
            None => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for TerminalId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::settings::bearer_token);
        let Some(terminal) = token.and_then(|t| state.auth.authenticate(t)) else {
            state.metrics.auth_failures.inc();
            tracing::warn!(path = %parts.uri.path(), "request refused: missing or invalid bearer token");
            return Err(ApiError::unauthorized());
        };
        if let Err(wait) = state.auth.admit(terminal) {
            state.metrics.rate_limited.inc();
            return Err(too_many(&format!("the API by terminal {terminal}"), wait));
        }
        Ok(TerminalId(terminal.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;

    fn auth(rate: u32, burst: u32) -> Auth {
        let terminals = vec![
            Terminal {
                id: "pos1".into(),
                token: Secret::new("token-one-0123456789"),
            },
            Terminal {
                id: "pos2".into(),
                token: Secret::new("token-two-0123456789"),
            },
        ];
        Auth::new(&terminals, rate, burst)
    }

    #[test]
    fn tokens_map_to_terminals() {
        let auth = auth(10, 10);
        assert_eq!(auth.authenticate("token-two-0123456789"), Some("pos2"));
        assert_eq!(auth.authenticate("token-two-012345678"), None);
        assert_eq!(auth.authenticate(""), None);
    }

    #[test]
    fn flood_from_one_terminal_does_not_starve_another() {
        let auth = auth(1, 5);
        for _ in 0..5 {
            assert!(auth.admit("pos1").is_ok());
        }
        assert!(auth.admit("pos1").is_err());
        assert!(auth.admit("pos2").is_ok());
    }
}
