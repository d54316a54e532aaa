//! The OpenAPI 3.1 document of the API, served at `/v1/openapi.json`.
//!
//! Written by hand (a short document, no code generator to keep in step); the test
//! `every_route_is_documented` keeps it honest against the router.

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The document rendered once, served as is by `GET /v1/openapi.json`.
#[derive(Clone)]
pub struct Rendered(Bytes);

pub fn rendered() -> Rendered {
    Rendered(Bytes::from(document().to_string()))
}

impl IntoResponse for Rendered {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

fn write_op(summary: &str, schema: &str, response: &str) -> Value {
    json!({
        "summary": summary,
        "parameters": [{ "$ref": "#/components/parameters/IdempotencyKey" }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } },
        "responses": {
            "201": { "description": "Done (a replay of the same key returns the first answer with header Idempotent-Replayed: true)", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{response}") } } } },
            "400": { "$ref": "#/components/responses/BadRequest" },
            "401": { "$ref": "#/components/responses/Unauthorized" },
            "404": { "$ref": "#/components/responses/NotFound" },
            "409": { "$ref": "#/components/responses/Conflict" },
            "422": { "$ref": "#/components/responses/Unprocessable" },
            "429": { "$ref": "#/components/responses/RateLimited" },
            "503": { "$ref": "#/components/responses/Unavailable" }
        }
    })
}

fn read_op(summary: &str, params: &[(&str, &str)]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|(name, place)| json!({ "name": name, "in": place, "required": *place == "path", "schema": { "type": "string" } }))
        .collect();
    json!({
        "summary": summary,
        "parameters": parameters,
        "responses": {
            "200": { "description": "OK" },
            "401": { "$ref": "#/components/responses/Unauthorized" },
            "404": { "$ref": "#/components/responses/NotFound" }
        }
    })
}

