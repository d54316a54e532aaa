//! The store node's sync service: one MQTT transport and two tasks.
//!
//! - the **receiver** drains the transport's events (it never publishes, so the event loop
//!   can always make progress): other lanes' and HQ's changes are applied through a store
//!   write (the hook turns them into `peer` movements in the same transaction), HQ's heads
//!   empty the outbox (end-to-end acknowledgement) and reveal when this node is behind;
//! - the **publisher** sends new outbox changes (one by one when few, as bundles when a
//!   backlog built up offline), the orders changes (click-and-collect status events, see
//!   `sync::local`), the retained heads, and `Need` requests; on a timer it
//!   re-offers the changes a peer (HQ or another lane) still lacks after a full interval,
//!   which is how lanes converge with each other while HQ is down.
//!
//! Everything received is validated before it touches state; anything refused is counted
//! in [`WireMetrics::rejected`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automerge::ChangeHash;
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::crdt::catalog::CATALOG_STORE;
use crate::crdt::doc::{DocId, DocKind, SyncDoc, WriterId};
use crate::store::Store;
use crate::sync::config::SyncConfig;
use crate::sync::local::{self, RemoteChanges, SharedDocs};
use crate::sync::mqtt::claim::{Claim, Verdict, judge};
use crate::sync::mqtt::topics::{self, Id, Scope, Topic, TopicSpace};
use crate::sync::mqtt::transport::{
    Incoming, MqttHandle, MqttTransport, OutgoingMessage, PublishError, QoS, StatusMessage,
    TransportConfig,
};
use crate::sync::persist;
use crate::sync::wire::payload::{MAX_MESSAGE_BYTES, SyncMessage};
use crate::sync::wire::{self, WireMetrics};

