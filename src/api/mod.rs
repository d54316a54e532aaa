//! The local HTTP API for POS terminals and handhelds (axum), under `/v1`.
//!
//! Handlers are thin: parse, authenticate, call the store, map the result. Every write goes
//! through [`write::idempotent`], which requires an `Idempotency-Key` header.

mod auth;
mod coupons;
mod epcis;
mod error;
mod handlers;
pub mod json;
pub mod lockout;
mod loyalty;
pub mod openapi;
mod pickup;
mod privacy;
mod query;
mod replies;
mod transfers;
mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

pub use auth::Auth;
pub use error::ApiError;

use crate::http_shared::limits;
use crate::http_shared::server::{self, ConnectionLimits};

use crate::config::Config;
use crate::events::EventBus;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Store;

/// Everything a handler may touch; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub auth: Arc<Auth>,
    pub events: EventBus,
    /// Extra metrics from subsystems (devices, sync), appended to `/metrics`.
    pub extra_metrics: Arc<dyn Fn(&mut String) + Send + Sync>,
    pub started: std::time::Instant,
    /// Fired when the node stops: long-lived responses (the event stream) end on it.
    pub shutdown: CancellationToken,
    /// Wrong pickup codes per order and per terminal (brute-force lockout).
    pub pickup: Arc<lockout::PickupLockout>,
    /// Rates of the endpoints that need no token.
    pub public_limits: Arc<limits::PublicLimits>,
    /// Whether sync is connected to the broker now (false for a node without sync): what a
    /// till is told to expect after a lane asked HQ for something.
    pub online: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Sync with HQ (`None` without `[sync]`): member lookups by phone or e-mail ask HQ
    /// through it.
    pub sync: Option<Arc<crate::sync::node::SyncHandle>>,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.api.max_body_bytes;
    let timeout = Duration::from_millis(state.config.api.request_timeout_ms);
    let (routes, _doc) = openapi::routes().split_for_parts();
    routes
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // Outermost: also sees the replies of the layers above (413, the timeout's 503).
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(state)
}

/// Serves until `state.shutdown` fires, then finishes in-flight requests (bounded); see
/// [`server`] for the connection limits.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let limits = ConnectionLimits {
        header_read_timeout: state.config.api.limits.header_read_timeout,
        max_connections: state.config.api.limits.max_connections,
    };
    let shutdown = state.shutdown.clone();
    server::serve(listener, router(state), limits, None, shutdown).await
}
