//! The simulated stores: N real automerge stock writers (`StockDoc`, one lane each) in this
//! process, committing 3-line sales at a chosen total rate and publishing each commit as the
//! store node does (one `Changes` message, QoS 1, on the store's changes topic) through a few
//! MQTT connections. HQ's acknowledgement is read as the store reads it: HQ's retained heads.
//! Every commit also adds 1 to the store's `BENCH-SEQ` line, so HQ's API figure for that SKU
//! says which commit HQ shows (the change-to-visible probe).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use storenode::crdt::doc::{DocId, DocKind, WriterId};
use storenode::crdt::stock::{Movement, StockDoc};
use storenode::sync::payload::SyncMessage;
use storenode::sync::service::kind_id;
use storenode::sync::topics::{Id, Scope, TopicSpace};
use storenode::sync::transport::{Incoming, MqttHandle, MqttTransport, QoS, TransportConfig};

use super::BenchResult;
use super::infra::TOKEN;

pub const TENANT: &str = "bench";
pub const SEQ_SKU: &str = "BENCH-SEQ";
const SKUS_PER_STORE: u64 = 1_000;
const PUBLISHERS: usize = 4;
const MAX_IN_FLIGHT: usize = 2_000;
/// Scheduler tick: commits due are made in bursts this far apart.
const TICK: Duration = Duration::from_millis(5);
/// Lag samples per second during a step.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

struct Unacked {
    seq: u64,
    hash: ChangeHash,
    payload: Arc<Vec<u8>>,
}

struct SimStore {
    name: String,
    topic: String,
    doc: StockDoc,
    committed: u64,
    acked: u64,
    unacked: VecDeque<Unacked>,
    rng: u64,
}

impl SimStore {
    fn new(index: usize) -> BenchResult<Self> {
        let name = format!("s{index:05}");
        let writer = WriterId::new(&format!("{name}.lane1"))?;
        let topic = TopicSpace::new(Id::new(TENANT)?)
            .changes(
                &Scope::store(Id::new(name.clone())?)?,
                &kind_id(DocKind::Stock)?,
                &Id::new(writer.as_str())?,
            )
            .to_string();
        Ok(Self {
            doc: StockDoc::genesis(&name, 0, writer)?,
            name,
            topic,
            committed: 0,
            acked: 0,
            unacked: VecDeque::new(),
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1),
        })
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: enough to spread the sale lines over the store's SKUs.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// One 3-line sale plus the commit counter, as one automerge change; its message.
    fn commit(&mut self) -> BenchResult<Arc<Vec<u8>>> {
        self.commit_change().map(|(payload, _)| payload)
    }

    /// [`Self::commit`], with the change's bytes.
    fn commit_change(&mut self) -> BenchResult<(Arc<Vec<u8>>, Vec<u8>)> {
        let mut lines: Vec<Movement> = (0..3)
            .map(|_| Movement {
                sku: format!("SKU-{:04}", self.next_random() % SKUS_PER_STORE),
                delta: -1,
            })
            .collect();
        lines.push(Movement {
            sku: SEQ_SKU.to_owned(),
            delta: 1,
        });
        let at_ms = storenode::clock::now_ms();
        let change = self
            .doc
            .apply_movements(&lines, at_ms)?
            .ok_or("a commit with the counter line always changes the document")?;
        let payload = Arc::new(
            SyncMessage::Changes {
                doc: DocId::new(&self.name, DocKind::Stock)?,
                epoch: 0,
                changes: vec![change.bytes.clone()],
            }
            .encode()?,
        );
        self.committed += 1;
        self.unacked.push_back(Unacked {
            seq: self.committed,
            hash: change.hash,
            payload: payload.clone(),
        });
        Ok((payload, change.bytes))
    }

    /// HQ's heads name one of our unacknowledged changes: everything up to it is HQ's.
    fn acknowledge(&mut self, heads: &[[u8; 32]]) {
        let newest = self
            .unacked
            .iter()
            .rev()
            .find(|u| heads.contains(&u.hash.0))
            .map(|u| u.seq);
        if let Some(seq) = newest {
            self.acked = self.acked.max(seq);
            while self.unacked.front().is_some_and(|u| u.seq <= self.acked) {
                self.unacked.pop_front();
            }
        }
    }
}

/// What one step at a fixed rate did.
pub struct Step {
    pub offered: f64,
    pub achieved: f64,
    /// Changes committed but not yet in HQ's heads, sampled through the step.
    pub lag: Vec<u64>,
    pub publish_errors: u64,
}

impl Step {
    pub fn lag_end(&self) -> u64 {
        self.lag.last().copied().unwrap_or(0)
    }

    pub fn lag_mid(&self) -> u64 {
        self.lag.get(self.lag.len() / 2).copied().unwrap_or(0)
    }
}

/// A commit to probe: HQ's API must show `seq` on the store's counter line.
pub struct Probe {
    pub store: String,
    pub seq: u64,
    pub at: Instant,
}

