//! HQ's operator endpoints, without a token like the store's: `/healthz` (the process
//! answers), `/readyz` (database, broker, documents; 503 naming each that is down) and
//! `/metrics` (Prometheus text). They are served from the moment HQ listens, before its
//! documents are loaded, so a load balancer sees a starting HQ as alive but not ready.
//! `/readyz` and `/metrics` have the store's rate limits (shared by all callers: 429).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::health::{Alive, Readiness};
use crate::hq::ops::HqOps;
use crate::http_shared::limits::too_many;

/// How often `/readyz` really queries the database; in between it answers from the last
/// check, so a flood of health checks is no load on it.
const DATABASE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The three routes with their documentation.
pub fn routes() -> OpenApiRouter<Arc<HqOps>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The three routes, on HQ's figures.
pub fn router(ops: Arc<HqOps>) -> Router {
    let (routes, _doc) = routes().split_for_parts();
    routes.with_state(ops)
}

/// The loading phase: the operator's routes, and 503 for the API's.
pub fn loading_router(ops: Arc<HqOps>) -> Router {
    router(ops)
        .fallback(|| async {
            super::Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "HQ is loading its documents; see /readyz",
            )
        })
        .layer(axum::middleware::map_response(
            crate::http_shared::error::json_errors,
        ))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = Alive)))]
pub async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// Readiness: the database answers, the broker is connected, the documents are loaded.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready: `reasons` names each component down", body = Readiness)))]
pub async fn readyz(State(ops): State<Arc<HqOps>>) -> Response {
    if let Err(wait) = ops.limits.readyz.take() {
        ops.public_rate_limited.inc();
        return too_many("/readyz", wait).into_response();
    }
    let body: Readiness = tokio::task::spawn_blocking(move || {
        if ops.health.probe_due(DATABASE_CHECK_EVERY) {
            ops.check_database();
        }
        ops.health.readiness()
    })
    .await
    .unwrap_or_else(|_| Readiness {
        ready: false,
        reasons: vec!["the readiness check failed; see HQ's log".into()],
        components: Default::default(),
    });
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(ops): State<Arc<HqOps>>) -> Response {
    if let Err(wait) = ops.limits.metrics.take() {
        ops.public_rate_limited.inc();
        return too_many("/metrics", wait).into_response();
    }
    // storenode_hq_ready must not wait for someone to ask /readyz.
    let out = tokio::task::spawn_blocking(move || {
        if ops.health.probe_due(DATABASE_CHECK_EVERY) {
            ops.check_database();
        }
        let mut out = String::with_capacity(4096);
        ops.render(&mut out);
        out
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
