//! Opening a store's next stock epoch (bounded history; see [`crate::sync::epoch`]): cut at
//! HQ's heads, with the store's orders epoch ([`crate::hq::orders`]), announced to the
//! stores; older epochs dropped once every writer moved over.

use super::stock::write_stock_rows;
use super::{HqError, HqState, Outgoing};
use crate::crdt::doc::{DocId, DocKind, SyncDoc, WriterId};
use crate::crdt::epoch::{EpochPlan, all_moved_over_but, all_moved_over_in, open_next_epoch};
use crate::hq::db::docs;
use crate::sync::local::levels_by_sku;
use crate::sync::payload::SyncMessage;
use crate::sync::service::{kind_id, scope_of};
use crate::sync::topics::{Id, Scope};
use crate::sync::wire::{self, WireError};

impl HqState {
    /// Opens the next stock epoch of `store` cut at HQ's current heads (see
    /// [`crate::sync::epoch`]): the new document holds the stock at the cut as its base.
    /// Returns the new epoch and the messages announcing it (the retained heads of the new
    /// epoch are the announcement a store that was offline finds when it comes back).
    pub fn open_epoch(&mut self, store: &str) -> Result<(u32, Vec<Outgoing>), HqError> {
        let ids = [
            DocId::new(store, DocKind::Stock)?,
            DocId::new(store, DocKind::Orders)?,
        ];
        let opened = self.with_documents(&ids, |hq| hq.open_epoch_locked(store))?;
        // The closed epoch's documents (a day of history each, MiBs) were just freed. glibc
        // keeps freed pages in its heaps, so without this HQ's RSS stayed at its peak after
        // every cut (`examples/bench_hq_scale -- --day`); a pass over the heaps costs
        // milliseconds, once per store per epoch.
        crate::memory::release_freed();
        Ok(opened)
    }

    fn open_epoch_locked(&mut self, store: &str) -> Result<(u32, Vec<Outgoing>), HqError> {
        let id = DocId::new(store, DocKind::Stock)?;
        let Some(old) = self.loaded_stock_doc(store) else {
            return Err(HqError::UnknownStore(store.to_owned()));
        };
        // One epoch at a time: a writer still on E-1 could not carry over into E+1. A lane
        // retired for good never will, and is not waited for.
        let retired = self.retired_set(store);
        if (old.core().epoch() > 0 && !all_moved_over_but(&old, &retired))
            || !self.orders_moved_over(store)
        {
            return Err(HqError::EpochPending(store.to_owned()));
        }
        let orders = self.rolled_orders(store)?;
        let cut = old.core().heads();
        let plan = EpochPlan::at_cut(&old, &cut)?;
        // The base change is HQ's stable actor (`hq`), the one store nodes look for in a new
        // epoch (`sync::local::has_epoch_base`); one instance makes it, under the lock of
        // every document. HQ's later writes in the epoch are this incarnation's.
        let new = open_next_epoch(store, &plan, WriterId::hq(), crate::clock::now_ms())?;
        let now = crate::clock::now_utc();
        let tx = self.db.begin()?;
        docs::save_doc(&tx, new.core(), &now)?;
        tx.execute(
            "INSERT INTO hq_store (store, epoch) VALUES (?1, ?2)
             ON CONFLICT(store) DO UPDATE SET epoch = excluded.epoch",
            &[&store, &plan.epoch],
        )?;
        write_stock_rows(&tx, store, &levels_by_sku(&new.stock_levels()))?;
        self.save_rolled_orders(&tx, &orders, &now)?;
        tx.commit()?;
        let orders_out = self.install_rolled_orders(orders)?;
        let ours = SyncDoc::load(&new.core().save(), self.writer.clone())?;
        self.docs.insert(id.clone(), ours);
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

    /// Stores HQ knows (for the epoch timer), from the database: their documents need
    /// not be in memory.
    pub fn stores(&self) -> Result<Vec<String>, HqError> {
        Ok(self
            .db
            .query("SELECT store FROM hq_store ORDER BY store", &[], |r| {
                r.get(0)
            })?)
    }

    /// Deletes the stored history of epochs before the current one once every writer named
    /// in the cut has carried over, or was retired for good: nobody can need it any more.
    pub(super) fn drop_closed_epochs(&mut self, id: &DocId) -> Result<(), HqError> {
        if id.kind == DocKind::Orders {
            return self.drop_closed_orders_epochs(id);
        }
        if id.kind != DocKind::Stock {
            return Ok(());
        }
        // Read in place: this runs after every change of the store, and a typed copy of
        // the document (`loaded_stock_doc`) cloned its whole history each time.
        let Some(current) = self.docs.get(id) else {
            return Ok(());
        };
        let epoch = current.epoch();
        if epoch == 0 || !all_moved_over_in(current, &self.retired_set(&id.store)) {
            return Ok(());
        }
        let dropped = docs::drop_epochs_before(&self.db, id, epoch)?;
        if dropped > 0 {
            tracing::info!(
                store = id.store,
                epoch,
                "every writer moved over; older epochs dropped"
            );
        }
        Ok(())
    }
}
