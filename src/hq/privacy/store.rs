//! HQ's customer data store: `hq_order_customer` (one row per store and order) and
//! `hq_customer_erasure` (the erasures and each store's confirmation), on HQ's own
//! connection to `hq.db` with `secure_delete` on.

use crate::hq::db::{Db, Row, Target};

use super::{EraseRequest, ErasureView, HqLookup, HqPrivacyError, REPUBLISH_TOMBSTONES, privacy};
use crate::domain::customer::{Customer, PiiPayload, PrivacyError};
use crate::domain::member_find::{MAX_MATCHES, MemberMatches, MemberQuery};
use crate::hq::state::Outgoing;
use crate::sync::pii::order_segment;
use crate::sync::topics::{Id, Scope, Topic, TopicSpace};

/// Stores the customer of `store`'s order `order_id` at HQ and returns the retained message
/// that brings it to the store. For `HqState::create_order` (the caller's connection, so
/// the order and its customer are stored together) and for `PUT .../customer`.
pub fn put(
    conn: &Db,
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
    conn.sqlite_pragma("secure_delete", "ON")?;
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
    conn: &Db,
    store: &str,
    order_id: &str,
    customer: &Customer,
    origin: &str,
) -> Result<(), HqPrivacyError> {
    conn.execute(
        "INSERT INTO hq_order_customer (store, order_id, name, phone, email, address, email_key,
             phone_key, origin, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(store, order_id) DO UPDATE SET name = excluded.name, phone = excluded.phone,
             email = excluded.email, address = excluded.address, email_key = excluded.email_key,
             phone_key = excluded.phone_key, origin = excluded.origin, updated_at = excluded.updated_at",
        &[&store, &order_id, &customer.name(), &customer.phone(), &customer.email(), &customer.address(), &customer.email_key(), &customer.phone_key(), &origin, &crate::clock::now_utc()])?;
    Ok(())
}

fn erasure_of(
    conn: &Db,
    store: &str,
    order_id: &str,
) -> Result<Option<ErasureView>, HqPrivacyError> {
    Ok(conn.query_opt(
        "SELECT order_id, store, erased_at, requested_by, confirmed_at, confirmed_by
         FROM hq_customer_erasure WHERE store = ?1 AND order_id = ?2",
        &[&store, &order_id],
        erasure_row,
    )?)
}

