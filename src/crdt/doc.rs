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
    ScalarValue, Value,
};

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
impl From<AutomergeError> for DocError {
    fn from(e: AutomergeError) -> Self {
        Self::Automerge(Box::new(e))
    }
}

/// Why HQ refused a change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("change is malformed: {0}")]
    Malformed(String),
    #[error("change author {0:?} is not a valid writer id")]
    UnknownAuthor(String),
    #[error("writer {0} may not write to this document")]
    WriterNotAllowed(String),
    #[error("writer {writer} touched {what}, which it does not own")]
    OutOfScope { writer: String, what: String },
}

/// A stable writer identity (a store lane or HQ), and the incarnation that writes as it.
///
/// Two writers are equal when their ids are: the incarnation only chooses the automerge
/// actor ([`Self::actor`]), so a writer's entries stay under `writers/{id}` whichever of
/// its incarnations wrote them.
#[derive(Clone, Debug)]
pub struct WriterId {
    id: String,
    /// `None`: the actor is the id itself (HQ, and every writer before incarnations).
    incarnation: Option<String>,
}

impl PartialEq for WriterId {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for WriterId {}

impl PartialOrd for WriterId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WriterId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl std::hash::Hash for WriterId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl serde::Serialize for WriterId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

/// Separates a writer id from its incarnation in an actor id (`s1.lane1~3f9c…`); never
/// part of a writer id.
pub const INCARNATION_SEPARATOR: char = '~';
/// Longest incarnation accepted in an actor id (hex digits).
const MAX_INCARNATION_LEN: usize = 32;

impl WriterId {
    /// Validates `id`: 1-64 bytes of `a-z 0-9 . - _`.
    pub fn new(id: &str) -> Result<Self, DocError> {
        if crate::domain::ids::is_name(id, MAX_WRITER_ID_LEN) {
            Ok(Self {
                id: id.to_owned(),
                incarnation: None,
            })
        } else {
            Err(DocError::InvalidWriterId(id.to_owned()))
        }
    }

    /// The HQ writer.
    pub fn hq() -> Self {
        Self {
            id: HQ_WRITER.to_owned(),
            incarnation: None,
        }
    }

    /// This writer as a new, random incarnation: a fresh automerge actor, so sequence
    /// numbers an earlier incarnation used (say, one whose database was later restored
    /// from a backup) are never used again with other content.
    pub fn new_incarnation(&self) -> Self {
        let nonce: u64 = rand::random();
        Self {
            id: self.id.clone(),
            incarnation: Some(format!("{nonce:016x}")),
        }
    }

    /// This incarnation's id (`None` for a writer whose actor is its id).
    pub fn incarnation(&self) -> Option<&str> {
        self.incarnation.as_deref()
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn is_hq(&self) -> bool {
        self.id == HQ_WRITER
    }

    /// The automerge actor of this incarnation: `{id}~{incarnation}`, or the id's bytes.
    pub fn actor(&self) -> ActorId {
        match &self.incarnation {
            Some(inc) => {
                ActorId::from(format!("{}{INCARNATION_SEPARATOR}{inc}", self.id).as_bytes())
            }
            None => ActorId::from(self.id.as_bytes()),
        }
    }

    /// The writer (and incarnation) behind an actor id, if it is one of ours.
    pub fn from_actor(actor: &ActorId) -> Result<Self, DocError> {
        let invalid = || DocError::InvalidWriterId(actor.to_hex_string());
        let text = std::str::from_utf8(actor.to_bytes()).map_err(|_| invalid())?;
        match text.split_once(INCARNATION_SEPARATOR) {
            None => Self::new(text),
            Some((id, inc)) => {
                let hex = !inc.is_empty()
                    && inc.len() <= MAX_INCARNATION_LEN
                    && inc
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !hex {
                    return Err(invalid());
                }
                Ok(Self {
                    incarnation: Some(inc.to_owned()),
                    ..Self::new(id)?
                })
            }
        }
    }

    /// Whether `actor` is any incarnation of this writer.
    pub fn owns_actor(&self, actor: &ActorId) -> bool {
        Self::from_actor(actor).is_ok_and(|w| w == *self)
    }
}

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

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

