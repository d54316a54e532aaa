//! EPCIS 2.0 export end to end: the real binary with two simulated RFID readers on
//! pseudo-terminals (a shelf and an exit door), receipts, counts and sales (with and without
//! EPC) through the API, then `GET /v1/epcis/events` validated against the official GS1
//! EPCIS 2.0 JSON schema shipped in tests/data/epcis, with business steps, dispositions,
//! the time window, paging and bad filters checked.
//!
//! And published to HQ over real Mosquitto (mTLS, the project's ACL): events reach HQ,
//! including those made while the store was cut off by a TCP proxy, and a full re-send
//! (the store's acknowledgement mark lost) stores nothing twice.
//!
//! No timing assertions: every wait is bounded and only fails when its condition never
//! becomes true.

mod common;
mod sync_util;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::node::{NodeProcess, binary};
use common::pki::Pki;
use serde_json::{Value, json};
use storenode::devices::sim::sample_epcs;
use storenode::gs1::decode_epc_hex;
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, TENANT, data_path, wait_for};

const SCHEMA: &str = include_str!("data/epcis/EPCIS-JSON-Schema.json");
const GLN: &str = "4012345000009";
const WAIT: Duration = Duration::from_secs(60);

/// A `storenode diag simulate rfid` process; killed when dropped.
struct Simulator(Child);

