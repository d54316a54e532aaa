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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::crdt::doc::{DocId, WriterId};
use crate::store::Store;
use crate::sync::local::{self, SharedDocs};
use crate::sync::mqtt::claim::Claim;
use crate::sync::mqtt::topics::{self, Id, Scope, TopicSpace};
use crate::sync::mqtt::transport::MqttHandle;
use crate::sync::persist;
use crate::sync::wire::WireMetrics;

mod catalog_worker;
mod inbound;
mod lanes;
mod outbound;
mod reoffer;
mod start;

pub use lanes::{LaneView, RetireError};
pub use reoffer::ReofferView;

pub use start::subscriptions;
// HQ and the examples import these from here; they belong to the status claim and the
// topic layout.
pub use crate::sync::mqtt::claim::{OFFLINE, ONLINE, is_online};
pub use crate::sync::mqtt::topics::{kind_id, scope_of};

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
    /// Set when another box is live as this writer, or this lane was retired: this one
    /// stopped syncing, and why.
    pub clone_refused: Option<String>,
    /// Peers that lack this lane's changes: how many, re-offers so far, the next one.
    pub reoffers: Vec<ReofferView>,
    /// Lanes retired with `storenode lane retire` (writer ids).
    pub retired_lanes: Vec<String>,
}

/// When the steps of the catch-up after the latest (re)connect happened: where the time
/// from a reconnect to HQ's acknowledgement goes (benchmarks; `bench_sync` prints it).
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchUp {
    /// The broker's CONNACK reached the receiver.
    pub connected: Option<Instant>,
    /// The publisher's first round after it began (the backlog is read from here).
    pub round_began: Option<Instant>,
    /// Own movements waiting in SQLite were recorded as changes (committed).
    pub recorded: Option<Instant>,
    /// The broker acknowledged (PUBACK) every stock change message of the first round
    /// that sent any, and of the latest one.
    pub first_published: Option<Instant>,
    pub last_published: Option<Instant>,
    /// The last of HQ's heads that removed changes from the outbox.
    pub acknowledged: Option<Instant>,
}

/// State shared by the two tasks and the handle.
#[derive(Debug, Default)]
struct Shared {
    /// The latest catch-up's timeline.
    catch_up: Mutex<CatchUp>,
    /// The HQ instances whose retained status says online (one `hq`, or several
    /// `hq-{instance}` over one database): HQ is online while any is.
    hq_online: Mutex<std::collections::BTreeSet<String>>,
    /// Latest heads per (doc, publisher writer): HQ's and the other lanes'.
    peer_heads: Mutex<BTreeMap<(DocId, String), Vec<ChangeHash>>>,
    /// HQ's latest retained heads per document, with their epoch (also a newer one than
    /// this node's): what a new incarnation must hold before it writes.
    hq_heads: Mutex<BTreeMap<DocId, (u32, Vec<ChangeHash>)>>,
    last_hq_ack_ms: Mutex<Option<i64>>,
    metrics: WireMetrics,
    /// The last [`SyncService::refresh_diag`] result, for synchronous readers (metrics).
    last_diag: Mutex<Option<SyncDiag>>,
    /// The broker echoed this incarnation's own `online` status: every retained message of
    /// the subscription (HQ's heads) was delivered before it.
    own_status_seen: std::sync::atomic::AtomicBool,
    /// The last publish came back with PUBACK 135 (cleared by the next accepted one).
    publish_denied: std::sync::atomic::AtomicBool,
    /// Another box is live as this writer and started first, or this lane was retired: why
    /// this one stopped syncing.
    refused: Mutex<Option<String>>,
    /// Retired writers of this store and their retained record (`storenode lane retire`).
    retired: Mutex<BTreeMap<String, String>>,
    /// Per writer, how many heads and status messages were heard of it: a sign of life that
    /// resets the re-offer backoff.
    heard: Mutex<BTreeMap<String, u64>>,
    /// Last status heard per writer of this store: `online` or `offline`.
    statuses: Mutex<BTreeMap<String, bool>>,
    /// The publisher's view of its re-offers, for `diag sync`.
    reoffers: Mutex<Vec<ReofferView>>,
}

impl Shared {
    fn heard_of(&self, writer: &str) -> u64 {
        lock(&self.heard).get(writer).copied().unwrap_or(0)
    }

    fn hear(&self, writer: &str) {
        *lock(&self.heard).entry(writer.to_owned()).or_insert(0) += 1;
    }
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
    ctx: Arc<Ctx>,
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
    /// Member lookups by phone or e-mail, answered by HQ (`super::find`).
    finder: Arc<super::find::MemberFinder>,
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
            .read(|conn| persist::pending_len(conn).map_err(to_store_error))
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
            hq_online: !lock(&self.shared.hq_online).is_empty(),
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
            reoffers: lock(&self.shared.reoffers).clone(),
            retired_lanes: lock(&self.shared.retired).keys().cloned().collect(),
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

    /// The timeline of the catch-up after the latest (re)connect.
    pub fn catch_up(&self) -> CatchUp {
        *lock(&self.shared.catch_up)
    }

    /// Asks HQ for the members with this phone or e-mail (see [`super::find`]).
    pub async fn find_members(
        &self,
        query: crate::domain::member_find::MemberQuery,
    ) -> Result<crate::domain::member_find::MemberMatches, super::find::FindUnavailable> {
        let hq_online = !lock(&self.shared.hq_online).is_empty();
        self.ctx
            .finder
            .find(query, hq_online, super::find::FIND_TIMEOUT)
            .await
    }

    fn hq_heads(&self, doc: &DocId) -> Vec<ChangeHash> {
        lock(&self.shared.peer_heads)
            .get(&(doc.clone(), crate::crdt::doc::HQ_WRITER.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// Notes a step of the catch-up timeline (see [`CatchUp`]).
fn note(shared: &Shared, step: impl FnOnce(&mut CatchUp, Instant)) {
    step(&mut lock(&shared.catch_up), Instant::now());
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn to_store_error(e: impl std::fmt::Display) -> crate::store::StoreError {
    crate::store::StoreError::Inconsistent(format!("sync: {e}"))
}

/// The epoch this node is on for `doc` (stock and orders roll; the catalog stays at 0).
fn epoch_of(ctx: &Ctx, doc: &DocId) -> u32 {
    local::lock(&ctx.docs).epoch_of(doc).unwrap_or(0)
}
