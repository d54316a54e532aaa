//! HQ's state: every store's documents (rebuilt from HQ's SQLite) and the chain-wide stock
//! table derived from them. Pure message handling: bytes in, outgoing messages out; the
//! MQTT plumbing lives in `hq/mod.rs`.
//!
//! - `ingest.rs`: stores' messages in (checked, applied in batches, stored, answered);
//! - `stock.rs`: the chain-wide stock rows and what HQ serves of them;
//! - `epoch.rs`: opening a store's next stock epoch (its orders epoch with it);
//! - `catalog.rs`: HQ's catalog document (items, prices, pricing rules);
//! - `fresh.rs`: documents kept in step with the database (several HQ instances);
//! - `figures.rs`: per coupon and per member, the lanes' totals as rows (read models);
//! - `lru.rs`: at most `[hq] documents_in_memory` documents in memory, reloaded on use;
//!
//! What HQ does with the stores' orders documents lives beside this, in [`super::orders`]
//! and [`super::transfers`].

#[cfg(test)]
mod bounded_tests;
mod catalog;
mod epoch;
mod figures;
#[cfg(test)]
mod figures_tests;
mod fresh;
mod ingest;
mod lru;
mod retired;
#[cfg(test)]
mod retired_tests;
mod stock;
#[cfg(test)]
mod tests;

pub use lru::DEFAULT_DOCUMENTS_IN_MEMORY;
pub use stock::StoreSku;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::db::docs::{self, DocStoreError};
use super::db::{Db, DbError, Target};
use crate::crdt::catalog::{CATALOG_STORE, CatalogError};
use crate::crdt::doc::{self, AuthError, DocError, DocId, DocKind, SyncDoc, WriterId};
use crate::crdt::epoch::EpochError;
use crate::sync::persist;
use crate::sync::service::{kind_id, scope_of};
use crate::sync::topics::{self, Id, Scope, TopicSpace};
use crate::sync::wire::{self, WireError};

