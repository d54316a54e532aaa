//! HQ's catalog document: items and prices, and the pricing rules (price lists,
//! promotions, categories, time zones), each edit one change published to every store.

use super::{HqError, HqState, Outgoing};
use crate::crdt::catalog::{CATALOG_STORE, CatalogDoc, CatalogError, CatalogItem};
use crate::crdt::doc::{DocId, DocKind, LocalChange, SyncDoc};
use crate::crdt::pricing::PricingEdit;
use crate::hq::db::docs;
use crate::sync::payload::SyncMessage;
use crate::sync::service::kind_id;
use crate::sync::topics::{Id, Scope};
use crate::sync::wire::WireError;

impl HqState {
    /// Publishes catalog items (one change); returns the messages to send.
    pub fn publish_catalog(&mut self, items: &[CatalogItem]) -> Result<Vec<Outgoing>, HqError> {
        self.change_catalog(|catalog, at_ms| catalog.publish(items, &[], at_ms))
    }

    /// Publishes price lists, promotions, categories or time zones (one change).
    pub fn edit_pricing(&mut self, edits: &[PricingEdit]) -> Result<Vec<Outgoing>, HqError> {
        self.change_catalog(|catalog, at_ms| catalog.edit_pricing(edits, at_ms))
    }

    /// The catalog as HQ publishes it, as stored (`None`: the database cannot be read).
    pub fn catalog(&mut self) -> Option<&SyncDoc> {
        match self.load_catalog() {
            Ok(id) => self.docs.get(&id),
            Err(e) => {
                tracing::warn!(error = %e, "cannot load HQ's catalog");
                None
            }
        }
    }

    /// Makes one change to the catalog document; returns the messages that publish it.
    pub(in crate::hq) fn change_catalog(
        &mut self,
        edit: impl FnOnce(&mut CatalogDoc, i64) -> Result<Option<LocalChange>, CatalogError>,
    ) -> Result<Vec<Outgoing>, HqError> {
        let id = DocId::new(CATALOG_STORE, DocKind::Catalog)?;
        self.with_documents(&[id], |hq| hq.change_catalog_locked(edit))
    }

    fn change_catalog_locked(
        &mut self,
        edit: impl FnOnce(&mut CatalogDoc, i64) -> Result<Option<LocalChange>, CatalogError>,
    ) -> Result<Vec<Outgoing>, HqError> {
        let id = self.load_catalog()?;
        let Some(core) = self.docs.remove(&id) else {
            return Ok(Vec::new());
        };
        let mut catalog = CatalogDoc::from_core(core)?;
        let result = edit(&mut catalog, crate::clock::now_ms());
        // Back into memory as it is, without a copy (the catalog holds every item's history).
        self.docs.insert(id.clone(), catalog.into_core());
        let Some(change) = result? else {
            return Ok(Vec::new());
        };
        let Some(catalog) = self.docs.get(&id) else {
            return Ok(Vec::new());
        };
        let now = crate::clock::now_utc();
        docs::persist_change(&self.db, catalog, &change.bytes, false, &now)?;
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
}