    /// HQ's check of every change in a bundle (see [`Self::check_change`]); returns the
    /// authors.
    pub fn check_bundle(
        &self,
        bundle: &[u8],
        allowed: &BTreeSet<WriterId>,
    ) -> Result<BTreeSet<WriterId>, AuthError> {
        let changes = decode_bundle(bundle).map_err(|e| AuthError::Malformed(e.to_string()))?;
        changes
            .iter()
            .map(|change| self.check_decoded(change, allowed))
            .collect()
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

    /// HQ's check of a change for this document: decodes it, checks the author is in
    /// `allowed`, and that every operation stays inside what the author owns.
    pub fn check_change(
        &self,
        bytes: &[u8],
        allowed: &BTreeSet<WriterId>,
    ) -> Result<WriterId, AuthError> {
        let change = decode_change(bytes).map_err(AuthError::Malformed)?;
        self.check_decoded(&change, allowed)
    }

    fn check_decoded(
        &self,
        change: &Change,
        allowed: &BTreeSet<WriterId>,
    ) -> Result<WriterId, AuthError> {
        let writer = WriterId::from_actor(change.actor_id())
            .map_err(|_| AuthError::UnknownAuthor(change.actor_id().to_hex_string()))?;
        if !allowed.contains(&writer) {
            return Err(AuthError::WriterNotAllowed(writer.to_string()));
        }
        let scope = self.genesis_scope();
        for op in change.decode().operations {
            scope.check_op(&writer, &op)?;
        }
        Ok(writer)
    }

    fn genesis_scope(&self) -> GenesisScope {
        let counter_of = |key: &str| match self.root_map(key) {
            Some(ObjId::Id(counter, _, _)) => Some(counter),
            _ => None,
        };
        GenesisScope {
            writers: counter_of(KEY_WRITERS),
            orders: counter_of(KEY_ORDERS),
        }
    }
}

/// Object counters of the genesis maps a non-HQ writer may add keys to.
struct GenesisScope {
    writers: Option<u64>,
    orders: Option<u64>,
}

impl GenesisScope {
    fn check_op(&self, writer: &WriterId, op: &automerge::legacy::Op) -> Result<(), AuthError> {
        use automerge::legacy::{Key, ObjectId};
        let out_of_scope = |what: String| AuthError::OutOfScope {
            writer: writer.to_string(),
            what,
        };
        let ObjectId::Id(obj) = &op.obj else {
            return Err(out_of_scope("the document root".to_owned()));
        };
        if obj.1.to_bytes() != GENESIS_ACTOR {
            // An object made by a writer: only its maker (any incarnation) may write in it.
            return if writer.owns_actor(&obj.1) {
                Ok(())
            } else {
                Err(out_of_scope(format!("an object of {}", obj.1)))
            };
        }
        let key = match &op.key {
            Key::Map(key) => key.as_str(),
            Key::Seq(_) => return Err(out_of_scope("a list in a genesis map".to_owned())),
        };
        if Some(obj.0) == self.writers {
            if key == writer.as_str() {
                return Ok(());
            }
            return Err(out_of_scope(format!("writers/{key}")));
        }
        if Some(obj.0) == self.orders {
            if order_id_belongs_to(key, writer) {
                return Ok(());
            }
            return Err(out_of_scope(format!("orders/{key}")));
        }
        // `base`, `cut` and `items` are HQ's.
        if writer.is_hq() {
            Ok(())
        } else {
            Err(out_of_scope(format!("an HQ map (key {key})")))
        }
    }
}

fn is_genesis_actor(actor: &ActorId) -> bool {
    actor.to_bytes() == GENESIS_ACTOR
}

/// Order ids are `{writer}:{local id}`, so the creating writer owns the key.
pub fn order_id_belongs_to(order_id: &str, writer: &WriterId) -> bool {
    order_id
        .strip_prefix(writer.as_str())
        .is_some_and(|rest| rest.len() > 1 && rest.starts_with(':'))
}

/// The distinct authors of a bundle's changes (HQ builds the allowed set from them).
pub fn bundle_authors(bundle: &[u8]) -> Result<BTreeSet<WriterId>, AuthError> {
    let changes = decode_bundle(bundle).map_err(|e| AuthError::Malformed(e.to_string()))?;
    changes
        .iter()
        .map(|change| {
            WriterId::from_actor(change.actor_id())
                .map_err(|_| AuthError::UnknownAuthor(change.actor_id().to_hex_string()))
        })
        .collect()
}

/// The writer who authored an encoded change.
pub fn change_author(bytes: &[u8]) -> Result<WriterId, AuthError> {
    let change = decode_change(bytes).map_err(AuthError::Malformed)?;
    WriterId::from_actor(change.actor_id())
        .map_err(|_| AuthError::UnknownAuthor(change.actor_id().to_hex_string()))
}

/// Hex form of a change hash (for JSON, logs, SQLite).
pub fn hash_to_hex(hash: &ChangeHash) -> String {
    hex::encode(hash.0)
}

/// Parses the hex form of a change hash.
pub fn hash_from_hex(text: &str) -> Option<ChangeHash> {
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    Some(ChangeHash(bytes))
}

/// The map keys the operations of `encoded` write (`None` if one does not decode): lets a
/// reader recompute only what a change can have touched.
pub fn touched_keys<B: AsRef<[u8]>>(encoded: &[B]) -> Option<std::collections::BTreeSet<String>> {
    let mut keys = std::collections::BTreeSet::new();
    for change in decode_changes(encoded).ok()? {
        for op in change.decode().operations {
            if let automerge::legacy::Key::Map(key) = op.key {
                keys.insert(key.to_string());
            }
        }
    }
    Some(keys)
}

fn decode_changes<B: AsRef<[u8]>>(encoded: &[B]) -> Result<Vec<Change>, DocError> {
    encoded
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            decode_change(bytes.as_ref())
                .map_err(|reason| DocError::MalformedChange { index, reason })
        })
        .collect()
}

