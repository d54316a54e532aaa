//! Store-to-store transfers between a node's SQLite and its store's orders document.
//!
//! Runs in the sync hook, inside the group commit, *before* the own movements become the
//! stock change (so the transfer movements booked here go out in the same commit):
//! - **own events → document**: each `transfer_event` this node recorded (dispatch,
//!   cancel, receipt) is written into the orders document (dispatch also writes the facts)
//!   and put in the outbox; HQ relays it to the other store;
//! - **document → SQLite** (only when the document's heads moved): an inbound transfer HQ
//!   addressed to this lane is created; a status decided by another writer (a receipt at
//!   the other store, a cancel by the sender) is applied and its stock effect booked by
//!   difference ([`crate::store::transfers::apply_remote_status`]).

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::{LocalError, NodeDocs};
use crate::crdt::doc::hash_to_hex;
use crate::crdt::transfers::{TransferDocError, TransferFacts};
use crate::domain::transfers::TransferStatus;
use crate::store::StoreError;
use crate::store::transfers::{self as store_transfers, Inbound, UnsharedEvent};
use crate::sync::persist;

fn doc_err(e: TransferDocError) -> LocalError {
    LocalError::Store(StoreError::Inconsistent(format!("transfers document: {e}")))
}

impl NodeDocs {
    /// Both directions (see the module docs). Returns whether a change was produced.
    pub fn sync_transfers(&mut self, conn: &Connection, now: &str) -> Result<bool, LocalError> {
        let mut produced = false;
        let mut renamed: BTreeMap<String, String> = BTreeMap::new();
        for mut event in store_transfers::unshared_events(conn)? {
            if let Some(new) = renamed.get(&event.transfer_id) {
                event.transfer_id = new.clone();
            } else if event.status == TransferStatus::InTransit
                && self.orders.transfer_facts(&event.transfer_id).is_some()
                && let Some(new) = self.fresh_transfer_id(conn, &event.transfer_id)?
            {
                store_transfers::rename(conn, &event.transfer_id, &new)?;
                tracing::warn!(
                    transfer = event.transfer_id,
                    shared_as = new,
                    "transfer id already published by this lane before a restore; shared under a fresh id"
                );
                renamed.insert(std::mem::replace(&mut event.transfer_id, new.clone()), new);
            }
            produced |= self.share_event(conn, &event, now)?;
            store_transfers::mark_shared(conn, event.event_id)?;
        }
        let heads: Vec<String> = self.orders.core().heads().iter().map(hash_to_hex).collect();
        let heads = heads.join(",");
        if store_transfers::doc_mark(conn)?.as_deref() != Some(heads.as_str()) {
            self.apply_doc_transfers(conn, now)?;
            store_transfers::set_doc_mark(conn, &heads)?;
        }
        Ok(produced)
    }

    /// A chain-wide id for a transfer dispatched again under `id` by a lane restored from
    /// an older backup: `{id}~{incarnation}` (`~` is never in a till's id).
    fn fresh_transfer_id(&self, conn: &Connection, id: &str) -> Result<Option<String>, LocalError> {
        let incarnation = self.writer.incarnation().unwrap_or("0");
        let candidate = format!("{id}~{}", &incarnation[..incarnation.len().min(8)]);
        let free = self.orders.transfer_facts(&candidate).is_none()
            && store_transfers::status(conn, &candidate)?.is_none();
        Ok(
            (free && candidate.len() <= crate::crdt::transfers::MAX_TRANSFER_ID_LEN)
                .then_some(candidate),
        )
    }

