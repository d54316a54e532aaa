//! How HQ relays transfers between the two stores' orders documents.
//!
//! Whenever a store's orders document changes, HQ ([`HqState::relay_transfers`], after the
//! store's change is committed, each transfer in its own transaction holding both stores'
//! documents' locks):
//! 1. copies a new transfer's facts from the sender's document into the receiver's, naming
//!    the receiving lane (an online lane HQ has seen, as for online orders); a store HQ has
//!    never seen a lane of waits (`synced = 0`) until one shows up;
//! 2. mirrors every status event one document has and the other lacks (a receipt with its
//!    counted lines into the sender's, a cancel into the receiver's), as HQ's own event with
//!    the original time, so both documents fold to the same status;
//! 3. refreshes `hq_transfer` (status, dispatched and received per SKU) for the HTTP API.
//!
//! Everything is idempotent: a replayed change finds nothing missing and writes nothing.

use crate::hq::db::docs;
use std::collections::BTreeMap;

use super::doc_err;
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::orders::OrdersDoc;
use crate::crdt::transfers::{TransferDocError, TransferFacts};
use crate::domain::transfers::TransferStatus;
use crate::hq::state::{HqError, HqState, Outgoing};
use crate::sync::payload::SyncMessage;
use crate::sync::service::{kind_id, scope_of};
use crate::sync::topics::{Id, Scope};
use crate::sync::wire::WireError;

impl HqState {
    /// Relays the transfers of a store's orders document that changed (see the module docs).
    /// Returns the changes and heads to publish. Failures are logged: the store's own change
    /// is already applied and stored, and the next change of either document retries.
    pub(in crate::hq) fn relay_transfers(&mut self, changed: &DocId) -> Vec<Outgoing> {
        if changed.kind != DocKind::Orders {
            return Vec::new();
        }
        let Some(transfers) = self.read_orders(changed, |doc| {
            doc.transfer_ids()
                .into_iter()
                .map(|id| {
                    let status = doc.transfer_state(&id).map(|s| s.status);
                    (id, status)
                })
                .collect::<Vec<_>>()
        }) else {
            return Vec::new();
        };
        let ids: Vec<String> = transfers
            .into_iter()
            .filter(|(id, status)| !self.is_synced(id, *status).unwrap_or(false))
            .map(|(id, _)| id)
            .collect();
        self.relay_ids(&ids)
    }

