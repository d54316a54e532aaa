//! HQ's side of customer data (see `crate::privacy`): the `hq_order_customer` table,
//! erasure with per-store confirmation, the retained `pii` messages, and the HTTP API:
//!
//! - `PUT /v1/orders/{id}/customer` (`?store=S` for an order HQ did not place): store a
//!   customer and publish it, retained, to the order's store;
//! - `GET /v1/orders/{id}/customer[?store=S]`: the customer, or 404 with `erased_at`;
//! - `POST /v1/privacy/erase` `{"order_id"[, "store"]}` | `{"email"}` | `{"phone"}`: erase
//!   every matching order here, publish tombstones, answer the erased orders and whether
//!   each store confirmed;
//! - `GET /v1/privacy/erasures/{order_id}`: the erasure state.
//!
//! HQ keeps its own connection to `hq.db` for this, with `secure_delete` on, so erasure
//! never waits on the documents' lock. Logs name orders and stores, never customers.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::http::{Answer, Authorised, HttpState, Problem};
use super::state::Outgoing;
use crate::domain::customer::{self as privacy, Customer, PiiPayload, PrivacyError};
use crate::sync::pii::order_segment;
use crate::sync::topics::{self, Id, Scope, Topic, TopicSpace};

#[derive(Debug, thiserror::Error)]
pub enum HqPrivacyError {
    #[error("HQ database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
    #[error(transparent)]
    Topic(#[from] topics::TopicError),
    #[error("the customer data of order {order_id:?} at store {store:?} was erased")]
    Erased { store: String, order_id: String },
}

pub type SharedPrivacy = Arc<Mutex<HqPrivacy>>;

pub fn lock(p: &SharedPrivacy) -> MutexGuard<'_, HqPrivacy> {
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

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

/// One order's erasure as the API shows it: no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureView {
    pub order_id: String,
    pub store: String,
    pub erased_at: String,
    /// `hq` (an erasure request) or `store` (erased at the store, e.g. a store-only order).
    pub requested_by: String,
    /// Whether a lane of the store published its tombstone (it deleted its copy).
    pub store_confirmed: bool,
    pub confirmed_at: Option<String>,
    pub confirmed_by: Option<String>,
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

/// `POST /v1/privacy/erase`: exactly one selector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    pub order_id: Option<String>,
    /// With `order_id`: only this store's order of that id.
    pub store: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl EraseRequest {
    fn check(&self) -> Result<(), String> {
        let given = [&self.order_id, &self.email, &self.phone]
            .iter()
            .filter(|s| s.as_deref().is_some_and(|s| !s.trim().is_empty()))
            .count();
        if given != 1 {
            return Err("give exactly one of order_id, email or phone".into());
        }
        if self.store.is_some() && self.order_id.is_none() {
            return Err("store narrows an order_id; give it with order_id".into());
        }
        if self
            .phone
            .as_deref()
            .is_some_and(|p| privacy::phone_key(p).is_empty())
        {
            return Err("phone has no digits".into());
        }
        Ok(())
    }
}

/// A customer lookup at HQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HqLookup {
    Found {
        store: String,
        customer: Customer,
    },
    Erased(ErasureView),
    Unknown,
    /// The same order id at several stores: name the store.
    Ambiguous,
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

    fn recent_tombstones(&self) -> Result<Vec<Outgoing>, HqPrivacyError> {
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

/// Erasure tombstones republished each time HQ connects, newest first: a broker that lost
/// its retained messages (restart without persistence) still tells a lane that was offline
/// during an erasure. Identical retained messages are harmless.
pub const REPUBLISH_TOMBSTONES: u32 = 10_000;

/// HQ's tombstones to publish again on connect (see [`REPUBLISH_TOMBSTONES`]).
pub async fn tombstones(privacy: &SharedPrivacy) -> Vec<Outgoing> {
    let privacy = privacy.clone();
    let listed = tokio::task::spawn_blocking(move || lock(&privacy).recent_tombstones()).await;
    match listed {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot list erasure tombstones to republish");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "tombstone listing failed");
            Vec::new()
        }
    }
}

/// Whether a received topic is a `pii` one (routed here, not to the documents).
pub fn is_pii_topic(topic: &str) -> bool {
    matches!(topics::parse(topic), Ok(Topic::Pii { .. }))
}

/// Handles a store's `pii` message off the async runtime; returns what to publish.
pub async fn on_message(
    privacy: &SharedPrivacy,
    topic: String,
    payload: bytes::Bytes,
) -> Vec<Outgoing> {
    let privacy = privacy.clone();
    let shown = topic.clone();
    let handled = tokio::task::spawn_blocking(move || {
        let parsed = topics::parse(&topic)?;
        lock(&privacy).handle(&parsed, &payload)
    })
    .await;
    match handled {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            tracing::warn!(topic = shown, reason = %e, "HQ rejected a customer data message");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "customer data handler failed");
            Vec::new()
        }
    }
}

