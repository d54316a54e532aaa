//! End-to-end tests of the POS API against the real `storenode` binary.

mod common;

use std::process::Command;

use common::node::{NodeProcess, TOKEN_POS1, TOKEN_POS2, binary};
use serde_json::json;

fn sale(sku: &str, quantity: i64, paid: i64) -> serde_json::Value {
    json!({ "lines": [{ "sku": sku, "quantity": quantity }], "payments": [{ "method": "cash", "amount_minor": paid }] })
}

fn receive(api: &common::node::Api, sku: &str, quantity: i64) {
    let reply = api.post(
        "/v1/receipts",
        &format!("rcv-{sku}-{quantity}"),
        &json!({ "lines": [{ "sku": sku, "quantity": quantity }] }),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
}

fn on_hand(api: &common::node::Api, sku: &str) -> i64 {
    let reply = api.get(&format!("/v1/stock/{sku}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["on_hand"].as_i64().expect("on_hand")
}

#[test]
fn sale_lowers_stock_and_replay_changes_nothing() {
    let node = NodeProcess::start();
    let api = node.client();
    receive(&api, "MILK", 10);

    let first = api.post("/v1/sales", "sale-1", &sale("MILK", 3, 500));
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["total_minor"], 357);
    assert_eq!(first.body["change_minor"], 143);
    assert_eq!(on_hand(&api, "MILK"), 7);

    let replay = api.post("/v1/sales", "sale-1", &sale("MILK", 3, 500));
    assert_eq!(replay.status, 201);
    assert!(replay.replayed);
    assert_eq!(replay.body, first.body, "a replay returns the first answer");
    assert_eq!(on_hand(&api, "MILK"), 7, "a replay changes nothing");

    let reused = api.post("/v1/sales", "sale-1", &sale("MILK", 1, 500));
    assert_eq!(reused.status, 409, "{}", reused.body);

    // Lookup by any GTIN form shows price and stock.
    let item = api.get("/v1/items/04006381333931");
    assert_eq!(item.status, 200);
    assert_eq!(item.body["item"]["sku"], "MILK");
    assert_eq!(item.body["stock"]["on_hand"], 7);
}

#[test]
fn overselling_is_allowed_and_flagged() {
    let node = NodeProcess::start();
    let api = node.client();
    receive(&api, "SHIRT", 1);
    let reply = api.post("/v1/sales", "oversell", &sale("SHIRT", 2, 2598));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["negative_stock"][0]["sku"], "SHIRT");
    assert_eq!(reply.body["negative_stock"][0]["on_hand"], -1);
    // A fresh client: the server closes the connection after refusing the oversized body.
    let metrics = reqwest::blocking::Client::new()
        .get(format!("{}/metrics", node.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("storenode_negative_stock_sales_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("storenode_skus_negative_stock 1"),
        "{metrics}"
    );
}

#[test]
fn return_restocks_and_never_exceeds_the_sale() {
    let node = NodeProcess::start();
    let api = node.client();
    receive(&api, "SHIRT", 5);
    let sold = api.post("/v1/sales", "s", &sale("SHIRT", 2, 2598));
    let sale_id = sold.body["sale_id"].as_str().unwrap().to_string();
    assert_eq!(on_hand(&api, "SHIRT"), 3);

    let ret = |key: &str, qty: i64| {
        api.post(
            "/v1/returns",
            key,
            &json!({ "sale_id": sale_id, "lines": [{ "line_no": 1, "quantity": qty }] }),
        )
    };
    let first = ret("r1", 1);
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["refund_minor"], 1299);
    assert_eq!(on_hand(&api, "SHIRT"), 4);
    let too_many = ret("r2", 2);
    assert_eq!(too_many.status, 422, "{}", too_many.body);
    assert_eq!(too_many.body["field"], "lines[0].quantity");
    assert_eq!(
        on_hand(&api, "SHIRT"),
        4,
        "a refused return changes nothing"
    );
    let unknown = api.post(
        "/v1/returns",
        "r3",
        &json!({ "sale_id": "nope", "lines": [{ "line_no": 1, "quantity": 1 }] }),
    );
    assert_eq!(unknown.status, 404);
}

#[test]
fn auth_failures_are_401_and_tokens_never_logged() {
    let node = NodeProcess::start();
    let api = node.client();
    let missing = api
        .http
        .get(format!("{}/v1/items/MILK", node.base))
        .send()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    let wrong = node
        .client()
        .with_token("not-the-token-0123456789")
        .get("/v1/items/MILK");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["error"], "unauthorized");
    let write = node
        .client()
        .with_token("nope")
        .post("/v1/sales", "k", &sale("MILK", 1, 200));
    assert_eq!(write.status, 401);
    // Each terminal has its own token.
    assert_eq!(
        node.client()
            .with_token(TOKEN_POS2)
            .get("/v1/items/MILK")
            .status,
        200
    );
    // Health, readiness, metrics and the API document need no token.
    for path in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        let status = api
            .http
            .get(format!("{}{path}", node.base))
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 200, "{path}");
    }
    let log = node.log();
    assert!(
        log.contains("missing or invalid bearer token"),
        "auth failures are logged: {log}"
    );
    for secret in [TOKEN_POS1, TOKEN_POS2, "not-the-token-0123456789"] {
        assert!(!log.contains(secret), "a token reached the log");
    }
}