pub const ONLINE: &[u8] = b"online";
pub const OFFLINE: &[u8] = b"offline";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid id for topics: {0}")]
    Topic(#[from] topics::TopicError),
    #[error("invalid writer id: {0}")]
    Doc(#[from] crate::crdt::doc::DocError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("MQTT transport: {0}")]
    Transport(#[from] crate::sync::mqtt::transport::TransportError),
    #[error("EPCIS: {0}")]
    Epcis(#[from] crate::epcis::EpcisError),
}

/// What `diag sync` and the metrics show.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncDiag {
    pub connected: bool,
    pub hq_online: bool,
    pub epoch: u32,
    pub stock_heads: Vec<String>,
    pub hq_stock_heads: Vec<String>,
    pub outbox_pending: u64,
    /// Own changes HQ's heads do not include yet.
    pub lag_changes_behind_hq: usize,
    /// Unix ms of HQ's last acknowledgement of the stock document.
    pub last_hq_ack_ms: Option<i64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rejected: u64,
    pub denied: u64,
    /// This incarnation waits to catch up with HQ before it writes (see
    /// `NodeDocs::require_adoption`); sales continue meanwhile.
    pub adopting: bool,
    /// The broker refused the last publish (PUBACK 135): nothing this node sends arrives.
    pub publish_denied: bool,
    /// Set when another box is live as this writer: this one stopped syncing, and why.
    pub clone_refused: Option<String>,
}

/// State shared by the two tasks and the handle.
#[derive(Debug, Default)]
struct Shared {
    hq_online: std::sync::atomic::AtomicBool,
    /// Latest heads per (doc, publisher writer): HQ's and the other lanes'.
    peer_heads: Mutex<BTreeMap<(DocId, String), Vec<ChangeHash>>>,
    last_hq_ack_ms: Mutex<Option<i64>>,
    metrics: WireMetrics,
    /// The last [`SyncService::refresh_diag`] result, for synchronous readers (metrics).
    last_diag: Mutex<Option<SyncDiag>>,
    /// The broker echoed this incarnation's own `online` status: every retained message of
    /// the subscription (HQ's heads) was delivered before it.
    own_status_seen: std::sync::atomic::AtomicBool,
    /// The last publish came back with PUBACK 135 (cleared by the next accepted one).
    publish_denied: std::sync::atomic::AtomicBool,
    /// Another box is live as this writer and started first: why this one stopped syncing.
    refused: Mutex<Option<String>>,
}

/// A running sync service.
pub struct SyncService {
    shutdown: CancellationToken,
    /// Taken by the first [`SyncService::stop`]; the service is shared (metrics, health).
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<Shared>,
    docs: SharedDocs,
    store: Store,
    mqtt: MqttHandle,
}

struct Ctx {
    store: Store,
    docs: SharedDocs,
    mqtt: MqttHandle,
    topics: TopicSpace,
    scope: Scope,
    me: Id,
    writer: WriterId,
    stock_id: DocId,
    catalog_id: DocId,
    orders_id: DocId,
    /// Where this writer publishes its stock changes.
    changes_topic: String,
    /// Where this writer publishes its orders changes (click-and-collect status events).
    orders_changes_topic: String,
    /// Where this writer publishes its heads of the stock and the catalog document.
    heads_topics: BTreeMap<DocId, String>,
    shared: Arc<Shared>,
    /// Customer data beside the documents (`crate::domain::customer::link`).
    pii: Arc<super::pii::PiiLink>,
    /// EPCIS events to HQ (`super::epcis_link`).
    epcis: Arc<super::epcis_link::EpcisLink>,
    /// Writers allowed to change this store's documents besides HQ (`sync.lanes`, this
    /// node included); `None`: any.
    lanes: Option<BTreeSet<WriterId>>,
    /// This incarnation's retained status and where it goes (`sync::mqtt::claim`).
    claim: Claim,
    status_topic: String,
    /// Stops the service when a clone was detected.
    shutdown: CancellationToken,
}

#[derive(Debug)]
enum Cmd {
    Connected,
    Need(DocId),
    HeadsChanged,
    /// HQ opened this epoch (current + 1) of the stock or orders document: ask HQ for it.
    NextEpoch(DocId, u32),
    /// Publish this incarnation's retained status claim again (`sync::mqtt::claim`).
    ClaimAgain,
}

impl SyncService {
    /// Starts the transport and the tasks. `changed` is notified by the hook after commits
    /// that produced a change. `site`: the store's GLN and time zone for EPCIS events.
    // The node's identity, its store and the GLN are separate facts of the configuration;
    // bundling them into a struct for this one call would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        cfg: &SyncConfig,
        tenant: &str,
        store_id: &str,
        site: &crate::epcis::Site,
        writer: WriterId,
        store: Store,
        docs: SharedDocs,
        changed: Arc<Notify>,
    ) -> Result<Self, ServiceError> {
        let topics = TopicSpace::new(Id::new(tenant)?);
        let scope = Scope::store(Id::new(store_id)?)?;
        let me = Id::new(writer.as_str())?;
        let claim = Claim {
            incarnation: writer.incarnation().unwrap_or("0").to_owned(),
            started_ms: crate::clock::now_ms(),
        };
        // Its own client id per incarnation: a clone connects beside this box (and is told
        // to stop, see `sync::mqtt::claim`) instead of taking its session over again and again.
        let client_id = match writer.incarnation() {
            Some(inc) => format!("{writer}~{inc}"),
            None => writer.to_string(),
        };
        let mut transport = TransportConfig::new(client_id, &cfg.broker.host, cfg.broker.port);
        if let Some(files) = &cfg.broker.tls {
            transport.tls = Some(crate::tls::client_config(files)?);
        }
        transport.max_packet_size = u32::try_from(MAX_MESSAGE_BYTES * 2).unwrap_or(u32::MAX);
        transport.backoff.max = cfg.reconnect_max;
        transport.backoff.initial = transport.backoff.initial.min(cfg.reconnect_max);
        let status_topic = topics.status(&scope, &me).to_string();
        transport.last_will = Some(StatusMessage {
            topic: status_topic.clone(),
            payload: Bytes::from_static(OFFLINE),
            retain: true,
        });
        transport.online = Some(StatusMessage {
            topic: status_topic.clone(),
            payload: Bytes::from(claim.encode()),
            retain: true,
        });
        transport.subscriptions = subscriptions(&topics, &scope, &me);
        let store_segment = Id::new(store_id)?;
        transport.subscriptions.push((
            super::pii::subscription(&topics, &store_segment),
            QoS::AtLeastOnce,
        ));
        transport.subscriptions.push((
            super::epcis_link::subscription(&topics, &store_segment, &me),
            QoS::AtLeastOnce,
        ));
        let shutdown = CancellationToken::new();
        let (mqtt, incoming, transport_task) = MqttTransport::start(transport, shutdown.clone())?;
        let (pii, pii_task) = super::pii::PiiLink::start(
            store.clone(),
            mqtt.clone(),
            topics.clone(),
            &store_segment,
            writer.as_str(),
            shutdown.clone(),
        )?;
        let node_id = writer
            .as_str()
            .strip_prefix(&format!("{store_id}."))
            .unwrap_or(writer.as_str());
        let (epcis, epcis_task) = super::epcis_link::EpcisLink::start(
            store.clone(),
            mqtt.clone(),
            &topics,
            &store_segment,
            &me,
            crate::epcis::Origin::new(tenant, store_id, node_id, site.gln.as_deref())?
                .with_time_zone(site.time_zone.clone()),
            shutdown.clone(),
        )?;
        let shared = Arc::new(Shared::default());
        let stock_id = DocId::new(store_id, DocKind::Stock)?;
        let catalog_id = DocId::new(CATALOG_STORE, DocKind::Catalog)?;
        let orders_id = DocId::new(store_id, DocKind::Orders)?;
        let changes_topic = topics
            .changes(&scope, &kind_id(DocKind::Stock)?, &me)
            .to_string();
        let orders_changes_topic = topics
            .changes(&scope, &kind_id(DocKind::Orders)?, &me)
            .to_string();
        let mut heads_topics = BTreeMap::new();
        for doc in [&stock_id, &catalog_id, &orders_id] {
            let topic = topics.heads(&scope, &scope_of(doc)?, &kind_id(doc.kind)?, &me);
            heads_topics.insert(doc.clone(), topic.to_string());
        }
        let writer_for_lanes = writer.clone();
        let ctx = Arc::new(Ctx {
            store: store.clone(),
            docs: docs.clone(),
            mqtt: mqtt.clone(),
            topics,
            scope,
            me,
            writer,
            stock_id,
            catalog_id,
            orders_id,
            changes_topic,
            orders_changes_topic,
            heads_topics,
            shared: shared.clone(),
            pii,
            epcis,
            lanes: provisioned_writers(cfg, store_id, &writer_for_lanes)?,
            claim,
            status_topic,
            shutdown: shutdown.clone(),
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let receiver = tokio::spawn(receive(ctx.clone(), incoming, cmd_tx, shutdown.clone()));
        let publisher = tokio::spawn(publish_loop(
            ctx,
            cmd_rx,
            changed,
            cfg.resend_interval,
            shutdown.clone(),
        ));
        Ok(Self {
            shutdown,
            tasks: Mutex::new(vec![
                receiver,
                publisher,
                transport_task,
                pii_task,
                epcis_task,
            ]),
            shared,
            docs,
            store,
            mqtt,
        })
    }

    /// Stops the tasks (the transport publishes `offline` and disconnects).
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a sync task did not stop within 5 s");
            }
        }
    }

    pub fn is_connected(&self) -> bool {
        self.mqtt.is_connected()
    }

    /// State for `diag sync`, health and metrics.
    pub async fn diag(&self) -> SyncDiag {
        let pending = self
            .store
            .read(|conn| persist::outbox_len(conn).map_err(to_store_error))
            .await
            .unwrap_or(0);
        let docs = local::lock(&self.docs);
        let stock = docs.stock().core();
        let hq_heads = self.hq_heads(stock.id());
        let m = &self.shared.metrics;
        SyncDiag {
            clone_refused: lock(&self.shared.refused).clone(),
            adopting: docs.is_adopting(),
            publish_denied: self
                .shared
                .publish_denied
                .load(std::sync::atomic::Ordering::Relaxed),
            connected: self.mqtt.is_connected(),
            hq_online: self
                .shared
                .hq_online
                .load(std::sync::atomic::Ordering::Relaxed),
            epoch: docs.epoch(),
            stock_heads: stock.heads().iter().map(ToString::to_string).collect(),
            hq_stock_heads: hq_heads.iter().map(ToString::to_string).collect(),
            outbox_pending: pending,
            lag_changes_behind_hq: stock.own_changes_not_in(&hq_heads).len(),
            last_hq_ack_ms: *lock(&self.shared.last_hq_ack_ms),
            bytes_in: WireMetrics::get(&m.bytes_in),
            bytes_out: WireMetrics::get(&m.bytes_out),
            rejected: WireMetrics::get(&m.rejected),
            denied: WireMetrics::get(&m.denied),
        }
    }

    /// Recomputes [`Self::diag`] and keeps it for [`Self::last_diag`].
    pub async fn refresh_diag(&self) -> SyncDiag {
        let diag = self.diag().await;
        *lock(&self.shared.last_diag) = Some(diag.clone());
        diag
    }

    /// The diagnostics of the last refresh (all zero before the first).
    pub fn last_diag(&self) -> SyncDiag {
        lock(&self.shared.last_diag).clone().unwrap_or_default()
    }

    pub fn wire_metrics(&self) -> &WireMetrics {
        &self.shared.metrics
    }

    fn hq_heads(&self, doc: &DocId) -> Vec<ChangeHash> {
        lock(&self.shared.peer_heads)
            .get(&(doc.clone(), crate::crdt::doc::HQ_WRITER.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn to_store_error(e: impl std::fmt::Display) -> crate::store::StoreError {
    crate::store::StoreError::Inconsistent(format!("sync: {e}"))
}

/// What a lane subscribes to: its store's topics and HQ's that concern its store, never
/// another store's (the broker ACL enforces the same).
pub fn subscriptions(topics: &TopicSpace, scope: &Scope, me: &Id) -> Vec<(String, QoS)> {
    let q = QoS::AtLeastOnce;
    vec![
        // Other lanes of this store.
        (topics.changes_filter(Some(scope)), q),
        (topics.heads_filter(Some(scope), Some(scope)), q),
        // HQ's documents (catalog), HQ's changes of this store's documents (orders, epoch
        // announcements), HQ's acknowledgements of ours, HQ's catalog heads, HQ's status.
        (topics.changes_filter(Some(&Scope::Hq)), q),
        (
            topics.changes_about_filter(Some(&Scope::Hq), Some(scope)),
            q,
        ),
        (topics.heads_filter(Some(&Scope::Hq), Some(scope)), q),
        (topics.heads_filter(Some(&Scope::Hq), Some(&Scope::Hq)), q),
        (topics.status_filter(Some(&Scope::Hq)), q),
        (topics.response(scope, me).to_string(), q),
        // Its own status: the echo of its `online` marks the end of the retained messages.
        (topics.status(scope, me).to_string(), q),
    ]
}

/// Whether a status payload says online (a lane's carries its claim, `sync::mqtt::claim`).
pub fn is_online(payload: &[u8]) -> bool {
    payload == ONLINE || payload.starts_with(b"online ")
}

async fn receive(
    ctx: Arc<Ctx>,
    mut incoming: mpsc::Receiver<Incoming>,
    cmd: mpsc::UnboundedSender<Cmd>,
    shutdown: CancellationToken,
) {
    // A projection a previous run left unfinished (crash or stop mid-catalog).
    project_catalog(&ctx, &shutdown).await;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = incoming.recv() => event,
        };
        match event {
            None => return,
            Some(Incoming::Connected) => {
                tracing::info!(writer = %ctx.writer, "sync connected to the broker");
                let _ = cmd.send(Cmd::Connected);
            }
            Some(Incoming::Disconnected { reason }) => {
                tracing::warn!(writer = %ctx.writer, reason, "sync offline; sales continue");
            }
            Some(Incoming::Message {
                topic,
                payload,
                retain,
                ..
            }) => {
                ctx.shared.metrics.count_in(payload.len());
                if let Err(reason) = handle_message(&ctx, &topic, &payload, retain, &cmd).await {
                    ctx.shared.metrics.reject();
                    tracing::warn!(topic, reason, "sync message rejected");
                }
                if let Err(e) = try_adopt(&ctx).await {
                    tracing::warn!(error = %e, "cannot finish catching up with HQ; retried");
                }
                project_catalog(&ctx, &shutdown).await;
            }
        }
    }
}

/// Writes the catalog items HQ changed into SQLite, [`local::CATALOG_BATCH`] per write job,
/// so sales queue between the batches instead of behind the whole catalog.
async fn project_catalog(ctx: &Ctx, shutdown: &CancellationToken) {
    let total = local::lock(&ctx.docs).catalog_pending();
    if total == 0 {
        return;
    }
    tracing::info!(
        items = total,
        "projecting HQ's catalog changes into the store"
    );
    while !shutdown.is_cancelled() {
        let docs = ctx.docs.clone();
        let left = ctx
            .store
            .write(move |conn| {
                let now = crate::clock::now_utc();
                local::lock(&docs)
                    .project_catalog_batch(conn, local::CATALOG_BATCH, &now)
                    .map_err(to_store_error)
            })
            .await;
        match left {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                // Left queued (and flagged on disk): the next message or start retries.
                tracing::warn!(error = %e, "catalog projection paused");
                break;
            }
        }
    }
}

async fn handle_message(
    ctx: &Ctx,
    topic: &str,
    payload: &[u8],
    retain: bool,
    cmd: &mpsc::UnboundedSender<Cmd>,
) -> Result<(), String> {
    let topic = topics::parse(topic).map_err(|e| e.to_string())?;
    if let Topic::Pii { .. } = &topic {
        return ctx.pii.on_message(&topic, payload).await;
    }
    if let Topic::EpcisAck { .. } = &topic {
        return ctx.epcis.on_message(&topic, payload).await;
    }
    if let Topic::Status { scope, writer, .. } = &topic {
        if *writer == ctx.me {
            on_own_status(ctx, payload, retain, cmd);
        }
        if *scope == Scope::Hq {
            let online = payload == ONLINE;
            let was_online = ctx
                .shared
                .hq_online
                .swap(online, std::sync::atomic::Ordering::Relaxed);
            if online && !was_online {
                // HQ (re)started: whatever it did not acknowledge may never have reached it
                // (it may not know this store yet, so its heads would not ask): re-offer.
                let _ = cmd.send(Cmd::Connected);
            }
        }
        return Ok(());
    }
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "payload of {} bytes is over the cap",
            payload.len()
        ));
    }
    let message = SyncMessage::decode(payload).map_err(|e| e.to_string())?;
    match (&topic, message) {
        (Topic::Changes { writer, .. }, _) if *writer == ctx.me => Ok(()),
        (
            Topic::Changes { .. } | Topic::Response { .. },
            SyncMessage::Changes {
                doc,
                epoch,
                changes,
            },
        ) => apply(ctx, doc, epoch, RemoteChanges::Changes(changes), cmd).await,
        (
            Topic::Changes { .. } | Topic::Response { .. },
            SyncMessage::Bundle { doc, epoch, bundle },
        ) => apply(ctx, doc, epoch, RemoteChanges::Bundle(bundle), cmd).await,
        (
            Topic::Changes {
                scope: Scope::Hq, ..
            },
            SyncMessage::EpochAnnounce { doc, epoch, .. },
        ) => {
            announce_epoch(ctx, &doc, epoch, cmd);
            Ok(())
        }
        (Topic::Heads { writer, .. }, _) if *writer == ctx.me => Ok(()),
        (Topic::Heads { scope, writer, .. }, SyncMessage::Heads { doc, epoch, heads }) => {
            on_heads(
                ctx,
                scope,
                writer,
                doc,
                epoch,
                wire::hashes_from_wire(&heads),
                cmd,
            )
            .await
        }
        (_, other) => Err(format!("unexpected {} on this topic", message_name(&other))),
    }
}

