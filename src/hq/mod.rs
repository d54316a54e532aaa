//! `storenode hq`: the aggregator. Subscribes to every store of the tenant, checks and merges
//! their documents ([`state`]), keeps the chain-wide stock in its own SQLite, acknowledges
//! with retained heads, answers `Need` requests, publishes the catalog, and serves stock to
//! the web shop over HTTP ([`http`]). One folder per concept: online orders and the escrow
//! ([`orders`]), transfers between stores ([`transfers`]), customer data ([`privacy`]);
//! pricing ([`pricing`]) and EPCIS events ([`epcis`]) in one file each.

pub mod cli;
pub mod coupons;
pub mod db;
pub mod epcis;
pub mod erase;
pub mod http;
mod leader;
pub mod loyalty;
pub mod ops;
pub mod orders;
pub mod pricing;
pub mod privacy;
mod publish;
pub mod state;
mod systemd;
pub mod transfers;
pub mod warnings;

pub use publish::{catalog_import, publish_items};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::sync::config::HqConfig;
use crate::sync::service::{OFFLINE, ONLINE};
use crate::sync::topics::{Id, Scope};
use crate::sync::transport::{
    Incoming, MqttHandle, MqttTransport, OutgoingMessage, QoS, StatusMessage, TransportConfig,
};
use crate::sync::wire::WireMetrics;
use state::{HqState, Outgoing};

pub type SharedHq = Arc<Mutex<HqState>>;

/// The shared-subscription group of HQ instances over one PostgreSQL database.
const SHARE_GROUP: &str = "storenode-hq";

/// Most queued messages HQ handles in one go (one lock, one batch per document).
const MAX_BATCH: usize = 64;

pub fn lock(hq: &SharedHq) -> MutexGuard<'_, HqState> {
    hq.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, thiserror::Error)]
