//! HQ's state: every store's documents (rebuilt from HQ's SQLite) and the chain-wide stock
//! table derived from them. Pure message handling: bytes in, outgoing messages out; the
//! MQTT plumbing lives in [`super::service`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use automerge::ChangeHash;
use rusqlite::{Connection, OptionalExtension, params};

use crate::crdt::catalog::{CATALOG_STORE, CatalogDoc, CatalogError, CatalogItem};
use crate::crdt::doc::{
    self, AuthError, DocError, DocId, DocKind, LocalChange, SyncDoc, WriterId, bundle_authors,
    change_author,
};
use crate::crdt::epoch::{EpochError, EpochPlan, all_moved_over, open_next_epoch};
use crate::crdt::pricing::PricingEdit;
use crate::crdt::stock::StockDoc;
use crate::sync::local::levels_by_sku;
use crate::sync::payload::{MAX_MESSAGE_BYTES, SyncMessage};
use crate::sync::persist::{self, PersistError};
use crate::sync::service::{is_online, kind_id, scope_of};
use crate::sync::topics::{self, Id, Scope, Topic, TopicSpace};
use crate::sync::wire::{self, WireError};

#[derive(Debug, thiserror::Error)]
pub enum HqError {
    #[error("HQ database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Persist(#[from] PersistError),
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
}

/// A message for the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// One store's stock as HQ serves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreSku {
    pub store: String,
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub safety_stock: i64,
    pub available_to_sell: i64,
    /// Units granted to the online channel and not yet promised: what the web shop may
    /// promise now, also while the store is cut off (see `sync::escrow`).
    pub online_escrow: i64,
    /// RFC 3339 time of the store's last change HQ applied (`null`: never synced).
    pub as_of: Option<String>,
    /// Whether any writer of the store is online (retained status).
    pub online: bool,
}

pub struct HqState {
    conn: Connection,
    topics: TopicSpace,
    writer: WriterId,
    docs: BTreeMap<DocId, SyncDoc>,
    epochs: BTreeMap<String, u32>,
    safety_stock: i64,
    /// Provisioned lanes per store (`[hq.lanes]`); a store not listed takes any of its
    /// `{store}.{node}` writers.
    lanes: BTreeMap<String, BTreeSet<WriterId>>,
}

