//! HQ trusts nothing a store publishes, with the real binaries and a real Mosquitto: a test
//! client publishes what a broken or hostile store could on the store's own topics (garbage
//! changes, a garbage retained status, schema-invalid EPCIS events, a batch claiming a
//! range it does not carry), beside a real store that keeps syncing. HQ refuses and counts
//! it, stores none of it, keeps its acknowledgements honest, keeps showing the syncing store
//! online, and warns a few times, not once per message. Every wait is bounded.

mod common;
mod sync_util;

use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use storenode::sync::transport::{Incoming, MqttHandle, MqttTransport, QoS, TransportConfig};
use sync_util::{BrokerAccess, HqNode, StoreNode, TENANT, wait_for};
use tokio_util::sync::CancellationToken;

const CONVERGE: Duration = Duration::from_secs(60);

/// A plain MQTT client publishing whatever a test gives it (QoS 1, each acknowledged by the
/// broker before the next).
struct Publisher {
    runtime: tokio::runtime::Runtime,
    handle: MqttHandle,
    _incoming: tokio::sync::mpsc::Receiver<Incoming>,
    shutdown: CancellationToken,
}

impl Publisher {
    fn start(port: u16, client_id: &str) -> Publisher {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let shutdown = CancellationToken::new();
        let (handle, incoming, _task) = {
            let _entered = runtime.enter();
            MqttTransport::start(
                TransportConfig::new(client_id, "127.0.0.1", port),
                shutdown.clone(),
            )
            .expect("start transport")
        };
        wait_for("publisher connected", CONVERGE, || {
            handle.is_connected().then_some(())
        });
        Publisher {
            runtime,
            handle,
            _incoming: incoming,
            shutdown,
        }
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