fn message_name(m: &SyncMessage) -> &'static str {
    match m {
        SyncMessage::Changes { .. } => "Changes",
        SyncMessage::Heads { .. } => "Heads",
        SyncMessage::Need { .. } => "Need",
        SyncMessage::EpochAnnounce { .. } => "EpochAnnounce",
        SyncMessage::Bundle { .. } => "Bundle",
    }
}

/// Asks for the next stock epoch when HQ announces one this node is not on yet.
fn announce_epoch(ctx: &Ctx, doc: &DocId, epoch: u32, cmd: &mpsc::UnboundedSender<Cmd>) {
    if *doc != ctx.stock_id && *doc != ctx.orders_id {
        return;
    }
    let current = epoch_of(ctx, doc);
    if epoch > current {
        tracing::info!(writer = %ctx.writer, doc = %persist::doc_key(doc), current, epoch, "HQ opened a new epoch");
        let _ = cmd.send(Cmd::NextEpoch(doc.clone(), epoch));
    }
}

/// The epoch this node is on for `doc` (stock and orders roll; the catalog stays at 0).
fn epoch_of(ctx: &Ctx, doc: &DocId) -> u32 {
    local::lock(&ctx.docs).doc(doc).map_or(0, SyncDoc::epoch)
}

async fn apply(
    ctx: &Ctx,
    doc: DocId,
    epoch: u32,
    changes: RemoteChanges,
    cmd: &mpsc::UnboundedSender<Cmd>,
) -> Result<(), String> {
    if doc != ctx.stock_id && doc != ctx.catalog_id && doc != ctx.orders_id {
        // HQ's changes of other stores' documents share HQ's topic; not ours, not an error.
        return Ok(());
    }
    if doc == ctx.stock_id || doc == ctx.orders_id {
        check_authors(ctx, &changes)?;
        let current = epoch_of(ctx, &doc);
        if epoch < current {
            return Ok(()); // a closed epoch: its writers carried their work over
        }
        if epoch > current {
            return move_to_epoch(ctx, doc, epoch, changes, cmd).await;
        }
    }
    let docs = ctx.docs.clone();
    let id = doc.clone();
    let outcome = ctx
        .store
        .write(move |conn| {
            let now = crate::clock::now_utc();
            local::lock(&docs)
                .apply_remote(conn, &id, epoch, &changes, &now)
                .map_err(to_store_error)
        })
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(doc = %persist::doc_key(&doc), applied = outcome.applied, duplicates = outcome.duplicates, queued = outcome.queued, "sync changes applied");
    if !outcome.missing_deps.is_empty() {
        let _ = cmd.send(Cmd::Need(doc));
    }
    if outcome.applied > 0 {
        let _ = cmd.send(Cmd::HeadsChanged);
    }
    Ok(())
}

