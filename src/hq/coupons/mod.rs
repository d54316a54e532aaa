//! Coupons at HQ (the rule is in [`crate::domain::coupons`], the layout in
//! [`crate::crdt::coupons`]): HQ issues a coupon (its definition goes to every store in the
//! catalog document), holds its uses in a pool, and grants uses to a store's lane (in that
//! store's orders document) only while its pool covers them, by hand or answering a lane's
//! ask at ingest ([`HqState::answer_coupon_asks`]). A lane redeems offline only what it
//! holds. Over HTTP: [`http`].
//!
//! The pool (issued, less what lanes were granted and gave back, less online redemptions)
//! is read from rows (`hq_coupon_holder`, kept with the documents by
//! `hq::state::figures`) under the coupon's lock, which every write that takes from the pool
//! holds (grants, answers to asks, online redemptions). A store's own changes only give uses
//! back (never take from the pool), so they need not hold it.

pub mod http;
pub mod online;
pub mod quote;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::crdt::coupons::{CouponEntry, read_coupons};
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::domain::coupons::{Coupon, CouponError, CouponTotals, pool, uses_to_grant};
use crate::hq::db::locks::coupon_lock;
use crate::hq::state::{HqError, HqState, Outgoing};

/// Why HQ refused a coupon request (404, 409 or 422 over HTTP).
#[derive(Debug, thiserror::Error)]
pub enum CouponRefused {
    #[error(transparent)]
    Invalid(#[from] CouponError),
    #[error("coupon {0} is unknown")]
    Unknown(String),
    #[error("coupon {0} exists: codes are never reused")]
    Exists(String),
    #[error("coupon {code}: only {pool} uses are left at HQ to grant")]
    PoolShort { code: String, pool: i64 },
    #[error(
        "grants: {0:?} is not a store's lane HQ knows of (give `{{store}}` or `{{store}}.{{node}}` of a store that synced)"
    )]
    NoLane(String),
    #[error("grants: uses must be positive")]
    Uses,
    #[error("HQ's catalog is not loaded yet")]
    NoCatalog,
    #[error("reference: must be 1 to 128 characters, no control characters")]
    Reference,
    #[error(transparent)]
    Refused(crate::domain::coupons::Refusal),
    #[error(
        "coupon {0} has no use left at HQ: used up, or its uses are held by stores (they may give them back)"
    )]
    NoneAtHq(String),
    #[error(transparent)]
    Hq(#[from] HqError),
}

/// One lane's part of a coupon, as HQ sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HolderView {
    pub lane: String,
    #[serde(flatten)]
    pub totals: CouponTotals,
    /// Uses the lane may still redeem, offline too.
    pub held: i64,
}

/// `GET /v1/coupons/{code}`: the definition and where its uses are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CouponView {
    #[schema(value_type = Object)]
    pub coupon: Coupon,
    /// Uses HQ still holds (may grant).
    pub pool: i64,
    /// Redemptions HQ knows of, online ones included (a lane cut off may have made more,
    /// from what it holds).
    pub redeemed: i64,
    /// Of those, the web shop's and the app's (`POST /v1/coupons/{code}/redeem`).
    pub redeemed_online: i64,
    pub holders: Vec<HolderView>,
}

impl HqState {
    /// Every coupon HQ issued, by code.
    pub fn coupons(&mut self) -> BTreeMap<String, Coupon> {
        self.catalog().map(read_coupons).unwrap_or_default()
    }

    /// Per lane, its totals of `code` over every store's orders document, from the rows
    /// kept with the documents (`hq_coupon_holder`), not the documents themselves.
    fn coupon_holders(&self, code: &str) -> Result<BTreeMap<WriterId, CouponTotals>, HqError> {
        self.coupon_holder_rows(code)
    }

    /// The view of one coupon (`None`: no such coupon).
    pub fn coupon_view(&mut self, code: &str) -> Result<Option<CouponView>, HqError> {
        let Some(coupon) = self.coupons().remove(code) else {
            return Ok(None);
        };
        let holders = self.coupon_holders(code)?;
        let online = self.online_redemptions(code)?;
        let in_stores: i64 = holders.values().map(|t| t.redeemed).sum();
        Ok(Some(CouponView {
            pool: pool(coupon.uses, holders.values().copied()).saturating_sub(online),
            redeemed: in_stores.saturating_add(online),
            redeemed_online: online,
            holders: holders
                .into_iter()
                .map(|(lane, totals)| HolderView {
                    lane: lane.to_string(),
                    held: totals.held(),
                    totals,
                })
                .collect(),
            coupon,
        }))
    }