/// Decodes one change and verifies its chunk checksum. `Change::try_from` does not check
/// the checksum (bytes 4..8, the first four bytes of the change hash), so without this a
/// flipped bit in, say, the actor would pass as a different, well-formed change.
fn decode_change(bytes: &[u8]) -> Result<Change, String> {
    let change = Change::try_from(bytes).map_err(|e| e.to_string())?;
    if bytes.get(4..8) != change.hash().0.get(..4) {
        return Err("checksum does not match the change's contents".into());
    }
    Ok(change)
}

fn decode_bundle(bundle: &[u8]) -> Result<Vec<Change>, DocError> {
    let malformed = |reason: String| DocError::MalformedChange { index: 0, reason };
    if bundle.is_empty() {
        return Ok(Vec::new());
    }
    // `Bundle::try_from` does not verify the chunk checksum, a load does, before anything
    // else. The throwaway load then fails for the missing dependencies (a bundle never
    // holds the genesis), which is not a fault of the bytes; only load errors are.
    if let Err(AutomergeError::Load(e)) = Automerge::load(bundle) {
        return Err(malformed(e.to_string()));
    }
    automerge::Bundle::try_from(bundle)
        .map_err(|e| malformed(e.to_string()))?
        .to_changes()
        .map_err(|e| malformed(e.to_string()))
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

/// The map at `obj[key]`, if it is a map.
/// The map under `key` in `parent`, made if it is not there yet.
pub fn child_map(
    tx: &mut automerge::transaction::Transaction<'_>,
    parent: &ObjId,
    key: &str,
) -> Result<ObjId, automerge::AutomergeError> {
    use automerge::transaction::Transactable;
    match map_at(tx, parent, key) {
        Some(map) => Ok(map),
        None => tx.put_object(parent, key, ObjType::Map),
    }
}

pub fn map_at<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// The integer at `obj[key]`; other types read as absent.
pub fn int_at<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key) {
        Ok(Some((value, _))) => int_of(&value),
        _ => None,
    }
}