impl Simulator {
    fn start(link: &std::path::Path, seed: u64, tags: usize) -> Simulator {
        let child = Command::new(binary())
            .args([
                "diag",
                "simulate",
                "rfid",
                "--protocol",
                "m100",
                "--rate",
                "20",
            ])
            .args(["--duplicates", "1", "--tags", &tags.to_string()])
            .args(["--seed", &seed.to_string(), "--pty-link"])
            .arg(link)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start simulator");
        Simulator(child)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn reader(id: &str, link: &std::path::Path, exit: bool) -> String {
    format!(
        "[[devices.readers]]\nid = \"{id}\"\nport = \"{}\"\nprotocol = \"m100\"\nregion = \"eu\"\npower_cdbm = 2000\nexit = {exit}\n",
        link.display()
    )
}

/// A node with a shelf reader, an exit reader and the store's GLN configured.
fn start_node(shelf: &std::path::Path, door: &std::path::Path) -> NodeProcess {
    let extra = format!(
        "[devices]\n{}{}",
        reader("shelf", shelf, false),
        reader("door", door, true)
    );
    let mut node = NodeProcess::start_with(&extra);
    // The helper's [node] table has no GLN: add it and restart (the log survives restarts).
    node.terminate();
    let text = std::fs::read_to_string(&node.config).expect("read config");
    let text = text.replacen(
        "node_id = \"lane1\"",
        &format!("node_id = \"lane1\"\ngln = \"{GLN}\""),
        1,
    );
    std::fs::write(&node.config, text).expect("write config");
    give_shirt_the_door_tags_gtin(&node);
    node.spawn();
    node
}

/// A tag is sold only on a line of its own item: the T-shirt sold with the door's first tag
/// gets that tag's GTIN (the simulated tags are random SGTINs).
fn give_shirt_the_door_tags_gtin(node: &NodeProcess) {
    let tag = hex::encode_upper(&sample_epcs(1, 22)[0]);
    let gtin = decode_epc_hex(&tag)
        .ok()
        .and_then(|e| e.gtin14().map(|g| g.as_str().to_string()))
        .expect("the door's first tag is an SGTIN");
    let catalog = common::node::CATALOG_CSV.replace(
        "5901234123457|96385074",
        &format!("5901234123457|96385074|{gtin}"),
    );
    let file = node.dir.path().join("catalog-door.csv");
    std::fs::write(&file, catalog).expect("write catalog");
    let import = Command::new(binary())
        .args([
            "--config",
            node.config.to_str().unwrap_or_default(),
            "catalog",
            "import",
        ])
        .arg(&file)
        .output()
        .expect("run catalog import");
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
}

fn epc_uri(hex: &str) -> String {
    decode_epc_hex(hex)
        .ok()
        .and_then(|e| e.pure_identity_uri())
        .unwrap_or_else(|| format!("urn:epc:raw:{}.x{hex}", hex.len() * 4))
}

fn validate(doc: &Value) {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema json");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

fn events(doc: &Value) -> Vec<Value> {
    doc["epcisBody"]["eventList"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn with_step<'a>(list: &'a [Value], step: &str) -> Vec<&'a Value> {
    list.iter().filter(|e| e["bizStep"] == step).collect()
}

fn get(node: &NodeProcess, query: &str) -> (u16, Value, Option<String>) {
    let api = node.client();
    let response = api
        .http
        .get(format!("{}/v1/epcis/events{query}", api.base))
        .bearer_auth(&api.token)
        .timeout(Duration::from_secs(10))
        .send()
        .expect("GET epcis");
    let status = response.status().as_u16();
    let link = response
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.json().unwrap_or(Value::Null);
    (status, body, link)
}

/// The `after` cursor of a `Link: <…&after=N>; rel="next"` header.
fn next_after(link: &str) -> String {
    let start = link.find("after=").expect("cursor in link") + "after=".len();
    link[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

#[test]
fn store_events_export_as_valid_epcis_2_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (shelf, door) = (dir.path().join("shelf"), dir.path().join("door"));
    let node = start_node(&shelf, &door);
    let api = node.client();
    let door_tags: Vec<String> = sample_epcs(2, 22).iter().map(hex::encode_upper).collect();
    let shelf_tags: Vec<String> = sample_epcs(2, 11).iter().map(hex::encode_upper).collect();

    let receipt = api.post(
        "/v1/receipts",
        "gr-1",
        &json!({"reference": "DN-1", "lines": [{"sku": "MILK", "quantity": 24}]}),
    );
    assert_eq!(receipt.status, 201, "{:?}", receipt.body);
    // Writes a few ms apart, so the time-window check below has unambiguous boundaries.
    let pause = || std::thread::sleep(Duration::from_millis(5));
    pause();
    let count = api.post(
        "/v1/counts",
        "cnt-1",
        &json!({"lines": [{"gtin": "4006381333931", "counted": 20}]}),
    );
    assert_eq!(count.status, 201, "{:?}", count.body);
    pause();
    let sale = api.post(
        "/v1/sales",
        "sale-1",
        &json!({
            "lines": [
                {"sku": "MILK", "quantity": 2},
                {"sku": "SHIRT", "quantity": 1, "epc": door_tags[0]},
                {"sku": "APPLE", "weight_grams": 1000}
            ],
            "payments": [{"method": "cash", "amount_minor": 5000}]
        }),
    );
    assert_eq!(sale.status, 201, "{:?}", sale.body);
    pause();
    // An item without GTIN has no GS1 identity: a sale of only that is not exported.
    let no_gtin = api.post("/v1/sales", "sale-2", &json!({"lines": [{"sku": "APPLE", "weight_grams": 500}], "payments": [{"method": "cash", "amount_minor": 500}]}));
    assert_eq!(no_gtin.status, 201, "{:?}", no_gtin.body);
    pause();
    let later = api.post(
        "/v1/receipts",
        "gr-2",
        &json!({"lines": [{"gtin": "5901234123457", "quantity": 5}]}),
    );
    assert_eq!(later.status, 201, "{:?}", later.body);

    // The readers come up: the sold tag passes the door without an alert, the other raises one.
    let _shelf_sim = Simulator::start(&shelf, 11, 2);
    let _door_sim = Simulator::start(&door, 22, 2);
    let deadline = Instant::now() + WAIT;
    let doc = loop {
        let (status, doc, _) = get(&node, "");
        assert_eq!(status, 200, "{doc}");
        let list = events(&doc);
        // Presence is per read point, so a tag that drops out and back may be read again:
        // wait for every expected tag, compare sets below.
        if !with_step(&list, "entering_exiting").is_empty()
            && with_step(&list, "cycle_counting").len() >= 3
        {
            break doc;
        }
        assert!(
            Instant::now() < deadline,
            "RFID events never arrived: {doc:#}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    validate(&doc);
    assert_eq!(doc["type"], "EPCISDocument");
    assert_eq!(doc["schemaVersion"], "2.0");
    assert_eq!(
        doc["@context"][0],
        "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
    );
    let list = events(&doc);
    let store = format!("https://id.gs1.org/414/{GLN}");
    for e in &list {
        assert_eq!(e["type"], "ObjectEvent");
        assert_eq!(e["bizLocation"]["id"], store.as_str());
        assert!(e["eventTime"].as_str().unwrap_or_default().ends_with('Z'));
        assert_eq!(e["eventTimeZoneOffset"], "+00:00");
    }

    let receiving = with_step(&list, "receiving");
    assert_eq!(receiving.len(), 2);
    assert_eq!(receiving[0]["disposition"], "sellable_not_accessible");
    assert_eq!(
        receiving[0]["quantityList"],
        json!([{"epcClass": "https://id.gs1.org/01/04006381333931", "quantity": 24}])
    );
    assert_eq!(
        receiving[0]["readPoint"]["id"],
        format!("{store}/254/lane1")
    );

    let counting = with_step(&list, "cycle_counting");
    let counted: Vec<_> = counting
        .iter()
        .filter(|e| e.get("quantityList").is_some())
        .collect();
    assert_eq!(counted.len(), 1);
    assert_eq!(
        counted[0]["quantityList"][0]["quantity"], 20,
        "the counted quantity, not the difference"
    );
    assert_eq!(counted[0]["disposition"], "sellable_accessible");
    let mut read: Vec<String> = counting
        .iter()
        .filter_map(|e| e["epcList"][0].as_str().map(str::to_string))
        .collect();
    read.sort();
    read.dedup();
    let mut expected: Vec<String> = shelf_tags.iter().map(|t| epc_uri(t)).collect();
    expected.sort();
    assert_eq!(read, expected);
    assert!(
        counting
            .iter()
            .filter(|e| e.get("epcList").is_some())
            .all(|e| e["readPoint"]["id"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("{store}/254/shelf.")))
    );

    let selling = with_step(&list, "retail_selling");
    assert_eq!(selling.len(), 1, "the GTIN-less sale is not exported");
    // ... but counted and said: the sale of apples alone, and the apple line of sale-1.
    assert_eq!(doc["storenode:factsWithoutGtin"], 1, "{doc:#}");
    assert_eq!(selling[0]["storenode:linesWithoutGtin"], 1);
    assert_eq!(selling[0]["disposition"], "retail_sold");
    assert_eq!(selling[0]["epcList"], json!([epc_uri(&door_tags[0])]));
    assert_eq!(
        selling[0]["quantityList"],
        json!([{"epcClass": "https://id.gs1.org/01/04006381333931", "quantity": 2}])
    );

    let exits = with_step(&list, "entering_exiting");
    for exit in &exits {
        assert_eq!(
            exit["epcList"],
            json!([epc_uri(&door_tags[1])]),
            "only the unsold tag"
        );
        assert_eq!(exit["disposition"], "unknown");
        assert!(
            exit["readPoint"]["id"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("{store}/254/door."))
        );
    }

    // Re-exports are identical in identity: same event IDs, all distinct.
    let (_, again, _) = get(&node, "");
    let ids = |d: &Value| {
        events(d)
            .iter()
            .map(|e| e["eventID"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&doc), ids(&again));
    let mut unique = ids(&doc);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), list.len());

    // Time window: from the count (inclusive) to the later receipt (exclusive).
    let from = count.body["at"].as_str().expect("count at").to_string();
    let to = later.body["at"].as_str().expect("receipt at").to_string();
    let (status, window, _) = get(&node, &format!("?from={from}&to={to}"));
    assert_eq!(status, 200);
    validate(&window);
    let steps: Vec<_> = events(&window)
        .iter()
        .map(|e| e["bizStep"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(steps, ["cycle_counting", "retail_selling"], "{window:#}");

    // Paging by one: following Link rel=next visits every event once, in order.
    let mut paged = Vec::new();
    let mut query = "?limit=1".to_string();
    loop {
        let (status, page, link) = get(&node, &query);
        assert_eq!(status, 200);
        validate(&page);
        paged.extend(events(&page));
        let Some(link) = link else { break };
        assert!(link.ends_with("rel=\"next\""), "{link}");
        query = format!("?limit=1&after={}", next_after(&link));
        assert!(paged.len() <= list.len() + 1, "paging does not end");
    }
    assert_eq!(ids(&json!({"epcisBody": {"eventList": paged}})), ids(&doc));

    // Bad filters name the field; no token, no events.
    for (query, field) in [
        ("?from=yesterday", "from"),
        ("?to=2026-02-30T00:00:00Z", "to"),
        ("?limit=0", "limit"),
        ("?store=x", "store"),
    ] {
        let (status, body, _) = get(&node, query);
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let anonymous = api
        .with_token("wrong-token-0123456789")
        .get("/v1/epcis/events");
    assert_eq!(anonymous.status, 401);
}

/// Issue 17 item 7 end to end: GTIN-14 classes for a sale by GTIN-13, the store's time zone
/// offset, items without GTIN counted, paging whose short page is the last, UUID event IDs.
#[test]
fn export_as_the_standard_means_it() {
    let mut node = NodeProcess::start();
    node.terminate();
    let text = std::fs::read_to_string(&node.config).expect("read config");
    let text = text.replacen(
        "node_id = \"lane1\"",
        "node_id = \"lane1\"\ntime_zone = \"Europe/Berlin\"",
        1,
    );
    std::fs::write(&node.config, text).expect("write config");
    node.spawn();
    let api = node.client();
    let received = api.post(
        "/v1/receipts",
        "gr-1",
        &json!({"lines": [{"sku": "MILK", "quantity": 100}]}),
    );
    assert_eq!(received.status, 201, "{:?}", received.body);
    // 26 sales: 17 of milk by its GTIN-13 (as docs/api.md sells it), 9 of apples (no GTIN) between.
    for i in 0..26 {
        let line = if i % 3 == 0 {
            json!({"sku": "APPLE", "weight_grams": 500})
        } else {
            json!({"gtin": "4006381333931", "quantity": 1})
        };
        let sale = api.post(
            "/v1/sales",
            &format!("sale-{i}"),
            &json!({"lines": [line], "payments": [{"method": "cash", "amount_minor": 1000}]}),
        );
        assert_eq!(sale.status, 201, "{:?}", sale.body);
    }
    // 27 facts, 18 events (the receipt and 17 milk sales): pages of 9 are 9 and 9, and only
    // the first links on.
    let (status, first, link) = get(&node, "?limit=9");
    assert_eq!(status, 200, "{first}");
    validate(&first);
    assert_eq!(events(&first).len(), 9, "{first:#}");
    let link = link.expect("a full page with more after it links on");
    let (status, second, last_link) = get(&node, &format!("?limit=9&after={}", next_after(&link)));
    assert_eq!(status, 200, "{second}");
    validate(&second);
    assert_eq!(events(&second).len(), 9, "{second:#}");
    assert_eq!(last_link, None, "the last page has no next link");
    // Every fact without GTIN is counted once, in the document of its page.
    let left_out = |d: &Value| d["storenode:factsWithoutGtin"].as_u64().unwrap_or(0);
    assert_eq!(left_out(&first) + left_out(&second), 9);

    let all: Vec<Value> = events(&first).into_iter().chain(events(&second)).collect();
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").expect("zone");
    for e in &all {
        let at: jiff::Timestamp = e["eventTime"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .expect("time");
        let offset = berlin.to_offset(at).seconds();
        let expected = format!("+{:02}:00", offset / 3600);
        assert_eq!(e["eventTimeZoneOffset"], expected.as_str(), "{e}");
        let id = e["eventID"].as_str().unwrap_or_default();
        assert!(id.starts_with("urn:uuid:") && id.len() == 45, "{id}");
        assert_eq!(
            e["quantityList"][0]["epcClass"], "https://id.gs1.org/01/04006381333931",
            "GTIN-14, whatever the till sent"
        );
    }
}

const CONVERGE: Duration = Duration::from_secs(60);

fn event_ids(doc: &Value) -> Vec<String> {
    let mut ids: Vec<String> = events(doc)
        .iter()
        .map(|e| e["eventID"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

/// HQ's EPCIS document of store `s1` (limit large enough for the test's events).
fn hq_events(hq: &HqNode) -> Value {
    let (status, doc) = hq.get_json("/v1/epcis/events?store=s1&limit=1000");
    assert_eq!(status, 200, "{doc}");
    doc
}

fn store_events(node: &StoreNode) -> Value {
    let (status, doc) = node.get_json("/v1/epcis/events?limit=1000");
    assert_eq!(status, 200, "{doc}");
    doc
}

fn acked_mark(node: &StoreNode) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        data_path(node.dir.path()),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open store db");
    conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM epcis_ack", [], |r| {
        r.get(0)
    })
    .expect("read mark")
}

fn published_from_zero(node: &StoreNode) -> usize {
    node.log()
        .lines()
        .filter(|l| l.contains("EPCIS batch published") && l.contains("\"after\":0"))
        .count()
}

#[test]
fn events_reach_hq_across_a_partition_and_are_stored_once() {
    let pki = Pki::new("epcis");
    let broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    let proxy = Proxy::start(broker.port());
    let access = |port: u16, cn: &str| {
        let cert = pki.client(cn);
        BrokerAccess::Mtls {
            port,
            ca: cert.ca_cert.clone(),
            cert: cert.cert.clone(),
            key: cert.key.clone(),
        }
    };
    let hq = HqNode::start(&access(broker.port(), "hq"), "");
    let s1 = StoreNode::start("s1", "lane1", &access(proxy.port, "s1"));

    s1.receive("r1", "MILK", 10);
    s1.sell("s1", "MILK", 1);
    let doc = wait_for("HQ holds the first events", CONVERGE, || {
        let doc = hq_events(&hq);
        (events(&doc).len() == 2).then_some(doc)
    });
    validate(&doc);
    assert_eq!(event_ids(&doc), event_ids(&store_events(&s1)));

    // Cut off: the store keeps working and its events wait in its log.
    proxy.cut();
    for i in 0..3 {
        s1.sell(&format!("offline-{i}"), "MILK", 1);
    }
    s1.receive("r2", "SHIRT", 4);
    assert_eq!(events(&store_events(&s1)).len(), 6);
    assert_eq!(events(&hq_events(&hq)).len(), 2, "HQ cannot know yet");

    proxy.restore();
    let doc = wait_for("HQ holds the offline events", CONVERGE, || {
        let doc = hq_events(&hq);
        (events(&doc).len() == 6).then_some(doc)
    });
    validate(&doc);
    let at_store = store_events(&s1);
    assert_eq!(event_ids(&doc), event_ids(&at_store));
    // The very same events, not just the same IDs (the HQ copy is what the store exports).
    let mut hq_list = events(&doc);
    let mut store_list = events(&at_store);
    hq_list.sort_by_key(|e| e["eventID"].to_string());
    store_list.sort_by_key(|e| e["eventID"].to_string());
    assert_eq!(hq_list, store_list);
    let last_seq = wait_for("the store's mark reaches its last event", CONVERGE, || {
        let mark = acked_mark(&s1);
        (mark >= 6).then_some(mark)
    });

    // The mark is lost (as after restoring an old backup): the store re-sends everything
    // from the start once HQ has not moved it for a while; HQ stores nothing twice.
    let sent_from_zero = published_from_zero(&s1);
    {
        let conn = rusqlite::Connection::open(data_path(s1.dir.path())).expect("open store db");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute("DELETE FROM epcis_ack", [])
            .expect("forget the mark");
    }
    wait_for("a re-send from the start, acknowledged", CONVERGE, || {
        (published_from_zero(&s1) > sent_from_zero && acked_mark(&s1) == last_seq).then_some(())
    });
    let doc = hq_events(&hq);
    assert_eq!(
        events(&doc).len(),
        6,
        "duplicates are not stored twice: {doc:#}"
    );
    assert_eq!(event_ids(&doc), event_ids(&store_events(&s1)));

    // Time window and bad filters at HQ.
    let first_time = events(&doc)[0]["eventTime"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, window) = hq.get_json(&format!("/v1/epcis/events?store=s1&to={first_time}"));
    assert_eq!(status, 200);
    assert!(events(&window).is_empty(), "to is exclusive: {window}");
    let (status, other) = hq.get_json("/v1/epcis/events?store=s2");
    assert_eq!(status, 200);
    assert!(events(&other).is_empty());
    let (status, body) = hq.get_json("/v1/epcis/events?from=soon");
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("from")),
        "{body}"
    );
}

#[test]
fn a_wrong_gln_stops_the_node_at_config_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("storenode.toml");
    let text = common::node::config_text(dir.path(), common::node::free_port(), "").replacen(
        "node_id = \"lane1\"",
        "node_id = \"lane1\"\ngln = \"4012345000008\"",
        1,
    );
    std::fs::write(&config, text).expect("write config");
    let out = Command::new(binary())
        .args([
            "--config",
            config.to_str().unwrap_or_default(),
            "config",
            "check",
        ])
        .output()
        .expect("run config check");
    assert_eq!(out.status.code(), Some(2), "a configuration error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node.gln"), "{stderr}");
}
