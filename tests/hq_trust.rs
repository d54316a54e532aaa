//! HQ trusts nothing a store publishes, with the real binaries and a real Mosquitto: a test
//! client publishes what a broken or hostile store could on the store's own topics (garbage
//! changes, a garbage retained status, schema-invalid EPCIS events, a batch claiming a
//! range it does not carry), beside a real store that keeps syncing. HQ refuses and counts
//! it, stores none of it, keeps its acknowledgements honest, keeps showing the syncing store
//! online, and warns a few times, not once per message. Every wait is bounded.

mod common;
mod sync_util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use serde_json::{Value, json};
use storenode::epcis::batch::{Ack, batches};
use storenode::sync::transport::{Incoming, MqttHandle, MqttTransport, QoS, TransportConfig};
use sync_util::{BrokerAccess, HqNode, StoreNode, TENANT, wait_for};
use tokio_util::sync::CancellationToken;

const CONVERGE: Duration = Duration::from_secs(60);

/// Messages received: (topic, payload), oldest first.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A plain MQTT client publishing whatever a test gives it (QoS 1, each acknowledged by the
/// broker before the next), and keeping what it receives on its subscriptions.
struct Publisher {
    runtime: tokio::runtime::Runtime,
    handle: MqttHandle,
    received: Received,
    shutdown: CancellationToken,
}

impl Publisher {
    fn start(port: u16, client_id: &str) -> Publisher {
        Publisher::subscribed(port, client_id, Vec::new())
    }

    fn subscribed(port: u16, client_id: &str, filters: Vec<String>) -> Publisher {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let shutdown = CancellationToken::new();
        let mut cfg = TransportConfig::new(client_id, "127.0.0.1", port);
        cfg.subscriptions = filters.into_iter().map(|f| (f, QoS::AtLeastOnce)).collect();
        let (handle, mut incoming, _task) = {
            let _entered = runtime.enter();
            MqttTransport::start(cfg, shutdown.clone()).expect("start transport")
        };
        let received: Received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        runtime.spawn(async move {
            while let Some(event) = incoming.recv().await {
                if let Incoming::Message { topic, payload, .. } = event {
                    sink.lock().expect("sink").push((topic, payload.to_vec()));
                }
            }
        });
        wait_for("publisher connected", CONVERGE, || {
            handle.is_connected().then_some(())
        });
        Publisher {
            runtime,
            handle,
            received,
            shutdown,
        }
    }

    /// The last payload received on `topic`.
    fn last_on(&self, topic: &str) -> Option<Vec<u8>> {
        self.received
            .lock()
            .expect("received")
            .iter()
            .rev()
            .find(|(t, _)| t == topic)
            .map(|(_, p)| p.clone())
    }

    fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.runtime
            .block_on(
                self.handle
                    .publish(topic, payload.to_vec(), QoS::AtLeastOnce, retain),
            )
            .expect("broker acknowledged");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn plain(broker: &Mosquitto) -> BrokerAccess {
    BrokerAccess::Plain {
        port: broker.port(),
    }
}

/// HQ's warning lines about refused store messages.
fn rejection_lines(hq: &HqNode) -> Vec<String> {
    hq.log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("HQ rejected"))
        .map(str::to_owned)
        .collect()
}

/// A store whose MILK stock HQ has seen at `quantity`.
fn synced_store(hq: &HqNode, broker: &BrokerAccess, quantity: i64) -> StoreNode {
    let store = StoreNode::start("s1", "lane1", broker);
    store.receive("r0", "MILK", quantity);
    wait_for("HQ has the store's stock", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(quantity)).then_some(())
    });
    store
}

// Failed before the fix: 300 warning lines, one per message.
#[test]
fn three_hundred_bad_messages_cost_one_warning_line_not_one_each() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = plain(&broker);
    let hq = HqNode::start(&access, "");
    let store = synced_store(&hq, &access, 5);
    let bad = Publisher::start(broker.port(), "s1.intruder");
    let topic = format!("storenode/v1/{TENANT}/s1/changes/stock/s1.lane1");
    for i in 0..300 {
        bad.publish(&topic, format!("garbage {i}").as_bytes(), false);
    }
    // The store's next change is handled after the 300 (one broker, one HQ subscription).
    store.receive("r1", "MILK", 1);
    wait_for(
        "HQ applies the store's change after the flood",
        CONVERGE,
        || (hq.on_hand("s1", "MILK") == Some(6)).then_some(()),
    );
    let lines = rejection_lines(&hq);
    assert!(!lines.is_empty(), "the first is logged:\n{}", hq.log());
    assert!(
        lines.len() <= 2,
        "{} lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(lines[0].contains("payload"), "{}", lines[0]);
}

/// The `online` HQ shows for store s1.
fn shown_online(hq: &HqNode) -> Option<bool> {
    let (status, body) = hq.stock("s1", "MILK");
    (status == 200).then(|| body["online"].as_bool()).flatten()
}

