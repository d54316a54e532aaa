//! Several HQ instances over one database: each keeps documents in memory, tagged with the
//! version it loaded (`hq_doc_version`, moved on by every write), and takes the stored one
//! again when another instance wrote since.
//!
//! Writes run in one transaction under PostgreSQL advisory locks ([`crate::hq::db::locks`]):
//! a store's changes hold their document's lock; HQ's own writes hold the locks of the
//! documents they change (an order placed: its store's orders document; a transfer relayed:
//! both stores'; an epoch cut: the store's stock and orders documents) plus, where a bounded
//! counter spans documents, that counter's lock (a coupon's pool, a member's points, an
//! order id). All locks of a transaction are taken at its start in one global order, so two
//! writers never deadlock. Inside the lock the document is refreshed before it is changed,
//! so no instance applies to a stale copy; reads refresh only the documents they read. On
//! SQLite (one instance) the locks are no-ops and the versions never differ.

use std::collections::BTreeMap;

use super::{HqError, HqState};
use crate::crdt::doc::{DocId, DocKind};
use crate::hq::db::{Touched, docs};
use crate::sync::persist::doc_key;

impl HqState {
    /// Runs `work` on the fresh document `id` under its write lock, in one transaction.
    /// On failure the transaction is rolled back and the documents the work used taken
    /// again from the database: not stored means not made.
    pub(in crate::hq) fn with_document<T, E: From<HqError>>(
        &mut self,
        id: &DocId,
        work: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        self.locked(std::slice::from_ref(id), &[], work)
    }

    /// Runs `work` under the locks of the documents `ids` (HQ's own writes: the documents
    /// it changes), on their fresh copies, in one transaction.
    pub(in crate::hq) fn with_documents<T, E: From<HqError>>(
        &mut self,
        ids: &[DocId],
        work: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        self.with_locks(ids, &[], work)
    }

    /// Runs `work` under the locks of the documents `ids` and of the counters `names`
    /// ([`crate::hq::db::locks`]: a coupon's pool, a member's points, an order id), all
    /// taken at once in the global order, on the fresh documents `ids`, in one transaction.
    /// The work may read other documents (through [`Self::refresh`]) but writes only these.
    pub(in crate::hq) fn with_locks<T, E: From<HqError>>(
        &mut self,
        ids: &[DocId],
        names: &[String],
        work: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.one_write_lock {
            let all_writes = [names, &["hq-all-writes".to_owned()]].concat();
            return self.locked(ids, &all_writes, work);
        }
        self.locked(ids, names, work)
    }

    /// [`Self::with_locks`] without the benchmark's one write lock (a store's changes never
    /// took it).
    fn locked<T, E: From<HqError>>(
        &mut self,
        ids: &[DocId],
        names: &[String],
        work: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        self.docs.start_operation();
        self.db.open_transaction().map_err(HqError::from)?;
        let all: Vec<String> = ids
            .iter()
            .map(doc_key)
            .chain(names.iter().cloned())
            .collect();
        let locked = self
            .db
            .lock_names(&all)
            .map_err(HqError::from)
            .and_then(|()| ids.iter().try_for_each(|id| self.refresh(id)));
        if let Err(e) = locked {
            self.abandon();
            return Err(e.into());
        }
        self.finish(work)
    }

