//! Read models of the stores' orders documents: per coupon and lane (`hq_coupon_holder`) and
//! per member and lane (`hq_loyalty_lane`), the totals a store's orders document holds.
//!
//! Rewritten for a store whenever its orders document is written, in the same transaction
//! and under the document's lock (the store's changes, HQ's grants, answers, relays and
//! epoch cuts all commit through `fresh.rs`, which calls
//! [`HqState::write_touched_figures`] just before the commit), so the rows are exactly the
//! stored documents' figures. A coupon's pool and holders and a member's balance are then a
//! query over a few rows rather than a load of every store's orders document, and HQ's
//! writes need not lock every document to read them (see `fresh.rs`).
//!
//! Only the coupons and members a write named are read and rewritten: every change logged
//! records the map paths its operations wrote (`hq::db::docs::persist_change`,
//! [`crate::crdt::doc::touched_paths`]), and [`TotalsTouched`] maps them to coupon codes and
//! members. Reading every member's ledger at every change made an orders change cost time in
//! proportion to the members its document names, so it grew with the store's history
//! (docs/benchmarks.md, "An orders change against the orders document's history"). A write
//! above single entries (a writer's or a section's map, HQ's base), a document saved whole
//! (a new epoch), or changes that waited for a dependency (applied later by another change,
//! whose paths do not say what they wrote) rewrite the store's rows in full, as before. Of
//! those, only the rows that differ are written. Rows of documents stored before this table
//! existed are filled at the first start after the migration ([`HqState::fill_figures`]).
//!
//! What HQ does after a store's orders change reads these rows too, by partial indexes
//! (`figures_open.sql`): the members with wants to answer or points owed
//! (`settle_loyalty`), the coupons with open asks (`answer_coupon_asks`).

use std::collections::BTreeMap;

use super::{HqError, HqState, fresh};
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::orders::TotalsTouched;
use crate::domain::coupons::CouponTotals;
use crate::domain::loyalty::{LaneTotals, MemberLedger};
use crate::hq::db::{Db, DbError, Param, Written};

/// Per coupon and lane.
type CouponRows = BTreeMap<(String, String), CouponTotals>;
/// Per member and lane.
type LaneRows = BTreeMap<(String, String), LaneTotals>;

impl HqState {
    /// Rewrites the figures of every orders document the open transaction wrote (called
    /// just before it commits): of the coupons and members its writes named, or all of them
    /// when a write was above those (an epoch's document saved whole, say).
    pub(super) fn write_touched_figures(&mut self) -> Result<(), HqError> {
        for key in self.db.touched_keys() {
            if let Some(id) = fresh::id_of_key(&key).filter(|id| id.kind == DocKind::Orders) {
                match self.db.written(&key) {
                    Written::Paths(paths) => match TotalsTouched::of(&paths) {
                        touched if touched.all => self.write_figures(&id)?,
                        touched => self.write_some_figures(&id, &touched)?,
                    },
                    Written::Whole => self.write_figures(&id)?,
                }
            }
        }
        Ok(())
    }

    /// Rewrites the rows of `id`'s store from its document in memory (none: no rows).
    fn write_figures(&mut self, id: &DocId) -> Result<(), HqError> {
        let (coupons, members) = self.figures_of(id);
        write_coupon_rows(&self.db, &id.store, None, &coupons)?;
        write_lane_rows(&self.db, &id.store, None, &members)?;
        Ok(())
    }

    /// Rewrites the rows of `id`'s store of the coupons and members `touched` names only:
    /// what a change costs here is in proportion to what it wrote, not to the document.
    fn write_some_figures(&mut self, id: &DocId, touched: &TotalsTouched) -> Result<(), HqError> {
        let (coupons, members) = self
            .read_orders(id, |doc| {
                (
                    coupon_rows(doc.coupon_totals_of(&touched.coupons)),
                    lane_rows(doc.loyalty_ledgers_of(&touched.members)),
                )
            })
            .unwrap_or_default();
        for code in &touched.coupons {
            let rows = coupons
                .range((code.clone(), String::new())..)
                .take_while(|((c, _), _)| c == code)
                .map(|(k, t)| (k.clone(), *t))
                .collect();
            write_coupon_rows(&self.db, &id.store, Some(code), &rows)?;
        }
        for member in &touched.members {
            let rows = members
                .range((member.clone(), String::new())..)
                .take_while(|((m, _), _)| m == member)
                .map(|(k, t)| (k.clone(), *t))
                .collect();
            write_lane_rows(&self.db, &id.store, Some(member), &rows)?;
        }
        Ok(())
    }

