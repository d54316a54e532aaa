//! Store-to-store transfers at HQ: HQ is the hub between the two stores' orders documents
//! (a store writes only its own), and keeps the chain-wide view.
//!
//! - `relay.rs`: copying facts and status events between the two stores' documents;
//! - this file: the transfer views HQ serves (`hq_transfer` and both documents);
//! - `http.rs`: `/v1/transfers`.

pub(super) mod http;
mod relay;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::crdt::doc::{DocError, DocId, DocKind};
use crate::crdt::orders::OrdersDoc;
use crate::crdt::transfers::{TransferDocError, TransferFacts};
use crate::domain::transfers::{TransferEvent, TransferStatus, discrepancy, fold_status};
use crate::hq::state::{HqError, HqState};

/// `GET /v1/transfers/{id}` at HQ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HqTransferView {
    pub transfer_id: String,
    pub from_store: String,
    pub to_store: String,
    pub receiver: Option<String>,
    pub status: TransferStatus,
    pub decided_by: Option<TransferEvent>,
    pub created_at_ms: i64,
    pub lines: Vec<HqTransferLine>,
    /// Every writer's status events from both stores' documents, oldest first.
    pub history: Vec<TransferEvent>,
    /// Both stores' documents show this status (false: HQ still has something to relay,
    /// e.g. the receiving store has no lane HQ knows yet).
    pub synced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HqTransferLine {
    pub sku: String,
    pub dispatched: i64,
    pub received: Option<i64>,
    /// received − dispatched once received (negative: short).
    pub discrepancy: Option<i64>,
}

/// One row of `GET /v1/transfers?store=S`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HqTransferSummary {
    pub transfer_id: String,
    pub from_store: String,
    pub to_store: String,
    pub status: TransferStatus,
    pub created_at_ms: i64,
}

/// Units of a SKU in transit from or to a store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InTransit {
    pub sku: String,
    /// Dispatched by this store, not yet received or cancelled.
    pub outbound: i64,
    /// Dispatched to this store, not yet received or cancelled.
    pub inbound: i64,
}

fn doc_err(e: TransferDocError) -> HqError {
    HqError::Doc(DocError::NotOurDocument(e.to_string()))
}

impl HqState {
    /// One transfer by its chain-wide id (`{dispatching lane}:{local id}`).
    pub fn transfer_view(&mut self, id: &str) -> Result<Option<HqTransferView>, HqError> {
        match self.transfer_docs(id)? {
            Some((from_id, to_id, _)) => self.view_from(id, &from_id, &to_id),
            None => Ok(None),
        }
    }

    /// Transfers from or to `store`, optionally by status, newest first.
    pub fn transfers_of(
        &self,
        store: &str,
        status: Option<TransferStatus>,
    ) -> Result<Vec<HqTransferSummary>, HqError> {
        let rows = self.db.query(
            "SELECT id, from_store, to_store, status, created_at_ms FROM hq_transfer
             WHERE (from_store = ?1 OR to_store = ?1) AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)
             ORDER BY created_at_ms DESC, id LIMIT 1000",
            &[&store, &status.map(TransferStatus::as_str)],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                    r.get::<String>(3)?,
                    r.get::<i64>(4)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for (transfer_id, from_store, to_store, status, created_at_ms) in rows {
            let Some(status) = TransferStatus::parse(&status) else {
                continue;
            };
            out.push(HqTransferSummary {
                transfer_id,
                from_store,
                to_store,
                status,
                created_at_ms,
            });
        }
        Ok(out)
    }

    /// Per SKU, the units in transit out of and into `store`.
    pub fn in_transit(&self, store: &str) -> Result<Vec<InTransit>, HqError> {
        // SUM of BIGINT is NUMERIC on PostgreSQL: cast back to an integer on both.
        Ok(self.db.query(
            "SELECT l.sku,
                    CAST(COALESCE(SUM(CASE WHEN t.from_store = ?1 THEN l.dispatched END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN t.to_store = ?1 THEN l.dispatched END), 0) AS BIGINT)
             FROM hq_transfer t JOIN hq_transfer_line l ON l.transfer_id = t.id
             WHERE t.status = 'in_transit' AND (t.from_store = ?1 OR t.to_store = ?1)
             GROUP BY l.sku ORDER BY l.sku",
            &[&store],
            |r| {
                Ok(InTransit {
                    sku: r.get(0)?,
                    outbound: r.get(1)?,
                    inbound: r.get(2)?,
                })
            },
        )?)
    }

