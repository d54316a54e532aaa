//! The OpenAPI 3.1 document of HQ's API, served at `/v1/openapi.json`, generated (utoipa)
//! from the handlers' `#[utoipa::path]` attributes and the request types' derives, as the
//! store's is (`crate::api::openapi`).
//!
//! The router is built from the same declarations ([`api_routes`], [`super::ops::routes`]),
//! so a route cannot exist without its documentation. What every route shares (bearer
//! security, the error replies in the shared `Error` shape) is added by [`Conventions`]
//! with the helpers both services use ([`crate::http_shared::openapi`]).

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::path::HttpMethod;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::clients::web_may;
use super::{HttpState, stock};
use crate::hq::{coupons, epcis, loyalty, orders, pricing, privacy, transfers};
use crate::http_shared::error::ErrorBody;
use crate::http_shared::openapi::{
    ErrorReply, add_components, add_response, operations, require_bearer,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "storenode HQ API",
        description = "HQ's API for the web shop, the chain's systems and the privacy officer: \
            chain-wide stock, online orders and the escrow, transfers, customer data, EPCIS \
            events, catalog, pricing and coupons. Money is in integer minor units; times are UTC \
            (RFC 3339). Every error reply is an `Error` object, the store API's shape."
    ),
    components(schemas(ErrorBody))
)]
struct HqDoc;

/// Every route of HQ's API with its documentation (the operator's routes are in
/// [`super::ops::routes`]).
pub fn api_routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::with_openapi(HqDoc::openapi())
        .routes(routes!(serve))
        .routes(routes!(stock::store_stock))
        .routes(routes!(stock::one_sku))
        .routes(routes!(stock::publish_catalog))
        .routes(routes!(stock::open_epoch))
        .routes(routes!(
            orders::http::place_order,
            orders::http::list_orders
        ))
        .routes(routes!(orders::http::one_order))
        .routes(routes!(orders::http::cancel_order))
        .routes(routes!(transfers::http::store_transfers))
        .routes(routes!(transfers::http::one_transfer))
        .routes(routes!(orders::http::store_escrow))
        .routes(routes!(orders::http::return_escrow))
        .routes(routes!(
            privacy::http::get_customer,
            privacy::http::put_customer
        ))
        .routes(routes!(privacy::http::erase))
        .routes(routes!(privacy::http::erasure))
        .routes(routes!(epcis::events))
        .routes(routes!(pricing::put_promotion, pricing::list_promotions))
        .routes(routes!(pricing::end_promotion))
        .routes(routes!(pricing::put_pricing))
        .routes(routes!(pricing::post_quote))
        .routes(routes!(loyalty::http::put_rules, loyalty::http::get_rules))
        .routes(routes!(
            loyalty::http::create_member,
            loyalty::http::find_members
        ))
        .routes(routes!(loyalty::http::balance))
        .routes(routes!(loyalty::http::history))
        .routes(routes!(loyalty::http::earn))
        .routes(routes!(loyalty::http::spend))
        .routes(routes!(coupons::http::issue, coupons::http::list))
        .routes(routes!(coupons::http::show))
        .routes(routes!(coupons::http::grant))
        .routes(routes!(coupons::http::revoke))
        .routes(routes!(coupons::http::redeem))
}