    /// The figures of orders document `id` as in memory, read without copying it.
    fn figures_of(&mut self, id: &DocId) -> (CouponRows, LaneRows) {
        self.read_orders(id, |doc| {
            (
                coupon_rows(doc.coupon_totals()),
                lane_rows(doc.loyalty_ledgers()),
            )
        })
        .unwrap_or_default()
    }

    /// Fills the figures of every store from its stored orders document, once (the first
    /// start after the tables were added). One store per transaction, under its document's
    /// lock: another instance writing a document meanwhile writes its rows itself.
    pub(super) fn fill_figures(&mut self) -> Result<(), HqError> {
        let filled: Option<String> =
            self.db
                .query_opt("SELECT done_at FROM hq_figures_filled", &[], |r| r.get(0))?;
        if filled.is_some() {
            return Ok(());
        }
        let stores = self.stores()?;
        for store in &stores {
            let id = DocId::new(store, DocKind::Orders)?;
            self.with_document(&id, |hq| hq.write_figures(&id))?;
        }
        self.db.execute(
            "INSERT INTO hq_figures_filled (done_at) VALUES (?1)",
            &[&crate::clock::now_utc()],
        )?;
        tracing::info!(
            stores = stores.len(),
            "coupon and loyalty figures filled from the stores' documents"
        );
        Ok(())
    }

    /// Per lane, its totals of coupon `code` in every store's orders document.
    pub(in crate::hq) fn coupon_holder_rows(
        &self,
        code: &str,
    ) -> Result<BTreeMap<WriterId, CouponTotals>, HqError> {
        let rows: Vec<(String, CouponTotals)> = self.db.query(
            "SELECT lane, granted, redeemed, released, wanted, served FROM hq_coupon_holder
             WHERE code = ?1 ORDER BY store, lane",
            &[&code],
            |r| {
                Ok((
                    r.get(0)?,
                    CouponTotals {
                        granted: r.get(1)?,
                        redeemed: r.get(2)?,
                        released: r.get(3)?,
                        wanted: r.get(4)?,
                        served: r.get(5)?,
                    },
                ))
            },
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(lane, t)| Some((WriterId::new(&lane).ok()?, t)))
            .collect())
    }

    /// Per lane, member `member`'s totals in every store's orders document.
    pub(in crate::hq) fn member_lane_rows(
        &self,
        member: &str,
    ) -> Result<BTreeMap<String, LaneTotals>, HqError> {
        let rows: Vec<(String, LaneTotals)> = self.db.query(
            "SELECT lane, earned, refunded, spent, reversed, released, owed, wanted, granted, served
             FROM hq_loyalty_lane WHERE member = ?1 ORDER BY store, lane",
            &[&member],
            |r| Ok((r.get(0)?, lane_totals(r, 1)?)),
        )?;
        Ok(rows.into_iter().collect())
    }
}

/// Per coupon and lane, as rows.
fn coupon_rows(totals: BTreeMap<String, BTreeMap<WriterId, CouponTotals>>) -> CouponRows {
    totals
        .into_iter()
        .flat_map(|(code, lanes)| {
            lanes
                .into_iter()
                .map(move |(lane, t)| ((code.clone(), lane.to_string()), t))
        })
        .collect()
}

/// Per member and lane, as rows.
fn lane_rows(ledgers: BTreeMap<String, MemberLedger>) -> LaneRows {
    ledgers
        .into_iter()
        .flat_map(|(member, ledger)| {
            ledger
                .lanes
                .into_iter()
                .map(move |(lane, t)| ((member.clone(), lane), t))
        })
        .collect()
}

/// A lane's totals from the nine columns from `first` on.
fn lane_totals(r: &mut crate::hq::db::Row, first: usize) -> Result<LaneTotals, DbError> {
    Ok(LaneTotals {
        earned: r.get(first)?,
        refunded: r.get(first + 1)?,
        spent: r.get(first + 2)?,
        reversed: r.get(first + 3)?,
        released: r.get(first + 4)?,
        owed: r.get(first + 5)?,
        wanted: r.get(first + 6)?,
        granted: r.get(first + 7)?,
        served: r.get(first + 8)?,
    })
}