pub enum HqRunError {
    #[error(transparent)]
    State(#[from] state::HqError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("MQTT transport: {0}")]
    Transport(#[from] crate::sync::transport::TransportError),
    #[error("topic: {0}")]
    Topic(#[from] crate::sync::topics::TopicError),
    #[error(transparent)]
    Privacy(#[from] privacy::HqPrivacyError),
    #[error(transparent)]
    Epcis(#[from] epcis::HqEpcisError),
    #[error("loading HQ's state stopped: {0}")]
    Load(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A running HQ.
pub struct Hq {
    pub state: SharedHq,
    pub metrics: Arc<WireMetrics>,
    /// What HQ refused of what stores published, by reason (rate-limited warnings).
    pub rejections: Arc<warnings::Rejections>,
    /// Readiness and figures (`/readyz`, `/metrics`).
    pub ops: Arc<ops::HqOps>,
    pub http_addr: std::net::SocketAddr,
    publish: mpsc::UnboundedSender<Outgoing>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Hq {
    pub async fn start(cfg: &HqConfig) -> Result<Self, HqRunError> {
        let db = db::Target::from_config(cfg.database_url.as_deref(), &cfg.data_dir);
        let metrics = Arc::new(WireMetrics::default());
        let ops = Arc::new(ops::HqOps::new(db.clone(), metrics.clone()));
        let shutdown = CancellationToken::new();
        let listener = http::serve::Listener::bind(cfg.listen, cfg.http_tls.as_ref())?;
        let http_addr = listener.addr;
        // Operators see a loading HQ as alive and not ready, rather than as refusing.
        let loading = listener.serve_while_loading(ops.clone())?;
        let opened = open_state(cfg, db.clone(), ops.documents.clone()).await;
        // From here to the full API being served, connections wait in the backlog.
        loading.stop().await;
        let (state, privacy, epcis) = opened?;
        let topics = lock(&state).topics().clone();
        // A database query: off the async runtime (the PostgreSQL client blocks).
        let stores = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || lock(&state).stores().map_or(0, |s| s.len()))
                .await
                .unwrap_or(0)
        };
        ops.health.set(
            ops::DOCUMENTS,
            crate::health::State::Ok,
            format!("{stores} stores known; their documents load when used"),
            true,
        );
        let shared = db.is_shared();
        // Instances sharing a database need their own client ids (the broker drops the older
        // of two sessions with one id), stable across restarts so that each instance keeps
        // one retained status rather than leaving one behind per start.
        let client_id = if shared {
            instance_name(http_addr)
        } else {
            "hq".to_owned()
        };
        let mut transport =
            TransportConfig::new(client_id.clone(), &cfg.broker.host, cfg.broker.port);
        if let Some(files) = &cfg.broker.tls {
            transport.tls = Some(crate::tls::client_config(files)?);
        }
        transport.max_packet_size =
            u32::try_from(crate::sync::payload::MAX_MESSAGE_BYTES * 2).unwrap_or(u32::MAX);
        // Each instance its own status (a killed one's last will must not say HQ is gone
        // while another serves); stores count HQ online while any instance is.
        let status = topics
            .status(&Scope::Hq, &Id::new(client_id.clone())?)
            .to_string();
        transport.last_will = Some(StatusMessage {
            topic: status.clone(),
            payload: Bytes::from_static(OFFLINE),
            retain: true,
        });
        transport.online = Some(StatusMessage {
            topic: status,
            payload: Bytes::from_static(ONLINE),
            retain: true,
        });
        let q = QoS::AtLeastOnce;
        // Changes, requests and EPCIS batches go to one instance of the group (MQTT 5 shared
        // subscriptions); retained status, retirements and customer data to every instance, as a shared
        // subscription gets no retained messages (handling them twice is harmless).
        let share = |filter: String| {
            if shared {
                format!("$share/{SHARE_GROUP}/{filter}")
            } else {
                filter
            }
        };
        transport.subscriptions = vec![
            (share(topics.changes_filter(None)), q),
            (share(topics.requests_filter()), q),
            (topics.status_filter(None), q),
            // Lanes retired for good: retained too, so every instance hears each one.
            (topics.retired_filter_all(), q),
            (topics.pii_filter(None, None), q),
            (share(topics.epcis_filter()), q),
            // Member lookups: any one instance answers (they share the customer-data store).
            (share(topics.find_filter()), q),
        ];
        let (mqtt, incoming, transport_task) = MqttTransport::start(transport, shutdown.clone())?;
        let rejections = ops.rejections.clone();
        let (publish, outgoing) = mpsc::unbounded_channel();
        let http_state = http::HttpState {
            hq: state.clone(),
            clients: Arc::new(http::clients::Clients::new(&cfg.clients)),
            publish: publish.clone(),
            privacy: privacy.clone(),
            epcis: epcis.clone(),
        };
        let mut tasks = vec![
            tokio::spawn(receive(
                Ingest {
                    state: state.clone(),
                    privacy,
                    epcis,
                    ops: ops.clone(),
                    rejections: rejections.clone(),
                },
                incoming,
                publish.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(warnings::summarise_every(
                rejections.clone(),
                warnings::WARN_EVERY,
                shutdown.clone(),
            )),
            tokio::spawn(publish_loop(
                mqtt,
                outgoing,
                metrics.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(listener.serve(http::router(http_state, ops.clone()), shutdown.clone())),
            // Documents come and go through the LRU all day: free heap goes back past 4 MiB.
            tokio::spawn(crate::memory::return_free_heap(shutdown.clone())),
            transport_task,
        ];
        if let Some(every) = cfg.epoch_interval {
            tasks.push(tokio::spawn(epoch_timer(
                state.clone(),
                leader::Leader::new(db.clone()),
                publish.clone(),
                every,
                shutdown.clone(),
            )));
        }
        tracing::info!(listen = %http_addr, broker = %cfg.broker.host, "storenode hq ready");
        Ok(Self {
            state,
            metrics,
            rejections,
            ops,
            http_addr,
            publish,
            shutdown,
            tasks,
        })
    }

    /// Queues messages for the publisher.
    pub fn send(&self, messages: Vec<Outgoing>) {
        for m in messages {
            let _ = self.publish.send(m);
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("an HQ task did not stop within 5 s");
            }
        }
    }
}

/// HQ's documents, customer data and EPCIS events, opened (and the documents loaded) on the
/// blocking pool: loading many stores' histories takes a while.
async fn open_state(
    cfg: &HqConfig,
    db: db::Target,
    gauges: Arc<ops::DocumentGauges>,
) -> Result<(SharedHq, privacy::SharedPrivacy, epcis::SharedEpcis), HqRunError> {
    let (tenant, safety_stock, lanes) = (cfg.tenant.clone(), cfg.safety_stock, cfg.lanes.clone());
    let documents_in_memory = cfg.documents_in_memory;
    tokio::task::spawn_blocking(move || {
        let state = HqState::open_target(&db, &tenant, safety_stock)?
            .with_lanes(lanes)
            .with_documents_in_memory(documents_in_memory)
            .with_gauges(gauges);
        let topics = state.topics().clone();
        let privacy = privacy::HqPrivacy::open(&db, topics.clone())?;
        let epcis = epcis::HqEpcis::open(&db, topics)?;
        Ok((
            Arc::new(Mutex::new(state)),
            Arc::new(Mutex::new(privacy)),
            Arc::new(Mutex::new(epcis)),
        ))
    })
    .await
    .map_err(|e| HqRunError::Load(e.to_string()))?
}

/// `hq-{host}-{port}`: this instance's name among several over one database (the host's name
/// and HTTP port set it apart, and stay the same across restarts).
fn instance_name(listen: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("hq-{host}-{}", listen.port())
}

/// Runs HQ until SIGTERM or SIGINT.
pub async fn run(cfg: HqConfig) -> anyhow::Result<()> {
    // The embedded broker (if any) lives until the process exits: rumqttd cannot stop.
    let _broker = start_embedded_broker(&cfg)?;
    let mut hq = Hq::start(&cfg).await?;
    systemd::ready(hq.http_addr, &hq.ops);
    hq.tasks.push(tokio::spawn(systemd::watchdog(
        hq.state.clone(),
        hq.ops.clone(),
        hq.http_addr,
        hq.shutdown.clone(),
    )));
    wait_for_signal().await?;
    systemd::notify(&[sd_notify::NotifyState::Stopping]);
    hq.stop().await;
    Ok(())
}

#[cfg(feature = "embedded-broker")]
fn start_embedded_broker(cfg: &HqConfig) -> anyhow::Result<Option<broker::EmbeddedBroker>> {
    cfg.embedded_broker
        .map(broker::EmbeddedBroker::start)
        .transpose()
        .map_err(Into::into)
}

#[cfg(not(feature = "embedded-broker"))]
fn start_embedded_broker(cfg: &HqConfig) -> anyhow::Result<Option<()>> {
    if cfg.embedded_broker.is_some() {
        anyhow::bail!("hq.embedded_broker needs a build with the `embedded-broker` feature");
    }
    Ok(None)
}

#[cfg(feature = "embedded-broker")]
pub mod broker;

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// What the ingest loop works on.
struct Ingest {
    state: SharedHq,
    privacy: privacy::SharedPrivacy,
    epcis: epcis::SharedEpcis,
    ops: Arc<ops::HqOps>,
    rejections: Arc<warnings::Rejections>,
}

async fn receive(
    ingest: Ingest,
    mut incoming: mpsc::Receiver<Incoming>,
    publish: mpsc::UnboundedSender<Outgoing>,
    shutdown: CancellationToken,
) {
    let Ingest {
        state,
        privacy,
        epcis,
        ops,
        rejections,
    } = ingest;
    let metrics = ops.wire.clone();
    // An event taken off the queue while collecting a batch, handled next.
    let mut lookahead: Option<Incoming> = None;
    loop {
        let event = match lookahead.take() {
            Some(event) => Some(event),
            None => tokio::select! {
                () = shutdown.cancelled() => return,
                event = incoming.recv() => event,
            },
        };
        ops.set_queue_depth(incoming.len());
        let answers = match event {
            None => return,
            Some(Incoming::Connected) => {
                ops.health
                    .set(ops::BROKER, crate::health::State::Ok, "connected", true);
                let state = state.clone();
                let mut out = tokio::task::spawn_blocking(move || {
                    let mut hq = lock(&state);
                    // Another instance may have moved on: announce what is stored, not an
                    // older copy (retained heads that went back would make stores resend).
                    hq.all_heads().unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cannot read HQ's documents to announce heads");
                        Vec::new()
                    })
                })
                .await
                .unwrap_or_default();
                out.extend(privacy::tombstones(&privacy).await);
                out
            }
            Some(Incoming::Disconnected { reason }) => {
                tracing::warn!(reason, "HQ lost the broker");
                ops.health.set(
                    ops::BROKER,
                    crate::health::State::Down,
                    format!("disconnected: {reason}"),
                    true,
                );
                Vec::new()
            }
            Some(Incoming::Message { topic, payload, .. }) if privacy::is_pii_topic(&topic) => {
                metrics.count_in(payload.len());
                privacy::on_message(&privacy, &rejections, topic, payload).await
            }
            Some(Incoming::Message { topic, payload, .. }) if epcis::is_epcis_topic(&topic) => {
                metrics.count_in(payload.len());
                epcis::on_message(&epcis, &rejections, topic, payload).await
            }
            Some(Incoming::Message { topic, payload, .. })
                if loyalty::find::is_find_topic(&topic) =>
            {
                metrics.count_in(payload.len());
                loyalty::find::on_message(&privacy, &rejections, topic, payload).await
            }
            Some(Incoming::Message { topic, payload, .. }) => {
                metrics.count_in(payload.len());
                // Take what else is already queued, so changes of one document apply as one
                // batch (`HqState::handle_many`).
                let mut batch = vec![(topic, payload.to_vec())];
                while batch.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(Incoming::Message { topic, payload, .. })
                            if !privacy::is_pii_topic(&topic)
                                && !epcis::is_epcis_topic(&topic)
                                && !loyalty::find::is_find_topic(&topic) =>
                        {
                            metrics.count_in(payload.len());
                            batch.push((topic, payload.to_vec()));
                        }
                        Ok(other) => {
                            lookahead = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let state = state.clone();
                let shown: Vec<String> = batch.iter().map(|(topic, _)| topic.clone()).collect();
                let started = std::time::Instant::now();
                let handled =
                    tokio::task::spawn_blocking(move || lock(&state).handle_many(&batch)).await;
                ops.apply_latency.observe(started.elapsed());
                match handled {
                    Ok(results) => {
                        let mut answers = Vec::new();
                        for (topic, result) in shown.iter().zip(results) {
                            match result {
                                Ok(more) => {
                                    ops.applied(topic);
                                    answers.extend(more);
                                }
                                Err(rejected) => {
                                    ops.reject(topic, &rejected);
                                }
                            }
                        }
                        answers
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "HQ message handler panicked");
                        Vec::new()
                    }
                }
            }
        };
        for answer in answers {
            let _ = publish.send(answer);
        }
    }
}

/// Opens a new stock epoch of every store every `every` (`hq.epoch_interval_s`).
async fn epoch_timer(
    state: SharedHq,
    leader: leader::Leader,
    publish: mpsc::UnboundedSender<Outgoing>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let leader = Arc::new(Mutex::new(leader));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = state.clone();
        let leader = leader.clone();
        let opened = tokio::task::spawn_blocking(move || {
            // One instance cuts; the others' timers tick idle.
            if !leader
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .leads()
            {
                return Vec::new();
            }
            // Each cut loads (fresh, under the write lock) only its store's documents.
            let stores = match lock(&state).stores() {
                Ok(stores) => stores,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the stores for the epoch cut");
                    return Vec::new();
                }
            };
            let mut messages = Vec::new();
            for store in stores {
                // The state's lock is taken per store, not for the whole round: ingest goes
                // on between two stores' cuts (a round of 1,000 stores held it for seconds,
                // several times a day with the 6-hour default).
                match lock(&state).open_epoch(&store) {
                    Ok((_, m)) => messages.extend(m),
                    Err(e) => tracing::warn!(store, error = %e, "cannot open a new epoch"),
                }
            }
            messages
        })
        .await
        .unwrap_or_default();
        for m in opened {
            let _ = publish.send(m);
        }
    }
}

/// Publishes from its own task: never from the one that drains the event loop.
async fn publish_loop(
    mqtt: MqttHandle,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    metrics: Arc<WireMetrics>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = outgoing.recv() => next,
        };
        let Some(message) = next else { return };
        let size = message.payload.len();
        let mut out =
            OutgoingMessage::new(message.topic.clone(), message.payload, QoS::AtLeastOnce);
        out.retain = message.retain;
        match mqtt.publish_message(out).await {
            Ok(_) => metrics.count_out(size),
            Err(e) => {
                // Lost answers are repaired: heads go out again on reconnect, a store that is
                // still behind asks again.
                tracing::warn!(topic = message.topic, error = %e, "HQ publish failed");
            }
        }
    }
}
/// A client for this HQ's own API (`hq.listen`; HTTPS with `hq.http_tls`, trusting HQ's
/// own certificate), for the CLI on the HQ box: an unspecified listen address (`0.0.0.0`)
/// is reached on loopback.
pub fn local_client(cfg: &HqConfig) -> anyhow::Result<crate::http_client::HqClient> {
    let mut addr = cfg.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let token = cfg.admin_token().ok_or_else(|| {
        anyhow::anyhow!("no admin client in [hq] (hq.token or a client with role admin)")
    })?;
    Ok(match &cfg.http_tls {
        Some(tls) => {
            crate::http_client::HqClient::own_tls_listener(addr, token.expose(), &tls.cert_file)?
        }
        None => crate::http_client::HqClient::own_listener(addr, token.expose())?,
    })
}
