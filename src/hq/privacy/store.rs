//! HQ's customer data store: `hq_order_customer` (one row per store and order) and
//! `hq_customer_erasure` (the erasures and each store's confirmation), on HQ's own
//! connection to `hq.db` with `secure_delete` on.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{EraseRequest, ErasureView, HqLookup, HqPrivacyError, REPUBLISH_TOMBSTONES, privacy};
use crate::domain::customer::{Customer, PiiPayload, PrivacyError};
use crate::hq::state::Outgoing;
use crate::sync::pii::order_segment;
use crate::sync::topics::{Id, Scope, Topic, TopicSpace};

/// Stores the customer of `store`'s order `order_id` at HQ and returns the retained message
/// that brings it to the store. For `HqState::create_order` (the caller's connection, so
/// the order and its customer are stored together) and for `PUT .../customer`.
pub fn put(
    conn: &Connection,
    topics: &TopicSpace,
    store: &str,
    order_id: &str,
    customer: &Customer,
) -> Result<Vec<Outgoing>, HqPrivacyError> {
    let topic = pii_topic(topics, store, order_id)?;
    if erasure_of(conn, store, order_id)?.is_some() {
        return Err(HqPrivacyError::Erased {
            store: store.to_owned(),
            order_id: order_id.to_owned(),
        });
    }
    // An update must not leave the previous version's bytes in free space either.
    conn.pragma_update(None, "secure_delete", "ON")?;
    upsert(conn, store, order_id, customer, "hq")?;
    tracing::info!(order = order_id, store, "customer data stored at HQ");
    Ok(vec![Outgoing {
        topic: topic.to_string(),
        payload: PiiPayload::Customer(customer.clone()).encode(),
        retain: true,
    }])
}

fn pii_topic(topics: &TopicSpace, store: &str, order_id: &str) -> Result<Topic, HqPrivacyError> {
    Ok(topics.pii(&Scope::Hq, &Id::new(store)?, &order_segment(order_id)?))
}

fn upsert(
    conn: &Connection,
    store: &str,
    order_id: &str,
    customer: &Customer,
    origin: &str,
) -> Result<(), HqPrivacyError> {
    conn.prepare_cached(
        "INSERT INTO hq_order_customer (store, order_id, name, phone, email, address, email_key,
             phone_key, origin, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(store, order_id) DO UPDATE SET name = excluded.name, phone = excluded.phone,
             email = excluded.email, address = excluded.address, email_key = excluded.email_key,
             phone_key = excluded.phone_key, origin = excluded.origin, updated_at = excluded.updated_at",
    )?
    .execute(params![
        store,
        order_id,
        customer.name(),
        customer.phone(),
        customer.email(),
        customer.address(),
        customer.email_key(),
        customer.phone_key(),
        origin,
        crate::clock::now_utc()
    ])?;
    Ok(())
}

fn erasure_of(
    conn: &Connection,
    store: &str,
    order_id: &str,
) -> Result<Option<ErasureView>, HqPrivacyError> {
    Ok(conn
        .prepare_cached(
            "SELECT order_id, store, erased_at, requested_by, confirmed_at, confirmed_by
             FROM hq_customer_erasure WHERE store = ?1 AND order_id = ?2",
        )?
        .query_row(params![store, order_id], erasure_row)
        .optional()?)
}

fn erasure_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ErasureView> {
    let confirmed_at: Option<String> = r.get(4)?;
    Ok(ErasureView {
        order_id: r.get(0)?,
        store: r.get(1)?,
        erased_at: r.get(2)?,
        requested_by: r.get(3)?,
        store_confirmed: confirmed_at.is_some(),
        confirmed_at,
        confirmed_by: r.get(5)?,
    })
}

/// HQ's customer data store (its own connection to `hq.db`).
pub struct HqPrivacy {
    conn: Connection,
    path: std::path::PathBuf,
    topics: TopicSpace,
}