#[test]
fn bad_input_gets_a_clear_4xx() {
    let node = NodeProcess::start();
    let api = node.client();
    // (case, idempotency key, body, expected status, field named in the error)
    type Case = (
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        u16,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            Some("b1"),
            b"{\"lines\": [".to_vec(),
            400,
            None,
        ),
        (
            "wrong type",
            Some("b2"),
            br#"{"lines":[{"sku":"MILK","quantity":"2"}],"payments":[]}"#.to_vec(),
            400,
            Some("lines[0].quantity"),
        ),
        (
            "unknown field",
            Some("b3"),
            br#"{"lines":[{"sku":"MILK","qty":2}],"payments":[]}"#.to_vec(),
            400,
            Some("lines[0]"),
        ),
        (
            "missing key",
            None,
            sale("MILK", 1, 200).to_string().into_bytes(),
            400,
            Some("Idempotency-Key"),
        ),
        (
            "zero quantity",
            Some("b5"),
            sale("MILK", 0, 200).to_string().into_bytes(),
            422,
            Some("lines[0].quantity"),
        ),
        (
            "negative quantity",
            Some("b6"),
            sale("MILK", -3, 200).to_string().into_bytes(),
            422,
            Some("lines[0].quantity"),
        ),
        (
            "unknown item",
            Some("b7"),
            sale("NOPE", 1, 200).to_string().into_bytes(),
            404,
            None,
        ),
        (
            "bad GTIN check digit",
            Some("b8"),
            br#"{"lines":[{"gtin":"4006381333932"}],"payments":[]}"#.to_vec(),
            422,
            Some("lines[0].gtin"),
        ),
        (
            "underpaid",
            Some("b9"),
            sale("MILK", 2, 100).to_string().into_bytes(),
            422,
            Some("payments"),
        ),
        (
            "deep JSON",
            Some("b10"),
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            400,
            None,
        ),
        (
            "oversized body",
            Some("b11"),
            vec![b' '; 200 * 1024],
            413,
            None,
        ),
    ];
    for (name, key, body, status, field) in cases {
        let reply = api.post_raw("/v1/sales", key, body);
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        if let Some(field) = field {
            let got = reply.body["field"].as_str().unwrap_or_default();
            assert!(
                got.starts_with(field),
                "{name}: field {got:?} in {}",
                reply.body
            );
        }
        if status != 413 {
            assert!(
                reply.body["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{name}: {}",
                reply.body
            );
        }
    }
    // A fresh connection: after a 413 the server closes the one the client would reuse
    // from its pool, and a request sent on it meanwhile fails (IncompleteMessage).
    let metrics = reqwest::blocking::Client::new()
        .get(format!("{}/metrics", node.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("storenode_sales_total 0"),
        "no bad request recorded a sale"
    );
}

#[test]
fn hostile_bodies_get_a_clear_4xx_and_change_nothing() {
    let node = NodeProcess::start();
    let api = node.client();
    receive(&api, "MILK", 10);
    let huge = "9223372036854775808"; // i64::MAX + 1
    // (case, route, body, field the error must name, if any)
    let cases: Vec<(&str, &str, String, Option<&str>)> = vec![
        ("array at the top", "/v1/sales", "[]".into(), None),
        ("string at the top", "/v1/sales", r#""sale""#.into(), None),
        ("number at the top", "/v1/sales", "42".into(), None),
        ("null at the top", "/v1/sales", "null".into(), None),
        ("empty body", "/v1/sales", String::new(), None),
        (
            "lines not an array",
            "/v1/sales",
            r#"{"lines":{},"payments":[]}"#.into(),
            Some("lines"),
        ),
        (
            "quantity beyond i64",
            "/v1/sales",
            format!(r#"{{"lines":[{{"sku":"MILK","quantity":{huge}}}],"payments":[]}}"#),
            Some("lines[0].quantity"),
        ),
        (
            "quantity as a float",
            "/v1/sales",
            r#"{"lines":[{"sku":"MILK","quantity":1.5}],"payments":[]}"#.into(),
            Some("lines[0].quantity"),
        ),
        (
            "quantity 1e30",
            "/v1/receipts",
            r#"{"lines":[{"sku":"MILK","quantity":1e30}]}"#.into(),
            Some("lines[0].quantity"),
        ),
        (
            "quantity i64::MAX (total overflows)",
            "/v1/sales",
            sale("SHIRT", i64::MAX, 100).to_string(),
            None,
        ),
        (
            "receipt of i64::MAX onto stock",
            "/v1/receipts",
            json!({ "lines": [{ "sku": "MILK", "quantity": i64::MAX }] }).to_string(),
            None,
        ),
        (
            "amount beyond i64",
            "/v1/sales",
            format!(
                r#"{{"lines":[{{"sku":"MILK","quantity":1}}],"payments":[{{"method":"cash","amount_minor":{huge}}}]}}"#
            ),
            Some("payments[0].amount_minor"),
        ),
        (
            "negative payment",
            "/v1/sales",
            sale("MILK", 1, -500).to_string(),
            Some("payments[0].amount_minor"),
        ),
        (
            "payments overflowing when summed",
            "/v1/sales",
            json!({ "lines": [{ "sku": "MILK", "quantity": 1 }],
                    "payments": [{ "method": "cash", "amount_minor": i64::MAX },
                                 { "method": "card", "amount_minor": i64::MAX }] })
            .to_string(),
            None,
        ),
        (
            "NUL in SKU",
            "/v1/sales",
            sale("MI\u{0}LK", 1, 200).to_string(),
            None,
        ),
        (
            "control chars in SKU",
            "/v1/sales",
            sale("MILK\u{7}\u{1b}[2J", 1, 200).to_string(),
            None,
        ),
        (
            "10 000-char SKU",
            "/v1/sales",
            sale(&"X".repeat(10_000), 1, 200).to_string(),
            None,
        ),
        (
            "not UTF-8",
            "/v1/sales",
            String::from_utf8_lossy(b"{\"lines\":[{\"sku\":\"\xff\xfe\"}]}").into_owned(),
            None,
        ),
    ];
    for (n, (name, route, body, field)) in cases.into_iter().enumerate() {
        let reply = api.post_raw(route, Some(&format!("hostile-{n}")), body.into_bytes());
        assert!(
            (400..500).contains(&reply.status),
            "{name}: got {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}: no clear message in {}",
            reply.body
        );
        if let Some(field) = field {
            let got = reply.body["field"].as_str().unwrap_or_default();
            assert!(
                got.starts_with(field),
                "{name}: field {got:?} in {}",
                reply.body
            );
        }
    }
    // Raw invalid UTF-8 bytes (not lossily converted).
    let raw = api.post_raw(
        "/v1/sales",
        Some("hostile-raw"),
        b"{\"lines\":[{\"sku\":\"\xff\xfe\",\"quantity\":1}],\"payments\":[]}".to_vec(),
    );
    assert_eq!(raw.status, 400, "{}", raw.body);
    assert_eq!(on_hand(&api, "MILK"), 10, "no hostile request moved stock");
    assert_eq!(on_hand(&api, "SHIRT"), 0);
    let log = node.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_restart_keeps_every_acknowledged_sale() {
    let mut node = NodeProcess::start();
    let api = node.client();
    receive(&api, "MILK", 1000);
    let acknowledged: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let base = node.base.clone();
                scope.spawn(move || {
                    let api = common::node::Api {
                        base,
                        token: TOKEN_POS1.into(),
                        http: reqwest::blocking::Client::new(),
                    };
                    (0..25)
                        .filter_map(|i| {
                            let reply =
                                api.post("/v1/sales", &format!("w{w}-{i}"), &sale("MILK", 1, 119));
                            (reply.status == 201).then(|| {
                                reply.body["sale_id"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string()
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    assert_eq!(acknowledged.len(), 100);
    node.kill(); // a power cut: no graceful shutdown
    node.spawn();
    let api = node.client();
    for sale_id in &acknowledged {
        assert_eq!(
            api.get(&format!("/v1/sales/{sale_id}")).status,
            200,
            "sale {sale_id} lost"
        );
    }
    assert_eq!(on_hand(&api, "MILK"), 900);
}

#[test]
fn click_and_collect_flow() {
    let node = NodeProcess::start();
    let api = node.client();
    receive(&api, "SHIRT", 3);
    let order = json!({ "order_id": "web-1001", "channel": "web", "pickup_code": "4711", "lines": [{ "sku": "SHIRT", "quantity": 2 }] });
    let created = api.post("/v1/orders", "o1", &order);
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["status"], "reserved");
    let stock = api.get("/v1/stock/SHIRT").body;
    assert_eq!(
        (stock["on_hand"].as_i64(), stock["available"].as_i64()),
        (Some(3), Some(1))
    );

    let wrong = api.post("/v1/orders/web-1001/pick", "p0", &json!({ "sku": "MILK" }));
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(
        wrong.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("wrong item")
    );
    let not_yet = api.post("/v1/orders/web-1001/ready", "r0", &json!({}));
    assert_eq!(not_yet.status, 422);
    for i in 0..2 {
        let pick = api.post(
            "/v1/orders/web-1001/pick",
            &format!("p{}", i + 1),
            &json!({ "gtin": "96385074" }),
        );
        assert_eq!(pick.status, 201, "{}", pick.body);
    }
    assert_eq!(
        api.post("/v1/orders/web-1001/ready", "r1", &json!({}))
            .status,
        201
    );
    let bad_code = api.post(
        "/v1/orders/web-1001/collect",
        "c0",
        &json!({ "pickup_code": "0000" }),
    );
    assert_eq!(bad_code.status, 422);
    // Collected at another lane.
    let lane2 = node.client().with_token(TOKEN_POS2);
    let collected = lane2.post(
        "/v1/orders/web-1001/collect",
        "c1",
        &json!({ "pickup_code": "4711" }),
    );
    assert_eq!(collected.status, 201, "{}", collected.body);
    assert_eq!(collected.body["status"], "collected");
    let history: Vec<&str> = collected.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(history, ["reserved", "picking", "ready", "collected"]);
    let stock = api.get("/v1/stock/SHIRT").body;
    assert_eq!(
        (stock["on_hand"].as_i64(), stock["reserved"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        api.post("/v1/orders/web-1001/cancel", "x1", &json!({}))
            .status,
        409,
        "collected orders cannot be cancelled"
    );

    let second = json!({ "order_id": "web-1002", "pickup_code": "1234", "lines": [{ "sku": "SHIRT", "quantity": 1 }] });
    assert_eq!(api.post("/v1/orders", "o2", &second).status, 201);
    assert_eq!(
        api.post(
            "/v1/orders/web-1002/cancel",
            "x2",
            &json!({ "reason": "customer called" })
        )
        .status,
        201
    );
    assert_eq!(
        api.get("/v1/stock/SHIRT").body["reserved"],
        0,
        "cancel releases the reservation"
    );
    let listed = api.get("/v1/orders?status=cancelled");
    assert_eq!(listed.body["orders"][0]["order_id"], "web-1002");
}

#[test]
fn counts_record_the_difference_and_stock_pages() {
    let node = NodeProcess::start();
    let api = node.client();
    receive(&api, "MILK", 10);
    api.post("/v1/sales", "s1", &sale("MILK", 2, 500));
    let count = api.post(
        "/v1/counts",
        "c1",
        &json!({ "lines": [{ "sku": "MILK", "counted": 5 }] }),
    );
    assert_eq!(count.status, 201, "{}", count.body);
    assert_eq!(count.body["changes"][0]["delta"], -3);
    assert_eq!(on_hand(&api, "MILK"), 5);
    // A count that finds what the system holds is still an observation: EPCIS shows it.
    let same = api.post(
        "/v1/counts",
        "c-same",
        &json!({ "lines": [{ "sku": "MILK", "counted": 5 }] }),
    );
    assert_eq!(same.body["changes"][0]["delta"], 0, "{}", same.body);
    assert_eq!(on_hand(&api, "MILK"), 5);
    let events = api.get("/v1/epcis/events");
    let counts = events.body["epcisBody"]["eventList"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|e| e["bizStep"] == "cycle_counting")
                .count()
        });
    assert_eq!(counts, Some(2), "{}", events.body);
    let negative = api.post(
        "/v1/counts",
        "c2",
        &json!({ "lines": [{ "sku": "MILK", "counted": -1 }] }),
    );
    assert_eq!(negative.status, 422);
    let page = api.get("/v1/stock?limit=2");
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(2));
    let next = page.body["next_after"].as_str().unwrap().to_string();
    let rest = api.get(&format!("/v1/stock?after={next}&limit=2"));
    assert_eq!(rest.body["items"].as_array().map(Vec::len), Some(1));
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut node = NodeProcess::start();
    let status = node.terminate().expect("node was running");
    assert!(status.success(), "exit status {status}: {}", node.log());
    assert!(node.log().contains("store closed"), "{}", node.log());
}

#[test]
fn config_errors_exit_2_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[node]\nstore_id = \"s1\"\n[api]\nlisten = 8080\n").unwrap();
    let out = Command::new(binary())
        .args(["--config", path.to_str().unwrap(), "run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("api.listen"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let out = Command::new(binary())
        .args(["--config", "/nonexistent/storenode.toml", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_check_explains_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, common::node::config_text(dir.path(), 18080, "")).unwrap();
    let out = Command::new(binary())
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("is valid") && text.contains("terminal  pos1"),
        "{text}"
    );
    assert!(!text.contains(TOKEN_POS1), "{text}");
}

#[test]
fn catalog_import_is_all_or_nothing() {
    let node = NodeProcess::start();
    let bad = node.dir.path().join("bad.csv");
    std::fs::write(&bad, "sku,name,price_minor,currency,tax_class,variable_measure,gtins\nNEW1,New,100,EUR,standard,false,\nNEW2,Broken,-5,EUR,standard,false,\n").unwrap();
    let out = Command::new(binary())
        .args([
            "--config",
            node.config.to_str().unwrap(),
            "catalog",
            "import",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: price_minor"), "{err}");
    assert_eq!(
        node.client().get("/v1/items/NEW1").status,
        404,
        "nothing imported"
    );
}