// ---- HTTP ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreQuery {
    store: Option<String>,
}

/// The store of HQ's own order `order_id`, if HQ placed it.
async fn hq_order_store(auth: &Authorised<'_>, order_id: &str) -> Option<String> {
    let id = order_id.to_owned();
    auth.hq(move |hq| hq.order_view(&id).map(|v| v.store))
        .await
        .ok()
        .flatten()
}

/// A customer not stored: erased is 409, a bad topic segment or customer 422; the rest
/// names nothing.
fn put_refused(e: HqPrivacyError) -> Problem {
    match e {
        HqPrivacyError::Erased { .. } => Problem::new(StatusCode::CONFLICT, e.to_string()),
        HqPrivacyError::Topic(_) | HqPrivacyError::Privacy(_) => Problem::unprocessable(e),
        _ => Problem::hidden(e),
    }
}

pub async fn put_customer(
    State(state): State<HttpState>,
    headers: HeaderMap,
    UrlPath(order_id): UrlPath<String>,
    Query(query): Query<StoreQuery>,
    Json(customer): Json<Customer>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let store = match query.store {
        Some(store) => store,
        None => hq_order_store(&auth, &order_id).await.ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "no such HQ order; name its store with ?store=",
            )
        })?,
    };
    let (id, at) = (order_id.clone(), store.clone());
    let messages = auth
        .privacy(move |p| p.put(&at, &id, &customer))
        .await?
        .map_err(put_refused)?;
    auth.publish(messages);
    Ok(
        Json(serde_json::json!({ "order_id": order_id, "store": store, "customer": "stored" }))
            .into_response(),
    )
}

pub async fn get_customer(
    State(state): State<HttpState>,
    headers: HeaderMap,
    UrlPath(order_id): UrlPath<String>,
    Query(query): Query<StoreQuery>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = order_id.clone();
    let found = auth
        .privacy(move |p| p.lookup(&id, query.store.as_deref()))
        .await?
        .map_err(Problem::hidden)?;
    match found {
        HqLookup::Found { store, customer } => Ok(Json(serde_json::json!({
            "order_id": order_id, "store": store, "customer": customer
        }))
        .into_response()),
        HqLookup::Erased(view) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "the customer data of this order was erased",
        )
        .with("order_id", view.order_id)
        .with("store", view.store)
        .with("erased_at", view.erased_at)),
        HqLookup::Unknown => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no customer data for this order",
        )),
        HqLookup::Ambiguous => Err(Problem::new(
            StatusCode::CONFLICT,
            "this order id exists at several stores; add ?store=",
        )),
    }
}