/// `sync.lanes` as writer ids, with this node's own.
fn provisioned_writers(
    cfg: &SyncConfig,
    store_id: &str,
    me: &WriterId,
) -> Result<Option<BTreeSet<WriterId>>, ServiceError> {
    let Some(nodes) = &cfg.lanes else {
        return Ok(None);
    };
    let mut writers = nodes
        .iter()
        .map(|node| WriterId::new(&format!("{store_id}.{node}")))
        .collect::<Result<BTreeSet<_>, _>>()?;
    writers.insert(me.clone());
    Ok(Some(writers))
}

/// Refuses (all or nothing) changes of this store's documents written by a writer that is
/// neither HQ nor a provisioned lane: applied, it would count here and its dependants
/// could never reach HQ, which refuses it too.
fn check_authors(ctx: &Ctx, changes: &RemoteChanges) -> Result<(), String> {
    let Some(lanes) = &ctx.lanes else {
        return Ok(());
    };
    let authors = match changes {
        RemoteChanges::Changes(list) => list
            .iter()
            .map(|c| crate::crdt::doc::change_author(c))
            .collect::<Result<BTreeSet<_>, _>>(),
        RemoteChanges::Bundle(bundle) => crate::crdt::doc::bundle_authors(bundle),
    }
    .map_err(|e| e.to_string())?;
    match authors.iter().find(|w| !w.is_hq() && !lanes.contains(w)) {
        Some(stranger) => Err(format!(
            "change by {stranger}, which is not a provisioned lane of this store (sync.lanes)"
        )),
        None => Ok(()),
    }
}

