//! Finding a loyalty member by phone or e-mail at the till, end to end with the real
//! binaries and a real Mosquitto with mutual TLS and the project's ACL: a member registered
//! at HQ with a phone is found by the till through its store node (card and initials only),
//! the same as HQ's own `GET /v1/loyalty/members`; an erased member is not found any more;
//! with the store cut off from the broker the till is answered 503 at once; no log and no
//! file of the store holds the phone number or e-mail. The ACL lets a store send only its own
//! lookups and read only the answers to them. Every wait is bounded.

mod common;
mod sync_util;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::node::TOKEN_POS1;
use common::pki::{ClientCert, Pki};
use serde_json::{Value, json};
use storenode::sync::transport::{MqttTransport, PublishError, QoS, TransportConfig};
use storenode::tls::{TlsFiles, client_config};
use sync_util::{BrokerAccess, HqNode, Proxy, StoreNode, TENANT, data_path, wait_for};
use tokio_util::sync::CancellationToken;

const CONVERGE: Duration = Duration::from_secs(60);
const CARD: &str = "CLUB-1001";
const NAME: &str = "Ada Zyxwvut";
const PHONE: &str = "+49 30 8765 4321";
const PHONE_DIGITS: &str = "493087654321";
const EMAIL: &str = "ada.zyxwvut@example.com";

fn mtls(port: u16, cert: &ClientCert) -> BrokerAccess {
    BrokerAccess::Mtls {
        port,
        ca: cert.ca_cert.clone(),
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    }
}

/// `POST /v1/loyalty/find` at the till: `(status, body)`.
fn till_find(store: &StoreNode, body: &Value) -> (u16, Value) {
    let reply = reqwest::blocking::Client::new()
        .post(format!("{}/v1/loyalty/find", store.base))
        .bearer_auth(TOKEN_POS1)
        .timeout(Duration::from_secs(20))
        .json(body)
        .send()
        .expect("POST /v1/loyalty/find");
    let status = reply.status().as_u16();
    (status, reply.json().unwrap_or(Value::Null))
}