/// Makes `store`'s coupon rows (of coupon `only`, or all) `rows`, writing only those that
/// differ.
fn write_coupon_rows(
    db: &Db,
    store: &str,
    only: Option<&String>,
    rows: &CouponRows,
) -> Result<(), DbError> {
    let select = "SELECT code, lane, granted, redeemed, released, wanted, served
                  FROM hq_coupon_holder WHERE store = ?1";
    let (sql, params): (String, Vec<&dyn Param>) = match only {
        Some(code) => (format!("{select} AND code = ?2"), vec![&store, code]),
        None => (select.to_owned(), vec![&store]),
    };
    let stored: CouponRows = db
        .query(&sql, &params, |r| {
            Ok((
                (r.get(0)?, r.get(1)?),
                CouponTotals {
                    granted: r.get(2)?,
                    redeemed: r.get(3)?,
                    released: r.get(4)?,
                    wanted: r.get(5)?,
                    served: r.get(6)?,
                },
            ))
        })?
        .into_iter()
        .collect();
    for ((code, lane), t) in rows {
        if stored.get(&(code.clone(), lane.clone())) == Some(t) {
            continue;
        }
        db.execute(
            "INSERT INTO hq_coupon_holder
               (code, store, lane, granted, redeemed, released, wanted, served)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (code, store, lane) DO UPDATE SET granted = excluded.granted,
               redeemed = excluded.redeemed, released = excluded.released,
               wanted = excluded.wanted, served = excluded.served",
            &[
                code,
                &store,
                lane,
                &t.granted,
                &t.redeemed,
                &t.released,
                &t.wanted,
                &t.served,
            ],
        )?;
    }
    for (code, lane) in stored.keys().filter(|k| !rows.contains_key(*k)) {
        db.execute(
            "DELETE FROM hq_coupon_holder WHERE code = ?1 AND store = ?2 AND lane = ?3",
            &[code, &store, lane],
        )?;
    }
    Ok(())
}

/// Makes `store`'s member rows (of member `only`, or all) `rows`, writing only those that
/// differ.
fn write_lane_rows(
    db: &Db,
    store: &str,
    only: Option<&String>,
    rows: &LaneRows,
) -> Result<(), DbError> {
    let select = "SELECT member, lane, earned, refunded, spent, reversed, released, owed,
                    wanted, granted, served
                  FROM hq_loyalty_lane WHERE store = ?1";
    let (sql, params): (String, Vec<&dyn Param>) = match only {
        Some(member) => (format!("{select} AND member = ?2"), vec![&store, member]),
        None => (select.to_owned(), vec![&store]),
    };
    let stored: LaneRows = db
        .query(&sql, &params, |r| {
            Ok(((r.get(0)?, r.get(1)?), lane_totals(r, 2)?))
        })?
        .into_iter()
        .collect();
    for ((member, lane), t) in rows {
        if stored.get(&(member.clone(), lane.clone())) == Some(t) {
            continue;
        }
        db.execute(
            "INSERT INTO hq_loyalty_lane
               (member, store, lane, earned, refunded, spent, reversed, released, owed, wanted,
                granted, served)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (member, store, lane) DO UPDATE SET earned = excluded.earned,
               refunded = excluded.refunded, spent = excluded.spent,
               reversed = excluded.reversed, released = excluded.released,
               owed = excluded.owed, wanted = excluded.wanted, granted = excluded.granted,
               served = excluded.served",
            &[
                member,
                &store,
                lane,
                &t.earned,
                &t.refunded,
                &t.spent,
                &t.reversed,
                &t.released,
                &t.owed,
                &t.wanted,
                &t.granted,
                &t.served,
            ],
        )?;
    }
    for (member, lane) in stored.keys().filter(|k| !rows.contains_key(*k)) {
        db.execute(
            "DELETE FROM hq_loyalty_lane WHERE member = ?1 AND store = ?2 AND lane = ?3",
            &[member, &store, lane],
        )?;
    }
    Ok(())
}