/// Changes of a newer epoch of the stock or orders document: move over if they hold HQ's
/// base, else ask HQ for it.
async fn move_to_epoch(
    ctx: &Ctx,
    doc: DocId,
    epoch: u32,
    changes: RemoteChanges,
    cmd: &mpsc::UnboundedSender<Cmd>,
) -> Result<(), String> {
    let docs = ctx.docs.clone();
    let is_stock = doc == ctx.stock_id;
    let moved = ctx
        .store
        .write(move |conn| {
            let now = crate::clock::now_utc();
            let mut guard = local::lock(&docs);
            let current = if is_stock {
                guard.epoch()
            } else {
                guard.orders().core().epoch()
            };
            if current.checked_add(1) != Some(epoch) {
                return Ok(false); // two epochs ahead: HQ refuses that (see README, "Epochs: bounded history")
            }
            let at_ms = crate::clock::now_ms();
            if is_stock {
                guard.move_to_epoch(conn, epoch, &changes, at_ms, &now)
            } else {
                guard.move_orders_to_epoch(conn, epoch, &changes, at_ms, &now)
            }
            .map_err(to_store_error)
        })
        .await
        .map_err(|e| e.to_string())?;
    if moved {
        let kind = if is_stock { "stock" } else { "orders" };
        tracing::info!(writer = %ctx.writer, epoch, "moved to {kind} epoch {epoch}");
        lock(&ctx.shared.peer_heads).retain(|(d, _), _| *d != doc);
        let _ = cmd.send(Cmd::HeadsChanged);
    } else {
        let _ = cmd.send(Cmd::NextEpoch(doc, epoch));
    }
    Ok(())
}

