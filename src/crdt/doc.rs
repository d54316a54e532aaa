//! The automerge document core shared by every synced document (stock, orders, catalog).
//!
//! # Writers and actors
//! Every node that writes (a store lane such as `s001.lane1`, or `hq`) is a *writer* with a
//! stable [`WriterId`]; its entries live under `writers/{id}`. Each start of a lane is a new
//! *incarnation* with its own automerge actor `{id}~{random hex}` ([`WriterId::actor`]);
//! HQ and writers from before incarnations use the id's bytes. HQ reads the writer of a
//! change from its actor ([`change_author`]) without a lookup table.
//!
//! The same actor making a second, different change with the same sequence number is
//! rejected by every peer for good (automerge's duplicate-sequence check). A database
//! restored from a backup is behind what its writer already published, so writing from it
//! with the old actor would do exactly that; a fresh actor per incarnation never can. Its
//! puts must still come after the earlier incarnations' ones (the totals are registers),
//! which the lane ensures by catching up before its first write (`local::NodeDocs`,
//! "adoption").
//!
//! # Genesis
//! One document exists per (store, kind, epoch). Every node builds the identical genesis
//! change ([`SyncDoc::genesis`]): a fixed actor ([`GENESIS_ACTOR`]), timestamp 0, and fixed
//! content: the root maps the model needs plus the document's identity (`store`, `kind`,
//! `epoch`). Identical bytes give an identical hash everywhere, so nobody's maps conflict
//! with anybody else's. Putting the identity into genesis also means a change made in
//! another store's or another epoch's document depends on a different root and can never be
//! applied here by mistake: it waits as a missing dependency instead.
//!
//! # Sync helpers
//! [`SyncDoc::changes_since`] answers "I have these heads, what am I missing" and copes
//! with heads this document does not know (see there); [`SyncDoc::apply_changes`] decodes a
//! whole batch before touching state; [`SyncDoc::own_changes_not_in`] drives the durable
//! outbox (a change leaves the outbox once HQ's heads include it).
//!
//! # Authorisation (HQ side)
//! [`SyncDoc::check_change`] checks that a change comes from an allowed writer and only
//! touches what that writer owns: its own key under `writers`, its own order ids under
//! `orders`, objects it created itself, and (for `hq` only) the HQ-owned genesis maps.

use std::collections::BTreeSet;
use std::fmt;

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{
    ActorId, Automerge, AutomergeError, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc,
    ScalarValue,
};

mod auth;
mod changes;
mod read;
mod writer;

use auth::is_genesis_actor;
pub use auth::{
    AuthError, authored_times, bundle_authored_times, bundle_authors, change_author,
    order_id_belongs_to,
};
use changes::{decode_bundle, decode_change, decode_changes};
pub use changes::{hash_from_hex, hash_to_hex, touched_keys, touched_paths};
pub use read::{child_map, int_at, int_entries, int_of, map_at, map_at_heads, map_keys, str_at};
pub use writer::{INCARNATION_SEPARATOR, WriterId};

/// Actor of the genesis change. `~` is not allowed in writer ids, so no writer can be it.
pub const GENESIS_ACTOR: &[u8] = b"~genesis";
/// The HQ writer id.
pub use crate::domain::HQ_WRITER;
/// Longest writer id accepted (bytes). Keeps actor ids small in every change.
pub const MAX_WRITER_ID_LEN: usize = 64;
/// Longest store id accepted (bytes).
pub use crate::domain::ids::MAX_STORE_ID_LEN;

/// Root map holding one map per writer, each created by that writer.
pub const KEY_WRITERS: &str = "writers";
/// Root map of the HQ-written per-SKU base of a stock epoch.
pub const KEY_BASE: &str = "base";
/// Root map of the epoch cut (writer → hex hash of its last change in the cut).
pub const KEY_CUT: &str = "cut";
/// Root map of orders, keyed by order id (prefixed with the creating writer id).
pub const KEY_ORDERS: &str = "orders";
/// Root map of catalog items, written by HQ only.
pub const KEY_ITEMS: &str = "items";