pub async fn erase(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Json(request): Json<EraseRequest>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    request
        .check()
        .map_err(|reason| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?;
    let hq_store = match &request.order_id {
        Some(order_id) => hq_order_store(&auth, order_id.trim()).await,
        None => None,
    };
    let (views, messages) = auth
        .privacy(move |p| p.erase(&request, hq_store))
        .await?
        .map_err(Problem::hidden)?;
    auth.publish(messages);
    Ok(Json(serde_json::json!({ "erased": views })).into_response())
}

pub async fn erasure(
    State(state): State<HttpState>,
    headers: HeaderMap,
    UrlPath(order_id): UrlPath<String>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let id = order_id.clone();
    let views = auth
        .privacy(move |p| p.erasures(&id))
        .await?
        .map_err(Problem::hidden)?;
    if views.is_empty() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no erasure recorded for this order",
        ));
    }
    Ok(Json(serde_json::json!({ "order_id": order_id, "erasures": views })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hq() -> (tempfile::TempDir, HqPrivacy) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hq.db");
        // HQ's own migrations create the tables.
        drop(super::super::state::HqState::open(&path, "t", 0).unwrap());
        let topics = TopicSpace::new(Id::new("t").unwrap());
        (dir, HqPrivacy::open(&path, topics).unwrap())
    }

    fn alice() -> Customer {
        Customer::new(
            "Alice Example",
            "+46 70 123 45 67",
            "Alice@Example.com",
            None,
        )
        .unwrap()
    }

    fn store_topic(store: &str, order: &str) -> Topic {
        TopicSpace::new(Id::new("t").unwrap()).pii(
            &Scope::store(Id::new(store).unwrap()).unwrap(),
            &Id::new(store).unwrap(),
            &Id::new(order).unwrap(),
        )
    }

    #[test]
    fn put_publishes_retained_and_erase_by_email_publishes_a_tombstone() {
        let (_dir, mut hq) = hq();
        let out = hq.put("s1", "web-1", &alice()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "storenode/v1/t/hq/pii/s1/web-1");
        assert!(out[0].retain);
        assert_eq!(
            PiiPayload::decode(&out[0].payload).unwrap(),
            PiiPayload::Customer(alice())
        );
        let by_email = EraseRequest {
            email: Some(" alice@EXAMPLE.com".into()),
            ..EraseRequest::default()
        };
        let (views, out) = hq.erase(&by_email, None).unwrap();
        assert_eq!(views.len(), 1);
        assert!(!views[0].store_confirmed);
        assert!(matches!(
            PiiPayload::decode(&out[0].payload).unwrap(),
            PiiPayload::Erased { .. }
        ));
        assert!(!String::from_utf8_lossy(&out[0].payload).contains("alice"));
        assert!(matches!(
            hq.lookup("web-1", None).unwrap(),
            HqLookup::Erased(_)
        ));
        assert!(matches!(
            hq.put("s1", "web-1", &alice()),
            Err(HqPrivacyError::Erased { .. })
        ));
        // The store's tombstone confirms.
        let tomb = PiiPayload::Erased {
            erased_at: "2026-01-01T00:00:00Z".into(),
            by: Some("s1.lane1".into()),
        };
        hq.handle(&store_topic("s1", "web-1"), &tomb.encode())
            .unwrap();
        let view = &hq.erasures("web-1").unwrap()[0];
        assert!(view.store_confirmed);
        assert_eq!(view.confirmed_by.as_deref(), Some("s1.lane1"));
        // A customer message arriving late does not bring the data back.
        hq.handle(
            &store_topic("s1", "web-1"),
            &PiiPayload::Customer(alice()).encode(),
        )
        .unwrap();
        assert!(matches!(
            hq.lookup("web-1", None).unwrap(),
            HqLookup::Erased(_)
        ));
    }

    #[test]
    fn store_customers_are_kept_and_an_order_id_erasure_reaches_an_hq_order_without_data() {
        let (_dir, mut hq) = hq();
        hq.handle(
            &store_topic("s2", "shop-1"),
            &PiiPayload::Customer(alice()).encode(),
        )
        .unwrap();
        assert!(matches!(
            hq.lookup("shop-1", Some("s2")).unwrap(),
            HqLookup::Found { .. }
        ));
        // A store publishing about another store is refused.
        let forged = TopicSpace::new(Id::new("t").unwrap()).pii(
            &Scope::store(Id::new("s3").unwrap()).unwrap(),
            &Id::new("s2").unwrap(),
            &Id::new("shop-1").unwrap(),
        );
        assert!(hq.handle(&forged, &PiiPayload::Cleared.encode()).is_err());
        let by_phone = EraseRequest {
            phone: Some("+46 (70) 123-45-67".into()),
            ..EraseRequest::default()
        };
        assert_eq!(hq.erase(&by_phone, None).unwrap().0.len(), 1);
        // HQ's order of which HQ never had customer data: the store is still told.
        let by_order = EraseRequest {
            order_id: Some("web-7".into()),
            ..EraseRequest::default()
        };
        let (views, out) = hq.erase(&by_order, Some("s1".into())).unwrap();
        assert_eq!(views[0].store, "s1");
        assert_eq!(out[0].topic, "storenode/v1/t/hq/pii/s1/web-7");
        assert!(
            hq.erase(&EraseRequest::default(), None)
                .unwrap()
                .0
                .is_empty()
        );
        // Both tombstones are republished when HQ connects; no personal data in them.
        let again = hq.recent_tombstones().unwrap();
        assert_eq!(again.len(), 2);
        assert!(
            again
                .iter()
                .all(|m| m.retain && !String::from_utf8_lossy(&m.payload).contains("example"))
        );
    }

    #[test]
    fn erase_requests_need_exactly_one_selector() {
        assert!(EraseRequest::default().check().is_err());
        let two = EraseRequest {
            email: Some("a@b.se".into()),
            phone: Some("12345".into()),
            ..EraseRequest::default()
        };
        assert!(two.check().is_err());
        let store_alone = EraseRequest {
            email: Some("a@b.se".into()),
            store: Some("s1".into()),
            ..EraseRequest::default()
        };
        assert!(store_alone.check().is_err());
    }
}