async fn on_heads(
    ctx: &Ctx,
    scope: &Scope,
    writer: &Id,
    doc: DocId,
    epoch: u32,
    heads: Vec<ChangeHash>,
    cmd: &mpsc::UnboundedSender<Cmd>,
) -> Result<(), String> {
    let current_epoch = local::lock(&ctx.docs).doc(&doc).map(SyncDoc::epoch);
    if *scope == Scope::Hq && current_epoch.is_some_and(|current| epoch > current) {
        // HQ's retained heads of a newer epoch: the announcement an offline node finds.
        announce_epoch(ctx, &doc, epoch, cmd);
        return Ok(());
    }
    if current_epoch != Some(epoch) {
        return Ok(()); // another epoch or a document we do not keep
    }
    lock(&ctx.shared.peer_heads).insert((doc.clone(), writer.as_str().to_owned()), heads.clone());
    let behind = local::lock(&ctx.docs)
        .doc(&doc)
        .is_some_and(|d| wire::is_behind(d, &heads));
    if *scope == Scope::Hq && (doc == ctx.stock_id || doc == ctx.orders_id) {
        let docs = ctx.docs.clone();
        let acked_heads = heads.clone();
        let acked_doc = doc.clone();
        let removed = ctx
            .store
            .write(move |conn| {
                let guard = local::lock(&docs);
                let Some(core) = guard.doc(&acked_doc) else {
                    return Ok(0);
                };
                local::acknowledge(conn, core, &acked_heads).map_err(to_store_error)
            })
            .await
            .map_err(|e| e.to_string())?;
        *lock(&ctx.shared.last_hq_ack_ms) = Some(crate::clock::now_ms());
        tracing::debug!(removed, "HQ acknowledged outbox changes");
    }
    if behind && *scope == Scope::Hq {
        let _ = cmd.send(Cmd::Need(doc));
    }
    Ok(())
}

/// What this incarnation heard on its own status topic (see `sync::mqtt::claim`).
fn on_own_status(ctx: &Ctx, payload: &[u8], retain: bool, cmd: &mpsc::UnboundedSender<Cmd>) {
    match judge(&ctx.claim, payload, retain) {
        Verdict::Mine => ctx
            .shared
            .own_status_seen
            .store(true, std::sync::atomic::Ordering::Relaxed),
        Verdict::ClaimAgain => {
            let _ = cmd.send(Cmd::ClaimAgain);
        }
        Verdict::Ignore => {}
        Verdict::Yield(earlier) => {
            let reason = format!(
                "another box is live as writer {} (incarnation {}, started at unix ms {}); this one (incarnation {}) refuses to sync: give one of them another node id, or stop it",
                ctx.writer, earlier.incarnation, earlier.started_ms, ctx.claim.incarnation
            );
            tracing::error!(writer = %ctx.writer, incarnation = %ctx.claim.incarnation, other = %earlier.incarnation, "{reason}");
            *lock(&ctx.shared.refused) = Some(reason);
            ctx.shutdown.cancel();
        }
    }
}

/// Ends this incarnation's wait ([`local::NodeDocs::require_adoption`]) once it holds every
/// change HQ has of the stock and orders documents: HQ's retained heads arrived before the
/// echo of this node's own status, and every hash in them is in the documents (a `Need`
/// fetched what was missing). No heads from HQ (a store it does not know yet, or heads of a
/// newer epoch, which the epoch switch handles) means nothing to wait for. The commit that
/// ends the wait records everything sold meanwhile, on top of the totals caught up.
async fn try_adopt(ctx: &Ctx) -> Result<(), String> {
    let seen = ctx
        .shared
        .own_status_seen
        .load(std::sync::atomic::Ordering::Relaxed);
    if !seen || !local::lock(&ctx.docs).is_adopting() {
        return Ok(());
    }
    let hq_heads: Vec<(DocId, Vec<ChangeHash>)> = {
        let heads = lock(&ctx.shared.peer_heads);
        [&ctx.stock_id, &ctx.orders_id]
            .into_iter()
            .filter_map(|id| {
                let key = (id.clone(), crate::crdt::doc::HQ_WRITER.to_owned());
                heads.get(&key).map(|h| (id.clone(), h.clone()))
            })
            .collect()
    };
    let docs = ctx.docs.clone();
    let adopted = ctx
        .store
        .write(move |_conn| {
            let mut guard = local::lock(&docs);
            let caught_up = hq_heads.iter().all(|(id, heads)| {
                guard
                    .doc(id)
                    .is_none_or(|doc| doc.known_heads(heads).len() == heads.len())
            });
            if caught_up && guard.is_adopting() {
                guard.finish_adoption();
                return Ok(true);
            }
            Ok(false)
        })
        .await
        .map_err(|e| e.to_string())?;
    if adopted {
        tracing::info!(writer = %ctx.writer, incarnation = ctx.writer.incarnation(), "caught up with HQ; this incarnation writes from now on");
    }
    Ok(())
}