    fn finish<T, E: From<HqError>>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        // The read models of the documents written go in the same transaction (`figures.rs`).
        let worked = work(self).and_then(|value| {
            self.write_touched_figures()?;
            Ok(value)
        });
        let result = match worked {
            Ok(value) => match self.db.finish_transaction(true).map_err(HqError::from) {
                Ok(touched) => {
                    self.record_versions(touched);
                    Ok(value)
                }
                Err(e) => {
                    let used = self.docs.used_in_operation();
                    self.reload_all(&used);
                    Err(e.into())
                }
            },
            Err(e) => {
                self.abandon();
                Err(e)
            }
        };
        self.trim();
        result
    }

    fn abandon(&mut self) {
        if let Err(e) = self.db.finish_transaction(false) {
            tracing::warn!(error = %e, "rolling back HQ's transaction failed");
        }
        let used = self.docs.used_in_operation();
        self.reload_all(&used);
    }

    /// Takes `ids` again as stored; one never stored (a genesis made in memory) is dropped.
    fn reload_all(&mut self, ids: &[DocId]) {
        for id in ids {
            self.versions.remove(id);
            match self.refresh(id) {
                Ok(()) if !self.versions.contains_key(id) => {
                    self.docs.remove(id);
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(doc = %doc_key(id), error = %e, "cannot reload a document");
                    self.docs.remove(id);
                    self.log_marks.remove(id);
                }
            }
        }
    }

    fn record_versions(&mut self, touched: BTreeMap<String, Touched>) {
        for (key, written) in touched {
            if let Some(id) = id_of_key(&key) {
                self.versions.insert(id.clone(), written.version);
                if let Some(change_id) = written.last_change_id {
                    let mark = self.log_marks.entry(id).or_default();
                    *mark = (*mark).max(change_id);
                }
            }
        }
    }

    /// Takes document `id` from the database if this instance has no copy of it (never
    /// loaded, or dropped from memory) or another instance wrote it since this copy was
    /// loaded; marks it as just used. Every use of a document goes through here.
    pub(in crate::hq) fn refresh(&mut self, id: &DocId) -> Result<(), HqError> {
        let stored = docs::version(&self.db, &doc_key(id))?;
        self.refresh_to(id, stored)?;
        if self.docs.contains_key(id) {
            self.docs.touch(id);
        }
        Ok(())
    }

    fn refresh_to(&mut self, id: &DocId, stored: i64) -> Result<(), HqError> {
        if stored == 0 || self.versions.get(id) == Some(&stored) {
            return Ok(());
        }
        let epoch = match id.kind {
            DocKind::Stock => stored_stock_epoch(&self.db, &id.store)?,
            DocKind::Orders => self.stored_orders_epoch(id)?,
            DocKind::Catalog => 0,
        };
        if let Some(version) = self.catch_up_from_log(id, epoch)? {
            self.versions.insert(id.clone(), version);
            return Ok(());
        }
        // Read before the load: a change logged in between is then applied twice (harmless)
        // rather than skipped by the next catch-up.
        let mark = docs::last_change_id(&self.db, id, epoch)?;
        self.reloads += 1;
        match docs::load_doc(&self.db, id, epoch, self.writer.clone())? {
            Some(doc) => {
                self.docs.insert(id.clone(), doc);
                if id.kind == DocKind::Stock {
                    self.epochs.insert(id.store.clone(), epoch);
                }
            }
            None => {
                self.docs.remove(id);
            }
        }
        self.log_marks.insert(id.clone(), mark);
        self.versions.insert(id.clone(), stored);
        Ok(())
    }

    /// Brings this copy of `id` up to the stored one by applying only what was logged since
    /// it was last in step (another instance's changes, usually one or a few), rather than
    /// rebuilding the document: a store's consecutive changes go to either instance. Returns
    /// the version reached, or `None` when that cannot be done or does not reach the stored
    /// heads (a save compacted the log, another epoch, a write in between): then the caller
    /// reloads the document whole.
    fn catch_up_from_log(&mut self, id: &DocId, epoch: u32) -> Result<Option<i64>, HqError> {
        let Some(&mark) = self.log_marks.get(id) else {
            return Ok(None);
        };
        if self.docs.get(id).is_none_or(|doc| doc.epoch() != epoch) {
            return Ok(None);
        }
        let Some((version, Some(stored_heads))) = docs::version_and_heads(&self.db, &doc_key(id))?
        else {
            return Ok(None);
        };
        let (entries, last) = docs::changes_after(&self.db, id, epoch, mark)?;
        let Some(doc) = self.docs.get_mut(id) else {
            return Ok(None);
        };
        if docs::apply_logged(doc, entries).is_err()
            || docs::heads_bytes(&doc.heads()) != stored_heads
        {
            return Ok(None);
        }
        self.log_marks.insert(id.clone(), last.unwrap_or(mark));
        Ok(Some(version))
    }
}

/// The epoch of `store`'s stock document as stored.
pub(super) fn stored_stock_epoch(db: &super::Db, store: &str) -> Result<u32, HqError> {
    Ok(db
        .query_opt(
            "SELECT epoch FROM hq_store WHERE store = ?1",
            &[&store],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// The document id of a `"{store}/{kind}"` row key.
pub(super) fn id_of_key(key: &str) -> Option<DocId> {
    let (store, kind) = key.rsplit_once('/')?;
    DocId::new(store, DocKind::parse(kind)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::stock::StockDoc;
    use crate::domain::stock::Movement;
    use crate::hq::db::testing::TestDb;
    use crate::sync::payload::SyncMessage;

    /// Two instances over one database take turns with one store's changes, as a shared
    /// subscription hands them out: both end with the same document and stock, and each
    /// catches up from the log rather than reloading the document for every change.
    #[test]
    fn two_instances_take_turns_and_catch_up_from_the_log() {
        let dir = TestDb::new();
        let mut a = HqState::open_target(&dir.target, "t", 0).unwrap();
        let mut b = HqState::open_target(&dir.target, "t", 0).unwrap();
        let mut lane = StockDoc::genesis(
            "s1",
            0,
            crate::crdt::doc::WriterId::new("s1.lane1").unwrap(),
        )
        .unwrap();
        let topic = "storenode/v1/t/s1/changes/stock/s1.lane1";
        for i in 0..20 {
            let change = lane
                .apply_movements(
                    &[Movement {
                        sku: "A".into(),
                        delta: if i == 0 { 100 } else { -1 },
                    }],
                    1,
                )
                .unwrap()
                .unwrap();
            let message = SyncMessage::Changes {
                doc: DocId::new("s1", DocKind::Stock).unwrap(),
                epoch: 0,
                changes: vec![change.bytes],
            }
            .encode()
            .unwrap();
            let hq = if i % 2 == 0 { &mut a } else { &mut b };
            hq.handle(topic, &message).unwrap();
        }
        let id = DocId::new("s1", DocKind::Stock).unwrap();
        a.refresh(&id).unwrap();
        b.refresh(&id).unwrap();
        let heads = lane.core().heads();
        assert_eq!(a.stock_doc("s1").unwrap().core().heads(), heads);
        assert_eq!(b.stock_doc("s1").unwrap().core().heads(), heads);
        assert_eq!(a.stock("s1", "A").unwrap().unwrap().on_hand, 81);
        assert_eq!(b.stock("s1", "A").unwrap().unwrap().on_hand, 81);
        // One full load each when it first meets the other's write; then the log.
        assert!(
            a.reloads <= 1 && b.reloads <= 1,
            "{} {}",
            a.reloads,
            b.reloads
        );
    }

    #[test]
    fn row_keys_name_their_document() {
        let id = DocId::new("s1", DocKind::Orders).unwrap();
        assert_eq!(id_of_key(&doc_key(&id)), Some(id));
        assert_eq!(id_of_key("nonsense"), None);
    }
}