impl HqState {
    pub fn open(path: &Path, tenant: &str, safety_stock: i64) -> Result<Self, HqError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let open_err = |source| HqError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        migrate(&conn)?;
        let mut state = Self {
            conn,
            topics: TopicSpace::new(Id::new(tenant)?),
            writer: WriterId::hq(),
            docs: BTreeMap::new(),
            epochs: BTreeMap::new(),
            safety_stock,
            lanes: BTreeMap::new(),
        };
        state.load_docs()?;
        Ok(state)
    }

    /// Takes changes about each listed store only from its provisioned lanes: a certificate
    /// of store S can publish as any `S.{node}`, so without this a made-up lane would count.
    pub fn with_lanes(mut self, lanes: BTreeMap<String, BTreeSet<WriterId>>) -> Self {
        self.lanes = lanes;
        self
    }

    fn load_docs(&mut self) -> Result<(), HqError> {
        let stores: Vec<(String, u32)> = {
            let mut stmt = self.conn.prepare("SELECT store, epoch FROM hq_store")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (store, epoch) in stores {
            let id = DocId::new(&store, DocKind::Stock)?;
            let doc = persist::load_or_genesis(&self.conn, &id, epoch, self.writer.clone())?;
            self.docs.insert(id, doc);
            self.epochs.insert(store, epoch);
        }
        self.load_orders_docs()?;
        let catalog = DocId::new(CATALOG_STORE, DocKind::Catalog)?;
        let doc = persist::load_or_genesis(&self.conn, &catalog, 0, self.writer.clone())?;
        self.docs.insert(catalog, doc);
        Ok(())
    }

    pub fn topics(&self) -> &TopicSpace {
        &self.topics
    }

    /// Handles messages received together. Consecutive changes of one store document are
    /// applied as one batch: automerge's apply costs about the same for one change as for
    /// many on a large document, so a busy HQ keeps up (see `examples/bench_hq_ingest.rs`).
    /// A batch that is refused is retried message by message, so one bad message never
    /// costs the others. Returns one result per message, in order.
    pub fn handle_many(
        &mut self,
        messages: &[(String, Vec<u8>)],
    ) -> Vec<Result<Vec<Outgoing>, Rejected>> {
        let mut results = Vec::with_capacity(messages.len());
        let mut start = 0;
        while start < messages.len() {
            let key = batch_key(&messages[start]);
            let mut end = start + 1;
            while key.is_some() && end < messages.len() && batch_key(&messages[end]) == key {
                end += 1;
            }
            match key {
                Some((store, doc, epoch)) if end - start > 1 => {
                    let changes = messages[start..end]
                        .iter()
                        .filter_map(|(_, payload)| match SyncMessage::decode(payload) {
                            Ok(SyncMessage::Changes { changes, .. }) => Some(changes),
                            _ => None,
                        })
                        .flatten()
                        .collect();
                    let batched = self.check_scope(&store, &doc).and_then(|()| {
                        self.apply_store_changes(&doc, epoch, Incoming::Changes(changes))
                    });
                    match batched {
                        Ok(answers) => {
                            results.push(Ok(answers));
                            results.extend((start + 1..end).map(|_| Ok(Vec::new())));
                        }
                        Err(_) => results.extend(
                            messages[start..end]
                                .iter()
                                .map(|(topic, payload)| self.handle(topic, payload)),
                        ),
                    }
                }
                _ => {
                    let (topic, payload) = &messages[start];
                    results.push(self.handle(topic, payload));
                }
            }
            start = end;
        }
        results
    }

    /// Handles one received message; returns what to publish.
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Result<Vec<Outgoing>, Rejected> {
        let topic = topics::parse(topic)?;
        if let Topic::Status {
            scope: Scope::Store(store),
            writer,
            ..
        } = &topic
        {
            let online = is_online(payload);
            self.record_status(store.as_str(), writer.as_str(), online)
                .map_err(|e| Rejected::Apply(e.to_string()))?;
            // A lane of the store is known now: transfers waiting for a receiver can go.
            return Ok(if online {
                self.relay_pending_to(store.as_str())
            } else {
                Vec::new()
            });
        }
        if matches!(topic, Topic::Status { .. }) {
            return Ok(Vec::new()); // HQ's own retained status, echoed by its subscription
        }
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(Rejected::TooLarge(payload.len()));
        }
        let message = SyncMessage::decode(payload)?;
        match (topic, message) {
            (
                Topic::Changes {
                    scope: Scope::Store(store),
                    ..
                },
                SyncMessage::Changes {
                    doc,
                    epoch,
                    changes,
                },
            ) => {
                self.check_scope(&store, &doc)?;
                self.apply_store_changes(&doc, epoch, Incoming::Changes(changes))
            }
            (
                Topic::Changes {
                    scope: Scope::Store(store),
                    ..
                },
                SyncMessage::Bundle { doc, epoch, bundle },
            ) => {
                self.check_scope(&store, &doc)?;
                self.apply_store_changes(&doc, epoch, Incoming::Bundle(bundle))
            }
            (
                Topic::Request {
                    scope: Scope::Store(store),
                    writer,
                    ..
                },
                SyncMessage::Need {
                    doc, epoch, have, ..
                },
            ) => {
                if doc.store != store.as_str() && doc.store != CATALOG_STORE {
                    return Err(Rejected::WrongStore {
                        scope: store.to_string(),
                        doc: persist::doc_key(&doc),
                    });
                }
                self.answer_need(&store, &writer, &doc, epoch, &wire::hashes_from_wire(&have))
            }
            // Heads of stores and HQ's own echoes carry nothing HQ needs to act on.
            (Topic::Heads { .. }, SyncMessage::Heads { .. }) => Ok(Vec::new()),
            (
                Topic::Changes {
                    scope: Scope::Hq, ..
                },
                _,
            ) => Ok(Vec::new()),
            _ => Err(Rejected::Unexpected),
        }
    }

    fn check_scope(&self, store: &Id, doc: &DocId) -> Result<(), Rejected> {
        if doc.store != store.as_str() || doc.kind == DocKind::Catalog {
            return Err(Rejected::WrongStore {
                scope: store.to_string(),
                doc: persist::doc_key(doc),
            });
        }
        Ok(())
    }

    /// Whether `epoch` of `store` is one HQ already closed: its writers carry their work
    /// after the cut into the next epoch themselves, so late changes of it are dropped.
    fn is_closed_epoch(&self, id: &DocId, epoch: u32) -> bool {
        id.kind != DocKind::Catalog && epoch < self.current_epoch(id)
    }

    /// The epoch HQ accepts for `id`: stock and orders documents roll over into epochs
    /// (together, each with its own number; see `state_orders.rs`), the catalog does not.
    fn current_epoch(&self, id: &DocId) -> u32 {
        match id.kind {
            DocKind::Stock => self.epochs.get(&id.store).copied().unwrap_or(0),
            DocKind::Orders => self.docs.get(id).map_or(0, SyncDoc::epoch),
            DocKind::Catalog => 0,
        }
    }

    fn doc_for(&mut self, id: &DocId, epoch: u32) -> Result<&mut SyncDoc, Rejected> {
        let current = self.current_epoch(id);
        if epoch != current {
            return Err(Rejected::OtherEpoch {
                store: id.store.clone(),
                got: epoch,
                current,
            });
        }
        if !self.docs.contains_key(id) {
            let doc = SyncDoc::genesis(id, epoch, self.writer.clone())
                .map_err(|e| Rejected::Apply(e.to_string()))?;
            self.docs.insert(id.clone(), doc);
            if id.kind == DocKind::Stock {
                self.epochs.insert(id.store.clone(), epoch);
            }
        }
        self.docs
            .get_mut(id)
            .ok_or_else(|| Rejected::Apply("document vanished".into()))
    }

    fn apply_store_changes(
        &mut self,
        id: &DocId,
        epoch: u32,
        incoming: Incoming,
    ) -> Result<Vec<Outgoing>, Rejected> {
        let store = id.store.clone();
        if self.is_closed_epoch(id, epoch) {
            tracing::debug!(store, epoch, "changes of a closed epoch ignored");
            return Ok(Vec::new());
        }
        let prefix = format!("{store}.");
        let provisioned = self.lanes.get(&store).cloned();
        let doc = self.doc_for(id, epoch)?;
        // Every change about store S must come from one of S's writers (`S.{node}`), and
        // from one of its provisioned lanes when HQ has the list.
        let allowed_of = |authors: BTreeSet<WriterId>| -> BTreeSet<WriterId> {
            authors
                .into_iter()
                .filter(|w| w.as_str().starts_with(&prefix))
                .filter(|w| provisioned.as_ref().is_none_or(|lanes| lanes.contains(w)))
                .collect()
        };
        let outcome = match &incoming {
            Incoming::Changes(changes) => {
                let authors = changes
                    .iter()
                    .map(|c| change_author(c))
                    .collect::<Result<BTreeSet<_>, _>>()?;
                let allowed = allowed_of(authors);
                for change in changes {
                    doc.check_change(change, &allowed)?;
                }
                doc.apply_changes(changes)
            }
            Incoming::Bundle(bundle) => {
                let allowed = allowed_of(bundle_authors(bundle)?);
                doc.check_bundle(bundle, &allowed)?;
                doc.apply_bundle(bundle)
            }
        }
        .map_err(|e| Rejected::Apply(e.to_string()))?;
        if outcome.applied + outcome.queued == 0 {
            return Ok(Vec::new()); // a replay: nothing new, no new acknowledgement
        }
        self.persist_store(id, &incoming)
            .map_err(|e| Rejected::Apply(e.to_string()))?;
        self.drop_closed_epochs(id)
            .map_err(|e| Rejected::Apply(e.to_string()))?;
        // Store-to-store transfers in an orders document: HQ relays them to the other store.
        let mut out = self.relay_transfers(id);
        self.heads_outgoing(id)
            .map(|o| {
                out.push(o);
                out
            })
            .map_err(|e| Rejected::Apply(e.to_string()))
    }

    /// Logs the received changes, refreshes the store's stock rows and sync time, in one
    /// transaction. On failure the in-memory document is rebuilt from SQLite.
    fn persist_store(&mut self, id: &DocId, incoming: &Incoming) -> Result<(), HqError> {
        let result = self.persist_store_tx(id, incoming);
        if result.is_err() {
            let epoch = self.current_epoch(id);
            let doc = persist::load_or_genesis(&self.conn, id, epoch, self.writer.clone())?;
            self.docs.insert(id.clone(), doc);
        }
        result
    }

    fn persist_store_tx(&mut self, id: &DocId, incoming: &Incoming) -> Result<(), HqError> {
        let Some(doc) = self.docs.get(id) else {
            return Ok(());
        };
        let now = crate::clock::now_utc();
        let tx = self.conn.unchecked_transaction()?;
        match incoming {
            Incoming::Changes(changes) => {
                for change in changes {
                    persist::persist_change(&tx, doc, change, false, &now)?;
                }
            }
            Incoming::Bundle(bundle) => persist::persist_change(&tx, doc, bundle, true, &now)?,
        }
        tx.execute(
            "INSERT INTO hq_store (store, last_sync_ms, epoch) VALUES (?1, ?2, ?3)
             ON CONFLICT(store) DO UPDATE SET last_sync_ms = excluded.last_sync_ms",
            params![id.store, crate::clock::now_ms(), doc.epoch()],
        )?;
        if id.kind == DocKind::Stock {
            write_stock_rows(
                &tx,
                &id.store,
                &levels_by_sku(&changed_levels(doc, incoming)?),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn heads_outgoing(&self, id: &DocId) -> Result<Outgoing, HqError> {
        let Some(doc) = self.docs.get(id) else {
            return Err(HqError::Doc(DocError::NotOurDocument(persist::doc_key(id))));
        };
        let topic = self.topics.heads(
            &Scope::Hq,
            &scope_of(id)?,
            &kind_id(id.kind)?,
            &Id::new(self.writer.as_str())?,
        );
        Ok(Outgoing {
            topic: topic.to_string(),
            payload: wire::heads_message(doc).encode().map_err(WireError::from)?,
            retain: true,
        })
    }

    /// Opens the next stock epoch of `store` cut at HQ's current heads (see
    /// [`crate::sync::epoch`]): the new document holds the stock at the cut as its base.
    /// Returns the new epoch and the messages announcing it (the retained heads of the new
    /// epoch are the announcement a store that was offline finds when it comes back).
    pub fn open_epoch(&mut self, store: &str) -> Result<(u32, Vec<Outgoing>), HqError> {
        let id = DocId::new(store, DocKind::Stock)?;
        let Some(old) = self.stock_doc(store) else {
            return Err(HqError::UnknownStore(store.to_owned()));
        };
        // One epoch at a time: a writer still on E-1 could not carry over into E+1.
        if (old.core().epoch() > 0 && !all_moved_over(&old)) || !self.orders_moved_over(store) {
            return Err(HqError::EpochPending(store.to_owned()));
        }
        let orders = self.rolled_orders(store)?;
        let cut = old.core().heads();
        let plan = EpochPlan::at_cut(&old, &cut)?;
        let new = open_next_epoch(store, &plan, self.writer.clone(), crate::clock::now_ms())?;
        let now = crate::clock::now_utc();
        let tx = self.conn.unchecked_transaction()?;
        persist::save_doc(&tx, new.core(), &now)?;
        tx.execute(
            "INSERT INTO hq_store (store, epoch) VALUES (?1, ?2)
             ON CONFLICT(store) DO UPDATE SET epoch = excluded.epoch",
            params![store, plan.epoch],
        )?;
        write_stock_rows(&tx, store, &levels_by_sku(&new.stock_levels()))?;
        self.save_rolled_orders(&tx, &orders, &now)?;
        tx.commit()?;
        let orders_out = self.install_rolled_orders(orders)?;
        self.docs.insert(id.clone(), new.core().clone());
        self.epochs.insert(store.to_owned(), plan.epoch);
        tracing::info!(
            store,
            epoch = plan.epoch,
            writers = plan.writer_cut.len(),
            "opened a new stock epoch"
        );
        let announce = SyncMessage::EpochAnnounce {
            doc: id.clone(),
            epoch: plan.epoch,
            cut_heads: wire::hashes_to_wire(&cut),
        }
        .encode()
        .map_err(WireError::from)?;
        let changes_topic = self
            .topics
            .changes_about(
                &Scope::Hq,
                &scope_of(&id)?,
                &kind_id(DocKind::Stock)?,
                &Id::new(self.writer.as_str())?,
            )
            .to_string();
        let mut out = vec![
            Outgoing {
                topic: changes_topic,
                payload: announce,
                retain: false,
            },
            self.heads_outgoing(&id)?,
        ];
        out.extend(orders_out);
        Ok((plan.epoch, out))
    }

    /// Stores whose stock document HQ keeps (for the epoch timer).
    pub fn stores(&self) -> Vec<String> {
        self.docs
            .keys()
            .filter(|id| id.kind == DocKind::Stock)
            .map(|id| id.store.clone())
            .collect()
    }

    /// Deletes the stored history of epochs before the current one once every writer named
    /// in the cut has carried over: nobody can need it any more.
    fn drop_closed_epochs(&mut self, id: &DocId) -> Result<(), HqError> {
        if id.kind == DocKind::Orders {
            return self.drop_closed_orders_epochs(id);
        }
        if id.kind != DocKind::Stock {
            return Ok(());
        }
        let Some(current) = self.stock_doc(&id.store) else {
            return Ok(());
        };
        if current.core().epoch() == 0 || !all_moved_over(&current) {
            return Ok(());
        }
        let key = persist::doc_key(id);
        let epoch = current.core().epoch();
        let dropped = self.conn.execute(
            "DELETE FROM sync_doc WHERE doc_key = ?1 AND epoch < ?2",
            params![key, epoch],
        )? + self.conn.execute(
            "DELETE FROM sync_change WHERE doc_key = ?1 AND epoch < ?2",
            params![key, epoch],
        )?;
        if dropped > 0 {
            tracing::info!(
                store = id.store,
                epoch,
                "every writer moved over; older epochs dropped"
            );
        }
        Ok(())
    }

    /// Retained heads of every document, published on every (re)connect.
    pub fn all_heads(&self) -> Vec<Outgoing> {
        self.docs
            .keys()
            .filter_map(|id| self.heads_outgoing(id).ok())
            .collect()
    }

    fn answer_need(
        &mut self,
        store: &Id,
        writer: &Id,
        id: &DocId,
        epoch: u32,
        have: &[ChangeHash],
    ) -> Result<Vec<Outgoing>, Rejected> {
        let doc = self.doc_for(id, epoch)?;
        let messages =
            wire::catch_up_messages(doc, have).map_err(|e| Rejected::Apply(e.to_string()))?;
        let scope = Scope::store(store.clone())?;
        let topic = self.topics.response(&scope, writer).to_string();
        Ok(messages
            .into_iter()
            .map(|payload| Outgoing {
                topic: topic.clone(),
                payload,
                retain: false,
            })
            .collect())
    }

    /// Publishes catalog items (one change); returns the messages to send.
    pub fn publish_catalog(&mut self, items: &[CatalogItem]) -> Result<Vec<Outgoing>, HqError> {
        self.change_catalog(|catalog, at_ms| catalog.publish(items, &[], at_ms))
    }

    /// Publishes price lists, promotions, categories or time zones (one change).
    pub fn edit_pricing(&mut self, edits: &[PricingEdit]) -> Result<Vec<Outgoing>, HqError> {
        self.change_catalog(|catalog, at_ms| catalog.edit_pricing(edits, at_ms))
    }

    /// The catalog as HQ publishes it (`None` before HQ's first start finished).
    pub fn catalog(&self) -> Option<&SyncDoc> {
        self.docs
            .get(&DocId::new(CATALOG_STORE, DocKind::Catalog).ok()?)
    }

    /// Makes one change to the catalog document; returns the messages that publish it.
    fn change_catalog(
        &mut self,
        edit: impl FnOnce(&mut CatalogDoc, i64) -> Result<Option<LocalChange>, CatalogError>,
    ) -> Result<Vec<Outgoing>, HqError> {
        let id = DocId::new(CATALOG_STORE, DocKind::Catalog)?;
        let Some(core) = self.docs.remove(&id) else {
            return Ok(Vec::new());
        };
        let mut catalog = CatalogDoc::from_core(core)?;
        let result = edit(&mut catalog, crate::clock::now_ms());
        let change = match result {
            Ok(change) => change,
            Err(e) => {
                self.docs.insert(id, catalog.core().clone());
                return Err(e.into());
            }
        };
        self.docs.insert(id.clone(), catalog.core().clone());
        let Some(change) = change else {
            return Ok(Vec::new());
        };
        let now = crate::clock::now_utc();
        persist::persist_change(&self.conn, catalog.core(), &change.bytes, false, &now)?;
        let topic = self
            .topics
            .changes(
                &Scope::Hq,
                &kind_id(DocKind::Catalog)?,
                &Id::new(self.writer.as_str())?,
            )
            .to_string();
        let payload = SyncMessage::Changes {
            doc: id.clone(),
            epoch: 0,
            changes: vec![change.bytes],
        }
        .encode()
        .map_err(WireError::from)?;
        Ok(vec![
            Outgoing {
                topic,
                payload,
                retain: false,
            },
            self.heads_outgoing(&id)?,
        ])
    }

    fn record_status(&self, store: &str, writer: &str, online: bool) -> Result<(), HqError> {
        self.conn.execute(
            "INSERT INTO hq_writer_status (store, writer, online) VALUES (?1, ?2, ?3)
             ON CONFLICT(store, writer) DO UPDATE SET online = excluded.online",
            params![store, writer, i64::from(online)],
        )?;
        Ok(())
    }

    /// Stock of one SKU in one store.
    pub fn stock(&self, store: &str, sku: &str) -> Result<Option<StoreSku>, HqError> {
        Ok(self.stock_rows(store, Some(sku))?.into_iter().next())
    }

    /// Stock of every SKU of `store`.
    pub fn store_stock(&self, store: &str) -> Result<Vec<StoreSku>, HqError> {
        self.stock_rows(store, None)
    }

    fn stock_rows(&self, store: &str, sku: Option<&str>) -> Result<Vec<StoreSku>, HqError> {
        let (as_of, online) = self.store_meta(store)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT sku, on_hand, reserved FROM hq_stock
             WHERE store = ?1 AND (?2 IS NULL OR sku = ?2) ORDER BY sku",
        )?;
        let rows = stmt.query_map(params![store, sku], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (sku, on_hand, reserved) = row?;
            out.push(StoreSku {
                store: store.to_owned(),
                available_to_sell: (on_hand - reserved - self.safety_stock).max(0),
                online_escrow: self.escrow_of(store, &sku).remaining().max(0),
                sku,
                on_hand,
                reserved,
                safety_stock: self.safety_stock,
                as_of: as_of.clone(),
                online,
            });
        }
        Ok(out)
    }

    fn store_meta(&self, store: &str) -> Result<(Option<String>, bool), HqError> {
        let last: Option<Option<i64>> = self
            .conn
            .prepare_cached("SELECT last_sync_ms FROM hq_store WHERE store = ?1")?
            .query_row([store], |r| r.get(0))
            .optional()?;
        let online: i64 = self.conn.query_row(
            "SELECT COALESCE(max(online), 0) FROM hq_writer_status WHERE store = ?1",
            [store],
            |r| r.get(0),
        )?;
        Ok((last.flatten().map(rfc3339_ms), online != 0))
    }

    /// The stock document of `store` (for tests, the bench and the demo).
    pub fn stock_doc(&self, store: &str) -> Option<StockDoc> {
        let id = DocId::new(store, DocKind::Stock).ok()?;
        StockDoc::from_core(self.docs.get(&id)?.clone()).ok()
    }
}

enum Incoming {
    Changes(Vec<Vec<u8>>),
    Bundle(Vec<u8>),
}

#[path = "state_orders.rs"]
mod orders;

#[path = "state_transfers.rs"]
mod transfers;
pub use orders::{CancelRefused, HqOrderView, NewHqOrder, OrderLine, OrderRefused};
pub use transfers::{HqTransferLine, HqTransferSummary, HqTransferView, InTransit};

fn stock_err(e: crate::crdt::stock::StockError) -> DocError {
    DocError::NotOurDocument(e.to_string())
}

/// The levels an incoming message can have changed: only the SKUs its changes touch, read
/// from the document in place (recomputing every SKU from a clone made each change cost
/// O(history + SKUs) and fell behind on a busy chain). A bundle (catch-up) recomputes all.
fn changed_levels(doc: &SyncDoc, incoming: &Incoming) -> Result<BTreeMap<String, i64>, HqError> {
    let touched = match incoming {
        Incoming::Changes(changes) => crate::crdt::doc::touched_keys(changes),
        Incoming::Bundle(_) => None,
    };
    let Some(touched) = touched else {
        let stock = StockDoc::from_core(doc.clone()).map_err(|e| HqError::Doc(stock_err(e)))?;
        return Ok(stock.stock_levels());
    };
    let keys = touched
        .iter()
        .flat_map(|key| {
            let (sku, _) = crate::sync::local::split_key(key);
            [sku.to_owned(), crate::sync::local::reserved_key(sku)]
        })
        .collect();
    Ok(StockDoc::levels_of_keys(doc, &keys))
}

/// The (store, document, epoch) of a message that carries changes of a store document and
/// may be batched with its neighbours; `None` for anything else.
fn batch_key((topic, payload): &(String, Vec<u8>)) -> Option<(Id, DocId, u32)> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return None;
    }
    let Ok(Topic::Changes {
        scope: Scope::Store(store),
        ..
    }) = topics::parse(topic)
    else {
        return None;
    };
    match SyncMessage::decode(payload) {
        Ok(SyncMessage::Changes { doc, epoch, .. }) => Some((store, doc, epoch)),
        _ => None,
    }
}

