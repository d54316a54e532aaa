//! A token bucket, for per-terminal request rates and the unauthenticated endpoints
//! (`/metrics`, `/readyz`) of the store and HQ: a flood of those is answered 429 cheaply
//! instead of each request reading the database.

use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;

use super::error::ApiError;

pub struct TokenBucket {
    state: Mutex<Bucket>,
    rate_per_sec: f64,
    burst: f64,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self {
            state: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
            }),
            rate_per_sec: f64::from(rate_per_sec.max(1)),
            burst: f64::from(burst),
        }
    }

    /// Takes one token; `Err(seconds)` to wait when the bucket is empty.
    pub fn take(&self) -> Result<(), u64> {
        let Ok(mut bucket) = self.state.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let refill = now.duration_since(bucket.last).as_secs_f64() * self.rate_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate_per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// Limits of the endpoints that need no token: shared by all callers, generous for a
/// Prometheus scraper and a load balancer's health checks, tight for a flood.
pub struct PublicLimits {
    pub metrics: TokenBucket,
    pub readyz: TokenBucket,
}

impl Default for PublicLimits {
    fn default() -> Self {
        Self {
            metrics: TokenBucket::new(10, 30),
            readyz: TokenBucket::new(50, 100),
        }
    }
}

/// The 429 for a caller over `what`'s rate.
pub fn too_many(what: &str, wait: u64) -> ApiError {
    ApiError {
        retry_after_secs: Some(wait),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{what} is asked too often; retry in {wait} s"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_with_a_wait() {
        let bucket = TokenBucket::new(1, 3);
        for _ in 0..3 {
            assert!(bucket.take().is_ok());
        }
        assert_eq!(bucket.take(), Err(1));
    }
}
