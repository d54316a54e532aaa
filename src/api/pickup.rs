//! The pickup path's brute-force guard around `POST /v1/orders/{id}/collect`: refuses while
//! the order or the terminal is locked out, counts wrong codes, logs each lockout.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;

/// `Err(429 pickup_locked)` while `order` or `terminal` is locked out.
pub fn check(state: &AppState, order: &str, terminal: &str) -> Result<(), ApiError> {
    let Err(locked) = state.pickup.check(order, terminal, Instant::now()) else {
        return Ok(());
    };
    state.metrics.pickup_lockouts.inc();
    // The lockout itself is logged at WARN when it starts; each refusal only at debug, so a
    // guessing loop cannot flood the log.
    tracing::debug!(
        order,
        terminal,
        scope = locked.scope.as_str(),
        retry_after_secs = locked.retry_after.as_secs(),
        "collect refused: too many wrong pickup codes"
    );
    let wait = locked.retry_after.as_secs().max(1);
    Err(ApiError {
        retry_after_secs: Some(wait),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "pickup_locked",
            format!(
                "too many wrong pickup codes for this {}; collecting is locked for {wait} s",
                locked.scope.as_str()
            ),
        )
    })
}

/// Counts the outcome of a collect: a wrong code is a strike, a collect clears the order's.
pub fn record(state: &AppState, order: &str, terminal: &str, result: &Result<Response, ApiError>) {
    match result {
        Ok(_) => state.pickup.succeeded(order),
        Err(e) if is_wrong_code(e) => {
            state.metrics.pickup_code_failures.inc();
            match state.pickup.failed(order, terminal, Instant::now()) {
                Some(locked) => tracing::warn!(
                    order,
                    terminal,
                    scope = locked.scope.as_str(),
                    lockout_secs = locked.retry_after.as_secs(),
                    "wrong pickup code: collecting locked out"
                ),
                None => tracing::info!(order, terminal, "wrong pickup code"),
            }
        }
        Err(_) => {}
    }
}

fn is_wrong_code(e: &ApiError) -> bool {
    e.status == StatusCode::UNPROCESSABLE_ENTITY && e.field.as_deref() == Some("pickup_code")
}