fn write_stock_rows(
    conn: &Connection,
    store: &str,
    levels: &BTreeMap<String, (i64, i64)>,
) -> Result<(), HqError> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO hq_stock (store, sku, on_hand, reserved) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(store, sku) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved
         WHERE on_hand != excluded.on_hand OR reserved != excluded.reserved",
    )?;
    for (sku, (on_hand, reserved)) in levels {
        upsert.execute(params![store, sku, on_hand, reserved])?;
    }
    Ok(())
}

/// HQ's schema steps: entry `i` moves `user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: sync state (documents, outbox) and the chain-wide stock.
    concat!(
        include_str!("../sync/schema.sql"),
        include_str!("schema.sql")
    ),
    // Customer personal data of orders and erasure tombstones. Owned by `hq::privacy`.
    include_str!("privacy.sql"),
    // Store-to-store transfers. Owned by `hq::state::transfers`.
    include_str!("transfers.sql"),
    // EPCIS events of every store writer. Owned by `hq::epcis`.
    include_str!("../epcis/hq_schema.sql"),
    // Orders closed at an orders epoch cut. Owned by `hq::state::orders`.
    include_str!("closed_orders.sql"),
];

fn migrate(conn: &Connection) -> Result<(), HqError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let done = usize::try_from(version).unwrap_or(usize::MAX);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