/// The publisher's memory of what it sent on the current connection.
#[derive(Default)]
struct Sent {
    changes: HashSet<ChangeHash>,
    heads: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Per peer: own changes it lacked at the previous tick.
    lacking: BTreeMap<String, BTreeSet<ChangeHash>>,
    /// Orders changes that were waiting in the outbox at the previous tick.
    orders_waiting: BTreeSet<ChangeHash>,
}

async fn publish_loop(
    ctx: Arc<Ctx>,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
    changed: Arc<Notify>,
    resend: Duration,
    shutdown: CancellationToken,
) {
    let mut sent = Sent::default();
    let mut tick = tokio::time::interval(resend);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut needs: BTreeSet<DocId> = BTreeSet::new();
        let mut on_tick = false;
        let mut next_epoch: Option<(DocId, u32)> = None;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = changed.notified() => {}
            _ = tick.tick() => on_tick = true,
            next = cmd.recv() => match next {
                None => return,
                Some(Cmd::Connected) => {
                    sent = Sent::default();
                    needs.insert(ctx.stock_id.clone());
                    needs.insert(ctx.catalog_id.clone());
                    needs.insert(ctx.orders_id.clone());
                }
                Some(Cmd::Need(doc)) => { needs.insert(doc); }
                Some(Cmd::NextEpoch(doc, epoch)) => next_epoch = Some((doc, epoch)),
                Some(Cmd::HeadsChanged) => {}
                Some(Cmd::ClaimAgain) => {
                    let claim = ctx.claim.encode();
                    if let Err(e) = publish(&ctx, &ctx.status_topic, claim, true).await {
                        tracing::warn!(error = %e, "cannot publish the status claim again");
                    }
                    continue;
                }
            },
        }
        if !ctx.mqtt.is_connected() {
            continue;
        }
        if let Some((doc, epoch)) = next_epoch
            && let Err(e) = send_epoch_need(&ctx, &doc, epoch).await
        {
            tracing::warn!(error = %e, epoch, "cannot ask HQ for the new epoch; retried on its next heads");
        }
        if let Err(e) = publish_round(&ctx, &mut sent, &needs, on_tick).await
            && !shutdown.is_cancelled()
        {
            tracing::warn!(error = %e, "sync publish round failed; retried later");
        }
    }
}

async fn publish_round(
    ctx: &Ctx,
    sent: &mut Sent,
    needs: &BTreeSet<DocId>,
    on_tick: bool,
) -> Result<(), PublishError> {
    let outbox = ctx
        .store
        .read({
            let id = ctx.stock_id.clone();
            let epoch = local::lock(&ctx.docs).epoch();
            move |conn| persist::outbox(conn, &id, epoch).map_err(to_store_error)
        })
        .await
        .unwrap_or_default();
    let fresh: Vec<ChangeHash> = outbox
        .iter()
        .map(|e| e.hash)
        .filter(|h| !sent.changes.contains(h))
        .collect();
    let mut messages = Vec::new();
    {
        let docs = local::lock(&ctx.docs);
        let stock = docs.stock().core();
        messages.extend(changes_or_log(stock, &fresh));
        if on_tick {
            for hashes in stalled_peers(ctx, stock, sent) {
                messages.extend(changes_or_log(stock, &hashes));
            }
        }
    }
    for payload in messages {
        publish(ctx, &ctx.changes_topic, payload, false).await?;
    }
    sent.changes.extend(fresh);
    publish_orders_outbox(ctx, sent, on_tick).await?;
    publish_heads(ctx, sent).await?;
    for doc in needs {
        send_need(ctx, doc).await?;
    }
    Ok(())
}

fn changes_or_log(doc: &SyncDoc, hashes: &[ChangeHash]) -> Vec<Vec<u8>> {
    match wire::changes_messages(doc, hashes) {
        Ok(messages) => messages,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode outbox changes");
            Vec::new()
        }
    }
}

/// Own changes that a peer (HQ or another lane) lacked at the previous tick and still lacks:
/// re-offered once per interval, so a lost message or a peer that was away is repaired
/// without resending anything the peer has.
fn stalled_peers(ctx: &Ctx, stock: &SyncDoc, sent: &mut Sent) -> Vec<Vec<ChangeHash>> {
    let heads = lock(&ctx.shared.peer_heads).clone();
    let mut resend = Vec::new();
    for ((doc, peer), peer_heads) in heads {
        if doc != ctx.stock_id {
            continue;
        }
        let lacking: BTreeSet<ChangeHash> =
            stock.own_changes_not_in(&peer_heads).into_iter().collect();
        let previous = sent
            .lacking
            .insert(peer.clone(), lacking.clone())
            .unwrap_or_default();
        let stalled: Vec<ChangeHash> = stock
            .own_changes_not_in(&peer_heads)
            .into_iter()
            .filter(|h| previous.contains(h))
            .collect();
        if !stalled.is_empty() {
            tracing::debug!(
                peer,
                changes = stalled.len(),
                "re-offering changes a peer lacks"
            );
            resend.push(stalled);
        }
    }
    resend
}