/// Errors of the document core.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("invalid writer id {0:?}: use 1-64 bytes of a-z, 0-9, '.', '-', '_'")]
    InvalidWriterId(String),
    #[error("invalid store id {0:?}: use 1-64 bytes of a-z, 0-9, '.', '-', '_'")]
    InvalidStoreId(String),
    #[error("change #{index} of the batch is malformed: {reason}")]
    MalformedChange { index: usize, reason: String },
    #[error("saved document could not be loaded: {0}")]
    Load(String),
    #[error("document is not a storenode document: {0}")]
    NotOurDocument(String),
    #[error("document is a {found:?} document, expected {expected:?}")]
    WrongKind { expected: DocKind, found: DocKind },
    #[error("automerge refused the operation: {0}")]
    Automerge(Box<AutomergeError>),
}

// Boxed: automerge's error is large and would bloat every `Result` (clippy result_large_err).
// Boxed: automerge's error is large and would bloat every `Result` (clippy result_large_err).
impl From<AutomergeError> for DocError {
    fn from(e: AutomergeError) -> Self {
        Self::Automerge(Box::new(e))
    }
}

/// The one error pattern of the document modules: each module's error has a
/// `Doc(#[from] DocError)` variant for what the core refuses, and automerge's own errors
/// reach it through [`DocError`] (boxed there once). `doc_error!(StockError)` writes the
/// conversion.
macro_rules! doc_error {
    ($error:ty) => {
        impl From<automerge::AutomergeError> for $error {
            fn from(e: automerge::AutomergeError) -> Self {
                Self::Doc($crate::crdt::doc::DocError::from(e))
            }
        }
    };
}
pub(crate) use doc_error;

/// Which kind of document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum DocKind {
    Stock,
    Orders,
    Catalog,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stock => "stock",
            Self::Orders => "orders",
            Self::Catalog => "catalog",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stock" => Some(Self::Stock),
            "orders" => Some(Self::Orders),
            "catalog" => Some(Self::Catalog),
            _ => None,
        }
    }

    /// Root maps created in genesis, in creation order (the order fixes their object ids).
    fn genesis_maps(self) -> &'static [&'static str] {
        match self {
            Self::Stock => &[KEY_WRITERS, KEY_BASE, KEY_CUT],
            Self::Orders => &[KEY_WRITERS, KEY_ORDERS],
            Self::Catalog => &[KEY_WRITERS, KEY_ITEMS],
        }
    }
}

/// Identity of a synced document (without its epoch). The catalog uses the store id `hq`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct DocId {
    pub store: String,
    pub kind: DocKind,
}

impl DocId {
    pub fn new(store: &str, kind: DocKind) -> Result<Self, DocError> {
        if crate::domain::ids::is_name(store, MAX_STORE_ID_LEN) {
            Ok(Self {
                store: store.to_owned(),
                kind,
            })
        } else {
            Err(DocError::InvalidStoreId(store.to_owned()))
        }
    }
}

/// A change this node just made: the hash (for the outbox key) and its encoded bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalChange {
    pub hash: ChangeHash,
    pub bytes: Vec<u8>,
}

/// What [`SyncDoc::apply_changes`] did with a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Changes that are now part of the document and were not before.
    pub applied: usize,
    /// Changes the document already had (replays are harmless).
    pub duplicates: usize,
    /// Changes held back until their dependencies arrive.
    pub queued: usize,
    /// Hashes of the dependencies still missing (ask a peer for them).
    pub missing_deps: Vec<ChangeHash>,
}

/// An automerge document with its identity and the local writer.
#[derive(Debug, Clone)]
pub struct SyncDoc {
    doc: Automerge,
    id: DocId,
    epoch: u32,
    writer: WriterId,
}

impl SyncDoc {
    /// The identical genesis document every node builds for (`id`, `epoch`), then owned by
    /// `writer`.
    pub fn genesis(id: &DocId, epoch: u32, writer: WriterId) -> Result<Self, DocError> {
        let mut doc = Automerge::new().with_actor(ActorId::from(GENESIS_ACTOR));
        let mut tx = doc.transaction();
        tx.put(ROOT, "store", id.store.as_str())?;
        tx.put(ROOT, "kind", id.kind.as_str())?;
        tx.put(ROOT, "epoch", i64::from(epoch))?;
        for name in id.kind.genesis_maps() {
            tx.put_object(ROOT, *name, ObjType::Map)?;
        }
        // Fixed time and no message: the genesis bytes (and hash) must be identical everywhere.
        tx.commit_with(CommitOptions::default().with_time(0));
        doc.set_actor(writer.actor());
        Ok(Self {
            doc,
            id: id.clone(),
            epoch,
            writer,
        })
    }