// Failed before the fix: from the garbage on, HQ showed the store offline (the lane ignores
// a status it cannot read, so nothing put it right while it kept syncing).
#[test]
fn a_garbage_retained_status_does_not_show_a_syncing_store_offline() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = plain(&broker);
    let hq = HqNode::start(&access, "");
    let store = synced_store(&hq, &access, 5);
    wait_for("HQ shows the store online", CONVERGE, || {
        (shown_online(&hq) == Some(true)).then_some(())
    });
    let bad = Publisher::start(broker.port(), "s1.intruder");
    let status = format!("storenode/v1/{TENANT}/s1/status/s1.lane1");
    bad.publish(&status, b"\x00\x01 not a status", true);
    store.receive("r1", "MILK", 1);
    wait_for("HQ applies the store's next change", CONVERGE, || {
        (hq.on_hand("s1", "MILK") == Some(6)).then_some(())
    });
    assert_eq!(shown_online(&hq), Some(true));
    let lines = rejection_lines(&hq);
    assert!(lines.iter().any(|l| l.contains("status")), "{lines:?}");

    // A restarted HQ gets the garbage as the retained status first: still online.
    let hq = HqNode::start_in(hq.stop(), &access, "");
    store.receive("r2", "MILK", 1);
    wait_for(
        "HQ applies the store's change after its restart",
        CONVERGE,
        || (hq.on_hand("s1", "MILK") == Some(7)).then_some(()),
    );
    assert_eq!(shown_online(&hq), Some(true));
}

/// An EPCIS 2.0 ObjectEvent like a store's.
fn epcis_event(n: i64) -> Value {
    json!({ "type": "ObjectEvent",
            "eventID": format!("urn:uuid:00000000-0000-5000-8000-{n:012}"),
            "eventTime": "2026-01-01T00:00:00.000Z", "eventTimeZoneOffset": "+00:00",
            "epcList": [format!("urn:epc:id:sgtin:4012345.000010.{n}")],
            "action": "OBSERVE", "bizStep": "receiving" })
}

/// The batch a store's own splitter makes of `events` (sequence, event) after `after`.
fn epcis_batch(after: i64, events: Vec<(i64, Value)>) -> Vec<u8> {
    let rows = events.into_iter().map(|(seq, e)| (seq, Some(e)));
    let mut out: Vec<_> = batches(after, rows, 200_000).collect();
    assert_eq!(out.len(), 1);
    out.remove(0).bytes
}

fn epcis_topic(writer: &str) -> String {
    format!("storenode/v1/{TENANT}/s1/epcis/{writer}")
}

fn ack_topic(writer: &str) -> String {
    format!("storenode/v1/{TENANT}/hq/epcis-ack/s1/{writer}")
}

/// HQ's acknowledgement mark of `writer`, as the spy last received it.
fn acked(spy: &Publisher, writer: &str) -> Option<i64> {
    spy.last_on(&ack_topic(writer))
        .and_then(|p| Ack::decode(&p).ok())
        .map(|a| a.seq)
}

