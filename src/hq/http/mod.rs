//! HQ's HTTP API for the web shop and back office (bearer token), one handler shape for
//! every route ([`handler`]), beside the operator's `/healthz`, `/readyz` and `/metrics`
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
//! - promotions, price lists and `POST /v1/quote`: see [`super::pricing`].

mod handler;
pub mod ops;
pub mod serve;
mod stock;

pub use handler::{Answer, Authorised, JsonBody, Problem};
pub use stock::CatalogBody;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::mpsc;

use super::state::Outgoing;
use super::{SharedHq, epcis, orders, pricing, privacy, transfers};
use crate::settings::Secret;

#[derive(Clone)]
pub struct HttpState {
    pub hq: SharedHq,
    pub token: Secret,
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
    Router::new()
        .route("/v1/stock", get(stock::store_stock))
        .route("/v1/stock/{store}/{sku}", get(stock::one_sku))
        .route("/v1/catalog", post(stock::publish_catalog))
        .route("/v1/epochs/{store}", post(stock::open_epoch))
        .route(
            "/v1/orders",
            post(orders::http::place_order).get(orders::http::list_orders),
        )
        .route("/v1/orders/{id}", get(orders::http::one_order))
        .route("/v1/transfers", get(transfers::http::store_transfers))
        .route("/v1/transfers/{id}", get(transfers::http::one_transfer))
        .route("/v1/orders/{id}/cancel", post(orders::http::cancel_order))
        .route("/v1/escrow/{store}", get(orders::http::store_escrow))
        .route(
            "/v1/escrow/{store}/{sku}/return",
            post(orders::http::return_escrow),
        )
        .route(
            "/v1/orders/{id}/customer",
            get(privacy::http::get_customer).put(privacy::http::put_customer),
        )
        .route("/v1/privacy/erase", post(privacy::http::erase))
        .route(
            "/v1/privacy/erasures/{order_id}",
            get(privacy::http::erasure),
        )
        .route("/v1/epcis/events", get(epcis::events))
        .route(
            "/v1/promotions",
            post(pricing::put_promotion).get(pricing::list_promotions),
        )
        .route("/v1/promotions/{id}/end", post(pricing::end_promotion))
        .route("/v1/pricing", post(pricing::put_pricing))
        .route("/v1/quote", post(pricing::post_quote))
        .with_state(state)
}