    /// Loads a saved document (saved by any writer) and continues it as `writer`.
    pub fn load(bytes: &[u8], writer: WriterId) -> Result<Self, DocError> {
        let mut doc = Automerge::load(bytes).map_err(|e| DocError::Load(e.to_string()))?;
        let (id, epoch) = read_identity(&doc)?;
        doc.set_actor(writer.actor());
        Ok(Self {
            doc,
            id,
            epoch,
            writer,
        })
    }

    /// Fails unless this is a document of `kind`.
    pub fn expect_kind(&self, kind: DocKind) -> Result<(), DocError> {
        if self.id.kind == kind {
            Ok(())
        } else {
            Err(DocError::WrongKind {
                expected: kind,
                found: self.id.kind,
            })
        }
    }

    pub fn id(&self) -> &DocId {
        &self.id
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    /// Read access for the typed documents built on this core.
    pub fn automerge(&self) -> &Automerge {
        &self.doc
    }

    /// The current heads, sorted.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Whether the document contains the change `hash`.
    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    /// The subset of `heads` this document has.
    pub fn known_heads(&self, heads: &[ChangeHash]) -> Vec<ChangeHash> {
        heads
            .iter()
            .filter(|h| self.has_change(h))
            .copied()
            .collect()
    }

    /// Encoded changes a peer whose heads are `their_heads` is missing.
    ///
    /// The genesis change is never sent: every peer builds it itself.
    ///
    /// automerge's `get_changes` treats heads it does not know as "has nothing" and returns
    /// the whole history. A peer ahead of us (it has changes we lack) is normal in a
    /// pub/sub mesh, so unknown heads are dropped and the answer is computed from the heads
    /// we do know: the peer may receive a few changes it already has (harmless, changes are
    /// idempotent) but never the whole document for no reason.
    pub fn changes_since(&self, their_heads: &[ChangeHash]) -> Vec<Vec<u8>> {
        let known = self.known_heads(their_heads);
        self.doc
            .get_changes(&known)
            .into_iter()
            .filter(|c| !is_genesis_actor(c.actor_id()))
            .map(|mut c| c.bytes().into_owned())
            .collect()
    }

    /// The encoded change `hash`, if present.
    pub fn change_bytes(&self, hash: &ChangeHash) -> Option<Vec<u8>> {
        self.doc
            .get_change_by_hash(hash)
            .map(|mut c| c.bytes().into_owned())
    }

    /// Hashes of this writer's changes that `hq_heads` do not include, oldest first.
    ///
    /// Unknown heads are ignored (as in [`Self::changes_since`]), which can only make the
    /// answer larger: a change may be re-sent, never dropped from the outbox early. Once the
    /// node has fetched the changes behind HQ's heads the answer is exact.
    pub fn own_changes_not_in(&self, hq_heads: &[ChangeHash]) -> Vec<ChangeHash> {
        let known = self.known_heads(hq_heads);
        self.doc
            .get_changes_meta(&known)
            .into_iter()
            .filter(|meta| self.writer.owns_actor(meta.actor.as_ref()))
            .map(|meta| meta.hash)
            .collect()
    }

    /// Dependencies of queued changes that this document still lacks.
    pub fn missing_deps(&self) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(&[])
    }

    /// Applies a batch of encoded changes. Every change is decoded first; if any is
    /// malformed, nothing is applied. Changes whose dependencies are missing are queued by
    /// automerge and applied once the dependencies arrive.
    pub fn apply_changes<B: AsRef<[u8]>>(
        &mut self,
        encoded: &[B],
    ) -> Result<ApplyOutcome, DocError> {
        let changes = decode_changes(encoded)?;
        self.apply_decoded(changes)
    }

    fn apply_decoded(&mut self, changes: Vec<Change>) -> Result<ApplyOutcome, DocError> {
        let hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
        let already: Vec<bool> = hashes.iter().map(|h| self.has_change(h)).collect();
        self.doc.apply_changes(changes)?;
        let mut outcome = ApplyOutcome::default();
        let mut seen = BTreeSet::new();
        for (hash, had) in hashes.iter().zip(already) {
            if had || !seen.insert(*hash) {
                outcome.duplicates += 1;
            } else if self.has_change(hash) {
                outcome.applied += 1;
            } else {
                outcome.queued += 1;
            }
        }
        outcome.missing_deps = self.missing_deps();
        Ok(outcome)
    }

