//! Network faults between a store lane and the broker, with real processes: Mosquitto, HQ
//! (`storenode hq`, connected directly) and store s1 with two lanes (`storenode run` with
//! `[sync]`): lane1 reaches the broker through a fault proxy (tests/common/faultproxy.rs),
//! lane2 directly.
//!
//! Faults: black hole, stall, slow link, MQTT connection cut in the middle of a PUBLISH,
//! broker SIGKILLed and restarted, lane1 offline through thousands of sales. After each
//! scenario every lane and HQ show the same stock, equal to the opening receipt minus every
//! acknowledged sale; each lane's SQLite holds exactly the sales it acknowledged; both
//! outboxes drain. Every wait is bounded; nothing asserts on timing.
//!
//! `OFFLINE_SALES=N` changes the number of offline sales (default 5000, two lines each).

mod common;
mod sync_util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::faultproxy::FaultProxy;
use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::node::TOKEN_POS1;
use serde_json::json;
use sync_util::{BrokerAccess, HqNode, StoreNode, wait_for};

const STORE: &str = "s1";
const OPENING: i64 = 10_000_000;
const CONVERGE: Duration = Duration::from_secs(120);
/// Keeps lane1's reconnect backoff short: it is cut many times in a row.
const FAST_RECONNECT: &str = "reconnect_max_ms = 1000";
/// The API limits each terminal (200 requests/s by default); the tills here run flat out.
const MAX_RATE_LIMITED: usize = 120;

struct Cluster {
    broker: Mosquitto,
    proxy: FaultProxy,
    hq: HqNode,
    /// Through the fault proxy.
    lane1: StoreNode,
    /// Directly to the broker.
    lane2: StoreNode,
}

impl Cluster {
    fn start() -> Cluster {
        let broker = Mosquitto::start(MosquittoOptions::plain());
        let direct = BrokerAccess::Plain {
            port: broker.port(),
        };
        let proxy = FaultProxy::start(broker.port());
        let via_proxy = BrokerAccess::Plain { port: proxy.port() };
        let hq = HqNode::start(&direct, "");
        let lane1 = StoreNode::start_with(STORE, "lane1", &via_proxy, FAST_RECONNECT);
        let lane2 = StoreNode::start_with(STORE, "lane2", &direct, FAST_RECONNECT);
        lane1.receive("opening-milk", "MILK", OPENING);
        lane1.receive("opening-shirt", "SHIRT", OPENING);
        let cluster = Cluster {
            broker,
            proxy,
            hq,
            lane1,
            lane2,
        };
        cluster.assert_converged(&Acked::default());
        cluster
    }

    /// Every lane and HQ show the expected stock, each lane's database holds exactly its
    /// acknowledged sales, and both outboxes are empty.
    fn assert_converged(&self, acked: &Acked) {
        let sales = acked.total() as i64;
        let expected = [("MILK", OPENING - sales), ("SHIRT", OPENING - 2 * sales)];
        for (sku, want) in expected {
            for (name, lane) in [("lane1", &self.lane1), ("lane2", &self.lane2)] {
                wait_for(&format!("{name} shows {sku} = {want}"), CONVERGE, || {
                    (lane.on_hand(sku) == want).then_some(())
                });
            }
            wait_for(
                &format!("HQ shows {STORE}/{sku} = {want}"),
                CONVERGE,
                || (self.hq.on_hand(STORE, sku) == Some(want)).then_some(()),
            );
        }
        for (name, lane, count) in [
            ("lane1", &self.lane1, acked.lane1.load(Ordering::Relaxed)),
            ("lane2", &self.lane2, acked.lane2.load(Ordering::Relaxed)),
        ] {
            wait_for(&format!("{name} outbox drained"), CONVERGE, || {
                (lane.metric("storenode_sync_outbox_length") == Some(0)).then_some(())
            });
            assert_eq!(
                sales_in_db(lane),
                count,
                "{name}: every acknowledged sale exactly once in SQLite"
            );
        }
    }
}