fn order_action(summary: &str, schema: &str) -> Value {
    let mut op = write_op(summary, schema, "Order");
    if let Some(params) = op["parameters"].as_array_mut() {
        params.push(json!({ "name": "order_id", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    op
}

fn transfer_action(summary: &str, schema: &str) -> Value {
    let mut op = write_op(summary, schema, "Transfer");
    if let Some(params) = op["parameters"].as_array_mut() {
        params.push(json!({ "name": "transfer_id", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    op
}

fn item_ref(extra: Value) -> Value {
    let mut properties = json!({
        "sku": { "type": "string" },
        "gtin": { "type": "string", "description": "GTIN-8/12/13/14, check digit verified" }
    });
    if let (Some(p), Some(e)) = (properties.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({ "type": "object", "additionalProperties": false, "properties": properties, "description": "Give exactly one of sku or gtin." })
}

/// `/v1/orders/{order_id}/customer` (customer data, `crate::privacy`); outside `document`'s
/// one `json!` so that stays under the macro recursion limit.
fn customer_ops() -> Value {
    json!({
        "get": read_op("The order's customer data (404 with erased_at after erasure)", &[("order_id", "path")]),
        "put": order_action("Store the order's customer data (kept out of sync history; published to HQ)", "Customer"),
        "delete": order_action("Erase the order's customer data here (GDPR); HQ and the other lanes follow", "Empty")
    })
}

fn customer_schema() -> Value {
    json!({ "type": "object", "required": ["name", "phone", "email"], "additionalProperties": false, "properties": {
        "name": { "type": "string", "maxLength": 200 }, "phone": { "type": "string", "description": "5 to 20 digits; spaces, '-', '(', ')', '.', a leading '+'" },
        "email": { "type": "string", "format": "email", "maxLength": 254 },
        "address": { "type": "string", "maxLength": 500, "description": "Delivery address (ship-from-store)" } } })
}

pub fn document() -> Value {
    let mut doc = base_document();
    // Merged in rather than written inside the big `json!` of `base_document`, which is at
    // the macro's recursion limit.
    merge(&mut doc["paths"], transfer_paths());
    merge(&mut doc["components"]["schemas"], transfer_schemas());
    merge(&mut doc["paths"], epcis_paths());
    doc
}

/// `GET /v1/epcis/events` (`crate::epcis`).
fn epcis_paths() -> Value {
    json!({
        "/v1/epcis/events": { "get": read_op("Receipts, counts, sales, RFID reads and exit alerts as a GS1 EPCIS 2.0 EPCISDocument (ObjectEvents, CBV 2.0). from/to: RFC 3339 (from inclusive, to exclusive); limit 1-1000 (default 100); after: the cursor of the Link rel=next header", &[("from", "query"), ("to", "query"), ("limit", "query"), ("after", "query")]) }
    })
}

fn merge(into: &mut Value, more: Value) {
    if let (Some(into), Value::Object(more)) = (into.as_object_mut(), more) {
        into.extend(more);
    }
}

fn transfer_paths() -> Value {
    json!({
        "/v1/transfers": {
            "get": read_op("Store-to-store transfers, newest first", &[("direction", "query"), ("status", "query"), ("limit", "query")]),
            "post": write_op("Dispatch a transfer to another store (units leave on-hand now)", "NewTransfer", "Transfer")
        },
        "/v1/transfers/{transfer_id}": { "get": read_op("One transfer (chain-wide or local id) with lines, discrepancy and history", &[("transfer_id", "path")]) },
        "/v1/transfers/{transfer_id}/receive": { "post": transfer_action("Receive an inbound transfer with the scanned quantities (short or over recorded)", "TransferLines") },
        "/v1/transfers/{transfer_id}/cancel": { "post": transfer_action("Cancel an outbound transfer still in transit (units come back)", "Empty") },
    })
}

fn transfer_schemas() -> Value {
    json!({
        "NewTransfer": { "type": "object", "required": ["transfer_id", "to_store", "lines"], "additionalProperties": false, "properties": {
            "transfer_id": { "type": "string" }, "to_store": { "type": "string" },
            "lines": { "type": "array", "minItems": 1, "items": item_ref(json!({ "quantity": { "type": "integer", "minimum": 1 } })) } } },
        "TransferLines": { "type": "object", "required": ["lines"], "additionalProperties": false, "properties": {
            "lines": { "type": "array", "items": item_ref(json!({ "quantity": { "type": "integer", "minimum": 0 } })) } } },
        "Transfer": { "type": "object", "properties": { "transfer_id": { "type": "string" }, "local_id": { "type": "string" },
            "direction": { "enum": ["outbound", "inbound"] }, "from_store": { "type": "string" }, "to_store": { "type": "string" },
            "status": { "enum": ["in_transit", "received", "cancelled"] }, "lines": { "type": "array" }, "history": { "type": "array" } } },
    })
}

fn base_document() -> Value {
    let error = json!({ "type": "object", "required": ["error", "message"], "properties": {
        "error": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } });
    let resp = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "storenode POS API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Local API of a store node for POS terminals and handhelds. Money is in integer minor units; times are UTC (RFC 3339)." },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/items/{key}": { "get": read_op("Look an item up by SKU or any GTIN, with its stock", &[("key", "path")]) },
            "/v1/stock": { "get": read_op("A page of stock levels, ordered by SKU", &[("after", "query"), ("limit", "query")]) },
            "/v1/stock/{sku}": { "get": read_op("Stock of one SKU (or GTIN)", &[("sku", "path")]) },
            "/v1/sales": { "post": write_op("Record a sale (durable before the reply)", "SaleRequest", "SaleReceipt") },
            "/v1/sales/{sale_id}": { "get": read_op("A recorded sale", &[("sale_id", "path")]) },
            "/v1/returns": { "post": write_op("Return goods against a sale", "ReturnRequest", "ReturnReceipt") },
            "/v1/receipts": { "post": write_op("Goods receipt", "ReceiptRequest", "StockWriteResult") },
            "/v1/counts": { "post": write_op("Stock count (recorded as the difference to on-hand)", "CountRequest", "StockWriteResult") },
            "/v1/adjustments": { "post": write_op("Stock adjustment with a reason", "AdjustmentRequest", "StockWriteResult") },
            "/v1/orders": {
                "get": read_op("Click-and-collect orders, optionally by status", &[("status", "query"), ("limit", "query")]),
                "post": write_op("Create a click-and-collect order (reserves stock)", "NewOrder", "Order")
            },
            "/v1/orders/{order_id}": { "get": read_op("One order with lines and status history", &[("order_id", "path")]) },
            "/v1/orders/{order_id}/pick": { "post": order_action("Pick one scanned item (wrong item refused)", "PickRequest") },
            "/v1/orders/{order_id}/ready": { "post": order_action("Mark a fully picked order ready", "Empty") },
            "/v1/orders/{order_id}/collect": { "post": order_action("Hand over with the pickup code", "CollectRequest") },
            "/v1/orders/{order_id}/cancel": { "post": order_action("Cancel; releases the reservation", "CancelRequest") },
            "/v1/orders/{order_id}/customer": customer_ops(),
            "/v1/events": { "get": read_op("Live scans and tag events (Server-Sent Events)", &[("device", "query")]) },
            "/v1/epcis/events": { "get": read_op("Receipts, counts, sales, RFID reads and exit alerts as a GS1 EPCIS 2.0 EPCISDocument (ObjectEvents, CBV 2.0); from/to RFC 3339 (from inclusive, to exclusive), limit 1-1000 (default 100), after = cursor from the Link rel=next header", &[("from", "query"), ("to", "query"), ("limit", "query"), ("after", "query")]) },
            "/v1/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OK" } } } },
            "/healthz": { "get": { "summary": "Liveness", "security": [], "responses": { "200": { "description": "alive" } } } },
            "/readyz": { "get": { "summary": "Readiness with component states", "security": [], "responses": { "200": { "description": "ready" }, "503": { "description": "not ready" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "security": [], "responses": { "200": { "description": "text exposition format" } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "One token per terminal, from the node's configuration" } },
            "parameters": { "IdempotencyKey": { "name": "Idempotency-Key", "in": "header", "required": true,
                "description": "Unique per write and terminal; a replay returns the first result and changes nothing", "schema": { "type": "string", "maxLength": 128 } } },
            "responses": {
                "BadRequest": resp("Malformed body: invalid JSON, wrong type, unknown field (the field is named)"),
                "Unauthorized": resp("Missing or wrong bearer token"),
                "NotFound": resp("Unknown item, sale or order"),
                "Conflict": resp("Idempotency key reused for another request, or an order in the wrong state"),
                "Unprocessable": resp("Understood but refused: zero or negative quantity, returning more than sold, wrong item picked"),
                "RateLimited": resp("This terminal sends too many requests; see Retry-After"),
                "Unavailable": resp("Writes refused for now (disk full, read-only, shutting down); reads still work")
            },
            "schemas": {
                "Error": error,
                "Empty": { "type": "object", "additionalProperties": false },
                "SaleRequest": { "type": "object", "required": ["lines", "payments"], "additionalProperties": false, "properties": {
                    "lines": { "type": "array", "minItems": 1, "items": item_ref(json!({
                        "quantity": { "type": "integer", "minimum": 1 },
                        "weight_grams": { "type": "integer", "minimum": 1, "description": "For variable-measure items" },
                        "epc": { "type": "string", "description": "RFID EPC (hex) of the item sold" } })) },
                    "payments": { "type": "array", "items": { "type": "object", "required": ["method", "amount_minor"], "additionalProperties": false, "properties": {
                        "method": { "enum": ["cash", "card", "voucher", "other"] }, "amount_minor": { "type": "integer", "minimum": 1 }, "reference": { "type": "string" } } } } } },
                "SaleReceipt": { "type": "object", "properties": { "sale_id": { "type": "string" }, "total_minor": { "type": "integer" }, "tax_minor": { "type": "integer" },
                    "change_minor": { "type": "integer" }, "lines": { "type": "array" },
                    "negative_stock": { "type": "array", "description": "SKUs this sale took below zero (allowed, flagged)" } } },
                "ReturnRequest": { "type": "object", "required": ["sale_id", "lines"], "additionalProperties": false, "properties": {
                    "sale_id": { "type": "string" }, "reason": { "type": "string" },
                    "lines": { "type": "array", "items": { "type": "object", "required": ["line_no", "quantity"], "properties": { "line_no": { "type": "integer" }, "quantity": { "type": "integer", "minimum": 1 } } } } } },
                "ReturnReceipt": { "type": "object" },
                "ReceiptRequest": { "type": "object", "required": ["lines"], "properties": { "reference": { "type": "string" },
                    "lines": { "type": "array", "items": item_ref(json!({ "quantity": { "type": "integer", "minimum": 1 } })) } } },
                "CountRequest": { "type": "object", "required": ["lines"], "properties": {
                    "lines": { "type": "array", "items": item_ref(json!({ "counted": { "type": "integer", "minimum": 0 } })) } } },
                "AdjustmentRequest": item_ref(json!({ "delta": { "type": "integer" }, "reason": { "type": "string" } })),
                "StockWriteResult": { "type": "object", "properties": { "reference": { "type": "string" }, "changes": { "type": "array" } } },
                "NewOrder": { "type": "object", "required": ["order_id", "pickup_code", "lines"], "properties": {
                    "order_id": { "type": "string" }, "channel": { "type": "string" }, "pickup_code": { "type": "string" }, "hold_hours": { "type": "integer" },
                    "delivery": { "enum": ["collect", "ship"] },
                    "lines": { "type": "array", "items": item_ref(json!({ "quantity": { "type": "integer", "minimum": 1 } })) } } },
                "Order": { "type": "object", "properties": { "order_id": { "type": "string" },
                    "status": { "enum": ["reserved", "picking", "ready", "collected", "shipped", "cancelled", "expired"] },
                    "delivery": { "enum": ["collect", "ship"] }, "fulfilment": { "type": ["string", "null"], "description": "the lane holding the units, when another lane" },
                    "doc_id": { "type": ["string", "null"] }, "lines": { "type": "array" }, "history": { "type": "array" } } },
                "PickRequest": item_ref(json!({ "quantity": { "type": "integer", "minimum": 1 } })),
                "CollectRequest": { "type": "object", "required": ["pickup_code"], "properties": { "pickup_code": { "type": "string" } } },
                "CancelRequest": { "type": "object", "properties": { "reason": { "type": "string" } } },
                "Customer": customer_schema()
            }
        }
    });
    add_omnichannel(&mut doc);
    doc
}

/// Ship-from-store and the online escrow (kept apart: one `json!` this size hits the
/// macro recursion limit).
fn add_omnichannel(doc: &mut Value) {
    let paths = [
        (
            "/v1/orders/{order_id}/ship",
            json!({ "post": order_action("Ship-from-store: hand a ready order to the carrier", "ShipRequest") }),
        ),
        (
            "/v1/escrow",
            json!({ "get": read_op("The online channel's escrow per SKU: granted, consumed, returned, online_remaining, store_free", &[]) }),
        ),
        (
            "/v1/escrow/grants",
            json!({ "post": write_op("Grant free units to the online channel (the tills cannot sell them)", "GrantRequest", "Escrow") }),
        ),
    ];
    for (path, op) in paths {
        doc["paths"][path] = op;
    }
    let schemas = [
        (
            "ShipRequest",
            json!({ "type": "object", "required": ["carrier"], "properties": { "carrier": { "type": "string" }, "tracking": { "type": "string" } } }),
        ),
        (
            "GrantRequest",
            item_ref(json!({ "quantity": { "type": "integer", "minimum": 1 } })),
        ),
        (
            "Escrow",
            json!({ "type": "object", "properties": { "sku": { "type": "string" }, "granted": { "type": "integer" }, "consumed": { "type": "integer" },
            "returned": { "type": "integer" }, "online_remaining": { "type": "integer" }, "store_free": { "type": "integer" } } }),
        ),
    ];
    for (name, schema) in schemas {
        doc["components"]["schemas"][name] = schema;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let source = include_str!("mod.rs");
        for line in source
            .lines()
            .filter(|l| l.trim_start().starts_with(".route(\""))
        {
            let route = line.split('"').nth(1).unwrap();
            let full = if route.starts_with("/healthz")
                || route.starts_with("/readyz")
                || route.starts_with("/metrics")
            {
                route.to_string()
            } else {
                format!("/v1{route}")
            };
            assert!(
                paths.contains_key(&full),
                "route {full} missing from the OpenAPI document"
            );
        }
    }
}