fn stored_event_ids(hq: &HqNode) -> Vec<String> {
    let (status, doc) = hq.get_json("/v1/epcis/events?store=s1");
    assert_eq!(status, 200, "{doc}");
    doc["epcisBody"]["eventList"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["eventID"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// Failed before the fix: HQ stored the broken event, and the empty batch moved lane 8's
// mark from 2 to 6 (events 3 and 4 would never have been sent again).
#[test]
fn hq_stores_no_event_that_is_not_epcis_2_and_no_batch_claiming_what_it_does_not_carry() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let hq = HqNode::start(&plain(&broker), "");
    let spy = Publisher::subscribed(
        broker.port(),
        "s1.spy",
        vec![format!("storenode/v1/{TENANT}/hq/epcis-ack/s1/#")],
    );
    let bad = Publisher::start(broker.port(), "s1.intruder");

    // Lane 8 has 1..=2 acknowledged; 5..=6 arrive before 3..=4 (a lost batch).
    let lane8 = epcis_topic("s1.lane8");
    bad.publish(
        &lane8,
        &epcis_batch(0, vec![(1, epcis_event(1)), (2, epcis_event(2))]),
        false,
    );
    wait_for("HQ acknowledges lane 8 up to 2", CONVERGE, || {
        (acked(&spy, "s1.lane8") == Some(2)).then_some(())
    });
    bad.publish(
        &lane8,
        &epcis_batch(4, vec![(5, epcis_event(5)), (6, epcis_event(6))]),
        false,
    );
    // A batch claiming 3..=6 that carries nothing.
    let full = epcis_batch(2, (3..=6).map(|n| (n, epcis_event(n))).collect());
    let mut claim: Value = serde_json::from_slice(&full).expect("batch json");
    claim["events"] = json!([]);
    if claim.get("seqs").is_some() {
        claim["seqs"] = json!([]);
    }
    bad.publish(&lane8, claim.to_string().as_bytes(), false);
    // Lane 7 publishes an event that is not EPCIS 2.0 (no time zone offset, a made-up action).
    let mut broken = epcis_event(70);
    broken["action"] = json!("STEAL");
    broken
        .as_object_mut()
        .expect("object")
        .remove("eventTimeZoneOffset");
    bad.publish(
        &epcis_topic("s1.lane7"),
        &epcis_batch(0, vec![(1, broken)]),
        false,
    );
    // Lane 6's good batch is handled after all of the above.
    bad.publish(
        &epcis_topic("s1.lane6"),
        &epcis_batch(0, vec![(1, epcis_event(60))]),
        false,
    );
    wait_for("HQ acknowledges lane 6", CONVERGE, || {
        (acked(&spy, "s1.lane6") == Some(1)).then_some(())
    });

    assert_eq!(
        acked(&spy, "s1.lane8"),
        Some(2),
        "lane 8's mark stays before the gap"
    );
    assert_eq!(
        acked(&spy, "s1.lane7"),
        None,
        "nothing of lane 7 acknowledged"
    );
    let stored = stored_event_ids(&hq);
    let id = |n: i64| {
        epcis_event(n)["eventID"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        !stored.contains(&id(70)),
        "the broken event is not stored: {stored:?}"
    );
    for n in [1, 2, 5, 6, 60] {
        assert!(stored.contains(&id(n)), "{n} stored: {stored:?}");
    }
    let lines = rejection_lines(&hq);
    assert!(lines.iter().any(|l| l.contains("epcis_range")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("epcis_event")), "{lines:?}");

    // Lane 8 sends 3..=4 again: the mark moves over the gap now (5..=6 follow from there).
    bad.publish(
        &lane8,
        &epcis_batch(2, vec![(3, epcis_event(3)), (4, epcis_event(4))]),
        false,
    );
    wait_for("HQ acknowledges lane 8 up to 4", CONVERGE, || {
        (acked(&spy, "s1.lane8") == Some(4)).then_some(())
    });
}

fn order_status(hq: &HqNode, id: &str) -> Option<String> {
    let (status, body) = hq.get_json(&format!("/v1/orders/{id}"));
    (status == 200)
        .then(|| body["status"].as_str().map(str::to_owned))
        .flatten()
}

fn online_escrow(hq: &HqNode) -> Option<i64> {
    let (status, body) = hq.stock("s1", "MILK");
    (status == 200)
        .then(|| body["online_escrow"].as_i64())
        .flatten()
}

// Failed before the fix (the reported case): after the cut, web-1001 was placed again (201),
// HQ listed two web-1001, one unit of the escrow was consumed and the store never saw it.
#[test]
fn an_order_id_archived_at_an_epoch_cut_is_refused_and_consumes_no_escrow() {
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = plain(&broker);
    let hq = HqNode::start(&access, "");
    let store = synced_store(&hq, &access, 10);
    store.grant_online("grant-1", "MILK", 3);
    wait_for("HQ sees the grant", CONVERGE, || {
        (online_escrow(&hq) == Some(3)).then_some(())
    });
    let order = json!({ "order_id": "web-1001", "store": "s1", "pickup_code": "4711",
                        "lines": [{ "sku": "MILK", "quantity": 1 }] });
    wait_for("HQ places web-1001", CONVERGE, || {
        let (status, body) = hq.post_json("/v1/orders", order.clone());
        assert!(status == 201 || status == 422, "{status} {body}");
        (status == 201).then_some(())
    });
    wait_for("the store reserves web-1001", CONVERGE, || {
        let (status, body) = store.get_json("/v1/orders/web-1001");
        (status == 200 && body["status"] == "reserved").then_some(())
    });
    for (step, body) in [
        ("pick", json!({ "sku": "MILK", "quantity": 1 })),
        ("ready", json!({})),
        ("collect", json!({ "pickup_code": "4711" })),
    ] {
        let (status, reply) = store.post_json(
            &format!("/v1/orders/web-1001/{step}"),
            &format!("{step}-web-1001"),
            body,
        );
        assert!((200..300).contains(&status), "{step}: {status} {reply}");
    }
    wait_for("HQ sees web-1001 collected", CONVERGE, || {
        (order_status(&hq, "web-1001").as_deref() == Some("collected")).then_some(())
    });
    let (status, body) = hq.open_epoch("s1");
    assert_eq!(status, 200, "{body}");
    let escrow = online_escrow(&hq);
    assert_eq!(escrow, Some(2));

    let (status, body) = hq.post_json("/v1/orders", order);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "conflict", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|e| e.contains("archived")),
        "{body}"
    );
    assert_eq!(online_escrow(&hq), escrow, "nothing consumed");
    let (_, listed) = hq.get_json("/v1/orders?store=s1");
    let named: Vec<&Value> = listed["orders"]
        .as_array()
        .map(|orders| {
            orders
                .iter()
                .filter(|o| o["order_id"] == "web-1001")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(named.len(), 1, "{listed}");
    assert_eq!(order_status(&hq, "web-1001").as_deref(), Some("collected"));
}