fn rfc3339_ms(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ms.to_string())
}

/// Re-export for the HTTP layer.
pub use doc::HQ_WRITER;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stock::Movement;

    fn hq() -> (tempfile::TempDir, HqState) {
        let dir = tempfile::tempdir().unwrap();
        let state = HqState::open(&dir.path().join("hq.db"), "t", 1).unwrap();
        (dir, state)
    }

    fn change(writer: &str, store: &str, sku: &str, deltas: &[i64]) -> Vec<Vec<u8>> {
        let mut doc = StockDoc::genesis(store, 0, WriterId::new(writer).unwrap()).unwrap();
        deltas
            .iter()
            .map(|d| {
                let m = [Movement {
                    sku: sku.into(),
                    delta: *d,
                }];
                doc.apply_movements(&m, 1).unwrap().unwrap().bytes
            })
            .collect()
    }

    fn message(store: &str, changes: Vec<Vec<u8>>) -> Vec<u8> {
        SyncMessage::Changes {
            doc: DocId::new(store, DocKind::Stock).unwrap(),
            epoch: 0,
            changes,
        }
        .encode()
        .unwrap()
    }

    const S1_TOPIC: &str = "storenode/v1/t/s1/changes/stock/s1.lane1";

    #[test]
    fn a_change_forged_by_another_stores_writer_is_rejected() {
        let (_dir, mut hq) = hq();
        let forged = message("s1", change("s2.lane1", "s1", "A", &[-5]));
        let err = hq.handle(S1_TOPIC, &forged).unwrap_err();
        assert!(matches!(err, Rejected::Unauthorised(_)), "{err}");
        assert_eq!(hq.stock("s1", "A").unwrap(), None, "nothing applied");
        // A store publishing about another store's document is refused too.
        let other = message("s2", change("s2.lane1", "s2", "A", &[1]));
        assert!(matches!(
            hq.handle(S1_TOPIC, &other),
            Err(Rejected::WrongStore { .. })
        ));
    }

    #[test]
    fn queued_messages_apply_as_one_batch_and_a_bad_one_costs_only_itself() {
        let (_dir, mut hq) = hq();
        let good = change("s1.lane1", "s1", "A", &[5, -1, -1]);
        let forged = message("s1", change("s2.lane1", "s1", "A", &[-50]));
        let messages: Vec<(String, Vec<u8>)> = vec![
            (S1_TOPIC.into(), message("s1", vec![good[0].clone()])),
            (S1_TOPIC.into(), message("s1", vec![good[1].clone()])),
            (S1_TOPIC.into(), forged),
            (S1_TOPIC.into(), message("s1", vec![good[2].clone()])),
            (S1_TOPIC.into(), message("s1", vec![good[2].clone()])),
        ];
        let results = hq.handle_many(&messages);
        assert_eq!(results.len(), 5);
        assert!(
            matches!(results[2], Err(Rejected::Unauthorised(_))),
            "{:?}",
            results[2].as_ref().err()
        );
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(accepted, 4, "the others are applied");
        assert_eq!(hq.stock("s1", "A").unwrap().map(|s| s.on_hand), Some(3));
        // A clean batch: one answer set (HQ's heads) for all of it.
        let more = change("s1.lane2", "s1", "A", &[1, 1]);
        let clean: Vec<(String, Vec<u8>)> = more
            .into_iter()
            .map(|c| (S1_TOPIC.replace("lane1", "lane2"), message("s1", vec![c])))
            .collect();
        let results = hq.handle_many(&clean);
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(results[1].as_ref().map(Vec::len).ok(), Some(0));
        assert_eq!(hq.stock("s1", "A").unwrap().map(|s| s.on_hand), Some(5));
    }

    #[test]
    fn duplicated_and_reordered_delivery_converges() {
        let (_dir, mut hq) = hq();
        let changes = change("s1.lane1", "s1", "A", &[10, -1, -2]);
        // Last first (queued until its dependencies arrive), then everything twice.
        hq.handle(S1_TOPIC, &message("s1", vec![changes[2].clone()]))
            .unwrap();
        for _ in 0..2 {
            for c in changes.iter().rev() {
                hq.handle(S1_TOPIC, &message("s1", vec![c.clone()]))
                    .unwrap();
            }
        }
        let row = hq.stock("s1", "A").unwrap().unwrap();
        assert_eq!(row.on_hand, 7);
        assert_eq!(row.available_to_sell, 6, "safety stock 1");
        // Garbage is rejected, never applied half-way.
        assert!(hq.handle(S1_TOPIC, &[1, 1, 0]).is_err());
        assert_eq!(hq.stock("s1", "A").unwrap().unwrap().on_hand, 7);
    }

    #[test]
    fn an_epoch_keeps_the_stock_and_ignores_late_changes_of_the_old_one() {
        let (_dir, mut hq) = hq();
        assert!(matches!(hq.open_epoch("s1"), Err(HqError::UnknownStore(_))));
        let changes = change("s1.lane1", "s1", "A", &[10, -3]);
        hq.handle(S1_TOPIC, &message("s1", vec![changes[0].clone()]))
            .unwrap();
        let (epoch, announce) = hq.open_epoch("s1").unwrap();
        assert_eq!(epoch, 1);
        assert_eq!(
            announce.len(),
            4,
            "EpochAnnounce and retained heads, of the stock and of the orders document"
        );
        assert_eq!(hq.stock("s1", "A").unwrap().unwrap().on_hand, 10, "base");
        // The writer's post-cut change of epoch 0 is dropped: it carries it over itself.
        let late = hq
            .handle(S1_TOPIC, &message("s1", vec![changes[1].clone()]))
            .unwrap();
        assert!(late.is_empty());
        assert_eq!(hq.stock("s1", "A").unwrap().unwrap().on_hand, 10);
        // lane1 has not moved over yet: no epoch 2.
        assert!(matches!(hq.open_epoch("s1"), Err(HqError::EpochPending(_))));
    }

    #[test]
    fn state_survives_a_restart() {
        let (dir, mut hq) = hq();
        hq.handle(
            S1_TOPIC,
            &message("s1", change("s1.lane1", "s1", "A", &[4])),
        )
        .unwrap();
        let heads = hq.stock_doc("s1").unwrap().core().heads();
        drop(hq);
        let again = HqState::open(&dir.path().join("hq.db"), "t", 1).unwrap();
        assert_eq!(again.stock_doc("s1").unwrap().core().heads(), heads);
        assert_eq!(again.stock("s1", "A").unwrap().unwrap().on_hand, 4);
    }
}