    /// The changes a peer with `their_heads` lacks, as ONE compressed columnar automerge
    /// bundle. Much smaller than the changes one by one (the per-change header, hash and
    /// checksum dominate a one-movement change; see the `perf` test), so use it for
    /// catch-up after an offline period. Unknown heads are handled as in
    /// [`Self::changes_since`].
    pub fn bundle_since(&self, their_heads: &[ChangeHash]) -> Result<Vec<u8>, DocError> {
        let known = self.known_heads(their_heads);
        let hashes: Vec<ChangeHash> = self
            .doc
            .get_changes_meta(&known)
            .into_iter()
            .filter(|meta| !is_genesis_actor(meta.actor.as_ref()))
            .map(|meta| meta.hash)
            .collect();
        Ok(self.doc.bundle(hashes)?.bytes().to_vec())
    }

    /// The changes `hashes` (which this document has) as ONE compressed bundle, for the
    /// outbox: a backlog of own changes leaves as one message instead of thousands.
    pub fn bundle_of(&self, hashes: &[ChangeHash]) -> Result<Vec<u8>, DocError> {
        Ok(self.doc.bundle(hashes.iter().copied())?.bytes().to_vec())
    }

    /// Hashes of the changes a peer with `their_heads` lacks (genesis excluded), oldest
    /// first; unknown heads handled as in [`Self::changes_since`]. Lets a caller split a
    /// large answer into several bundles with [`Self::bundle_of`].
    pub fn hashes_since(&self, their_heads: &[ChangeHash]) -> Vec<ChangeHash> {
        let known = self.known_heads(their_heads);
        self.doc
            .get_changes_meta(&known)
            .into_iter()
            .filter(|meta| !is_genesis_actor(meta.actor.as_ref()))
            .map(|meta| meta.hash)
            .collect()
    }

    /// Applies a bundle from [`Self::bundle_since`]: decoded and verified whole first (a
    /// corrupt bundle changes nothing), then applied like [`Self::apply_changes`].
    pub fn apply_bundle(&mut self, bundle: &[u8]) -> Result<ApplyOutcome, DocError> {
        let changes = decode_bundle(bundle)?;
        self.apply_decoded(changes)
    }

    /// The whole document, compacted.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// Runs `write` in one transaction and commits it as ONE change stamped `at_ms` with
    /// `message`. Returns `None` when `write` made no operation. On error nothing is kept.
    pub fn commit<E, F>(
        &mut self,
        at_ms: i64,
        message: &str,
        write: F,
    ) -> Result<Option<LocalChange>, E>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), E>,
    {
        let mut tx = self.doc.transaction();
        if let Err(e) = write(&mut tx) {
            tx.rollback();
            return Err(e);
        }
        let (hash, _) = tx.commit_with(
            CommitOptions::default()
                .with_message(message.to_owned())
                .with_time(at_ms),
        );
        Ok(hash.and_then(|hash| {
            self.change_bytes(&hash)
                .map(|bytes| LocalChange { hash, bytes })
        }))
    }

    /// The map object at `key` in the root, if the genesis made one.
    pub fn root_map(&self, key: &str) -> Option<ObjId> {
        map_at(&self.doc, &ROOT, key)
    }

    /// This writer's own map `writers/{writer}`, if it has written yet.
    pub fn writer_map(&self, writer: &WriterId) -> Option<ObjId> {
        let writers = self.root_map(KEY_WRITERS)?;
        map_at(&self.doc, &writers, writer.as_str())
    }
}

fn read_identity(doc: &Automerge) -> Result<(DocId, u32), DocError> {
    let store = str_at(doc, &ROOT, "store")
        .ok_or_else(|| DocError::NotOurDocument("no store id in the root".to_owned()))?;
    let kind = str_at(doc, &ROOT, "kind")
        .and_then(|k| DocKind::parse(&k))
        .ok_or_else(|| DocError::NotOurDocument("no known kind in the root".to_owned()))?;
    let epoch = int_at(doc, &ROOT, "epoch")
        .and_then(|e| u32::try_from(e).ok())
        .ok_or_else(|| DocError::NotOurDocument("no epoch in the root".to_owned()))?;
    Ok((DocId::new(&store, kind)?, epoch))
}

#[cfg(test)]
#[path = "doc_tests.rs"]
mod tests;
