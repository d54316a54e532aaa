//! Customer data (GDPR) end to end with real processes and a real Mosquitto: customer data
//! of an HQ order reaches the fulfilling store, a store-taken customer reaches HQ, and an
//! erasure by `storenode privacy erase` removes it at HQ, in the broker's retained messages
//! and at the store, also when the store is cut off during the erasure, while the order's
//! business facts stay. Neither log ever shows a name, phone number or e-mail, and the raw
//! database files no longer hold an erased e-mail. Every wait is bounded.

mod common;
mod sync_util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::node::{TOKEN_POS1, binary};
use serde_json::{Value, json};
use sync_util::{BrokerAccess, HQ_TOKEN, HqNode, Proxy, StoreNode, TENANT, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

struct Person {
    name: &'static str,
    phone: &'static str,
    email: &'static str,
    address: Option<&'static str>,
}

const ALICE: Person = Person {
    name: "Alice Zettergren",
    phone: "+46 70 111 22 33",
    email: "alice.zettergren@example.com",
    address: None,
};
const BOB: Person = Person {
    name: "Bob Quillfeather",
    phone: "+46 70 444 55 66",
    email: "bob.quillfeather@example.org",
    address: Some("Ringvägen 7, 118 60 Stockholm"),
};
const CAROL: Person = Person {
    name: "Carol Vantablack",
    phone: "0046 70 777 88 99",
    email: "carol.vantablack@example.net",
    address: None,
};

impl Person {
    fn json(&self) -> Value {
        let mut v = json!({ "name": self.name, "phone": self.phone, "email": self.email });
        if let Some(a) = self.address {
            v["address"] = json!(a);
        }
        v
    }

    /// Every piece of personal data, as it could show up in a log or a file.
    fn secrets(&self) -> Vec<&'static str> {
        let mut s = vec![self.name, self.phone, self.email];
        s.extend(self.address);
        s
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn reply(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn store_put_customer(node: &StoreNode, order: &str, key: &str, who: &Person) -> (u16, Value) {
    reply(
        http()
            .put(format!("{}/v1/orders/{order}/customer", node.base))
            .bearer_auth(TOKEN_POS1)
            .header("idempotency-key", key)
            .json(&who.json())
            .send()
            .unwrap(),
    )
}

fn store_delete_customer(node: &StoreNode, order: &str, key: &str) -> (u16, Value) {
    reply(
        http()
            .delete(format!("{}/v1/orders/{order}/customer", node.base))
            .bearer_auth(TOKEN_POS1)
            .header("idempotency-key", key)
            .send()
            .unwrap(),
    )
}

fn hq_put_customer(hq: &HqNode, order: &str, who: &Person) -> (u16, Value) {
    reply(
        http()
            .put(format!("{}/v1/orders/{order}/customer", hq.base))
            .bearer_auth(HQ_TOKEN)
            .json(&who.json())
            .send()
            .unwrap(),
    )
}

fn store_has_customer(node: &StoreNode, order: &str, who: &Person) {
    wait_for(
        &format!("store has the customer of {order}"),
        CONVERGE,
        || {
            let (status, body) = node.get_json(&format!("/v1/orders/{order}/customer"));
            (status == 200 && body["customer"]["email"] == who.email).then_some(())
        },
    );
}

fn store_erased(node: &StoreNode, order: &str) -> Value {
    wait_for(&format!("store erased {order}"), CONVERGE, || {
        let (status, body) = node.get_json(&format!("/v1/orders/{order}/customer"));
        (status == 404 && body["erased_at"].is_string()).then_some(body)
    })
}

fn hq_confirmed(hq: &HqNode, order: &str) -> Value {
    wait_for(
        &format!("store confirms erasure of {order}"),
        CONVERGE,
        || {
            let (status, body) = hq.get_json(&format!("/v1/privacy/erasures/{order}"));
            (status == 200 && body["erasures"][0]["store_confirmed"] == true).then_some(body)
        },
    )
}

/// Grants `quantity` MILK to the online channel at the store and waits until HQ can
/// promise it (HQ places online orders only within the store's grant).
fn grant_milk(hq: &HqNode, store: &StoreNode, quantity: i64) {
    store.grant_online("grant-milk", "MILK", quantity);
    wait_for("HQ sees the grant", CONVERGE, || {
        let (status, body) = hq.stock("s1", "MILK");
        (status == 200 && body["online_escrow"] == quantity).then_some(())
    });
}

/// `storenode privacy erase` against HQ: (exit code, stdout, stderr).
fn cli_erase(hq: &HqNode, selector: &[&str]) -> (i32, String, String) {
    cli_erase_at(hq, &hq.base, selector)
}

/// `storenode privacy erase --hq-url URL` with HQ's token (and, in `args`, e.g. `--ca-file`).
fn cli_erase_at(hq: &HqNode, url: &str, args: &[&str]) -> (i32, String, String) {
    let token = hq.dir.path().join("hq-token");
    std::fs::write(&token, HQ_TOKEN).unwrap();
    let out = Command::new(binary())
        .args(["privacy", "erase", "--hq-url", url, "--token-file"])
        .arg(&token)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The raw bytes of a SQLite database and its WAL.
fn raw_db(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name().unwrap().to_string_lossy()
    ));
    bytes.extend(std::fs::read(wal).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every retained `pii` message the broker holds now (delivered right after subscribing;
/// collected until the broker has been quiet for a second).
fn retained_pii(port: u16) -> Vec<(String, Vec<u8>)> {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{Client, Event, MqttOptions};
    let mut options = MqttOptions::new("privacy-test-reader", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(options, 100);
    client
        .subscribe(format!("storenode/v1/{TENANT}/+/pii/#"), QoS::AtLeastOnce)
        .unwrap();
    let mut seen = Vec::new();
    let mut subscribed = false;
    for _ in 0..1000 {
        match connection.recv_timeout(Duration::from_secs(1)) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subscribed = true,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                seen.push((
                    String::from_utf8_lossy(&p.topic).into_owned(),
                    p.payload.to_vec(),
                ));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("reading retained messages: {e}"),
            Err(_) if subscribed => break,
            Err(_) => {}
        }
    }
    assert!(subscribed, "never subscribed to the broker");
    let _ = client.disconnect();
    seen
}

#[test]
fn customer_data_travels_beside_the_documents_and_erasure_reaches_every_copy() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let direct = BrokerAccess::Plain {
        port: broker.port(),
    };
    let proxy = Proxy::start(broker.port());
    let hq = HqNode::start(&direct, "");
    let mut store = StoreNode::start("s1", "lane1", &BrokerAccess::Plain { port: proxy.port });
    store.receive("r1", "MILK", 20);
    wait_for("HQ knows store 1", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(20)).then_some(())
    });
    grant_milk(&hq, &store, 2);

    // An online order placed at HQ, with its customer: the customer reaches the store,
    // beside the order (not in its document).
    let web1 = json!({ "order_id": "web-1", "store": "s1", "node": "lane1", "pickup_code": "4711",
                       "lines": [{ "sku": "MILK", "quantity": 2 }] });
    assert_eq!(hq.post_json("/v1/orders", web1).0, 201);
    let (status, body) = hq_put_customer(&hq, "web-1", &ALICE);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"], "s1");
    store_has_customer(&store, "web-1", &ALICE);
    let (status, _) = hq.get_json("/v1/orders/web-1/customer");
    assert_eq!(status, 200);

    // An order taken at the store, with its customer (and a delivery address): HQ gets it.
    let shop1 = json!({ "order_id": "shop-1", "pickup_code": "1234",
                        "lines": [{ "sku": "MILK", "quantity": 1 }] });
    let (status, body) = store.post_json("/v1/orders", "o-shop-1", shop1);
    assert_eq!(status, 201, "{body}");
    let (status, body) = store_put_customer(&store, "shop-1", "c-shop-1", &BOB);
    assert_eq!(status, 201, "{body}");
    assert!(
        !body.to_string().contains(BOB.email),
        "no PII in the stored answer: {body}"
    );
    wait_for("HQ has the store's customer", CONVERGE, || {
        let (status, body) = hq.get_json("/v1/orders/shop-1/customer?store=s1");
        (status == 200 && body["customer"]["address"] == BOB.address.unwrap_or("")).then_some(())
    });
    assert_eq!(
        store_put_customer(&store, "no-such-order", "c-x", &BOB).0,
        404
    );
    // Control for the file checks below: the data is in the files before erasure.
    let store_db = sync_util::data_path(store.dir.path());
    let hq_db = hq.dir.path().join("hq.db");
    assert!(contains(&raw_db(&store_db), ALICE.email));
    assert!(contains(&raw_db(&store_db), BOB.email));
    assert!(contains(&raw_db(&hq_db), ALICE.email));

    // Erasure by e-mail (different case) while the store is cut off: HQ erases at once,
    // the store when it reconnects (HQ's retained tombstone).
    proxy.cut();
    let (code, out, err) = cli_erase(&hq, &["--email", "Alice.Zettergren@EXAMPLE.com"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("order web-1  store s1"), "{out}");
    assert!(out.contains("not confirmed"), "{out}");
    for secret in ALICE.secrets() {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "CLI printed PII: {out}{err}"
        );
    }
    let (status, body) = hq.get_json("/v1/orders/web-1/customer");
    assert_eq!(status, 404, "{body}");
    assert!(body["erased_at"].is_string(), "{body}");
    let (status, _) = store.get_json("/v1/orders/web-1/customer");
    assert_eq!(status, 200, "the store is cut off and still has it");
    proxy.restore();
    store_erased(&store, "web-1");
    let state = hq_confirmed(&hq, "web-1");
    assert_eq!(state["erasures"][0]["confirmed_by"], "s1.lane1", "{state}");
    assert_eq!(
        hq_put_customer(&hq, "web-1", &ALICE).0,
        409,
        "erased stays erased"
    );

    // The order's business facts stay, at the store and at HQ.
    let (status, order) = store.get_json("/v1/orders/web-1");
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "reserved", "{order}");
    assert!(order.to_string().contains("MILK"), "{order}");
    let (status, view) = hq.get_json("/v1/orders/web-1");
    assert_eq!(status, 200, "{view}");
    assert!(
        view["history"].as_array().is_some_and(|h| !h.is_empty()),
        "{view}"
    );

    // Erasure of the store-taken order by order id: HQ, the store, and the store's own
    // retained message (overwritten by its tombstone). Through a front that answers
    // chunked, as a reverse proxy does: the report is read whatever the transfer encoding
    // (the hand-written client printed "no customer data matched; nothing erased").
    let chunked = common::front::Front::start(&hq.base, None);
    let (code, out, err) = cli_erase_at(&hq, &chunked.base, &["--order", "shop-1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("erased the customer data of 1 order(s)"),
        "{out}"
    );
    assert!(out.contains("order shop-1  store s1"), "{out}");
    store_erased(&store, "shop-1");
    hq_confirmed(&hq, "shop-1");
    assert_eq!(
        store.get_json("/v1/orders/shop-1").0,
        200,
        "the order stays"
    );
    assert_eq!(
        store_put_customer(&store, "shop-1", "c-shop-1b", &BOB).0,
        409,
        "erased stays erased"
    );

    // Erased at the store (a store-only order): HQ erases its copy too.
    let shop2 = json!({ "order_id": "shop-2", "pickup_code": "5678",
                        "lines": [{ "sku": "MILK", "quantity": 1 }] });
    assert_eq!(store.post_json("/v1/orders", "o-shop-2", shop2).0, 201);
    assert_eq!(
        store_put_customer(&store, "shop-2", "c-shop-2", &CAROL).0,
        201
    );
    wait_for("HQ has shop-2's customer", CONVERGE, || {
        (hq.get_json("/v1/orders/shop-2/customer?store=s1").0 == 200).then_some(())
    });
    let (status, body) = store_delete_customer(&store, "shop-2", "d-shop-2");
    assert_eq!(status, 201, "{body}");
    store_erased(&store, "shop-2");
    let state = hq_confirmed(&hq, "shop-2");
    assert_eq!(state["erasures"][0]["requested_by"], "store", "{state}");
    assert_eq!(hq.get_json("/v1/orders/shop-2/customer?store=s1").0, 404);
    assert_eq!(store_delete_customer(&store, "nothing-here", "d-x").0, 404);

    // Nothing an erasure request matches: said so, exit 0.
    let (code, out, _) = cli_erase(&hq, &["--phone", "+1 555 000 0000"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing erased"), "{out}");
    // A wrong token: exit 1.
    let bad = hq.dir.path().join("bad-token");
    std::fs::write(&bad, "wrong-token-0123456789").unwrap();
    let refused = Command::new(binary())
        .args(["privacy", "erase", "--hq-url", &hq.base, "--token-file"])
        .arg(&bad)
        .args(["--order", "web-1"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("HQ answered 401: missing or wrong bearer token"),
        "HQ's message, not its error code: {said}"
    );

    // The broker keeps only tombstones.
    let retained = retained_pii(broker.port());
    assert!(
        retained.len() >= 3,
        "{} retained pii messages",
        retained.len()
    );
    for (topic, payload) in &retained {
        let text = String::from_utf8_lossy(payload);
        assert!(text.contains("erased_at"), "{topic}: not a tombstone");
        for who in [&ALICE, &BOB, &CAROL] {
            for secret in who.secrets() {
                assert!(!text.contains(secret), "{topic} still holds personal data");
            }
        }
    }

    // No log ever showed personal data.
    let logs = format!("{}\n{}", store.log(), hq.log());
    assert!(
        logs.contains("customer data erased"),
        "the logs do record erasures"
    );
    for who in [&ALICE, &BOB, &CAROL] {
        for secret in who.secrets() {
            assert!(!logs.contains(secret), "a log shows personal data");
        }
    }

    // The raw database files (with their WAL) no longer hold an erased e-mail.
    for who in [&ALICE, &BOB, &CAROL] {
        assert!(
            !contains(&raw_db(&store_db), who.email),
            "store file holds {}",
            who.email
        );
        assert!(
            !contains(&raw_db(&hq_db), who.email),
            "HQ file holds {}",
            who.email
        );
    }
    store.stop();
    for who in [&ALICE, &BOB, &CAROL] {
        assert!(
            !contains(&raw_db(&store_db), who.email),
            "after stop: {}",
            who.email
        );
    }
}

fn mtls(port: u16, cert: &common::pki::ClientCert) -> BrokerAccess {
    BrokerAccess::Mtls {
        port,
        ca: cert.ca_cert.clone(),
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    }
}

/// With mutual TLS and the project's ACL: customer data flows both ways and erasure is
/// confirmed, while a store can neither write about another store's orders nor publish
/// under HQ's `pii` topics.
#[test]
fn customer_data_and_erasure_pass_the_broker_acl() {
    use storenode::sync::transport::{MqttTransport, PublishError, QoS, TransportConfig};
    use storenode::tls::{TlsFiles, client_config};

    let pki = common::pki::Pki::new("privacy-acl");
    let broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    let hq = HqNode::start(&mtls(broker.port(), &pki.client("hq")), "");
    let store = StoreNode::start("s1", "lane1", &mtls(broker.port(), &pki.client("s1")));
    store.receive("r1", "MILK", 5);
    wait_for("HQ knows store 1", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(5)).then_some(())
    });
    grant_milk(&hq, &store, 1);
    let web1 = json!({ "order_id": "web-1", "store": "s1", "node": "lane1", "pickup_code": "4711",
                       "lines": [{ "sku": "MILK", "quantity": 1 }] });
    assert_eq!(hq.post_json("/v1/orders", web1).0, 201);
    assert_eq!(hq_put_customer(&hq, "web-1", &ALICE).0, 200);
    store_has_customer(&store, "web-1", &ALICE);
    let shop1 = json!({ "order_id": "shop-1", "pickup_code": "1234",
                        "lines": [{ "sku": "MILK", "quantity": 1 }] });
    assert_eq!(store.post_json("/v1/orders", "o-shop-1", shop1).0, 201);
    assert_eq!(
        store_put_customer(&store, "shop-1", "c-shop-1", &BOB).0,
        201
    );
    wait_for("HQ has the store's customer", CONVERGE, || {
        (hq.get_json("/v1/orders/shop-1/customer?store=s1").0 == 200).then_some(())
    });
    // HQ behind HTTPS (the test CA's server certificate): the token never travels in
    // clear. Plain http:// to a remote address, https:// without the chain's CA, or with
    // another CA: refused before anything is sent (exit 1).
    let https = common::front::Front::start(&hq.base, Some((pki.server_cert(), pki.server_key())));
    let other_ca = common::pki::Pki::new("privacy-other-ca");
    let ca = |p: &common::pki::Pki| p.ca_cert().to_str().unwrap_or_default().to_owned();
    for (url, extra, why) in [
        ("http://192.0.2.1:8443".to_owned(), Vec::new(), "in clear"),
        (https.base.clone(), Vec::new(), "needs the chain's CA"),
        (
            https.base.clone(),
            vec!["--ca-file".to_owned(), ca(&other_ca)],
            "certificate",
        ),
    ] {
        let mut args: Vec<&str> = extra.iter().map(String::as_str).collect();
        args.extend(["--order", "web-1"]);
        let (code, out, err) = cli_erase_at(&hq, &url, &args);
        assert_eq!(code, 1, "{url}: {out}{err}");
        assert!(err.contains(why), "{url}: {err}");
    }
    assert_eq!(
        hq.get_json("/v1/orders/web-1/customer").0,
        200,
        "not erased yet"
    );
    let (code, out, err) = cli_erase_at(
        &hq,
        &https.base,
        &["--ca-file", &ca(&pki), "--order", "web-1"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("order web-1  store s1"), "{out}");
    store_erased(&store, "web-1");
    hq_confirmed(&hq, "web-1");
    assert_eq!(
        store.metric("storenode_sync_denied_total"),
        Some(0),
        "{}",
        broker.log()
    );

    // Store s2's certificate: writing about s1's orders, or as HQ, is denied.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cert = pki.client("s2");
        let mut cfg = TransportConfig::new("s2.lane1", "127.0.0.1", broker.port());
        cfg.tls = Some(
            client_config(&TlsFiles {
                ca_cert: cert.ca_cert.clone(),
                client_cert_chain: cert.cert.clone(),
                client_key: cert.key.clone(),
            })
            .unwrap(),
        );
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (handle, _incoming, task) = MqttTransport::start(cfg, shutdown.clone()).unwrap();
        wait_for("s2 connected", CONVERGE, || {
            handle.is_connected().then_some(())
        });
        let tomb = br#"{"erased_at":"2026-01-01T00:00:00Z"}"#.to_vec();
        for (topic, allowed) in [
            (format!("storenode/v1/{TENANT}/s2/pii/s2/shop-9"), true),
            (format!("storenode/v1/{TENANT}/s2/pii/s1/shop-1"), false),
            (format!("storenode/v1/{TENANT}/hq/pii/s1/shop-1"), false),
        ] {
            let result = tokio::time::timeout(
                Duration::from_secs(10),
                handle.publish(topic.clone(), tomb.clone(), QoS::AtLeastOnce, true),
            )
            .await
            .expect("bounded");
            if allowed {
                assert!(result.is_ok(), "{topic}: {result:?}");
            } else {
                assert_eq!(result, Err(PublishError::Denied), "{topic}");
            }
        }
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    });
    // s1's customer at HQ was not touched by s2's attempts.
    assert_eq!(hq.get_json("/v1/orders/shop-1/customer?store=s1").0, 200);
}