    /// Issues a coupon: publishes its definition, then grants `grants` (holder → uses).
    pub fn issue_coupon(
        &mut self,
        coupon: Coupon,
        grants: &BTreeMap<String, i64>,
    ) -> Result<Vec<Outgoing>, CouponRefused> {
        let coupon = coupon.validated()?;
        if self.catalog().is_none() {
            return Err(CouponRefused::NoCatalog);
        }
        if self.coupons().contains_key(&coupon.code) {
            return Err(CouponRefused::Exists(coupon.code));
        }
        let wanted: i64 = grants.values().fold(0, |a, n| a.saturating_add(*n));
        if wanted > coupon.uses {
            return Err(CouponRefused::PoolShort {
                code: coupon.code,
                pool: coupon.uses,
            });
        }
        let lanes = grants
            .iter()
            .map(|(holder, uses)| Ok((self.coupon_lane(holder)?, *uses)))
            .collect::<Result<Vec<_>, CouponRefused>>()?;
        // Every lane's store must have synced before anything is published: a half-issued
        // coupon could not be issued again (codes are never reused).
        for (lane, _) in &lanes {
            let id = DocId::new(store_of(lane), DocKind::Orders).map_err(HqError::from)?;
            if self.doc(&id)?.is_none() {
                return Err(CouponRefused::NoLane(lane.to_string()));
            }
        }
        let mut out = self.change_catalog(|catalog, at_ms| catalog.put_coupon(&coupon, at_ms))?;
        for (lane, uses) in lanes {
            out.extend(self.grant_coupon(&coupon.code, &lane, uses)?);
        }
        tracing::info!(code = %coupon.code, uses = coupon.uses, granted = wanted, "coupon issued");
        Ok(out)
    }

    /// Revokes a coupon: every store refuses it once it learns it.
    pub fn revoke_coupon(&mut self, code: &str) -> Result<Vec<Outgoing>, CouponRefused> {
        let Some(mut coupon) = self.coupons().remove(code) else {
            return Err(CouponRefused::Unknown(code.to_owned()));
        };
        coupon.revoked = true;
        let out = self.change_catalog(|catalog, at_ms| catalog.put_coupon(&coupon, at_ms))?;
        tracing::info!(code, "coupon revoked");
        Ok(out)
    }

    /// The lane a holder names: `{store}.{node}` as given, or a store's lane (online first);
    /// never a retired one.
    pub fn coupon_lane(&self, holder: &str) -> Result<WriterId, CouponRefused> {
        let no_lane = || CouponRefused::NoLane(holder.to_owned());
        let writer = if holder.contains('.') {
            Some(holder.to_owned())
        } else {
            self.db
                .query_opt(
                    "SELECT writer FROM hq_lane WHERE store = ?1
                     ORDER BY online DESC, writer LIMIT 1",
                    &[&holder],
                    |r| r.get::<String>(0),
                )
                .map_err(HqError::from)?
        };
        let lane = WriterId::new(&writer.ok_or_else(no_lane)?).map_err(|_| no_lane())?;
        if lane.is_hq() {
            return Err(no_lane());
        }
        // A lane named outright may have been retired for good: it will never take the uses.
        let store = lane.as_str().split('.').next().unwrap_or_default();
        if self.retired_writers(store)?.contains_key(&lane) {
            return Err(no_lane());
        }
        Ok(lane)
    }

    /// Moves `uses` from HQ's pool to `lane` (in its store's orders document), under the
    /// locks of that document and of the coupon's pool.
    pub fn grant_coupon(
        &mut self,
        code: &str,
        lane: &WriterId,
        uses: i64,
    ) -> Result<Vec<Outgoing>, CouponRefused> {
        let id = DocId::new(store_of(lane), DocKind::Orders).map_err(HqError::from)?;
        self.with_locks(&[id], &[coupon_lock(code)], |hq| {
            hq.grant_coupon_locked(code, lane, uses)
        })
    }

    fn grant_coupon_locked(
        &mut self,
        code: &str,
        lane: &WriterId,
        uses: i64,
    ) -> Result<Vec<Outgoing>, CouponRefused> {
        if uses <= 0 {
            return Err(CouponRefused::Uses);
        }
        let Some(coupon) = self.coupons().remove(code) else {
            return Err(CouponRefused::Unknown(code.to_owned()));
        };
        let left = self.coupon_pool(&coupon)?;
        if left < uses {
            return Err(CouponRefused::PoolShort {
                code: code.to_owned(),
                pool: left.max(0),
            });
        }
        let id = DocId::new(store_of(lane), DocKind::Orders).map_err(HqError::from)?;
        self.refresh(&id)?;
        let entry = CouponEntry::Grant {
            lane: lane.clone(),
            uses,
        };
        let change = self
            .write_orders(&id, |doc| {
                doc.add_coupons(&[(code.to_owned(), entry)], crate::clock::now_ms())
            })
            .ok_or_else(|| CouponRefused::NoLane(lane.to_string()))?
            .map_err(|e| HqError::from(orders_doc(e)))?;
        tracing::info!(code, lane = %lane, uses, "coupon uses granted");
        match change {
            Some(change) => Ok(self.commit_order_change(&id, change.bytes)?),
            None => Ok(Vec::new()),
        }
    }
}

