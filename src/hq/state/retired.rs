//! Lanes retired for good (`storenode lane retire NODE`, docs/sync.md "Retiring a lane") as
//! HQ sees them. Every instance subscribes to the retained records `{store}/retired/{writer}`
//! (not a shared subscription: those get no retained messages) and stores them in
//! `hq_retired`, first instance's time kept. A retired writer:
//! - is not waited for before a closed epoch is dropped or the next one opened (a dead box
//!   would otherwise keep the old epoch's history at HQ for ever);
//! - is left out of the store's lanes (`hq_lane`): online figure, the lane an order, a
//!   transfer or a coupon grant goes to;
//! - has its changes made after HQ stored the retirement refused (`retired`): the box came
//!   back without being provisioned anew. Its earlier changes are real sales and are kept.
//!
//! An empty record (`storenode lane unretire`) deletes the row and undoes all of it.

use std::collections::{BTreeMap, BTreeSet};

use super::{HqError, HqState, Outgoing, Rejected};
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::sync::topics::Id;

impl HqState {
    /// A retained retirement record heard for `writer` of `store`; an empty payload takes it
    /// back. A retirement can let a closed epoch go, so the store's epochs are checked.
    pub(super) fn note_retirement(
        &mut self,
        store: &Id,
        writer: &Id,
        payload: &[u8],
    ) -> Result<Vec<Outgoing>, Rejected> {
        let of_store = writer
            .as_str()
            .strip_prefix(store.as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'));
        if !of_store {
            return Err(Rejected::StatusWriter {
                store: store.to_string(),
                writer: writer.to_string(),
            });
        }
        let (store, writer) = (store.as_str(), writer.as_str());
        if payload.is_empty() {
            let removed = self
                .db
                .execute(
                    "DELETE FROM hq_retired WHERE store = ?1 AND writer = ?2",
                    &[&store, &writer],
                )
                .map_err(HqError::from)?;
            if removed > 0 {
                tracing::info!(
                    store,
                    lane = writer,
                    "lane unretired: a lane of the store again"
                );
            }
            return Ok(Vec::new());
        }
        let record = String::from_utf8_lossy(payload).into_owned();
        // The first instance to store it sets the time; a retained record heard again (a
        // reconnect, another instance) keeps it, so earlier-made changes stay accepted.
        let added = self
            .db
            .execute(
                "INSERT INTO hq_retired (store, writer, record, since_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (store, writer) DO NOTHING",
                &[&store, &writer, &record, &crate::clock::now_ms()],
            )
            .map_err(HqError::from)?;
        if added > 0 {
            tracing::info!(
                store,
                lane = writer,
                record,
                "lane retired: HQ no longer waits for it nor counts it as a lane"
            );
        }
        self.drop_epochs_after_retirement(store)?;
        Ok(Vec::new())
    }

    /// The retired writers of `store` and since when (HQ's Unix ms).
    pub(in crate::hq) fn retired_writers(
        &self,
        store: &str,
    ) -> Result<BTreeMap<WriterId, i64>, HqError> {
        let rows: Vec<(String, i64)> = self.db.query(
            "SELECT writer, since_ms FROM hq_retired WHERE store = ?1",
            &[&store],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(w, since)| Some((WriterId::new(&w).ok()?, since)))
            .collect())
    }

    /// The retired writers of `store`, for the epoch checks. A database error there counts
    /// as none retired: HQ then waits, as it did before, rather than drop history early.
    pub(in crate::hq) fn retired_set(&self, store: &str) -> BTreeSet<WriterId> {
        match self.retired_writers(store) {
            Ok(retired) => retired.into_keys().collect(),
            Err(e) => {
                tracing::warn!(store, error = %e, "retired lanes unreadable; waiting for all");
                BTreeSet::new()
            }
        }
    }

    /// Refuses changes a retired writer made after HQ stored its retirement. `authored`:
    /// each change's author and time.
    pub(super) fn check_not_retired(
        &self,
        store: &str,
        authored: &[(WriterId, i64)],
    ) -> Result<(), Rejected> {
        let retired = self.retired_writers(store)?;
        if retired.is_empty() {
            return Ok(());
        }
        for (writer, at_ms) in authored {
            if retired.get(writer).is_some_and(|since| at_ms > since) {
                return Err(Rejected::Retired {
                    writer: writer.to_string(),
                });
            }
        }
        Ok(())
    }

    fn drop_epochs_after_retirement(&mut self, store: &str) -> Result<(), HqError> {
        let ids = [
            DocId::new(store, DocKind::Stock)?,
            DocId::new(store, DocKind::Orders)?,
        ];
        self.with_documents(&ids, |hq| {
            ids.iter().try_for_each(|id| hq.drop_closed_epochs(id))
        })
    }
}