    fn share_event(
        &mut self,
        conn: &Connection,
        event: &UnsharedEvent,
        now: &str,
    ) -> Result<bool, LocalError> {
        let Some((from, to, created, dispatched, received)) =
            store_transfers::record_of(conn, &event.transfer_id)?
        else {
            return Ok(false);
        };
        let at_ms = rfc3339_ms(&event.at).unwrap_or_else(crate::clock::now_ms);
        let mut changes = Vec::new();
        if event.status == TransferStatus::InTransit {
            let facts = TransferFacts {
                transfer_id: event.transfer_id.clone(),
                from_store: from,
                to_store: to,
                created_at_ms: rfc3339_ms(&created).unwrap_or(at_ms),
                receiver: None,
                lines: dispatched,
            };
            changes.push(self.orders.put_transfer(&facts).map_err(doc_err)?);
        }
        if self.orders.transfer_facts(&event.transfer_id).is_none() {
            // Not in the document (e.g. a transfer made before sync was set up): stays local.
            return Ok(false);
        }
        let recorded = match event.status {
            TransferStatus::Received => {
                self.orders
                    .record_transfer_received(&event.transfer_id, &received, at_ms)
            }
            status => self
                .orders
                .record_transfer_status(&event.transfer_id, status, at_ms),
        };
        changes.push(recorded.map_err(doc_err)?);
        let mut produced = false;
        for change in changes.into_iter().flatten() {
            let core = self.orders.core();
            persist::persist_change(conn, core, &change.bytes, false, now)?;
            persist::outbox_push(conn, core.id(), core.epoch(), &change.hash, now)?;
            produced = true;
        }
        Ok(produced)
    }

    /// Creates inbound transfers addressed to this lane and applies statuses other writers
    /// decided for transfers this node has.
    fn apply_doc_transfers(&mut self, conn: &Connection, now: &str) -> Result<(), LocalError> {
        let store = self.orders.core().id().store.clone();
        for id in self.orders.transfer_ids() {
            let Some(facts) = self.orders.transfer_facts(&id) else {
                continue;
            };
            let mine = facts.dispatcher().as_ref() == Some(&self.writer)
                || facts.receiver.as_ref() == Some(&self.writer);
            if !mine {
                continue;
            }
            let have = store_transfers::status(conn, &id)?;
            // Nothing overrules a receipt: settled transfers cost no fold.
            if have == Some(TransferStatus::Received) {
                continue;
            }
            let Some(state) = self.orders.transfer_state(&id) else {
                continue;
            };
            let inbound = facts.receiver.as_ref() == Some(&self.writer) && facts.to_store == store;
            let own_outbound =
                facts.dispatcher().as_ref() == Some(&self.writer) && facts.from_store == store;
            if have.is_none() && own_outbound {
                // Ours, gone from SQLite (a restored backup): put back, so its id is not
                // taken twice and a cancel or receipt still books here.
                let created = rfc3339(facts.created_at_ms);
                let record = Inbound {
                    transfer_id: &id,
                    from_store: &facts.from_store,
                    to_store: &facts.to_store,
                    created_at: &created,
                    lines: &facts.lines,
                };
                store_transfers::restore_outbound(conn, &record, state.status, now)?;
                continue;
            }
            if have.is_none() && inbound {
                let created = rfc3339(facts.created_at_ms);
                let record = Inbound {
                    transfer_id: &id,
                    from_store: &facts.from_store,
                    to_store: &facts.to_store,
                    created_at: &created,
                    lines: &facts.lines,
                };
                // A receipt by this lane is only ever made through SQLite first, so a new
                // inbound transfer is in transit or already cancelled by the sender.
                let status = match state.status {
                    TransferStatus::Received => TransferStatus::InTransit,
                    other => other,
                };
                store_transfers::create_inbound(conn, &record, status, now)?;
                continue;
            }
            if have.is_some() && have != Some(state.status) {
                let received: Option<BTreeMap<String, i64>> = self.orders.transfer_received(&id);
                store_transfers::apply_remote_status(
                    conn,
                    &id,
                    state.status,
                    received.as_ref(),
                    &state.decided_by.writer,
                    now,
                )?;
            }
        }
        Ok(())
    }
}

fn rfc3339_ms(at: &str) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

