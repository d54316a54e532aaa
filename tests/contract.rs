//! The API contract against the real binary: the OpenAPI document matches the router, every
//! error reply has the one JSON shape, and the request rules the document states hold.

mod common;

use std::time::Duration;

use common::node::{NodeProcess, TOKEN_POS1};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// Status, content type and body of a raw request.
fn send(
    http: &Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, String, Value) {
    let mut request = http
        .request(method, url)
        .timeout(Duration::from_secs(10))
        .header("idempotency-key", "contract-1");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, body)
}

/// The one error shape: JSON with `error` and a non-empty `message`.
fn assert_error_shape(case: &str, status: u16, content_type: &str, body: &Value) {
    assert_eq!(content_type, "application/json", "{case}: {status} {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{case}: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{case}: {body}"
    );
}

#[test]
fn every_documented_operation_is_routed() {
    let node = NodeProcess::start();
    let http = Client::new();
    let (status, _, doc) = send(
        &http,
        Method::GET,
        &format!("{}/v1/openapi.json", node.base),
        None,
        None,
    );
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 25, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            if path == "/v1/events" {
                continue; // an endless stream; its route is checked by the device tests
            }
            // Every operation documents its replies (typed 2xx, errors).
            let responses = op["responses"].as_object().expect("responses");
            let success = responses
                .iter()
                .find(|(status, _)| status.starts_with('2'))
                .map(|(_, r)| r);
            assert!(
                success.is_some_and(|r| r["content"].is_object()),
                "{method} {path}: no typed success reply"
            );
            let concrete = path.replace(['{', '}'], "");
            let url = format!("{}{concrete}", node.base);
            // Without a token: a routed protected operation says 401, a public one answers.
            let (status, content_type, body) = send(&http, method.clone(), &url, None, None);
            let public = op.get("security").is_none();
            if public {
                assert!(
                    status == 200 || status == 503,
                    "{method} {path}: {status} {body}"
                );
            } else {
                assert_eq!(status, 401, "{method} {path}: {body}");
                assert_error_shape(&format!("{method} {path}"), status, &content_type, &body);
            }
        }
    }
}

/// (case, method, URL, body, expected status, field named in the error)
type Case = (
    &'static str,
    Method,
    String,
    Option<Vec<u8>>,
    u16,
    Option<&'static str>,
);

#[test]
fn router_made_errors_have_the_json_shape() {
    let node = NodeProcess::start();
    let http = Client::new();
    let base = &node.base;
    let token = Some(TOKEN_POS1);
    let cases: Vec<Case> = vec![
        (
            "unknown route",
            Method::GET,
            format!("{base}/v1/nope"),
            None,
            404,
            None,
        ),
        (
            "wrong method",
            Method::DELETE,
            format!("{base}/v1/sales"),
            None,
            405,
            None,
        ),
        (
            "wrong method, public",
            Method::POST,
            format!("{base}/healthz"),
            None,
            405,
            None,
        ),
        (
            "oversized body",
            Method::POST,
            format!("{base}/v1/sales"),
            Some(vec![b' '; 200 * 1024]),
            413,
            None,
        ),
        (
            "query: not a number",
            Method::GET,
            format!("{base}/v1/stock?limit=ten"),
            None,
            400,
            Some("limit"),
        ),
        (
            "query: unknown parameter",
            Method::GET,
            format!("{base}/v1/stock?colour=red"),
            None,
            400,
            Some("colour"),
        ),
        (
            "query: limit out of range",
            Method::GET,
            format!("{base}/v1/orders?limit=0"),
            None,
            400,
            Some("limit"),
        ),
        (
            "query: unknown status",
            Method::GET,
            format!("{base}/v1/orders?status=lost"),
            None,
            400,
            Some("status"),
        ),
        (
            "query: unknown direction",
            Method::GET,
            format!("{base}/v1/transfers?direction=up"),
            None,
            400,
            Some("direction"),
        ),
        (
            "path: not UTF-8",
            Method::GET,
            format!("{base}/v1/stock/%FF"),
            None,
            400,
            None,
        ),
        (
            "malformed JSON",
            Method::POST,
            format!("{base}/v1/sales"),
            Some(b"{\"lines\": [".to_vec()),
            400,
            None,
        ),
    ];
    for (case, method, url, body, expected, field) in cases {
        let (status, content_type, reply) = send(&http, method, &url, token, body);
        assert_eq!(status, expected, "{case}: {reply}");
        assert_error_shape(case, status, &content_type, &reply);
        if let Some(field) = field {
            assert_eq!(reply["field"], field, "{case}: {reply}");
        }
    }
}

#[test]
fn a_sale_line_needs_a_quantity_or_a_weight() {
    let node = NodeProcess::start();
    let api = node.client();
    let receipt = api.post(
        "/v1/receipts",
        "r1",
        &json!({ "lines": [{ "sku": "MILK", "quantity": 5 }] }),
    );
    assert_eq!(receipt.status, 201, "{}", receipt.body);
    let no_quantity = json!({ "lines": [{ "sku": "MILK" }], "payments": [{ "method": "cash", "amount_minor": 500 }] });
    let reply = api.post("/v1/sales", "s1", &no_quantity);
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.body["field"], "lines[0].quantity", "{}", reply.body);
    let stock = api.get("/v1/stock/MILK");
    assert_eq!(stock.body["on_hand"], 5, "nothing was sold");
    // JSON has one number type: 2.0 is the integer 2.
    let float = json!({ "lines": [{ "sku": "MILK", "quantity": 2.0 }], "payments": [{ "method": "cash", "amount_minor": 500.0 }] });
    let reply = api.post("/v1/sales", "s2", &float);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["lines"][0]["quantity"], 2);
}

#[test]
fn a_retry_with_the_same_json_is_the_same_request() {
    let node = NodeProcess::start();
    let api = node.client();
    let first = api.post_raw(
        "/v1/receipts",
        Some("k1"),
        br#"{"reference":"DN-1","lines":[{"sku":"MILK","quantity":5}]}"#.to_vec(),
    );
    assert_eq!(first.status, 201, "{}", first.body);
    // Same JSON: keys in another order, other whitespace.
    let retry = api.post_raw(
        "/v1/receipts",
        Some("k1"),
        b"{ \"lines\" : [ { \"quantity\" : 5, \"sku\" : \"MILK\" } ],\n  \"reference\" : \"DN-1\" }"
            .to_vec(),
    );
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert!(retry.replayed, "the retry is a replay");
    assert_eq!(retry.body, first.body);
    // Another request under the same key is still refused.
    let other = api.post_raw(
        "/v1/receipts",
        Some("k1"),
        br#"{"reference":"DN-1","lines":[{"sku":"MILK","quantity":6}]}"#.to_vec(),
    );
    assert_eq!(other.status, 409, "{}", other.body);
    assert_eq!(api.get("/v1/stock/MILK").body["on_hand"], 5);
}