    /// `(sender's doc, receiver's doc, facts)` of a transfer, if it is well formed: the
    /// dispatcher is a lane of the sending store and the stores differ. Both documents are
    /// loaded (as stored) when this answers `Some`.
    fn transfer_docs(
        &mut self,
        id: &str,
    ) -> Result<Option<(DocId, DocId, TransferFacts)>, HqError> {
        // Only the sending store's document can hold the dispatcher's facts: look there
        // (cloning every store's document would not scale). The dispatcher `{store}.{node}`
        // names its store; a store id with dots leaves a few candidates.
        let Some((dispatcher, _)) = id.split_once(':') else {
            return Ok(None);
        };
        let mut facts = None;
        for (at, _) in dispatcher.match_indices('.') {
            let Ok(doc_id) = DocId::new(&dispatcher[..at], DocKind::Orders) else {
                continue;
            };
            self.refresh(&doc_id)?;
            facts = self
                .read_orders(&doc_id, |doc| doc.transfer_facts(id))
                .flatten();
            if facts.is_some() {
                break;
            }
        }
        let Some(facts) = facts else {
            return Ok(None);
        };
        let sender_lane = facts
            .dispatcher()
            .is_some_and(|w| w.as_str().starts_with(&format!("{}.", facts.from_store)));
        if !sender_lane || facts.from_store == facts.to_store {
            tracing::warn!(transfer = id, "transfer with a foreign sender ignored");
            return Ok(None);
        }
        let from_id = DocId::new(&facts.from_store, DocKind::Orders)?;
        let to_id = DocId::new(&facts.to_store, DocKind::Orders)?;
        self.refresh(&from_id)?;
        self.refresh(&to_id)?;
        Ok(Some((from_id, to_id, facts)))
    }

    fn view_from(
        &mut self,
        id: &str,
        from_id: &DocId,
        to_id: &DocId,
    ) -> Result<Option<HqTransferView>, HqError> {
        self.read_orders_pair(from_id, to_id, |from, to| view_of(id, from, to))
    }
}

/// A transfer as both stores' documents show it (`None`: neither holds it).
fn view_of(id: &str, from: &OrdersDoc, to: &OrdersDoc) -> Option<HqTransferView> {
    let facts = from.transfer_facts(id).or_else(|| to.transfer_facts(id))?;
    let receiver = to.transfer_facts(id).and_then(|f| f.receiver);
    let mut history: Vec<TransferEvent> = from
        .transfer_events(id)
        .into_iter()
        .chain(to.transfer_events(id))
        .collect();
    history.sort_by(|a, b| (a.at_ms, &a.writer, a.status).cmp(&(b.at_ms, &b.writer, b.status)));
    history.dedup();
    let state = fold_status(&history)?;
    let received = to
        .transfer_received(id)
        .or_else(|| from.transfer_received(id));
    let synced = receiver.is_some()
        && from.transfer_state(id).map(|s| s.status) == Some(state.status)
        && to.transfer_state(id).map(|s| s.status) == Some(state.status);
    Some(HqTransferView {
        transfer_id: id.to_owned(),
        from_store: facts.from_store.clone(),
        to_store: facts.to_store.clone(),
        receiver: receiver.map(|r| r.as_str().to_owned()),
        status: state.status,
        decided_by: Some(state.decided_by),
        created_at_ms: facts.created_at_ms,
        lines: lines_view(&facts.lines, received.as_ref()),
        history,
        synced,
    })
}

fn lines_view(
    dispatched: &BTreeMap<String, i64>,
    received: Option<&BTreeMap<String, i64>>,
) -> Vec<HqTransferLine> {
    let diff = received.map(|r| discrepancy(dispatched, r));
    let mut skus: Vec<&String> = dispatched.keys().collect();
    if let Some(r) = received {
        skus.extend(r.keys());
    }
    skus.sort();
    skus.dedup();
    skus.into_iter()
        .map(|sku| HqTransferLine {
            sku: sku.clone(),
            dispatched: dispatched.get(sku).copied().unwrap_or(0),
            received: received.map(|r| r.get(sku).copied().unwrap_or(0)),
            discrepancy: diff.as_ref().map(|d| d.get(sku).copied().unwrap_or(0)),
        })
        .collect()
}