fn rfc3339(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::crdt::doc::{DocId, DocKind, WriterId};
    use crate::crdt::orders::OrdersDoc;
    use crate::store::BatchHook;
    use crate::store::TaxConfig;
    use crate::store::ledger::{self, Movement, MovementKind};
    use crate::store::sales::WriteContext;
    use crate::store::transfers::{NewTransfer, TransferLineRequest};
    use crate::sync::local::{self, RemoteChanges, SharedDocs};
    use crate::sync::node::hook::{DocsSlot, SyncHook};

    fn setup() -> (Connection, SyncHook, SharedDocs) {
        let conn = crate::store::testing::memory_db();
        conn.execute_batch(
            "INSERT INTO item (sku, name, price_minor, currency, tax_class, updated_at)
             VALUES ('MILK', 'Milk', 100, 'EUR', 'standard', 'x');",
        )
        .unwrap();
        let writer = WriterId::new("s1.lane1").unwrap();
        let docs = Arc::new(Mutex::new(NodeDocs::load(&conn, "s1", writer).unwrap()));
        let slot: DocsSlot = Arc::default();
        let _ = slot.set(docs.clone());
        let hook = SyncHook::new(slot, "s1", Arc::default(), Arc::default());
        (conn, hook, docs)
    }

    fn commit(conn: &Connection, hook: &mut SyncHook, writes: impl FnOnce(&Connection)) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        writes(conn);
        hook.before_commit(conn).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        hook.after_commit();
    }

    fn ctx<'a>(tax: &'a TaxConfig) -> WriteContext<'a> {
        WriteContext {
            terminal: "pos1",
            writer_id: "s1.lane1",
            currency: "EUR",
            tax,
            now: "2026-01-01T00:00:00.000Z",
            pricing: None,
        }
    }

    fn on_hand(conn: &Connection) -> i64 {
        conn.query_row(
            "SELECT on_hand FROM stock_level WHERE sku = 'MILK'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn dispatch_cancel_and_a_relayed_receipt_reach_both_documents_once() {
        let (conn, mut hook, docs) = setup();
        let tax = crate::sync::local::orders::no_tax();
        commit(&conn, &mut hook, |c| {
            let receipt = Movement {
                sku: "MILK",
                kind: MovementKind::Receipt,
                on_hand_delta: 20,
                reserved_delta: 0,
                ref_type: "receipt",
                ref_id: "r1",
                terminal: "pos1",
            };
            ledger::record(c, &receipt, "now").unwrap();
        });
        commit(&conn, &mut hook, |c| {
            let request = NewTransfer {
                transfer_id: "t1".into(),
                to_store: "s2".into(),
                lines: vec![TransferLineRequest {
                    sku: Some("MILK".into()),
                    gtin: None,
                    quantity: 5,
                }],
            };
            store_transfers::create(c, &ctx(&tax), "s1", &request).unwrap();
        });
        {
            let guard = local::lock(&docs);
            // The facts and the event in the orders document, the movement in the stock
            // document, in the same commit.
            assert_eq!(
                guard.orders().transfer_ids(),
                vec!["s1.lane1:t1".to_owned()]
            );
            assert_eq!(
                guard.orders().transfer_state("s1.lane1:t1").unwrap().status,
                TransferStatus::InTransit
            );
            assert_eq!(guard.stock().stock("MILK"), 15);
        }
        let orders_id = DocId::new("s1", DocKind::Orders).unwrap();
        assert_eq!(persist::outbox(&conn, &orders_id, 0).unwrap().len(), 2);
        commit(&conn, &mut hook, |c| {
            store_transfers::cancel(c, &ctx(&tax), "t1").unwrap();
        });
        assert_eq!(on_hand(&conn), 20);
        assert_eq!(local::lock(&docs).stock().stock("MILK"), 20);

        // HQ relays the other store's receipt (which crossed the cancel), twice.
        let mut hq = OrdersDoc::genesis("s1", 0, WriterId::hq()).unwrap();
        let ours = local::lock(&docs)
            .orders()
            .core()
            .changes_since(&hq.core().heads());
        hq.core_mut().apply_changes(&ours).unwrap();
        let got = BTreeMap::from([("MILK".to_owned(), 5)]);
        let relayed = hq
            .record_transfer_received("s1.lane1:t1", &got, 99)
            .unwrap()
            .unwrap();
        for _ in 0..2 {
            let change = RemoteChanges::Changes(vec![relayed.bytes.clone()]);
            commit(&conn, &mut hook, |c| {
                local::lock(&docs)
                    .apply_remote(c, &orders_id, 0, &change, "now")
                    .unwrap();
            });
        }
        let view = store_transfers::get(&conn, "t1").unwrap().unwrap();
        assert_eq!(view.status, TransferStatus::Received);
        assert_eq!(view.lines[0].received, Some(5));
        assert_eq!(on_hand(&conn), 15, "booked out again, once");
        assert_eq!(local::lock(&docs).stock().stock("MILK"), 15);
        assert!(ledger::verify(&conn).unwrap().is_empty());
    }
}