impl HqPrivacy {
    /// Opens HQ's database (already migrated by `HqState::open`).
    pub fn open(path: &Path, topics: TopicSpace) -> Result<Self, HqPrivacyError> {
        let open_err = |source| HqPrivacyError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(open_err)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            topics,
        })
    }

    pub fn put(
        &self,
        store: &str,
        order_id: &str,
        customer: &Customer,
    ) -> Result<Vec<Outgoing>, HqPrivacyError> {
        put(&self.conn, &self.topics, store, order_id, customer)
    }

    /// The customer of an order (`store`: which store's, when ids repeat across stores).
    pub fn lookup(&self, order_id: &str, store: Option<&str>) -> Result<HqLookup, HqPrivacyError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT store, name, phone, email, address FROM hq_order_customer
             WHERE order_id = ?1 AND (?2 IS NULL OR store = ?2)",
        )?;
        let rows = stmt
            .query_map(params![order_id, store], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        match rows.as_slice() {
            [(store, name, phone, email, address)] => Ok(HqLookup::Found {
                store: store.clone(),
                customer: Customer::new(name, phone, email, address.clone())?,
            }),
            [] => {
                let erasures = self.erasures(order_id)?;
                let erased = erasures
                    .into_iter()
                    .filter(|e| store.is_none_or(|s| s == e.store))
                    .collect::<Vec<_>>();
                Ok(match erased.len() {
                    0 => HqLookup::Unknown,
                    1 => erased
                        .into_iter()
                        .next()
                        .map_or(HqLookup::Unknown, HqLookup::Erased),
                    _ => HqLookup::Ambiguous,
                })
            }
            _ => Ok(HqLookup::Ambiguous),
        }
    }

    /// Every erasure recorded for an order id (one per store).
    pub fn erasures(&self, order_id: &str) -> Result<Vec<ErasureView>, HqPrivacyError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT order_id, store, erased_at, requested_by, confirmed_at, confirmed_by
             FROM hq_customer_erasure WHERE order_id = ?1 ORDER BY store",
        )?;
        let rows = stmt.query_map([order_id], erasure_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Erases every order matching `request`. `hq_order_store` is the store of HQ's own
    /// order with that id, if any, so an order whose customer HQ has not received (yet) is
    /// still erased at its store. Returns the erasures and the tombstones to publish.
    pub fn erase(
        &mut self,
        request: &EraseRequest,
        hq_order_store: Option<String>,
    ) -> Result<(Vec<ErasureView>, Vec<Outgoing>), HqPrivacyError> {
        let targets = self.targets(request, hq_order_store)?;
        let now = crate::clock::now_utc();
        let tx = self.conn.unchecked_transaction()?;
        for (store, order_id) in &targets {
            tx.execute(
                "DELETE FROM hq_order_customer WHERE store = ?1 AND order_id = ?2",
                params![store, order_id],
            )?;
            tx.execute(
                "INSERT INTO hq_customer_erasure (store, order_id, erased_at, requested_by)
                 VALUES (?1, ?2, ?3, 'hq') ON CONFLICT(store, order_id) DO NOTHING",
                params![store, order_id, now],
            )?;
        }
        tx.commit()?;
        let mut views = Vec::new();
        let mut outgoing = Vec::new();
        for (store, order_id) in &targets {
            let Some(view) = erasure_of(&self.conn, store, order_id)? else {
                continue;
            };
            // Sent again for an order erased before: harmless, and repairs a lost one.
            outgoing.push(self.tombstone(store, order_id, &view.erased_at)?);
            tracing::info!(order = order_id, store, "customer data erased at HQ");
            views.push(view);
        }
        self.checkpoint();
        Ok((views, outgoing))
    }

    fn targets(
        &self,
        request: &EraseRequest,
        hq_order_store: Option<String>,
    ) -> Result<Vec<(String, String)>, HqPrivacyError> {
        let (sql, key) = match (&request.order_id, &request.email, &request.phone) {
            (Some(order_id), _, _) => (
                "SELECT store, order_id FROM hq_order_customer WHERE order_id = ?1
                 UNION SELECT store, order_id FROM hq_customer_erasure WHERE order_id = ?1",
                order_id.trim().to_owned(),
            ),
            (None, Some(email), _) => (
                "SELECT store, order_id FROM hq_order_customer WHERE email_key = ?1",
                privacy::email_key(email),
            ),
            (None, None, Some(phone)) => (
                "SELECT store, order_id FROM hq_order_customer WHERE phone_key = ?1",
                privacy::phone_key(phone),
            ),
            (None, None, None) => return Ok(Vec::new()),
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut targets: std::collections::BTreeSet<(String, String)> = stmt
            .query_map([&key], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if let (Some(order_id), Some(store)) = (&request.order_id, hq_order_store) {
            targets.insert((store, order_id.trim().to_owned()));
        }
        if let Some(only) = &request.store {
            targets.retain(|(store, _)| store == only);
        }
        Ok(targets.into_iter().collect())
    }

    pub(super) fn recent_tombstones(&self) -> Result<Vec<Outgoing>, HqPrivacyError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT store, order_id, erased_at FROM hq_customer_erasure
             ORDER BY erased_at DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([REPUBLISH_TOMBSTONES], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.iter()
            .map(|(store, order_id, erased_at)| self.tombstone(store, order_id, erased_at))
            .collect()
    }

    fn tombstone(
        &self,
        store: &str,
        order_id: &str,
        erased_at: &str,
    ) -> Result<Outgoing, HqPrivacyError> {
        Ok(Outgoing {
            topic: pii_topic(&self.topics, store, order_id)?.to_string(),
            payload: PiiPayload::Erased {
                erased_at: erased_at.to_owned(),
                by: Some(crate::crdt::doc::HQ_WRITER.to_owned()),
            }
            .encode(),
            retain: true,
        })
    }

    /// A store lane's retained `pii` message: its customer (kept unless erased) or its
    /// tombstone (the confirmation of an erasure, or an erasure made at the store).
    pub fn handle(
        &mut self,
        topic: &Topic,
        payload: &[u8],
    ) -> Result<Vec<Outgoing>, HqPrivacyError> {
        let Topic::Pii {
            scope: Scope::Store(scope),
            store,
            order,
            ..
        } = topic
        else {
            return Ok(Vec::new()); // HQ's own retained messages, echoed by its subscription
        };
        if scope != store {
            return Err(
                PrivacyError::Payload("a store published about another store".into()).into(),
            );
        }
        let (store, order_id) = (store.as_str(), order.as_str());
        match PiiPayload::decode(payload)? {
            PiiPayload::Cleared => Ok(Vec::new()),
            PiiPayload::Customer(customer) => {
                let known = matches!(
                    self.lookup(order_id, Some(store))?,
                    HqLookup::Found { customer: ref c, .. } if *c == customer
                );
                if !known && erasure_of(&self.conn, store, order_id)?.is_none() {
                    upsert(&self.conn, store, order_id, &customer, "store")?;
                    tracing::info!(
                        order = order_id,
                        store,
                        "customer data received from a store"
                    );
                }
                Ok(Vec::new())
            }
            PiiPayload::Erased { erased_at, by } => {
                self.store_erased(store, order_id, &erased_at, by)
            }
        }
    }

    fn store_erased(
        &mut self,
        store: &str,
        order_id: &str,
        erased_at: &str,
        by: Option<String>,
    ) -> Result<Vec<Outgoing>, HqPrivacyError> {
        let now = crate::clock::now_utc();
        if erasure_of(&self.conn, store, order_id)?.is_some() {
            self.conn.execute(
                "UPDATE hq_customer_erasure SET confirmed_at = ?3, confirmed_by = ?4
                 WHERE store = ?1 AND order_id = ?2 AND confirmed_at IS NULL",
                params![store, order_id, now, by],
            )?;
            tracing::info!(order = order_id, store, "store confirmed the erasure");
            return Ok(Vec::new());
        }
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM hq_order_customer WHERE store = ?1 AND order_id = ?2",
            params![store, order_id],
        )?;
        tx.execute(
            "INSERT INTO hq_customer_erasure (store, order_id, erased_at, requested_by, confirmed_at, confirmed_by)
             VALUES (?1, ?2, ?3, 'store', ?4, ?5)",
            params![store, order_id, erased_at, now, by],
        )?;
        tx.commit()?;
        self.checkpoint();
        tracing::info!(
            order = order_id,
            store,
            "customer data erased at the store; erased at HQ too"
        );
        // The other lanes of the store learn it from HQ's tombstone.
        Ok(vec![self.tombstone(store, order_id, erased_at)?])
    }

    /// Moves erased pages out of the WAL (best effort, see `privacy::store::checkpoint`).
    fn checkpoint(&self) {
        match crate::store::customers::checkpoint(&self.path) {
            Ok((busy, frames, moved)) => {
                tracing::debug!(busy, frames, moved, "HQ WAL checkpoint after erasure");
            }
            Err(e) => tracing::warn!(error = %e, "HQ WAL checkpoint after erasure failed"),
        }
    }
}
