//! The local HTTP API for POS terminals and handhelds (axum), under `/v1`.
//!
//! Handlers are thin: parse, authenticate, call the store, map the result. Every write goes
//! through [`write::idempotent`], which requires an `Idempotency-Key` header.

mod auth;
mod epcis;
mod error;
mod handlers;
pub mod json;
mod limits;
pub mod lockout;
pub mod openapi;
mod pickup;
mod privacy;
mod server;
mod transfers;
mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

pub use auth::Auth;
pub use error::ApiError;

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
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.api.max_body_bytes;
    let timeout = Duration::from_millis(state.config.api.request_timeout_ms);
    // Rendered once: the document is the same for every caller, and the endpoint needs no
    // token, so a flood of it must not cost a JSON rendering per request.
    let openapi = openapi::rendered();
    let v1 = Router::new()
        .route(
            "/openapi.json",
            get(move || std::future::ready(openapi.clone())),
        )
        .route("/items/{key}", get(handlers::get_item))
        .route("/stock", get(handlers::stock_page))
        .route("/stock/{sku}", get(handlers::stock_one))
        .route("/sales", post(handlers::create_sale))
        .route("/sales/{sale_id}", get(handlers::get_sale))
        .route("/returns", post(handlers::create_return))
        .route("/receipts", post(handlers::create_receipt))
        .route("/counts", post(handlers::create_count))
        .route("/adjustments", post(handlers::create_adjustment))
        .route(
            "/orders",
            get(handlers::list_orders).post(handlers::create_order),
        )
        .route("/orders/{order_id}", get(handlers::get_order))
        .route("/orders/{order_id}/pick", post(handlers::pick_order))
        .route("/orders/{order_id}/ready", post(handlers::ready_order))
        .route("/orders/{order_id}/collect", post(handlers::collect_order))
        .route("/orders/{order_id}/cancel", post(handlers::cancel_order))
        .route("/orders/{order_id}/customer", privacy::customer_routes())
        .route("/orders/{order_id}/ship", post(handlers::ship_order))
        .route("/escrow", get(handlers::list_escrow))
        .route("/escrow/grants", post(handlers::grant_escrow))
        .route("/events", get(handlers::live_events))
        .route(
            "/transfers",
            get(transfers::list_transfers).post(transfers::create_transfer),
        )
        .route("/transfers/{transfer_id}", get(transfers::get_transfer))
        .route(
            "/transfers/{transfer_id}/receive",
            post(transfers::receive_transfer),
        )
        .route(
            "/transfers/{transfer_id}/cancel",
            post(transfers::cancel_transfer),
        )
        .route("/epcis/events", get(epcis::events));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::no_route)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .with_state(state)
}

/// Serves until `state.shutdown` fires, then finishes in-flight requests (bounded); see
/// [`server`] for the connection limits.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let limits = state.config.api.limits.clone();
    let shutdown = state.shutdown.clone();
    server::serve(listener, router(state), &limits, shutdown).await
}