/// Sends the orders changes in the outbox not yet sent on this connection. They stay in the
/// outbox until HQ's heads of the orders document include them; one still waiting a full
/// resend interval later is offered again (orders changes are rare, and HQ ignores a
/// change it has).
async fn publish_orders_outbox(
    ctx: &Ctx,
    sent: &mut Sent,
    on_tick: bool,
) -> Result<(), PublishError> {
    let outbox = ctx
        .store
        .read({
            let id = ctx.orders_id.clone();
            let epoch = epoch_of(ctx, &id);
            move |conn| persist::outbox(conn, &id, epoch).map_err(to_store_error)
        })
        .await
        .unwrap_or_default();
    if on_tick {
        let waiting: BTreeSet<ChangeHash> = outbox.iter().map(|e| e.hash).collect();
        for stalled in waiting.intersection(&sent.orders_waiting) {
            sent.changes.remove(stalled);
        }
        sent.orders_waiting = waiting;
    }
    let fresh: Vec<ChangeHash> = outbox
        .iter()
        .map(|e| e.hash)
        .filter(|h| !sent.changes.contains(h))
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let messages = changes_or_log(local::lock(&ctx.docs).orders().core(), &fresh);
    for payload in messages {
        publish(ctx, &ctx.orders_changes_topic, payload, false).await?;
    }
    sent.changes.extend(fresh);
    Ok(())
}

async fn publish_heads(ctx: &Ctx, sent: &mut Sent) -> Result<(), PublishError> {
    let current: Vec<(DocId, Vec<ChangeHash>, Vec<u8>)> = {
        let docs = local::lock(&ctx.docs);
        [
            docs.stock().core(),
            docs.catalog().core(),
            docs.orders().core(),
        ]
        .into_iter()
        .filter_map(|doc| {
            let encoded = wire::heads_message(doc).encode().ok()?;
            Some((doc.id().clone(), doc.heads(), encoded))
        })
        .collect()
    };
    for (doc, heads, payload) in current {
        if sent.heads.get(&doc) == Some(&heads) {
            continue;
        }
        let Some(topic) = ctx.heads_topics.get(&doc) else {
            continue;
        };
        publish(ctx, topic, payload, true).await?;
        sent.heads.insert(doc, heads);
    }
    Ok(())
}

async fn send_need(ctx: &Ctx, doc: &DocId) -> Result<(), PublishError> {
    let reply_to = ctx.topics.response(&ctx.scope, &ctx.me).to_string();
    let payload = {
        let docs = local::lock(&ctx.docs);
        let Some(d) = docs.doc(doc) else {
            return Ok(());
        };
        wire::need_message(d, &reply_to).encode()
    };
    let Ok(payload) = payload else {
        return Ok(());
    };
    let topic = ctx.topics.request(&ctx.scope, &ctx.me).to_string();
    let mut message = OutgoingMessage::new(topic, payload, QoS::AtLeastOnce);
    message.response_topic = Some(reply_to);
    send(ctx, message).await
}

/// Asks HQ for epoch `epoch` of `doc` from its deterministic genesis.
async fn send_epoch_need(ctx: &Ctx, doc: &DocId, epoch: u32) -> Result<(), PublishError> {
    let reply_to = ctx.topics.response(&ctx.scope, &ctx.me).to_string();
    let Ok(genesis) = SyncDoc::genesis(doc, epoch, ctx.writer.clone()) else {
        return Ok(());
    };
    let Ok(payload) = wire::need_message(&genesis, &reply_to).encode() else {
        return Ok(());
    };
    let topic = ctx.topics.request(&ctx.scope, &ctx.me).to_string();
    let mut message = OutgoingMessage::new(topic, payload, QoS::AtLeastOnce);
    message.response_topic = Some(reply_to);
    send(ctx, message).await
}

async fn publish(
    ctx: &Ctx,
    topic: &str,
    payload: Vec<u8>,
    retain: bool,
) -> Result<(), PublishError> {
    let mut message = OutgoingMessage::new(topic, payload, QoS::AtLeastOnce);
    message.retain = retain;
    send(ctx, message).await
}

async fn send(ctx: &Ctx, message: OutgoingMessage) -> Result<(), PublishError> {
    let size = message.payload.len();
    let topic = message.topic.clone();
    match ctx.mqtt.publish_message(message).await {
        Ok(_) => {
            ctx.shared.metrics.count_out(size);
            ctx.shared
                .publish_denied
                .store(false, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Err(PublishError::Denied) => {
            ctx.shared
                .metrics
                .denied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ctx.shared
                .publish_denied
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                topic,
                "broker denied the publish (PUBACK 135): check this store's certificate and the broker ACL"
            );
            Err(PublishError::Denied)
        }
        Err(e) => Err(e),
    }
}

/// The topic segment of a document kind.
pub fn kind_id(kind: DocKind) -> Result<Id, topics::TopicError> {
    Id::new(kind.as_str())
}

/// The scope a document belongs to: HQ for the catalog, else its store.
pub fn scope_of(doc: &DocId) -> Result<Scope, topics::TopicError> {
    if doc.store == CATALOG_STORE {
        Ok(Scope::Hq)
    } else {
        Scope::store(Id::new(doc.store.clone())?)
    }
}
