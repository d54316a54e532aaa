//! Stores' messages in: topic and scope checks, changes applied as one batch per
//! document, stored with the stock rows they change, answered with HQ's heads; `Need`
//! requests answered with what the store lacks; writers' online status recorded.

use crate::hq::db::docs;
use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;

use super::stock::write_stock_rows;
use super::{HqError, HqState, Outgoing, Rejected};
use crate::crdt::catalog::CATALOG_STORE;
use crate::crdt::doc::{
    DocId, DocKind, SyncDoc, WriterId, authored_times, bundle_authored_times, bundle_authors,
    change_author,
};
use crate::crdt::stock::StockDoc;
use crate::sync::local::levels_by_sku;
use crate::sync::mqtt::claim::{Claim, OFFLINE, ONLINE};
use crate::sync::payload::{MAX_MESSAGE_BYTES, SyncMessage};
use crate::sync::persist;
use crate::sync::topics::{self, Id, Scope, Topic};
use crate::sync::wire;

impl HqState {
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

    /// Handles one received message; returns what to publish. Memory is cut back to the
    /// bound after it (`lru.rs`).
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Result<Vec<Outgoing>, Rejected> {
        let result = self.handle_one(topic, payload);
        self.trim();
        result
    }

    fn handle_one(&mut self, topic: &str, payload: &[u8]) -> Result<Vec<Outgoing>, Rejected> {
        let topic = topics::parse(topic)?;
        if let Topic::Status {
            scope: Scope::Store(store),
            writer,
            ..
        } = &topic
        {
            // A garbage status must not count: recorded as offline, it showed a store that
            // kept syncing as offline until the lane happened to publish its status again.
            let online = status_says_online(payload).ok_or(Rejected::Status)?;
            self.check_status_writer(store, writer)?;
            self.record_status(store.as_str(), writer.as_str(), online)
                .map_err(|e| Rejected::Apply(e.to_string()))?;
            // A lane of the store is known now: transfers waiting for a receiver can go.
            return Ok(if online {
                self.relay_pending_to(store.as_str())
            } else {
                Vec::new()
            });
        }
        if let Topic::Retired {
            scope: Scope::Store(store),
            writer,
            ..
        } = &topic
        {
            return self.note_retirement(store, writer, payload);
        }
        if matches!(topic, Topic::Status { .. } | Topic::Retired { .. }) {
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

    /// A status names one of the store's writers (`{store}.{node}`), and one of its
    /// provisioned lanes when HQ has the list: else a made-up lane could be chosen to
    /// fulfil an order or receive a transfer.
    fn check_status_writer(&self, store: &Id, writer: &Id) -> Result<(), Rejected> {
        let of_store = writer
            .as_str()
            .strip_prefix(store.as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'));
        let provisioned = self.lanes.get(store.as_str()).is_none_or(|lanes| {
            lanes
                .iter()
                .any(|lane: &WriterId| lane.as_str() == writer.as_str())
        });
        if of_store && provisioned {
            Ok(())
        } else {
            Err(Rejected::StatusWriter {
                store: store.to_string(),
                writer: writer.to_string(),
            })
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
    /// (together, each with its own number; see `hq/orders/epoch.rs`), the catalog does not.
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

    /// Applies a store's changes under the document's write lock (see `fresh.rs`).
    fn apply_store_changes(
        &mut self,
        id: &DocId,
        epoch: u32,
        incoming: Incoming,
    ) -> Result<Vec<Outgoing>, Rejected> {
        let mut out =
            self.with_document(id, |hq| hq.apply_store_changes_locked(id, epoch, incoming))?;
        // After the store's change is committed, each in its own transaction with its own
        // locks taken at its start (`fresh.rs`): a relay writes the other store's document
        // too, grants take a coupon's or a member's lock. Taking them while holding this
        // document's lock would break the one lock order (two relays in opposite directions
        // deadlocked). A failure is logged; the next change of the document retries.
        out.extend(self.relay_transfers(id));
        out.extend(self.settle_loyalty(id));
        out.extend(self.answer_coupon_asks(id));
        Ok(out)
    }

    fn apply_store_changes_locked(
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
        // A retired lane's later changes are refused before anything is applied.
        let authored = match &incoming {
            Incoming::Changes(changes) => authored_times(changes)?,
            Incoming::Bundle(bundle) => bundle_authored_times(bundle)?,
        };
        self.check_not_retired(&store, &authored)?;
        let prefix = format!("{store}.");
        let provisioned = self.lanes.get(&store).cloned();
        let doc = self.doc_for(id, epoch)?;
        // Changes held back for a missing dependency are applied by a later one, whose paths
        // do not say what they wrote: the read models then redo the whole document.
        let queued_before = !doc.missing_deps().is_empty();
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
        if queued_before || !outcome.missing_deps.is_empty() {
            self.db.record_written(&persist::doc_key(id), None);
        }
        self.persist_store(id, &incoming)
            .map_err(|e| Rejected::Apply(e.to_string()))?;
        self.drop_closed_epochs(id)
            .map_err(|e| Rejected::Apply(e.to_string()))?;
        self.heads_outgoing(id)
            .map(|o| vec![o])
            .map_err(|e| Rejected::Apply(e.to_string()))
    }

    /// Logs the received changes, refreshes the store's stock rows and sync time, in one
    /// transaction. On failure the in-memory document is rebuilt from SQLite.
    fn persist_store(&mut self, id: &DocId, incoming: &Incoming) -> Result<(), HqError> {
        let result = self.persist_store_tx(id, incoming);
        if result.is_err() {
            let epoch = self.current_epoch(id);
            let doc = docs::load_or_genesis(&self.db, id, epoch, self.writer.clone())?;
            self.docs.insert(id.clone(), doc);
        }
        result
    }

    fn persist_store_tx(&mut self, id: &DocId, incoming: &Incoming) -> Result<(), HqError> {
        // The order ids the changes may have added; a bundle (catch-up): every order.
        let order_ids = match (id.kind, incoming) {
            (DocKind::Orders, Incoming::Changes(changes)) => {
                crate::hq::orders::index::touched_order_ids(changes)
            }
            _ => None,
        };
        let order_ids = match order_ids {
            Some(ids) => ids,
            None if id.kind == DocKind::Orders => self.order_ids_in(id),
            None => BTreeSet::new(),
        };
        let Some(doc) = self.docs.get(id) else {
            return Ok(());
        };
        let now = crate::clock::now_utc();
        let tx = self.db.begin()?;
        match incoming {
            Incoming::Changes(changes) => {
                for change in changes {
                    docs::persist_change(&tx, doc, change, false, &now)?;
                }
            }
            Incoming::Bundle(bundle) => docs::persist_change(&tx, doc, bundle, true, &now)?,
        }
        tx.execute(
            "INSERT INTO hq_store (store, last_sync_ms, epoch) VALUES (?1, ?2, ?3)
             ON CONFLICT(store) DO UPDATE SET last_sync_ms = excluded.last_sync_ms",
            &[&id.store, &crate::clock::now_ms(), &doc.epoch()],
        )?;
        match id.kind {
            DocKind::Stock => write_stock_rows(
                &tx,
                &id.store,
                &levels_by_sku(&changed_levels(doc, incoming)?),
            )?,
            DocKind::Orders => {
                crate::hq::orders::index::index_orders(&tx, &id.store, &order_ids)?;
            }
            DocKind::Catalog => {}
        }
        tx.commit()?;
        Ok(())
    }

    fn answer_need(
        &mut self,
        store: &Id,
        writer: &Id,
        id: &DocId,
        epoch: u32,
        have: &[ChangeHash],
    ) -> Result<Vec<Outgoing>, Rejected> {
        self.refresh(id)
            .map_err(|e| Rejected::Apply(e.to_string()))?;
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

    fn record_status(&self, store: &str, writer: &str, online: bool) -> Result<(), HqError> {
        self.db.execute(
            "INSERT INTO hq_writer_status (store, writer, online) VALUES (?1, ?2, ?3)
             ON CONFLICT(store, writer) DO UPDATE SET online = excluded.online",
            &[&store, &writer, &i64::from(online)],
        )?;
        Ok(())
    }
}

/// What a writer's retained status says: `offline` (its last will, or a graceful stop),
/// `online {incarnation} {started_ms}` (a lane's claim) or a plain `online` (HQ, older
/// lanes). `None`: anything else, which says nothing.
pub(super) fn status_says_online(payload: &[u8]) -> Option<bool> {
    if payload == OFFLINE {
        Some(false)
    } else if payload == ONLINE || Claim::parse(payload).is_some() {
        Some(true)
    } else {
        None
    }
}

enum Incoming {
    Changes(Vec<Vec<u8>>),
    Bundle(Vec<u8>),
}

/// The levels an incoming message can have changed: only the SKUs its changes touch, read
/// from the document in place (recomputing every SKU from a clone made each change cost
/// O(history + SKUs) and fell behind on a busy chain). A bundle (catch-up) recomputes all,
/// in place too.
fn changed_levels(doc: &SyncDoc, incoming: &Incoming) -> Result<BTreeMap<String, i64>, HqError> {
    let touched = match incoming {
        Incoming::Changes(changes) => crate::crdt::doc::touched_keys(changes),
        Incoming::Bundle(_) => None,
    };
    let Some(touched) = touched else {
        doc.expect_kind(DocKind::Stock)?;
        return Ok(StockDoc::stock_levels_of(doc));
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