impl HqState {
    /// After a store's orders document changed: answers its lanes' open asks for coupon uses
    /// (a till was refused for not holding one), granting from HQ's pool what
    /// [`uses_to_grant`] allows. Never fails the ingest (logged; the lane asks again).
    pub(in crate::hq) fn answer_coupon_asks(&mut self, changed: &DocId) -> Vec<Outgoing> {
        if changed.kind != DocKind::Orders {
            return Vec::new();
        }
        // From the store's rows (`hq_coupon_holder`, exactly the document's totals), by an
        // index: the coupons with an open ask, not every coupon the document names.
        let asked: Vec<String> = match self.db.query(
            "SELECT DISTINCT code FROM hq_coupon_holder WHERE store = ?1 AND wanted > served",
            &[&changed.store],
            |r| r.get::<String>(0),
        ) {
            // In the codes' byte order, as the document's map gave them (not the database's
            // collation).
            Ok(codes) => codes
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            Err(error) => {
                tracing::warn!(store = %changed.store, %error, "coupon asks not answered; the lane asks again");
                return Vec::new();
            }
        };
        if asked.is_empty() {
            return Vec::new();
        }
        let id = changed.clone();
        let pools: Vec<String> = asked.iter().map(|code| coupon_lock(code)).collect();
        match self.with_locks(std::slice::from_ref(&id), &pools, |hq| {
            hq.answer_asks_locked(&id, &asked)
        }) {
            Ok(out) => out,
            Err(error) => {
                tracing::warn!(store = %changed.store, %error, "coupon asks not answered; the lane asks again");
                Vec::new()
            }
        }
    }

    fn answer_asks_locked(
        &mut self,
        id: &DocId,
        codes: &[String],
    ) -> Result<Vec<Outgoing>, HqError> {
        self.refresh(id)?;
        let asked: std::collections::BTreeSet<String> = codes.iter().cloned().collect();
        let Some(mut totals) = self.read_orders(id, |doc| doc.coupon_totals_of(&asked)) else {
            return Ok(Vec::new());
        };
        let coupons = self.coupons();
        let now = crate::clock::now_utc();
        let mut entries = Vec::new();
        for code in codes {
            let holders = self.coupon_holders(code)?;
            let coupon = coupons.get(code);
            let online = self.online_redemptions(code)?;
            let mut left = coupon.map_or(0, |c| {
                pool(c.uses, holders.values().copied()).saturating_sub(online)
            });
            for (lane, mine) in totals.remove(code).unwrap_or_default() {
                let open = mine.open_asks();
                if open == 0 {
                    continue;
                }
                let others = holders.iter().filter(|(l, _)| **l != lane).map(|(_, t)| *t);
                let uses = coupon.map_or(0, |c| uses_to_grant(c, mine, others, left, &now));
                if uses > 0 {
                    left -= uses;
                    entries.push((
                        code.clone(),
                        CouponEntry::Grant {
                            lane: lane.clone(),
                            uses,
                        },
                    ));
                }
                tracing::info!(code = %code, lane = %lane, asked = open, granted = uses, "coupon ask answered");
                entries.push((code.clone(), CouponEntry::Serve { lane, uses: open }));
            }
        }
        let change = self
            .write_orders(id, |doc| doc.add_coupons(&entries, crate::clock::now_ms()))
            .transpose()
            .map_err(orders_doc)?
            .flatten();
        match change {
            Some(change) => self.commit_order_change(id, change.bytes),
            None => Ok(Vec::new()),
        }
    }
}

/// The store of a lane `{store}.{node}`.
fn store_of(lane: &WriterId) -> &str {
    lane.as_str()
        .split_once('.')
        .map_or(lane.as_str(), |(s, _)| s)
}

/// An orders-document error as a document error (HQ's errors carry those), as
/// `hq::orders` does.
fn orders_doc(e: crate::crdt::orders::OrdersError) -> crate::crdt::doc::DocError {
    match e {
        crate::crdt::orders::OrdersError::Doc(d) => d,
        other => crate::crdt::doc::DocError::NotOurDocument(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