pub struct Sim {
    stores: Mutex<Vec<SimStore>>,
    publishers: Vec<MqttHandle>,
    in_flight: Arc<Semaphore>,
    publish_errors: Arc<AtomicU64>,
    pub resent: AtomicU64,
    shutdown: CancellationToken,
}

impl Sim {
    /// `count` stores, their publisher connections and HQ's heads listener on `broker`.
    pub async fn start(count: usize, broker: std::net::SocketAddr) -> BenchResult<Arc<Self>> {
        let shutdown = CancellationToken::new();
        let stores = (0..count)
            .map(SimStore::new)
            .collect::<BenchResult<Vec<_>>>()?;
        let mut publishers = Vec::new();
        for i in 0..PUBLISHERS {
            let mut cfg =
                TransportConfig::new(format!("bench-stores-{i}"), "127.0.0.1", broker.port());
            cfg.max_pending_publishes = MAX_IN_FLIGHT;
            cfg.publish_timeout = Duration::from_secs(120);
            let (handle, mut events, _task) = MqttTransport::start(cfg, shutdown.clone())?;
            wait_connected(&mut events).await?;
            tokio::spawn(async move { while events.recv().await.is_some() {} });
            publishers.push(handle);
        }
        let sim = Arc::new(Self {
            stores: Mutex::new(stores),
            publishers,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            publish_errors: Arc::new(AtomicU64::new(0)),
            resent: AtomicU64::new(0),
            shutdown: shutdown.clone(),
        });
        let mut cfg = TransportConfig::new("bench-heads", "127.0.0.1", broker.port());
        cfg.subscriptions = vec![(
            TopicSpace::new(Id::new(TENANT)?).heads_filter(Some(&Scope::Hq), None),
            QoS::AtLeastOnce,
        )];
        cfg.incoming_capacity = 8192;
        let (_handle, mut events, _task) = MqttTransport::start(cfg, shutdown)?;
        wait_connected(&mut events).await?;
        let listener = sim.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Incoming::Message { payload, .. } = event {
                    listener.on_heads(&payload);
                }
            }
        });
        // The SUBACK may trail CONNACK a little.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(sim)
    }

    fn stores(&self) -> std::sync::MutexGuard<'_, Vec<SimStore>> {
        self.stores.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn on_heads(&self, payload: &[u8]) {
        let Ok(SyncMessage::Heads { doc, heads, .. }) = SyncMessage::decode(payload) else {
            return;
        };
        if doc.kind != DocKind::Stock {
            return;
        }
        let Some(index) = doc
            .store
            .strip_prefix('s')
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return;
        };
        if let Some(store) = self.stores().get_mut(index) {
            store.acknowledge(&heads);
        }
    }

    pub fn committed(&self) -> u64 {
        self.stores().iter().map(|s| s.committed).sum()
    }

    /// (store, commits so far) of every store.
    pub fn committed_by_store(&self) -> Vec<(String, u64)> {
        self.stores()
            .iter()
            .map(|s| (s.name.clone(), s.committed))
            .collect()
    }

    /// Changes committed that HQ's heads do not acknowledge yet.
    pub fn lag(&self) -> u64 {
        self.stores().iter().map(|s| s.committed - s.acked).sum()
    }

    pub fn store_count(&self) -> usize {
        self.stores().len()
    }

    fn publish(
        &self,
        index: usize,
        topic: String,
        payload: Arc<Vec<u8>>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let handle = self.publishers[index % self.publishers.len()].clone();
        let errors = self.publish_errors.clone();
        tokio::spawn(async move {
            let sent = handle
                .publish(topic, payload.as_ref().clone(), QoS::AtLeastOnce, false)
                .await;
            if sent.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }

    /// Commits at `rate` changes/s in total (store after store, round robin) for `length`;
    /// every `probe_every`-th commit is handed to `probes`.
    pub async fn run(
        self: &Arc<Self>,
        rate: f64,
        length: Duration,
        probes: Option<(&mpsc::UnboundedSender<Probe>, u64)>,
    ) -> BenchResult<Step> {
        let errors_before = self.publish_errors.load(Ordering::Relaxed);
        let count = self.store_count();
        let started = Instant::now();
        let mut next_sample = started + SAMPLE_EVERY;
        let mut done: u64 = 0;
        let mut lag = Vec::new();
        let mut turn = 0usize;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let elapsed = started.elapsed();
            if elapsed >= length {
                break;
            }
            let due = (rate * elapsed.as_secs_f64()) as u64;
            while done < due {
                // Back-pressure: past MAX_IN_FLIGHT unacknowledged publishes the simulated
                // stores slow down (the achieved rate shows it).
                let permit = self.in_flight.clone().acquire_owned().await?;
                let index = turn % count;
                turn += 1;
                let (topic, payload, store, seq) = {
                    let mut stores = self.stores();
                    let store = &mut stores[index];
                    let payload = store.commit()?;
                    (
                        store.topic.clone(),
                        payload,
                        store.name.clone(),
                        store.committed,
                    )
                };
                let at = Instant::now();
                self.publish(index, topic, payload, permit);
                done += 1;
                if let Some((sender, every)) = probes
                    && done.is_multiple_of(every)
                {
                    let _ = sender.send(Probe { store, seq, at });
                }
                if started.elapsed() >= length {
                    break;
                }
            }
            if Instant::now() >= next_sample {
                lag.push(self.lag());
                next_sample += SAMPLE_EVERY;
            }
        }
        lag.push(self.lag());
        let seconds = started.elapsed().as_secs_f64();
        Ok(Step {
            offered: rate,
            achieved: done as f64 / seconds,
            lag,
            publish_errors: self.publish_errors.load(Ordering::Relaxed) - errors_before,
        })
    }

    /// A trading day at every store: `per_store` commits each, made as [`Self::run`] makes
    /// them (one change per 3-line sale), published store after store in messages of
    /// `per_message` consecutive changes, as a store's outbox sends what piled up. HQ ends
    /// with the same documents as from one message per change, which at HQ's sustained
    /// rate on this box would take hours for 100 stores.
    pub async fn day(&self, per_store: usize, per_message: usize) -> BenchResult<()> {
        for index in 0..self.store_count() {
            let (topic, messages) = {
                let mut stores = self.stores();
                let store = &mut stores[index];
                let mut changes = Vec::with_capacity(per_store);
                for _ in 0..per_store {
                    changes.push(store.commit_change()?.1);
                }
                let doc = DocId::new(&store.name, DocKind::Stock)?;
                let messages = changes
                    .chunks(per_message.max(1))
                    .map(|chunk| {
                        SyncMessage::Changes {
                            doc: doc.clone(),
                            epoch: 0,
                            changes: chunk.to_vec(),
                        }
                        .encode()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (store.topic.clone(), messages)
            };
            for payload in messages {
                let permit = self.in_flight.clone().acquire_owned().await?;
                self.publish(index, topic.clone(), Arc::new(payload), permit);
            }
        }
        Ok(())
    }

    /// Waits until HQ acknowledges every change, resending what a store still has
    /// unacknowledged after `resend_after` without progress (as the store node does).
    pub async fn drain(&self, limit: Duration) -> BenchResult<Duration> {
        let started = Instant::now();
        let resend_after = Duration::from_secs(3);
        let mut last_lag = u64::MAX;
        let mut last_progress = Instant::now();
        loop {
            let lag = self.lag();
            if lag == 0 {
                return Ok(started.elapsed());
            }
            if lag < last_lag {
                last_lag = lag;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > resend_after {
                self.resend_unacked().await?;
                last_progress = Instant::now();
            }
            if started.elapsed() > limit {
                return Err(format!("HQ still lacks {lag} changes after {limit:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn resend_unacked(&self) -> BenchResult<()> {
        let again: Vec<(usize, String, Arc<Vec<u8>>)> = self
            .stores()
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.unacked
                    .iter()
                    .map(move |u| (i, s.topic.clone(), u.payload.clone()))
            })
            .collect();
        for (index, topic, payload) in again {
            let permit = self.in_flight.clone().acquire_owned().await?;
            self.resent.fetch_add(1, Ordering::Relaxed);
            self.publish(index, topic, payload, permit);
        }
        Ok(())
    }

    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

async fn wait_connected(events: &mut mpsc::Receiver<Incoming>) -> BenchResult<()> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            if event == Incoming::Connected {
                return Ok(());
            }
        }
        Err("MQTT connection closed before CONNACK")
    })
    .await??;
    Ok(())
}

/// Polls HQ's API for each probe until it shows the probed commit; the latencies.
pub fn start_prober(
    bases: Vec<String>,
    mut probes: mpsc::UnboundedReceiver<Probe>,
) -> Arc<Mutex<Vec<Duration>>> {
    let seen: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let out = seen.clone();
    let client = reqwest::Client::new();
    tokio::spawn(async move {
        let mut turn = 0usize;
        while let Some(probe) = probes.recv().await {
            // Instances behind a load balancer: each probe asks the next one.
            let url = format!(
                "{}/v1/stock/{}/{SEQ_SKU}",
                bases[turn % bases.len()],
                probe.store
            );
            turn += 1;
            let client = client.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let limit = Duration::from_secs(60);
                while probe.at.elapsed() < limit {
                    let shown = async {
                        let reply = client.get(&url).bearer_auth(TOKEN).send().await.ok()?;
                        let body: serde_json::Value = reply.json().await.ok()?;
                        body["on_hand"].as_i64()
                    }
                    .await;
                    if shown.is_some_and(|n| n >= i64::try_from(probe.seq).unwrap_or(i64::MAX)) {
                        seen.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(probe.at.elapsed());
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
    });
    out
}
