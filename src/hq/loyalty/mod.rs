//! HQ's side of the loyalty ledger (the rule is in [`crate::domain::loyalty`], the layout in
//! [`crate::crdt::loyalty`]): HQ holds the pool of every member's points, answers a lane's
//! want (the member identified at its till) by granting the pool to it, settles points owed
//! by returns, and keeps the web shop's own earns and spends in its database.
//!
//! - `ledger.rs`: a member's ledger over every store's orders document and HQ's entries;
//! - `http.rs`: `/v1/loyalty/...` (rules, members, balance, history, web earns and spends,
//!   the lookup by phone or e-mail);
//! - `find.rs`: a store's lookup of a member by phone or e-mail, over MQTT: cards and masked
//!   names, from the customer-data store (`crate::domain::member_find`).
//!
//! A member's name and contacts never enter a document nor these tables: they are kept in
//! the customer-data store (`hq_order_customer`, store `loyalty`) and erased by
//! `POST /v1/privacy/erase` like an order's customer.

pub mod find;
pub(super) mod http;
mod ledger;
#[cfg(test)]
mod tests;

pub use ledger::{HqEntry, MemberBalance};

use crate::domain::loyalty::LoyaltyError;
use crate::hq::state::HqError;

/// The pseudo-store under which members' personal data sits in the customer-data store.
pub const PRIVACY_STORE: &str = "loyalty";

/// Why HQ refused a loyalty request (422, 404 or 409 over HTTP).
#[derive(Debug, thiserror::Error)]
pub enum LoyaltyRefused {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Card(#[from] LoyaltyError),
    #[error("member {0} is not known to HQ")]
    UnknownMember(String),
    #[error("member {0} exists already")]
    Exists(String),
    #[error("HQ publishes no loyalty rules yet: PUT /v1/loyalty/rules first")]
    NoRules,
    #[error(
        "member {member} has {available} points HQ may spend (points granted to a store's till are spent there)"
    )]
    NotEnough { member: String, available: i64 },
    #[error(transparent)]
    Hq(#[from] HqError),
}

impl From<crate::hq::db::DbError> for LoyaltyRefused {
    fn from(e: crate::hq::db::DbError) -> Self {
        Self::Hq(HqError::Db(e))
    }
}