/// The document, as the routers build it.
pub fn document() -> Document {
    let mut doc = api_routes().into_openapi();
    doc.merge(super::ops::routes().into_openapi());
    Conventions.modify(&mut doc);
    doc
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub async fn serve() -> Response {
    // Rendered once: it never changes while HQ runs, and it needs no token.
    static RENDERED: OnceLock<Bytes> = OnceLock::new();
    let body = RENDERED.get_or_init(|| {
        serde_json::to_vec(&document())
            .map(Bytes::from)
            .unwrap_or_default()
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

/// Paths served without a token.
pub const PUBLIC: [&str; 4] = ["/v1/openapi.json", "/healthz", "/readyz", "/metrics"];

/// HQ's shared error replies: (status, component name, description).
const RESPONSES: [ErrorReply; 10] = [
    (
        "400",
        "BadRequest",
        "Malformed request: not JSON, a bad query parameter (named in `field`)",
    ),
    ("401", "Unauthorized", "Missing or wrong bearer token"),
    (
        "403",
        "Forbidden",
        "The client's role may not do this (the web shop's token on an admin route)",
    ),
    (
        "404",
        "NotFound",
        "Unknown store, SKU, order, transfer, promotion or erasure",
    ),
    (
        "409",
        "Conflict",
        "An order id taken, escrow not granted, an order already closed, an epoch pending",
    ),
    (
        "413",
        "PayloadTooLarge",
        "Body larger than HQ's limit (2 MiB)",
    ),
    (
        "422",
        "Unprocessable",
        "JSON that does not fit the request (the field is named), or a request HQ cannot carry out as given",
    ),
    (
        "429",
        "RateLimited",
        "/readyz or /metrics asked too often; see Retry-After",
    ),
    ("500", "Internal", "A fault of HQ; see its log"),
    (
        "503",
        "Unavailable",
        "HQ is loading its documents, or stopping",
    ),
];

/// The HTTP method of a documented operation.
fn http_method(method: &HttpMethod) -> Option<axum::http::Method> {
    Some(match method {
        HttpMethod::Get => axum::http::Method::GET,
        HttpMethod::Put => axum::http::Method::PUT,
        HttpMethod::Post => axum::http::Method::POST,
        HttpMethod::Delete => axum::http::Method::DELETE,
        _ => return None,
    })
}

/// What every route shares, added to the generated document.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        add_components(components, &RESPONSES);
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            let has_path_params = path.contains('{');
            for (method, op) in operations(item) {
                let write = !matches!(method, HttpMethod::Get | HttpMethod::Head);
                let mut codes = if public {
                    vec!["429", "500", "503"]
                } else {
                    require_bearer(op);
                    let roles = match http_method(&method) {
                        Some(m) if web_may(&m, path) => "web, admin",
                        _ => "admin",
                    };
                    let said = op.description.take().unwrap_or_default();
                    op.description = Some(format!("{said}\n\nRoles: {roles}.").trim().to_owned());
                    vec!["400", "401", "403", "500", "503"]
                };
                if has_path_params || write {
                    codes.push("404");
                }
                if write {
                    codes.extend(["409", "413", "422"]);
                }
                for code in codes {
                    add_response(op, code, &RESPONSES);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::hq::ops::HqOps;
    use crate::hq::state::HqState;

    /// Every route HQ serves (docs/api.md), as (method, path).
    const ROUTES: [(&str, &str); 33] = [
        ("get", "/v1/stock"),
        ("get", "/v1/stock/{store}/{sku}"),
        ("post", "/v1/catalog"),
        ("post", "/v1/epochs/{store}"),
        ("post", "/v1/orders"),
        ("get", "/v1/orders"),
        ("get", "/v1/orders/{id}"),
        ("post", "/v1/orders/{id}/cancel"),
        ("get", "/v1/transfers"),
        ("get", "/v1/transfers/{id}"),
        ("get", "/v1/escrow/{store}"),
        ("post", "/v1/escrow/{store}/{sku}/return"),
        ("get", "/v1/orders/{id}/customer"),
        ("put", "/v1/orders/{id}/customer"),
        ("post", "/v1/privacy/erase"),
        ("get", "/v1/privacy/erasures/{order_id}"),
        ("get", "/v1/epcis/events"),
        ("post", "/v1/promotions"),
        ("get", "/v1/promotions"),
        ("post", "/v1/promotions/{id}/end"),
        ("post", "/v1/pricing"),
        ("post", "/v1/quote"),
        ("post", "/v1/coupons"),
        ("get", "/v1/coupons"),
        ("get", "/v1/coupons/{code}"),
        ("post", "/v1/coupons/{code}/grant"),
        ("post", "/v1/coupons/{code}/revoke"),
        ("post", "/v1/coupons/{code}/redeem"),
        ("get", "/v1/loyalty/members"),
        ("get", "/v1/openapi.json"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];

    fn documented(doc: &mut Document) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                let method = match method {
                    HttpMethod::Get => "get",
                    HttpMethod::Put => "put",
                    HttpMethod::Post => "post",
                    HttpMethod::Delete => "delete",
                    _ => "other",
                }
                .to_owned();
                out.push((method, path.clone(), op.security.is_some()));
            }
        }
        out
    }

    #[test]
    fn every_hq_route_is_in_the_document_and_needs_a_token_unless_public() {
        let mut doc = document();
        let listed = documented(&mut doc);
        for (method, path) in ROUTES {
            let found = listed.iter().find(|(m, p, _)| m == method && p == path);
            let Some((_, _, secured)) = found else {
                panic!("{method} {path} is not in HQ's OpenAPI document");
            };
            assert_eq!(*secured, !PUBLIC.contains(&path), "{method} {path}");
        }
        let text = serde_json::to_string(&doc).unwrap();
        for schema in [
            "\"Error\"",
            "\"NewHqOrder\"",
            "\"EraseRequest\"",
            "\"Readiness\"",
        ] {
            assert!(text.contains(schema), "{schema} missing");
        }
    }

    /// The other way round: every documented operation is routed (no 404 or 405), and the
    /// API's refuse a request without a token.
    #[tokio::test]
    async fn every_documented_operation_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::hq::db::Target::Sqlite(dir.path().join("hq.db"));
        let state = HqState::open_target(&db, "acme", 0).unwrap();
        let topics = state.topics().clone();
        let (publish, _outgoing) = tokio::sync::mpsc::unbounded_channel();
        let http = HttpState {
            hq: Arc::new(Mutex::new(state)),
            clients: Arc::new(super::super::clients::Clients::new(&[
                crate::sync::config::ApiClient::admin(crate::settings::Secret::new(
                    "a-token-of-16-chars-or-more",
                )),
            ])),
            publish,
            privacy: Arc::new(Mutex::new(
                crate::hq::privacy::HqPrivacy::open(&db, topics.clone()).unwrap(),
            )),
            epcis: Arc::new(Mutex::new(
                crate::hq::epcis::HqEpcis::open(&db, topics).unwrap(),
            )),
        };
        let ops = Arc::new(HqOps::new(db.clone(), Arc::default()));
        let app = super::super::router(http, ops);
        let mut doc = document();
        for (method, path, secured) in documented(&mut doc) {
            let uri = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .body(Body::from("{}"))
                .unwrap();
            let status = app.clone().oneshot(request).await.unwrap().status();
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}: {status}"
            );
            if secured {
                assert!(
                    [
                        StatusCode::UNAUTHORIZED,
                        StatusCode::BAD_REQUEST,
                        StatusCode::UNPROCESSABLE_ENTITY
                    ]
                    .contains(&status),
                    "{method} {uri} without a token: {status}"
                );
            }
        }
        let unknown = Request::get("/v1/nothing").body(Body::empty()).unwrap();
        let status = app.oneshot(unknown).await.unwrap().status();
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