fn raw_files(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).expect("data dir").flatten() {
        if entry.path().is_file() {
            bytes.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_till_finds_a_card_by_phone_through_hq_and_never_keeps_the_phone() {
    let pki = Pki::new("loyalty-find");
    let broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    let hq = HqNode::start(&mtls(broker.port(), &pki.client("hq")), "");
    let proxy = Proxy::start(broker.port());
    let store = StoreNode::start("s1", "lane1", &mtls(proxy.port, &pki.client("s1")));

    let (status, body) = hq.post_json(
        "/v1/loyalty/members",
        json!({ "card": CARD, "customer": { "name": NAME, "phone": PHONE, "email": EMAIL } }),
    );
    assert_eq!(status, 201, "{body}");

    // The till types the number as the customer says it; the node asks HQ over MQTT.
    let by_phone = json!({ "phone": "+49 (30) 8765-4321" });
    let found = wait_for("the till finds the member by phone", CONVERGE, || {
        let (status, body) = till_find(&store, &by_phone);
        (status == 200).then_some(body)
    });
    let expected = json!({ "members": [{ "card": CARD, "name": "A. Z." }], "more": false });
    assert_eq!(found, expected);
    // By e-mail in another case; HQ's own lookup gives the same answer.
    let (status, body) = till_find(&store, &json!({ "email": EMAIL.to_uppercase() }));
    assert_eq!((status, &body), (200, &expected));
    let (status, body) = hq.get_json("/v1/loyalty/members?phone=%2B49%2030%2087654321");
    assert_eq!((status, &body), (200, &expected));
    // Nobody with that number: an empty answer, not an error.
    let (status, body) = till_find(&store, &json!({ "phone": "+49 30 1111 1111" }));
    assert_eq!((status, &body["members"]), (200, &json!([])), "{body}");

    // What is not a phone number or an e-mail is refused before anything is asked.
    for bad in [
        json!({ "phone": "no digits" }),
        json!({ "email": "not-an-email" }),
        json!({}),
        json!({ "phone": PHONE, "email": EMAIL }),
    ] {
        let (status, body) = till_find(&store, &bad);
        assert_eq!(status, 422, "{bad}: {body}");
    }

    // Erased at HQ (by phone, as a customer asks): the lookup finds nobody any more.
    let (status, body) = hq.post_json("/v1/privacy/erase", json!({ "phone": PHONE }));
    assert_eq!(status, 200, "{body}");
    let (status, body) = till_find(&store, &json!({ "phone": PHONE }));
    assert_eq!((status, &body["members"]), (200, &json!([])), "{body}");
    let (status, body) = hq.get_json(&format!("/v1/loyalty/members?email={EMAIL}"));
    assert_eq!((status, &body["members"]), (200, &json!([])), "{body}");

    // Cut off from the broker: the till is told at once to scan the card.
    proxy.cut();
    let (status, body) = wait_for("the node sees it is offline", CONVERGE, || {
        let started = Instant::now();
        let (status, body) = till_find(&store, &json!({ "phone": PHONE }));
        (status == 503 && started.elapsed() < Duration::from_secs(10)).then_some((status, body))
    });
    assert_eq!(status, 503);
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("HQ unreachable: scan the member's card"),
        "{body}"
    );

    // Neither log, nor any file of the store, holds the phone number or the e-mail.
    let logs = format!("{}\n{}", store.log(), hq.log());
    assert!(logs.contains("member lookup"), "the lookups are logged");
    for secret in [
        PHONE,
        PHONE_DIGITS,
        "87654321",
        EMAIL,
        "zyxwvut",
        "Zyxwvut",
        "11111111",
    ] {
        assert!(!logs.contains(secret), "{secret} in a log");
    }
    let files = raw_files(data_path(store.dir.path()).parent().expect("data dir"));
    for secret in [PHONE_DIGITS, "87654321", EMAIL, "Zyxwvut", "zyxwvut"] {
        assert!(!contains(&files, secret), "{secret} in the store's files");
    }
}

fn transport(port: u16, client_id: &str, cert: &ClientCert) -> TransportConfig {
    let mut cfg = TransportConfig::new(client_id, "127.0.0.1", port);
    cfg.tls = Some(
        client_config(&TlsFiles {
            ca_cert: cert.ca_cert.clone(),
            client_cert_chain: cert.cert.clone(),
            client_key: cert.key.clone(),
        })
        .expect("client TLS config"),
    );
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_may_send_only_its_own_lookups_and_never_forge_an_answer() {
    let pki = Pki::new("loyalty-find-acl");
    let broker = Mosquitto::start(MosquittoOptions::mtls(&pki, TENANT));
    let shutdown = CancellationToken::new();
    let (handle, _incoming, task) = MqttTransport::start(
        transport(broker.port(), "s2.lane1", &pki.client("s2")),
        shutdown.clone(),
    )
    .expect("start transport");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !handle.is_connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not connected: {}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let publish = |topic: String| {
        let handle = handle.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(10),
                handle.publish(topic, b"{}".to_vec(), QoS::AtLeastOnce, false),
            )
            .await
            .expect("bounded")
        }
    };
    let own = publish(format!("storenode/v1/{TENANT}/s2/find/s2.lane1")).await;
    assert!(own.is_ok(), "own lookups: {own:?}");
    for denied in [
        // Another store's lookups, an answer to itself, an answer to another store.
        format!("storenode/v1/{TENANT}/s1/find/s1.lane1"),
        format!("storenode/v1/{TENANT}/s2/found/s2.lane1"),
        format!("storenode/v1/{TENANT}/s1/found/s1.lane1"),
    ] {
        assert_eq!(
            publish(denied.clone()).await,
            Err(PublishError::Denied),
            "{denied}"
        );
    }

    // Reading: a store subscribed to every store's answers gets only its own (Mosquitto checks
    // each message against the ACL). HQ answers s1 first, then s2, each round: one publisher,
    // delivered in that order, so s1's would have arrived before s2's.
    let (hq, _hq_incoming, hq_task) = MqttTransport::start(
        transport(broker.port(), "hq", &pki.client("hq")),
        shutdown.clone(),
    )
    .expect("start HQ's transport");
    while !(hq.is_connected() && handle.is_connected()) {
        assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut reader = transport(broker.port(), "s2.reader", &pki.client("s2"));
    reader.subscriptions = vec![(format!("storenode/v1/{TENANT}/+/found/#"), QoS::AtLeastOnce)];
    let (reader, mut incoming, reader_task) =
        MqttTransport::start(reader, shutdown.clone()).expect("start the reader");
    // The reader's SUBSCRIBE may still be on its way: HQ answers again until one arrives.
    let own = format!("storenode/v1/{TENANT}/s2/found/s2.lane1");
    let other = format!("storenode/v1/{TENANT}/s1/found/s1.lane1");
    let mut received = Vec::new();
    for _ in 0..20 {
        for topic in [&other, &own] {
            let sent = tokio::time::timeout(
                Duration::from_secs(10),
                hq.publish(topic.clone(), b"{}".to_vec(), QoS::AtLeastOnce, false),
            )
            .await
            .expect("bounded");
            assert!(sent.is_ok(), "HQ answers any store: {sent:?}");
        }
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(500), incoming.recv()).await
        {
            if let storenode::sync::transport::Incoming::Message { topic, .. } = event {
                received.push(topic);
            }
        }
        if received.contains(&own) {
            break;
        }
    }
    assert!(received.contains(&own), "the store reads its own answers");
    assert!(
        !received.contains(&other),
        "never another store's: {received:?}"
    );
    assert!(reader.is_connected());

    shutdown.cancel();
    for task in [task, hq_task, reader_task] {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
}

/// Lines of `log` saying that this HQ instance answered a store's lookup.
fn answered(log: &str) -> usize {
    log.matches("member lookup from a store answered").count()
}

#[test]
fn any_hq_instance_answers_through_the_shared_subscription() {
    let pg = storenode::hq::db::scratch::ScratchPostgres::start()
        .expect("a scratch PostgreSQL (apt-get install postgresql)");
    let url = pg.create_database("hq").expect("HQ's database");
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };
    let extra = format!("database = \"{url}\"\n");
    let a = HqNode::start(&access, &extra);
    let b = HqNode::start(&access, &extra);
    let store = StoreNode::start("s1", "lane1", &access);
    let (status, body) = a.post_json(
        "/v1/loyalty/members",
        json!({ "card": CARD, "customer": { "name": NAME, "phone": PHONE, "email": EMAIL } }),
    );
    assert_eq!(status, 201, "{body}");

    let lookup = json!({ "email": EMAIL });
    wait_for("the till finds the member", CONVERGE, || {
        let (status, body) = till_find(&store, &lookup);
        (status == 200 && body["members"][0]["card"] == CARD).then_some(())
    });
    let before = answered(&a.log()) + answered(&b.log());
    const LOOKUPS: usize = 10;
    for _ in 0..LOOKUPS {
        let (status, body) = till_find(&store, &lookup);
        assert_eq!(
            (status, &body["members"][0]["card"]),
            (200, &json!(CARD)),
            "{body}"
        );
    }
    // Each lookup answered once, by one instance; the broker shares them out round robin.
    let (by_a, by_b) = (answered(&a.log()), answered(&b.log()));
    assert_eq!(by_a + by_b, before + LOOKUPS, "A {by_a}, B {by_b}");
    assert!(
        by_a > 0 && by_b > 0,
        "both instances answer: A {by_a}, B {by_b}"
    );

    // One instance lost: the other answers every lookup.
    let _dir = a.kill();
    wait_for("the remaining instance answers", CONVERGE, || {
        let (status, _) = till_find(&store, &lookup);
        (status == 200).then_some(())
    });
    for _ in 0..3 {
        let (status, body) = till_find(&store, &lookup);
        assert_eq!(status, 200, "{body}");
    }
}
