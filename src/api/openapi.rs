//! The OpenAPI 3.1 document of the API, served at `/v1/openapi.json`, generated (utoipa)
//! from the handlers' `#[utoipa::path]` attributes and the request and reply types'
//! `ToSchema` derives.
//!
//! The router is built from the same declarations ([`routes`], `utoipa_axum::routes!`), so
//! a route cannot exist without its documentation. What every route shares (bearer
//! security, the idempotency header of writes, the error replies) is added here by
//! [`Conventions`] rather than repeated on each handler.

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, OpenApi as Document, Required, Type};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::{AppState, coupons, epcis, handlers, loyalty, privacy, transfers};
use crate::http_shared::openapi::{
    ErrorReply, add_components, add_response, operations, require_bearer,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "storenode POS API",
        description = "Local API of a store node for POS terminals and handhelds. Money is in \
            integer minor units; times are UTC (RFC 3339). Every error reply is an `Error` \
            object, naming the `field` at fault when one is."
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// Every route of the API with its documentation; `mod.rs` adds the layers.
pub fn routes() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(serve))
        .routes(routes!(handlers::get_item))
        .routes(routes!(handlers::stock_page))
        .routes(routes!(handlers::stock_one))
        .routes(routes!(handlers::create_sale))
        .routes(routes!(handlers::get_sale))
        .routes(routes!(handlers::create_return))
        .routes(routes!(handlers::create_receipt))
        .routes(routes!(handlers::create_count))
        .routes(routes!(handlers::create_adjustment))
        .routes(routes!(handlers::list_orders, handlers::create_order))
        .routes(routes!(handlers::get_order))
        .routes(routes!(handlers::pick_order))
        .routes(routes!(handlers::ready_order))
        .routes(routes!(handlers::collect_order))
        .routes(routes!(handlers::cancel_order))
        .routes(routes!(handlers::ship_order))
        .routes(routes!(
            privacy::get_customer,
            privacy::put_customer,
            privacy::erase_customer
        ))
        .routes(routes!(handlers::list_escrow))
        .routes(routes!(handlers::grant_escrow))
        .routes(routes!(loyalty::lookup_member))
        .routes(routes!(loyalty::find_member))
        .routes(routes!(loyalty::get_member))
        .routes(routes!(loyalty::release_member))
        .routes(routes!(coupons::get_coupon))
        .routes(routes!(coupons::release_coupon))
        .routes(routes!(handlers::live_events))
        .routes(routes!(
            transfers::list_transfers,
            transfers::create_transfer
        ))
        .routes(routes!(transfers::get_transfer))
        .routes(routes!(transfers::receive_transfer))
        .routes(routes!(transfers::cancel_transfer))
        .routes(routes!(epcis::events));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v1", v1)
        .routes(routes!(handlers::healthz))
        .routes(routes!(handlers::readyz))
        .routes(routes!(handlers::metrics))
}

/// The document, as [`routes`] builds it.
pub fn document() -> Document {
    let mut doc = routes().into_openapi();
    Conventions.modify(&mut doc);
    doc
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
pub async fn serve() -> Response {
    // Rendered once: the document never changes while the process runs, and the endpoint
    // needs no token, so a flood of it must not cost a JSON rendering per request.
    static RENDERED: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let body = RENDERED.get_or_init(|| {
        serde_json::to_vec(&document())
            .map(Bytes::from)
            .unwrap_or_default()
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

/// POST routes that change nothing (a POST so that what they are asked stays out of URLs):
/// no idempotency key, no 404 or 409.
const POST_READS: [&str; 1] = ["/v1/loyalty/find"];

/// Paths served without a token.
const PUBLIC: [&str; 4] = ["/v1/openapi.json", "/healthz", "/readyz", "/metrics"];

/// Shared responses: (status, component name, description).
const RESPONSES: [ErrorReply; 9] = [
    (
        "400",
        "BadRequest",
        "Malformed request: invalid JSON, wrong type, unknown field, bad query parameter or header (the field is named)",
    ),
    ("401", "Unauthorized", "Missing or wrong bearer token"),
    ("404", "NotFound", "Unknown item, sale, order or transfer"),
    (
        "409",
        "Conflict",
        "Idempotency key reused for another request, an order or transfer in the wrong state, or a sale's coupon used up or not held by this lane (the lane then asks HQ for a use: try again in a moment)",
    ),
    (
        "413",
        "PayloadTooLarge",
        "Body larger than the node's limit (api.max_body_bytes)",
    ),
    (
        "422",
        "Unprocessable",
        "Understood but refused: zero or negative quantity, a line without quantity or weight, returning more than sold, wrong item picked",
    ),
    (
        "429",
        "RateLimited",
        "Too many requests (this terminal, a flood of a public endpoint, or pickup codes locked out after failures); see Retry-After",
    ),
    ("500", "Internal", "A fault of the node; see its log"),
    (
        "503",
        "Unavailable",
        "Writes refused for now (disk full, read-only, shutting down), or the request timed out",
    ),
];

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
                let read_by_post =
                    matches!(method, HttpMethod::Post) && POST_READS.contains(&path.as_str());
                let write = !matches!(method, HttpMethod::Get | HttpMethod::Head) && !read_by_post;
                // Public endpoints are rate limited for all callers together.
                let mut codes = vec!["429", "500", "503"];
                if !public {
                    require_bearer(op);
                    codes.extend(["400", "401"]);
                }
                if has_path_params || write {
                    codes.push("404");
                }
                if write {
                    codes.extend(["409", "413", "422"]);
                    add_idempotency_key(op);
                }
                if read_by_post {
                    codes.extend(["413", "422"]);
                }
                for code in codes {
                    add_response(op, code, &RESPONSES);
                }
            }
        }
    }
}

fn add_idempotency_key(op: &mut Operation) {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::store::idempotency::MAX_KEY_LEN))
        .pattern(Some("^[!-~]+$"));
    let parameter: Parameter = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some(
            "Unique per write and terminal (printable ASCII, no spaces); a retry with the same \
             key and the same JSON (key order and whitespace aside) returns the first answer \
             with header Idempotent-Replayed: true and changes nothing",
        ))
        .schema(Some(schema))
        .build();
    let parameters = op.parameters.get_or_insert_with(Vec::new);
    if !parameters.iter().any(|p| p.name == "Idempotency-Key") {
        parameters.push(parameter);
    }
}
