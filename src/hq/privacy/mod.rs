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
//!
//! - `store.rs`: HQ's customer data store ([`HqPrivacy`]) and its tables;
//! - `messages.rs`: the stores' `pii` messages in, HQ's tombstones out again on connect;
//! - `http.rs`: the routes above.

pub(super) mod http;
mod messages;
mod store;
#[cfg(test)]
mod tests;

pub use messages::{REPUBLISH_TOMBSTONES, is_pii_topic, on_message, tombstones};
pub use store::{HqPrivacy, put};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::domain::customer::{self as privacy, Customer, PrivacyError};
use crate::sync::topics;

#[derive(Debug, thiserror::Error)]
pub enum HqPrivacyError {
    #[error(transparent)]
    Db(#[from] crate::hq::db::DbError),
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

/// `POST /v1/privacy/erase`: exactly one selector.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
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
