//! The chain-wide stock: `hq_stock` rows kept from the stores' stock documents, and each
//! store's figures as HQ serves them (available to sell, online escrow, freshness).

use std::collections::BTreeMap;

use super::{HqError, HqState};
use crate::crdt::doc::{DocId, DocKind};
use crate::crdt::stock::StockDoc;
use crate::hq::db::Db;

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
    /// Whether the store is online: a lane's last valid retained status says so, or HQ
    /// applied a change of it within [`ONLINE_AFTER_CHANGE_MS`] (see [`store_online`]).
    pub online: bool,
}

impl HqState {
    /// Stock of one SKU in one store.
    pub fn stock(&mut self, store: &str, sku: &str) -> Result<Option<StoreSku>, HqError> {
        Ok(self.stock_rows(store, Some(sku))?.into_iter().next())
    }

    /// Stock of every SKU of `store`.
    pub fn store_stock(&mut self, store: &str) -> Result<Vec<StoreSku>, HqError> {
        self.stock_rows(store, None)
    }

    /// The figures come from `hq_stock` (kept with every change applied); only the store's
    /// orders document is read, for its online escrow.
    fn stock_rows(&mut self, store: &str, sku: Option<&str>) -> Result<Vec<StoreSku>, HqError> {
        if let Ok(id) = DocId::new(store, DocKind::Orders) {
            self.refresh(&id)?;
        }
        let (as_of, online) = self.store_meta(store)?;
        let rows = self.db.query(
            "SELECT sku, on_hand, reserved FROM hq_stock
             WHERE store = ?1 AND (CAST(?2 AS TEXT) IS NULL OR sku = ?2) ORDER BY sku",
            &[&store, &sku],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?)),
        )?;
        // The escrow read once for all rows (it was a typed copy of the orders document per
        // row: a store's whole stock cloned that document once per SKU).
        let escrow = match sku {
            Some(sku) => [(sku.to_owned(), self.loaded_escrow_of(store, sku))].into(),
            None => self.loaded_escrow(store),
        };
        let mut out = Vec::new();
        for (sku, on_hand, reserved) in rows {
            let online_escrow = escrow.get(&sku).map_or(0, |e| e.remaining().max(0));
            out.push(StoreSku {
                store: store.to_owned(),
                available_to_sell: (on_hand - reserved - self.safety_stock).max(0),
                online_escrow,
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

    pub(super) fn store_meta(&self, store: &str) -> Result<(Option<String>, bool), HqError> {
        let last: Option<Option<i64>> = self.db.query_opt(
            "SELECT last_sync_ms FROM hq_store WHERE store = ?1",
            &[&store],
            |r| r.get(0),
        )?;
        let online: i64 = self.db.query_one(
            "SELECT COALESCE(max(online), 0) FROM hq_lane WHERE store = ?1",
            &[&store],
            |r| r.get(0),
        )?;
        let last = last.flatten();
        Ok((
            last.map(rfc3339_ms),
            store_online(online != 0, last, crate::clock::now_ms()),
        ))
    }

    /// The stock document of `store` as stored (for tests, the bench and the demo).
    pub fn stock_doc(&mut self, store: &str) -> Option<StockDoc> {
        let id = DocId::new(store, DocKind::Stock).ok()?;
        self.refresh(&id).ok()?;
        self.loaded_stock_doc(store)
    }

    /// The stock document of `store` in memory (refreshed by the caller).
    pub(super) fn loaded_stock_doc(&self, store: &str) -> Option<StockDoc> {
        let id = DocId::new(store, DocKind::Stock).ok()?;
        StockDoc::from_core(self.docs.get(&id)?.clone()).ok()
    }
}

/// How long after HQ last applied a change of a store the store counts as online, whatever
/// its lanes' last valid status says (a stale `offline` of an earlier connection, say): a
/// store whose changes arrive is connected.
pub const ONLINE_AFTER_CHANGE_MS: i64 = 120_000;

/// A store is online when one of its lanes' last valid status says so, or when HQ applied
/// a change of it less than [`ONLINE_AFTER_CHANGE_MS`] ago.
pub fn store_online(status_online: bool, last_change_ms: Option<i64>, now_ms: i64) -> bool {
    status_online
        || last_change_ms.is_some_and(|at| now_ms.saturating_sub(at) < ONLINE_AFTER_CHANGE_MS)
}

/// Upserts `store`'s stock rows (only rows whose figures changed are written).
pub(super) fn write_stock_rows(
    db: &Db,
    store: &str,
    levels: &BTreeMap<String, (i64, i64)>,
) -> Result<(), HqError> {
    for (sku, (on_hand, reserved)) in levels {
        db.execute(
            "INSERT INTO hq_stock (store, sku, on_hand, reserved) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(store, sku) DO UPDATE SET on_hand = excluded.on_hand,
                 reserved = excluded.reserved
             WHERE hq_stock.on_hand != excluded.on_hand OR hq_stock.reserved != excluded.reserved",
            &[&store, sku, on_hand, reserved],
        )?;
    }
    Ok(())
}

fn rfc3339_ms(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ms.to_string())
}