fn erasure_row(r: &mut Row) -> Result<ErasureView, crate::hq::db::DbError> {
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

/// HQ's customer data store (its own connection to HQ's database).
pub struct HqPrivacy {
    db: Db,
    /// The SQLite file, whose WAL is checkpointed after an erasure; `None` on PostgreSQL.
    sqlite_path: Option<std::path::PathBuf>,
    topics: TopicSpace,
}

impl HqPrivacy {
    /// Opens HQ's database with `secure_delete` on (SQLite).
    pub fn open(target: &Target, topics: TopicSpace) -> Result<Self, HqPrivacyError> {
        let db = Db::open(target)?;
        db.sqlite_pragma("secure_delete", "ON")?;
        let sqlite_path = match target {
            Target::Sqlite(path) => Some(path.clone()),
            Target::Postgres(_) => None,
        };
        Ok(Self {
            db,
            sqlite_path,
            topics,
        })
    }

    /// The tenant's topics (member lookups are answered on them, `crate::hq::loyalty::find`).
    pub fn topics(&self) -> &TopicSpace {
        &self.topics
    }

    pub fn put(
        &self,
        store: &str,
        order_id: &str,
        customer: &Customer,
    ) -> Result<Vec<Outgoing>, HqPrivacyError> {
        put(&self.db, &self.topics, store, order_id, customer)
    }

    /// Stores a loyalty member's personal data under store `loyalty`, order id = the card
    /// (`crate::hq::loyalty`): erased by the same erasure as an order's customer; sent to no
    /// store, as tills identify members by card only.
    pub fn put_member(&self, member: &str, customer: &Customer) -> Result<(), HqPrivacyError> {
        let store = crate::hq::loyalty::PRIVACY_STORE;
        if erasure_of(&self.db, store, member)?.is_some() {
            return Err(HqPrivacyError::Erased {
                store: store.to_owned(),
                order_id: member.to_owned(),
            });
        }
        self.db.sqlite_pragma("secure_delete", "ON")?;
        upsert(&self.db, store, member, customer, "hq")
    }

    /// The loyalty members whose phone or e-mail matches (as the erasure matches them: by
    /// digits, case-insensitively), masked (`crate::domain::member_find`): at most
    /// [`MAX_MATCHES`], by card. An erased member's row is gone; the erasure check guards
    /// against a row written back after it all the same.
    pub fn find_members(&self, query: &MemberQuery) -> Result<MemberMatches, HqPrivacyError> {
        let sql = match query {
            MemberQuery::Phone(_) => {
                "SELECT c.order_id, c.name FROM hq_order_customer c
                 WHERE c.store = ?1 AND c.phone_key = ?2 AND NOT EXISTS (SELECT 1 FROM
                     hq_customer_erasure e WHERE e.store = c.store AND e.order_id = c.order_id)
                 ORDER BY c.order_id LIMIT ?3"
            }
            MemberQuery::Email(_) => {
                "SELECT c.order_id, c.name FROM hq_order_customer c
                 WHERE c.store = ?1 AND c.email_key = ?2 AND NOT EXISTS (SELECT 1 FROM
                     hq_customer_erasure e WHERE e.store = c.store AND e.order_id = c.order_id)
                 ORDER BY c.order_id LIMIT ?3"
            }
        };
        // One more than shown, to tell that there are more.
        let limit = i64::try_from(MAX_MATCHES + 1).unwrap_or(i64::MAX);
        let rows = self.db.query(
            sql,
            &[&crate::hq::loyalty::PRIVACY_STORE, &query.key(), &limit],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
        )?;
        Ok(MemberMatches::from_rows(rows))
    }

    /// The customer of an order (`store`: which store's, when ids repeat across stores).
    pub fn lookup(&self, order_id: &str, store: Option<&str>) -> Result<HqLookup, HqPrivacyError> {
        let rows = self.db.query(
            "SELECT store, name, phone, email, address FROM hq_order_customer
             WHERE order_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR store = ?2)",
            &[&order_id, &store],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                    r.get::<String>(3)?,
                    r.get::<Option<String>>(4)?,
                ))
            },
        )?;
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
        Ok(self.db.query(
            "SELECT order_id, store, erased_at, requested_by, confirmed_at, confirmed_by
             FROM hq_customer_erasure WHERE order_id = ?1 ORDER BY store",
            &[&order_id],
            erasure_row,
        )?)
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
        let tx = self.db.begin()?;
        for (store, order_id) in &targets {
            tx.execute(
                "DELETE FROM hq_order_customer WHERE store = ?1 AND order_id = ?2",
                &[&store, &order_id],
            )?;
            tx.execute(
                "INSERT INTO hq_customer_erasure (store, order_id, erased_at, requested_by)
                 VALUES (?1, ?2, ?3, 'hq') ON CONFLICT(store, order_id) DO NOTHING",
                &[&store, &order_id, &now],
            )?;
        }
        tx.commit()?;
        let mut views = Vec::new();
        let mut outgoing = Vec::new();
        for (store, order_id) in &targets {
            let Some(view) = erasure_of(&self.db, store, order_id)? else {
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
        let mut targets: std::collections::BTreeSet<(String, String)> = self
            .db
            .query(sql, &[&key], |r| Ok((r.get(0)?, r.get(1)?)))?
            .into_iter()
            .collect();
        if let (Some(order_id), Some(store)) = (&request.order_id, hq_order_store) {
            targets.insert((store, order_id.trim().to_owned()));
        }
        if let Some(only) = &request.store {
            targets.retain(|(store, _)| store == only);
        }
        Ok(targets.into_iter().collect())
    }

    pub(super) fn recent_tombstones(&self) -> Result<Vec<Outgoing>, HqPrivacyError> {
        let rows = self.db.query(
            "SELECT store, order_id, erased_at FROM hq_customer_erasure
             ORDER BY erased_at DESC LIMIT ?1",
            &[&REPUBLISH_TOMBSTONES],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                ))
            },
        )?;
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
                if !known && erasure_of(&self.db, store, order_id)?.is_none() {
                    upsert(&self.db, store, order_id, &customer, "store")?;
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
        if erasure_of(&self.db, store, order_id)?.is_some() {
            self.db.execute(
                "UPDATE hq_customer_erasure SET confirmed_at = ?3, confirmed_by = ?4
                 WHERE store = ?1 AND order_id = ?2 AND confirmed_at IS NULL",
                &[&store, &order_id, &now, &by],
            )?;
            tracing::info!(order = order_id, store, "store confirmed the erasure");
            return Ok(Vec::new());
        }
        let tx = self.db.begin()?;
        tx.execute(
            "DELETE FROM hq_order_customer WHERE store = ?1 AND order_id = ?2",
            &[&store, &order_id],
        )?;
        tx.execute(
            "INSERT INTO hq_customer_erasure (store, order_id, erased_at, requested_by, confirmed_at, confirmed_by)
             VALUES (?1, ?2, ?3, 'store', ?4, ?5)",
            &[&store, &order_id, &erased_at, &now, &by],
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
        let Some(path) = &self.sqlite_path else {
            return;
        };
        match crate::store::customers::checkpoint(path) {
            Ok((busy, frames, moved)) => {
                tracing::debug!(busy, frames, moved, "HQ WAL checkpoint after erasure");
            }
            Err(e) => tracing::warn!(error = %e, "HQ WAL checkpoint after erasure failed"),
        }
    }
}
