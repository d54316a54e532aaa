//! HQ's documents in memory, at most a configured number of them (`[hq] documents_in_memory`):
//! the least recently used are dropped when an operation ends ([`HqState::trim`]) and
//! loaded again from the database the next time they are used (`fresh.rs`).
//!
//! Dropping needs no save first: every change HQ applies or makes is stored in the
//! transaction that applies it (`db::docs::persist_change`), and a copy that was changed
//! without being stored is thrown away on the failure path anyway. So a document in memory
//! is always one the database can rebuild.
//!
//! A document in use is never dropped in the middle of an operation: [`Documents`] only
//! grows while one runs (an operation on two stores' documents may pass the bound for its
//! duration), and is cut back to the bound between operations.

use std::collections::{BTreeMap, BTreeSet};

use super::HqState;
use crate::crdt::doc::{DocId, SyncDoc};

pub use crate::sync::config::DEFAULT_DOCUMENTS_IN_MEMORY;

/// The documents in memory and when each was last used.
pub struct Documents {
    docs: BTreeMap<DocId, SyncDoc>,
    /// Per document, the tick of its last use; `by_use` is the same, ordered by tick.
    used_at: BTreeMap<DocId, u64>,
    by_use: BTreeMap<u64, DocId>,
    tick: u64,
    /// At most this many documents between operations; `None`: no bound.
    capacity: Option<usize>,
    /// Documents used since [`Self::start_operation`]: what a failed write must forget.
    in_operation: BTreeSet<DocId>,
}

impl Documents {
    pub fn new(capacity: Option<usize>) -> Self {
        Self {
            docs: BTreeMap::new(),
            used_at: BTreeMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            capacity,
            in_operation: BTreeSet::new(),
        }
    }

    pub fn get(&self, id: &DocId) -> Option<&SyncDoc> {
        self.docs.get(id)
    }

    pub fn get_mut(&mut self, id: &DocId) -> Option<&mut SyncDoc> {
        self.touch(id);
        self.docs.get_mut(id)
    }

    pub fn contains_key(&self, id: &DocId) -> bool {
        self.docs.contains_key(id)
    }

    pub fn insert(&mut self, id: DocId, doc: SyncDoc) {
        self.touch(&id);
        self.docs.insert(id, doc);
    }

    pub fn remove(&mut self, id: &DocId) -> Option<SyncDoc> {
        if let Some(tick) = self.used_at.remove(id) {
            self.by_use.remove(&tick);
        }
        self.docs.remove(id)
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// The documents in memory.
    #[cfg(test)]
    pub fn ids(&self) -> Vec<DocId> {
        self.docs.keys().cloned().collect()
    }

    /// Marks `id`, in memory, as just used.
    pub fn touch(&mut self, id: &DocId) {
        self.tick += 1;
        if let Some(old) = self.used_at.insert(id.clone(), self.tick) {
            self.by_use.remove(&old);
        }
        self.by_use.insert(self.tick, id.clone());
        self.in_operation.insert(id.clone());
    }

    /// Starts recording the documents an operation uses.
    pub fn start_operation(&mut self) {
        self.in_operation.clear();
    }

    /// The documents used since [`Self::start_operation`].
    pub fn used_in_operation(&self) -> Vec<DocId> {
        self.in_operation.iter().cloned().collect()
    }

    /// Drops the least recently used documents past the bound; returns their ids.
    pub fn evict(&mut self) -> Vec<DocId> {
        let Some(capacity) = self.capacity else {
            return Vec::new();
        };
        let mut evicted = Vec::new();
        while self.docs.len() > capacity {
            let Some((_, id)) = self.by_use.pop_first() else {
                break;
            };
            self.used_at.remove(&id);
            if self.docs.remove(&id).is_some() {
                evicted.push(id);
            }
        }
        evicted
    }
}

impl std::ops::Index<&DocId> for Documents {
    type Output = SyncDoc;

    /// The document `id`, which must be in memory (tests).
    fn index(&self, id: &DocId) -> &SyncDoc {
        &self.docs[id]
    }
}

impl HqState {
    /// Cuts the documents in memory back to the bound (between operations), forgetting
    /// what this instance knew of each dropped one: its next use loads it whole.
    pub fn trim(&mut self) {
        for id in self.docs.evict() {
            self.versions.remove(&id);
            self.log_marks.remove(&id);
            self.evictions += 1;
            tracing::debug!(doc = %crate::sync::persist::doc_key(&id), "document dropped from memory");
        }
        if let Some(gauges) = &self.gauges {
            use std::sync::atomic::Ordering::Relaxed;
            let count = u64::try_from(self.docs.len()).unwrap_or(u64::MAX);
            gauges.in_memory.store(count, Relaxed);
            gauges.evictions.store(self.evictions, Relaxed);
            gauges.reloads.store(self.reloads, Relaxed);
        }
    }

    /// How many documents are in memory now.
    pub fn documents_in_memory(&self) -> usize {
        self.docs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::doc::DocKind;

    fn doc(store: &str) -> (DocId, SyncDoc) {
        let id = DocId::new(store, DocKind::Stock).unwrap();
        let doc = SyncDoc::genesis(&id, 0, crate::crdt::doc::WriterId::hq()).unwrap();
        (id, doc)
    }

    #[test]
    fn the_least_recently_used_go_first() {
        let mut docs = Documents::new(Some(2));
        for store in ["a", "b", "c"] {
            let (id, d) = doc(store);
            docs.insert(id, d);
        }
        // `a` used again: `b` is now the oldest.
        docs.touch(&doc("a").0);
        assert_eq!(docs.evict(), vec![doc("b").0]);
        assert!(docs.contains_key(&doc("a").0) && docs.contains_key(&doc("c").0));
        assert_eq!(Documents::new(None).evict(), Vec::<DocId>::new());
    }
}