#[derive(Debug, thiserror::Error)]
pub enum HqError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    DocStore(#[from] DocStoreError),
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Topic(#[from] topics::TopicError),
    #[error(transparent)]
    Epoch(#[from] EpochError),
    #[error(transparent)]
    OrdersEpoch(#[from] crate::crdt::epoch_orders::OrdersEpochError),
    #[error("no stock document of store {0:?} yet (it never synced)")]
    UnknownStore(String),
    #[error("store {0:?} has writers that have not moved to its current epoch yet")]
    EpochPending(String),
}

/// Why a message from the network was refused (logged and counted, never applied).
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("bad topic: {0}")]
    Topic(#[from] topics::TopicError),
    #[error("bad payload: {0}")]
    Payload(#[from] crate::sync::payload::PayloadError),
    #[error("payload of {0} bytes is over the cap")]
    TooLarge(usize),
    #[error("store {scope} published about document {doc}")]
    WrongStore { scope: String, doc: String },
    #[error("forged or out-of-scope change: {0}")]
    Unauthorised(#[from] AuthError),
    #[error("change is for epoch {got}, HQ is on epoch {current} of {store}")]
    OtherEpoch {
        store: String,
        got: u32,
        current: u32,
    },
    #[error("cannot apply: {0}")]
    Apply(String),
    #[error("unexpected message on this topic")]
    Unexpected,
    #[error("not a status: neither `offline` nor an `online` claim")]
    Status,
    #[error("status of {writer:?}, which is not a lane of store {store:?}")]
    StatusWriter { store: String, writer: String },
    #[error("{writer} was retired (storenode lane retire); its later changes are refused")]
    Retired { writer: String },
}

impl Rejected {
    /// The reason as counted and logged (`storenode_hq_rejected_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Topic(_) => "topic",
            Self::Payload(_) => "payload",
            Self::TooLarge(_) => "too_large",
            Self::WrongStore { .. } => "wrong_store",
            Self::Unauthorised(_) => "unauthorised",
            Self::OtherEpoch { .. } => "other_epoch",
            Self::Apply(_) => "apply",
            Self::Unexpected => "unexpected",
            Self::Status | Self::StatusWriter { .. } => "status",
            Self::Retired { .. } => "retired",
        }
    }
}

impl From<HqError> for Rejected {
    /// HQ could not store or lock what it was given: refused now, the store sends it again.
    fn from(e: HqError) -> Self {
        Rejected::Apply(e.to_string())
    }
}

/// A message for the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// HQ's documents and database. The fields are open to all of `hq`: [`super::orders`] and
/// [`super::transfers`] work on the same documents and connection.
pub struct HqState {
    pub(in crate::hq) db: Db,
    pub(in crate::hq) topics: TopicSpace,
    pub(in crate::hq) writer: WriterId,
    /// The documents in memory, least recently used dropped first (`lru.rs`); every use
    /// goes through [`Self::refresh`], which loads one that is not.
    pub(in crate::hq) docs: lru::Documents,
    /// The stored version each document in `docs` was loaded at or written to (`fresh.rs`).
    pub(in crate::hq) versions: BTreeMap<DocId, i64>,
    /// Per document, the last logged change (row id) its copy holds: where catching up from
    /// another instance's writes starts (`fresh.rs`).
    pub(in crate::hq) log_marks: BTreeMap<DocId, i64>,
    /// Documents rebuilt whole from the database because another instance wrote them and
    /// catching up from the log could not be done.
    pub(in crate::hq) reloads: u64,
    /// Documents dropped from memory past the bound (`lru.rs`).
    pub(in crate::hq) evictions: u64,
    /// Where [`Self::trim`] publishes the three figures above for `/metrics`.
    gauges: Option<Arc<crate::hq::ops::DocumentGauges>>,
    pub(in crate::hq) epochs: BTreeMap<String, u32>,
    pub(in crate::hq) safety_stock: i64,
    /// Provisioned lanes per store (`[hq.lanes]`); a store not listed takes any of its
    /// `{store}.{node}` writers.
    pub(in crate::hq) lanes: BTreeMap<String, BTreeSet<WriterId>>,
    /// HQ's own writes also take one lock shared by all of them, as before per-document
    /// locks (only for `examples/bench_hq_writes`' before/after figure).
    one_write_lock: bool,
}

impl HqState {
    /// Opens HQ's state in a SQLite file (the embedded backend).
    pub fn open(path: &Path, tenant: &str, safety_stock: i64) -> Result<Self, HqError> {
        Self::open_target(&Target::Sqlite(path.to_owned()), tenant, safety_stock)
    }

    /// Opens HQ's state in the configured database, SQLite or PostgreSQL.
    pub fn open_target(target: &Target, tenant: &str, safety_stock: i64) -> Result<Self, HqError> {
        let mut state = Self {
            db: Db::open(target)?,
            topics: TopicSpace::new(Id::new(tenant)?),
            // A new actor per start: two instances (or one restored from a backup) never
            // make different changes under the same actor and sequence number.
            writer: WriterId::hq().new_incarnation(),
            docs: lru::Documents::new(Some(DEFAULT_DOCUMENTS_IN_MEMORY)),
            versions: BTreeMap::new(),
            log_marks: BTreeMap::new(),
            reloads: 0,
            evictions: 0,
            gauges: None,
            epochs: BTreeMap::new(),
            safety_stock,
            lanes: BTreeMap::new(),
            one_write_lock: false,
        };
        state.load_docs()?;
        Ok(state)
    }

    /// Publishes the documents in memory, evictions and loads to `gauges` after each
    /// operation (HQ's `/metrics`).
    pub fn with_gauges(mut self, gauges: Arc<crate::hq::ops::DocumentGauges>) -> Self {
        self.gauges = Some(gauges);
        self
    }

    /// Takes changes about each listed store only from its provisioned lanes: a certificate
    /// of store S can publish as any `S.{node}`, so without this a made-up lane would count.
    pub fn with_lanes(mut self, lanes: BTreeMap<String, BTreeSet<WriterId>>) -> Self {
        self.lanes = lanes;
        self
    }

    /// Makes HQ's own writes (orders, escrow, grants, relays, the catalog, epoch cuts) wait
    /// for each other on one lock, whatever documents they touch, as HQ did before it locked
    /// per document: the "before" of `examples/bench_hq_writes`. Never set by `storenode hq`.
    #[doc(hidden)]
    pub fn with_one_write_lock(mut self) -> Self {
        self.one_write_lock = true;
        self
    }

    /// Keeps at most `capacity` documents in memory between operations (`None`: all).
    pub fn with_documents_in_memory(mut self, capacity: Option<usize>) -> Self {
        self.docs = lru::Documents::new(capacity);
        self.versions.clear();
        self.log_marks.clear();
        self
    }

    /// Reads the stores' epochs; documents are loaded when first used (`fresh.rs`), so a
    /// start costs the same with 10 stores or 10,000.
    fn load_docs(&mut self) -> Result<(), HqError> {
        let stores: Vec<(String, u32)> =
            self.db
                .query("SELECT store, epoch FROM hq_store", &[], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        self.epochs.extend(stores);
        self.index_stored_orders()?;
        self.fill_figures()
    }

    /// Document `id` as stored, loaded if it is not in memory (`None`: nothing stored).
    pub(in crate::hq) fn doc(&mut self, id: &DocId) -> Result<Option<&SyncDoc>, HqError> {
        self.refresh(id)?;
        Ok(self.docs.get(id))
    }

    /// Every store's orders document as stored, loaded one by one: how a coupon's holders
    /// and a member's ledger were read before `figures.rs` (the tests compare the two).
    #[cfg(test)]
    pub(in crate::hq) fn all_orders_docs(&mut self) -> Result<Vec<SyncDoc>, HqError> {
        let mut out = Vec::new();
        for store in self.stores()? {
            let id = DocId::new(&store, DocKind::Orders)?;
            if let Some(doc) = self.doc(&id)? {
                out.push(doc.clone());
            }
        }
        Ok(out)
    }

    /// HQ's catalog document, loaded, or its genesis before anything was published.
    pub(in crate::hq) fn load_catalog(&mut self) -> Result<DocId, HqError> {
        let id = DocId::new(CATALOG_STORE, DocKind::Catalog)?;
        self.refresh(&id)?;
        if !self.docs.contains_key(&id) {
            let doc = docs::load_or_genesis(&self.db, &id, 0, self.writer.clone())?;
            self.docs.insert(id.clone(), doc);
        }
        Ok(id)
    }

    pub fn topics(&self) -> &TopicSpace {
        &self.topics
    }

    /// HQ's retained heads of document `id`: its acknowledgement to the stores.
    pub(in crate::hq) fn heads_outgoing(&self, id: &DocId) -> Result<Outgoing, HqError> {
        let Some(doc) = self.docs.get(id) else {
            return Err(HqError::Doc(DocError::NotOurDocument(persist::doc_key(id))));
        };
        self.heads_outgoing_of(id, wire::heads_message(doc))
    }

    fn heads_outgoing_of(
        &self,
        id: &DocId,
        message: wire::payload::SyncMessage,
    ) -> Result<Outgoing, HqError> {
        let topic = self.topics.heads(
            &Scope::Hq,
            &scope_of(id)?,
            &kind_id(id.kind)?,
            &Id::new(self.writer.as_str())?,
        );
        Ok(Outgoing {
            topic: topic.to_string(),
            payload: message.encode().map_err(WireError::from)?,
            retain: true,
        })
    }

    /// Retained heads of every stored document, published on every (re)connect, from the
    /// heads recorded with each document's last write: no document is loaded, so a
    /// reconnect costs one row per document, not every store's history. A row from before
    /// heads were recorded loads its document (memory cut back to the bound as it goes).
    pub fn all_heads(&mut self) -> Result<Vec<Outgoing>, HqError> {
        let mut out = Vec::new();
        for (key, heads) in docs::stored_heads(&self.db)? {
            let Some(id) = fresh::id_of_key(&key) else {
                continue;
            };
            let stored = heads.as_deref().and_then(docs::heads_from_bytes);
            let heads = match stored {
                Some(hashes) => {
                    let epoch = self.stored_epoch(&id)?;
                    self.heads_outgoing_of(&id, wire::heads_message_of(&id, epoch, &hashes))
                }
                None => {
                    self.refresh(&id)?;
                    let heads = self.heads_outgoing(&id);
                    self.trim();
                    heads
                }
            };
            if let Ok(heads) = heads {
                out.push(heads);
            }
        }
        Ok(out)
    }

    /// The epoch of `id` as stored (what a load of it would read).
    fn stored_epoch(&self, id: &DocId) -> Result<u32, HqError> {
        match id.kind {
            DocKind::Stock => fresh::stored_stock_epoch(&self.db, &id.store),
            DocKind::Orders => self.stored_orders_epoch(id),
            DocKind::Catalog => Ok(0),
        }
    }
}

/// Re-export for the HTTP layer.
pub use doc::HQ_WRITER;