/// The string at `obj[key]`; other types read as absent.
pub fn str_at<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Str(text) => Some(text.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The map at `obj[key]` as of `heads` (`None`: now).
pub fn map_at_heads(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<ObjId> {
    let found = match heads {
        Some(heads) => doc.get_at(obj, key, heads),
        None => doc.get(obj, key),
    };
    match found {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// Every `Int` entry of the map `obj` as of `heads` (`None`: now); other values are skipped.
pub fn int_entries(
    doc: &Automerge,
    obj: &ObjId,
    heads: Option<&[ChangeHash]>,
) -> Vec<(String, i64)> {
    let ints = |item: automerge::iter::MapRangeItem<'_>| match item.value {
        automerge::ValueRef::Scalar(automerge::ScalarValueRef::Int(i)) => {
            Some((item.key.into_owned(), i))
        }
        _ => None,
    };
    match heads {
        Some(heads) => doc.map_range_at(obj, .., heads).filter_map(ints).collect(),
        None => doc.map_range(obj, ..).filter_map(ints).collect(),
    }
}

/// Keys of the map `obj` as of `heads` (`None`: now).
pub fn map_keys(doc: &Automerge, obj: &ObjId, heads: Option<&[ChangeHash]>) -> Vec<String> {
    match heads {
        Some(heads) => doc.keys_at(obj, heads).collect(),
        None => doc.keys(obj).collect(),
    }
}

/// Strictly an `Int` scalar: counters, floats etc. written by a misbehaving peer are ignored.
pub fn int_of(value: &Value<'_>) -> Option<i64> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Int(i) => Some(*i),
            _ => None,
        },
        Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str) -> WriterId {
        WriterId::new(id).unwrap()
    }

    fn stock_id() -> DocId {
        DocId::new("s001", DocKind::Stock).unwrap()
    }

    #[test]
    fn writer_ids_are_validated_and_round_trip_through_actors() {
        assert!(WriterId::new("").is_err());
        assert!(WriterId::new("S001").is_err());
        assert!(WriterId::new("~genesis").is_err());
        assert!(WriterId::new(&"a".repeat(65)).is_err());
        let lane = w("s001.lane1");
        assert_eq!(WriterId::from_actor(&lane.actor()).unwrap(), lane);
        assert!(WriterId::from_actor(&ActorId::from(GENESIS_ACTOR)).is_err());
    }

    #[test]
    fn two_independent_geneses_are_identical() {
        let a = SyncDoc::genesis(&stock_id(), 3, w("s001.lane1")).unwrap();
        let b = SyncDoc::genesis(&stock_id(), 3, w("s001.lane2")).unwrap();
        assert_eq!(a.heads(), b.heads());
        assert_eq!(a.heads().len(), 1);
        let other_epoch = SyncDoc::genesis(&stock_id(), 4, w("s001.lane1")).unwrap();
        assert_ne!(a.heads(), other_epoch.heads());
        let other_store =
            SyncDoc::genesis(&DocId::new("s002", DocKind::Stock).unwrap(), 3, w("hq")).unwrap();
        assert_ne!(a.heads(), other_store.heads());
    }

    #[test]
    fn load_recovers_identity_and_own_sequence() {
        let mut a = SyncDoc::genesis(&stock_id(), 7, w("s001.lane1")).unwrap();
        let first = a
            .commit::<DocError, _>(1, "t", |tx| {
                tx.put(ROOT, "x", 1_i64)?;
                Ok(())
            })
            .unwrap()
            .unwrap();
        let mut b = SyncDoc::load(&a.save(), w("s001.lane1")).unwrap();
        assert_eq!(b.id(), &stock_id());
        assert_eq!(b.epoch(), 7);
        let second = b
            .commit::<DocError, _>(2, "t", |tx| {
                tx.put(ROOT, "x", 2_i64)?;
                Ok(())
            })
            .unwrap()
            .unwrap();
        // A peer with the first change accepts the second: the sequence continued.
        let mut peer = SyncDoc::genesis(&stock_id(), 7, w("s001.lane2")).unwrap();
        peer.apply_changes(&[first.bytes, second.bytes]).unwrap();
        assert_eq!(peer.heads(), b.heads());
    }

    #[test]
    fn load_rejects_foreign_documents_and_garbage() {
        let mut foreign = Automerge::new();
        foreign.transaction().commit();
        assert!(matches!(
            SyncDoc::load(&foreign.save(), w("hq")),
            Err(DocError::NotOurDocument(_))
        ));
        assert!(matches!(
            SyncDoc::load(b"not automerge", w("hq")),
            Err(DocError::Load(_))
        ));
    }

    #[test]
    fn a_change_with_any_flipped_bit_is_refused_and_applies_nothing() {
        // Regression (found by tests/hostile_input.rs): automerge does not check a change's
        // checksum, so a flipped actor byte used to be applied as another writer's change.
        let mut author = SyncDoc::genesis(&stock_id(), 1, w("s001.lane2")).unwrap();
        let change = author
            .commit::<DocError, _>(1, "t", |tx| {
                tx.put(ROOT, "x", 1_i64)?;
                Ok(())
            })
            .unwrap()
            .unwrap();
        let allowed = [w("s001.lane2")].into_iter().collect();
        for index in 0..change.bytes.len() {
            let mut bad = change.bytes.clone();
            bad[index] ^= 0x01;
            let mut peer = SyncDoc::genesis(&stock_id(), 1, w("s001.lane1")).unwrap();
            let before = peer.heads();
            assert!(peer.apply_changes(&[bad.clone()]).is_err(), "byte {index}");
            assert_eq!(peer.heads(), before, "byte {index}");
            assert!(peer.check_change(&bad, &allowed).is_err(), "byte {index}");
        }
        let mut peer = SyncDoc::genesis(&stock_id(), 1, w("s001.lane1")).unwrap();
        assert_eq!(peer.apply_changes(&[change.bytes]).unwrap().applied, 1);
    }

    #[test]
    fn hash_hex_round_trips() {
        let doc = SyncDoc::genesis(&stock_id(), 0, w("hq")).unwrap();
        let head = doc.heads()[0];
        assert_eq!(hash_from_hex(&hash_to_hex(&head)), Some(head));
        assert_eq!(hash_from_hex("zz"), None);
    }

    #[test]
    fn order_ids_belong_to_their_prefix_writer() {
        let lane = w("s001.lane1");
        assert!(order_id_belongs_to("s001.lane1:42", &lane));
        assert!(!order_id_belongs_to("s001.lane1:", &lane));
        assert!(!order_id_belongs_to("s001.lane12:4", &lane));
        assert!(!order_id_belongs_to("hq:4", &lane));
    }
}
