//! HQ's HTTP API for the web shop and back office (a bearer token per client, each with a
//! role: [`clients`]), one handler shape for every route ([`handler`]), beside the operator's `/healthz`, `/readyz` and `/metrics`
//! ([`ops`], no token); start-up in [`serve`]:
//! - `GET /v1/stock/{store}/{sku}`: one figure, with `available_to_sell`, `as_of`, `online`;
//! - `GET /v1/stock?store=S`: every SKU of a store;
//! - `POST /v1/catalog` `{"items": [...]}`: publish catalog items and prices to every store;
//! - `POST /v1/epochs/{store}`: open the next epoch of a store's stock and orders documents
//!   (bounded history); these four in `stock.rs`;
//! - `POST /v1/orders`: place an online click-and-collect order at a store;
//! - `GET /v1/orders/{id}`: its current status (folded from every writer) and history;
//! - orders, cancels and the online escrow: see [`super::orders`]; transfers between stores:
//!   [`super::transfers`];
//! - customer data and GDPR erasure (`PUT|GET /v1/orders/{id}/customer`,
//!   `POST /v1/privacy/erase`, `GET /v1/privacy/erasures/{order_id}`): see [`super::privacy`];
//! - `GET /v1/epcis/events?store=S&from=&to=&limit=&after=`: stores' EPCIS 2.0 events, see
//!   [`super::epcis`];
//! - promotions, price lists and `POST /v1/quote`: see [`super::pricing`];
//! - `GET /v1/openapi.json`: this list as an OpenAPI document ([`openapi`], which also
//!   builds the router from it).

pub mod clients;
mod handler;
pub mod openapi;
pub mod ops;
pub mod serve;
mod stock;

pub use handler::{Answer, Authorised, JsonBody, Problem};
pub use stock::CatalogBody;

use axum::Router;
use tokio::sync::mpsc;

use super::SharedHq;
use super::state::Outgoing;

#[derive(Clone)]
pub struct HttpState {
    pub hq: SharedHq,
    /// Who may call, with their roles ([`clients`]).
    pub clients: std::sync::Arc<clients::Clients>,
    pub publish: mpsc::UnboundedSender<Outgoing>,
    /// Customer data and erasure (`super::privacy`).
    pub privacy: super::privacy::SharedPrivacy,
    /// Stores' EPCIS events (`super::epcis`).
    pub epcis: super::epcis::SharedEpcis,
}

/// HQ's API and its operator endpoints.
pub fn router(state: HttpState, ops: std::sync::Arc<super::ops::HqOps>) -> Router {
    api(state)
        .merge(ops::router(ops))
        // Outermost: axum's own replies (an unknown route, a bad path or query, 405) in the
        // shared JSON error shape too.
        .layer(axum::middleware::map_response(
            crate::http_shared::error::json_errors,
        ))
}

fn api(state: HttpState) -> Router {
    let (routes, _doc) = openapi::api_routes().split_for_parts();
    routes
        // On the matched routes only: an unknown path stays a 404 for anyone.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            clients::guard,
        ))
        .with_state(state)
}