/// Sales acknowledged (201) per lane.
#[derive(Default)]
struct Acked {
    lane1: AtomicUsize,
    lane2: AtomicUsize,
}

impl Acked {
    fn total(&self) -> usize {
        self.lane1.load(Ordering::Relaxed) + self.lane2.load(Ordering::Relaxed)
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// One sale of two lines (1 MILK, 2 SHIRT), paid exactly by card. Like a till, retries
/// with the same key when rate-limited (429); panics on anything else but 201.
fn sell(http: &reqwest::blocking::Client, lane: &StoreNode, key: &str) {
    let body = json!({
        "lines": [{ "sku": "MILK", "quantity": 1 }, { "sku": "SHIRT", "quantity": 2 }],
        "payments": [{ "method": "card", "amount_minor": 119 + 2 * 1299 }],
    });
    for _ in 0..MAX_RATE_LIMITED {
        let reply = http
            .post(format!("{}/v1/sales", lane.base))
            .bearer_auth(TOKEN_POS1)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .expect("POST /v1/sales");
        let status = reply.status().as_u16();
        if status == 429 {
            let wait = reply
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1);
            std::thread::sleep(Duration::from_secs(wait));
            continue;
        }
        assert_eq!(
            status,
            201,
            "sale {key}: {}",
            reply.text().unwrap_or_default()
        );
        return;
    }
    panic!("sale {key}: still rate-limited after {MAX_RATE_LIMITED} tries");
}

fn sell_many(lane: &StoreNode, counter: &AtomicUsize, prefix: &str, n: usize) {
    let http = http();
    for i in 0..n {
        sell(&http, lane, &format!("{prefix}-{i}"));
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn sales_in_db(lane: &StoreNode) -> usize {
    let db = rusqlite::Connection::open_with_flags(
        sync_util::data_path(lane.dir.path()),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the lane's database");
    let count: i64 = db
        .query_row("SELECT count(*) FROM sale", [], |r| r.get(0))
        .expect("count sales");
    usize::try_from(count).unwrap_or(usize::MAX)
}

#[test]
fn black_hole_stall_slow_link_and_mid_packet_cuts_lose_nothing() {
    let c = Cluster::start();
    let acked = Acked::default();

    // Black hole: lane1's link swallows everything for a while; both lanes keep selling.
    c.proxy.drop_traffic();
    sell_many(&c.lane1, &acked.lane1, "hole-l1", 20);
    sell_many(&c.lane2, &acked.lane2, "hole-l2", 10);
    wait_for("bytes swallowed", Duration::from_secs(30), || {
        (c.proxy.discarded() > 0).then_some(())
    });
    c.proxy.heal();
    c.assert_converged(&acked);

    // Stall: nothing moves for 3 s, then the held bytes go through unchanged.
    c.proxy.stall_for(Duration::from_secs(3));
    sell_many(&c.lane1, &acked.lane1, "stall-l1", 20);
    sell_many(&c.lane2, &acked.lane2, "stall-l2", 5);
    c.assert_converged(&acked);

    // Slow link: a few hundred bytes a second, MQTT packets split over many writes.
    c.proxy.slow(800);
    sell_many(&c.lane1, &acked.lane1, "slow-l1", 15);
    let before = c.proxy.forwarded();
    wait_for("slow bytes flowing", Duration::from_secs(60), || {
        (c.proxy.forwarded() > before + 2_000).then_some(())
    });
    c.proxy.heal();
    c.assert_converged(&acked);

    // Mid-packet cuts: the next PUBLISH is cut after K bytes, several K.
    for (round, k) in [1usize, 2, 5, 17, 60].into_iter().enumerate() {
        c.proxy.cut_mid_publish(k);
        // Sales make lane1 publish; keep selling until the cut has happened.
        let mut n = 0;
        wait_for(
            &format!("cut #{} after {k} bytes", round + 1),
            Duration::from_secs(60),
            || {
                sell_many(&c.lane1, &acked.lane1, &format!("cut{round}-{n}"), 1);
                n += 1;
                (c.proxy.cuts() > round as u64).then_some(())
            },
        );
    }
    sell_many(&c.lane2, &acked.lane2, "after-cuts-l2", 5);
    c.assert_converged(&acked);
    assert!(c.proxy.accepted() > 1, "lane1 reconnected after the cuts");
    println!(
        "faults: {} sales acknowledged, {} proxy connections, {} cuts, none lost or doubled",
        acked.total(),
        c.proxy.accepted(),
        c.proxy.cuts()
    );
}

#[test]
fn broker_sigkilled_and_restarted_under_load_loses_nothing() {
    let mut c = Cluster::start();
    let acked = Acked::default();
    std::thread::scope(|s| {
        let tills = [
            s.spawn(|| sell_many(&c.lane1, &acked.lane1, "kill-l1", 150)),
            s.spawn(|| sell_many(&c.lane2, &acked.lane2, "kill-l2", 150)),
        ];
        // Crash the broker while both lanes publish, twice.
        for after in [20, 150] {
            wait_for("sales before the crash", Duration::from_secs(120), || {
                (acked.total() >= after || tills.iter().all(|t| t.is_finished())).then_some(())
            });
            c.broker.kill();
            std::thread::sleep(Duration::from_millis(800));
            c.broker.restart();
        }
        for till in tills {
            till.join().expect("till thread");
        }
    });
    sell_many(&c.lane1, &acked.lane1, "after-l1", 5);
    c.assert_converged(&acked);
}

fn offline_sales() -> usize {
    std::env::var("OFFLINE_SALES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

#[test]
fn a_lane_offline_through_thousands_of_sales_converges() {
    let c = Cluster::start();
    let acked = Acked::default();
    // Offline: live connections reset, new ones swallowed (no CONNACK ever comes back).
    c.proxy.drop_traffic();
    c.proxy.reset_all();
    let total = offline_sales();
    let half = total / 2;
    std::thread::scope(|s| {
        // Two tills on the offline lane, one on the online lane.
        s.spawn(|| sell_many(&c.lane1, &acked.lane1, "off-a", half));
        s.spawn(|| sell_many(&c.lane1, &acked.lane1, "off-b", total - half));
        s.spawn(|| sell_many(&c.lane2, &acked.lane2, "on", 50));
    });
    assert_eq!(acked.lane1.load(Ordering::Relaxed), total);
    let sales = acked.total() as i64;
    assert_eq!(
        c.lane1.on_hand("MILK"),
        OPENING - total as i64,
        "the offline lane sells on from its own stock"
    );
    c.proxy.heal();
    c.proxy.reset_all();
    c.assert_converged(&acked);
    assert_eq!(c.hq.on_hand(STORE, "MILK"), Some(OPENING - sales));
    println!("{total} sales offline, {sales} in all, converged with none lost or doubled");
}

#[test]
fn the_framer_finds_packet_starts_across_chunks() {
    use common::faultproxy::{MqttFramer, PacketStart};
    let mut framer = MqttFramer::default();
    // PINGREQ (0xC0 0x00), then a PUBLISH of 200 bytes body (two-byte length 0xC8 0x01).
    let mut stream = vec![0xC0, 0x00, 0x30, 0xC8, 0x01];
    stream.extend(std::iter::repeat_n(7u8, 200));
    stream.extend([0xC0, 0x00]);
    let first = framer.feed(&stream[..4]);
    assert_eq!(
        first,
        vec![PacketStart {
            offset: 0,
            packet_type: 12,
            total_len: 2
        }]
    );
    // The PUBLISH header is split: not reported as a start in either chunk.
    let rest = framer.feed(&stream[4..]);
    assert_eq!(
        rest,
        vec![PacketStart {
            offset: stream.len() - 2 - 4,
            packet_type: 12,
            total_len: 2
        }]
    );
    let mut whole = MqttFramer::default();
    let starts = whole.feed(&stream);
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[1].packet_type, 3);
    assert_eq!(starts[1].total_len, 203);
}