    /// Retries the transfers to `store` still waiting for a receiving lane (a lane of it
    /// was just seen).
    pub(in crate::hq) fn relay_pending_to(&mut self, store: &str) -> Vec<Outgoing> {
        let ids: Vec<String> = match self.db.query(
            "SELECT id FROM hq_transfer WHERE to_store = ?1 AND synced = 0",
            &[&store],
            |r| r.get(0),
        ) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read pending transfers");
                return Vec::new();
            }
        };
        self.relay_ids(&ids)
    }

    fn relay_ids(&mut self, ids: &[String]) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let mut touched = Vec::new();
        for id in ids {
            match self.relay_one(id) {
                Ok(changed) => touched.extend(changed),
                Err(e) => {
                    tracing::warn!(transfer = %id, error = %e, "transfer relay failed; retried with the next change");
                }
            }
        }
        for (doc, changes) in touched_changes(touched) {
            match self.publish_doc_changes(&doc, changes) {
                Ok(messages) => out.extend(messages),
                Err(e) => tracing::warn!(error = %e, "cannot publish relayed transfer changes"),
            }
        }
        out
    }

    /// Relays one transfer; returns `(doc, change bytes)` of every change HQ made. Both
    /// stores' documents are locked together, in the global order, in one transaction: two
    /// relays between the same stores in opposite directions wait for each other instead of
    /// deadlocking (each used to hold its own document's lock and wait for the other's).
    fn relay_one(&mut self, id: &str) -> Result<Vec<(DocId, Vec<u8>)>, HqError> {
        let Some((from_id, to_id, facts)) = self.transfer_docs(id)? else {
            return Ok(Vec::new());
        };
        self.with_documents(&[from_id.clone(), to_id.clone()], |hq| {
            hq.relay_locked(id, &from_id, &to_id, &facts)
        })
    }

    fn relay_locked(
        &mut self,
        id: &str,
        from_id: &DocId,
        to_id: &DocId,
        facts: &TransferFacts,
    ) -> Result<Vec<(DocId, Vec<u8>)>, HqError> {
        let mut made = Vec::new();
        if let Some(change) = self.copy_facts(to_id, facts)? {
            made.push((to_id.clone(), change));
        }
        let missing = self.read_orders_pair(from_id, to_id, |from, to| {
            [
                (from_id, missing_events(from, to, id)),
                (to_id, missing_events(to, from, id)),
            ]
        })?;
        for (target_id, events) in missing {
            for (status, at_ms, lines) in events {
                let change = self.hq_write(target_id, |doc| match (&status, &lines) {
                    (TransferStatus::Received, Some(lines)) => {
                        doc.record_transfer_received(id, lines, at_ms)
                    }
                    _ => doc.record_transfer_status(id, status, at_ms),
                })?;
                if let Some(change) = change {
                    made.push((target_id.clone(), change));
                }
            }
        }
        self.refresh_row(id, from_id, to_id)?;
        Ok(made)
    }

    /// Writes HQ's copy of the facts (with the receiving lane) into the receiver's document.
    fn copy_facts(
        &mut self,
        to_id: &DocId,
        facts: &TransferFacts,
    ) -> Result<Option<Vec<u8>>, HqError> {
        let relayed = self.read_orders_or_genesis(to_id, |to| {
            to.transfer_facts(&facts.transfer_id)
                .is_some_and(|f| f.receiver.is_some())
        })?;
        if relayed {
            return Ok(None);
        }
        let Some(receiver) = self.receiving_lane(&to_id.store)? else {
            tracing::info!(
                transfer = facts.transfer_id,
                to_store = to_id.store,
                "no lane of the receiving store known yet; relay waits"
            );
            return Ok(None);
        };
        let copy = TransferFacts {
            receiver: Some(receiver),
            ..facts.clone()
        };
        self.hq_write(to_id, |doc| doc.put_transfer(&copy))
    }

    fn receiving_lane(&self, store: &str) -> Result<Option<WriterId>, HqError> {
        let writer: Option<String> = self.db.query_opt(
            "SELECT writer FROM hq_lane WHERE store = ?1
             ORDER BY online DESC, writer LIMIT 1",
            &[&store],
            |r| r.get(0),
        )?;
        Ok(writer.and_then(|w| WriterId::new(&w).ok()))
    }

    /// Runs one HQ write on a store's orders document (its genesis if HQ has none yet) in
    /// place and stores the change (with the store row, so the document is loaded again
    /// after a restart), inside [`Self::relay_one`]'s transaction, which holds the
    /// document's lock and refreshed it. On failure that transaction takes the document
    /// again as stored.
    fn hq_write<F>(&mut self, id: &DocId, write: F) -> Result<Option<Vec<u8>>, HqError>
    where
        F: FnOnce(
            &mut OrdersDoc,
        ) -> Result<Option<crate::crdt::doc::LocalChange>, TransferDocError>,
    {
        let genesis = !self.docs.contains_key(id);
        if genesis {
            let doc = crate::crdt::doc::SyncDoc::genesis(id, 0, self.writer.clone())?;
            self.docs.insert(id.clone(), doc);
        }
        let written = self.write_orders(id, write).unwrap_or(Ok(None));
        let change = match written {
            Ok(Some(change)) => change,
            other => {
                if genesis {
                    self.docs.remove(id); // nothing written: no copy HQ never stored
                }
                return other.map(|_| None).map_err(doc_err);
            }
        };
        let Some(doc) = self.docs.get(id) else {
            return Ok(None);
        };
        let now = crate::clock::now_utc();
        let tx = self.db.begin()?;
        docs::persist_change(&tx, doc, &change.bytes, false, &now)?;
        tx.execute(
            "INSERT INTO hq_store (store, epoch) VALUES (?1, 0) ON CONFLICT(store) DO NOTHING",
            &[&id.store],
        )?;
        tx.commit()?;
        Ok(Some(change.bytes))
    }

    fn publish_doc_changes(
        &self,
        id: &DocId,
        changes: Vec<Vec<u8>>,
    ) -> Result<Vec<Outgoing>, HqError> {
        let topic = self
            .topics
            .changes_about(
                &Scope::Hq,
                &scope_of(id)?,
                &kind_id(DocKind::Orders)?,
                &Id::new(self.writer.as_str())?,
            )
            .to_string();
        let payload = SyncMessage::Changes {
            doc: id.clone(),
            epoch: self.orders_epoch(id),
            changes,
        }
        .encode()
        .map_err(WireError::from)?;
        Ok(vec![
            Outgoing {
                topic,
                payload,
                retain: false,
            },
            self.heads_outgoing(id)?,
        ])
    }

    fn is_synced(&self, id: &str, status: Option<TransferStatus>) -> Result<bool, HqError> {
        let row: Option<(String, i64)> = self.db.query_opt(
            "SELECT status, synced FROM hq_transfer WHERE id = ?1",
            &[&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(row.is_some_and(|(s, synced)| synced == 1 && status.is_some_and(|st| st.as_str() == s)))
    }

    /// Refreshes `hq_transfer` from both documents.
    fn refresh_row(&mut self, id: &str, from_id: &DocId, to_id: &DocId) -> Result<(), HqError> {
        let Some(view) = self.view_from(id, from_id, to_id)? else {
            return Ok(());
        };
        let tx = self.db.begin()?;
        tx.execute(
            "INSERT INTO hq_transfer (id, from_store, to_store, receiver, status, created_at_ms, updated_ms, synced)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET receiver = excluded.receiver, status = excluded.status,
               updated_ms = excluded.updated_ms, synced = excluded.synced",
            &[&id, &view.from_store, &view.to_store, &view.receiver, &view.status.as_str(), &view.created_at_ms, &crate::clock::now_ms(), &i64::from(view.synced)],
        )?;
        for line in &view.lines {
            tx.execute(
                "INSERT INTO hq_transfer_line (transfer_id, sku, dispatched, received) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(transfer_id, sku) DO UPDATE SET dispatched = excluded.dispatched, received = excluded.received",
                &[&id, &line.sku, &line.dispatched, &line.received],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Groups the changes per document, in the order they were made.
fn touched_changes(changes: Vec<(DocId, Vec<u8>)>) -> BTreeMap<DocId, Vec<Vec<u8>>> {
    let mut out: BTreeMap<DocId, Vec<Vec<u8>>> = BTreeMap::new();
    for (doc, change) in changes {
        out.entry(doc).or_default().push(change);
    }
    out
}

/// A status one document has and the other lacks: `(status, earliest time, received lines
/// for a receipt)`.
type MissingEvent = (TransferStatus, i64, Option<BTreeMap<String, i64>>);

/// Statuses `source` has for `id` that `target` lacks.
/// Statuses `source` has for `id` that `target` lacks.
fn missing_events(target: &OrdersDoc, source: &OrdersDoc, id: &str) -> Vec<MissingEvent> {
    if target.transfer_facts(id).is_none() {
        return Vec::new(); // the receiver's copy is not there yet (no lane known)
    }
    let have: Vec<TransferStatus> = target
        .transfer_events(id)
        .iter()
        .map(|e| e.status)
        .collect();
    let mut earliest: BTreeMap<TransferStatus, i64> = BTreeMap::new();
    for event in source.transfer_events(id) {
        let at = earliest.entry(event.status).or_insert(event.at_ms);
        *at = (*at).min(event.at_ms);
    }
    earliest
        .into_iter()
        .filter(|(status, _)| !have.contains(status))
        .map(|(status, at)| {
            let lines = (status == TransferStatus::Received)
                .then(|| source.transfer_received(id))
                .flatten();
            (status, at, lines)
        })
        .collect()
}
