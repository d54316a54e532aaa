//! A member's ledger at HQ: every lane's totals from the stores' orders documents plus HQ's
//! own entries; HQ's grants, settlements and web-shop earns and spends, each only from the
//! pool as HQ sees it (the rule in [`crate::domain::loyalty`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::LoyaltyRefused;
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::crdt::loyalty::{LoyaltyField, LoyaltyRules, read_loyalty_rules};
use crate::domain::loyalty::{HqTotals, LaneTotals, MemberId, MemberLedger};
use crate::hq::db::locks::member_lock;
use crate::hq::state::{HqError, HqState, Outgoing};

/// `GET /v1/loyalty/members/{member}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MemberBalance {
    pub member: String,
    /// Registered at HQ (`POST /v1/loyalty/members`); cards handed out at a till work too.
    pub registered: bool,
    /// Points the member has: HQ's pool plus what lanes hold for them.
    pub balance: i64,
    /// Points HQ holds (grants to a till, or web-shop spends, come from here).
    pub pool: i64,
    /// What the web shop may spend now (the pool less points owed).
    pub spendable_online: i64,
    /// Points returns took back that the member had spent: settled from new points first.
    pub owed: i64,
    pub earned: i64,
    /// Points returns gave back to the member (sales paid in points), at every lane.
    pub refunded: i64,
    /// Per lane (`{store}.{node}`): its totals and what HQ granted it.
    pub lanes: BTreeMap<String, LaneTotals>,
    pub hq: HqTotals,
}

/// One of HQ's own entries (`GET /v1/loyalty/members/{member}/history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HqEntry {
    /// `earned` / `spent` (web shop), `settled` (owed points taken), `granted` (to a lane).
    pub kind: String,
    pub points: i64,
    pub reference: String,
    pub lane: Option<String>,
    pub at: String,
}

impl HqState {
    /// HQ's loyalty rules as published in the catalog.
    pub fn loyalty_rules(&mut self) -> Option<LoyaltyRules> {
        self.catalog().and_then(read_loyalty_rules)
    }

    /// Publishes the loyalty rules to every store (in the catalog document).
    pub fn put_loyalty_rules(&mut self, rules: LoyaltyRules) -> Result<Vec<Outgoing>, HqError> {
        self.change_catalog(|catalog, at_ms| catalog.put_loyalty_rules(&rules, at_ms))
    }

    /// Registers a member (the card's number; personal data goes to the privacy store).
    pub fn create_member(&mut self, member: &MemberId) -> Result<(), LoyaltyRefused> {
        let changed = self.db.execute(
            "INSERT INTO hq_loyalty_member (member, created_at) VALUES (?1, ?2)
             ON CONFLICT (member) DO NOTHING",
            &[&member.as_str(), &crate::clock::now_utc()],
        )?;
        if changed == 0 {
            return Err(LoyaltyRefused::Exists(member.to_string()));
        }
        tracing::info!(member = %member, "loyalty member registered");
        Ok(())
    }

    fn hq_totals(&self, member: &str) -> Result<HqTotals, HqError> {
        let rows: Vec<(String, i64)> = self.db.query(
            "SELECT kind, CAST(SUM(points) AS BIGINT) FROM hq_loyalty_entry WHERE member = ?1 GROUP BY kind",
            &[&member],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut totals = HqTotals::default();
        for (kind, points) in rows {
            match kind.as_str() {
                "earned" => totals.earned = points,
                "spent" => totals.spent = points,
                "settled" => totals.settled = points,
                _ => {}
            }
        }
        Ok(totals)
    }

    /// The member's ledger over every store's orders document HQ has and HQ's entries: the
    /// lanes' totals from the rows kept with the documents (`hq_loyalty_lane`).
    pub fn member_ledger(&mut self, member: &str) -> Result<MemberLedger, HqError> {
        Ok(MemberLedger {
            hq: self.hq_totals(member)?,
            lanes: self.member_lane_rows(member)?,
        })
    }

    pub fn member_balance(&mut self, member: &str) -> Result<MemberBalance, HqError> {
        let ledger = self.member_ledger(member)?;
        let registered = self
            .db
            .query_opt(
                "SELECT member FROM hq_loyalty_member WHERE member = ?1",
                &[&member],
                |r| r.get::<String>(0),
            )?
            .is_some();
        Ok(MemberBalance {
            member: member.to_owned(),
            registered,
            balance: ledger.balance(),
            pool: ledger.pool(),
            spendable_online: ledger.hq_plan().1,
            owed: ledger.owed(),
            earned: ledger.earned(),
            refunded: ledger.refunded(),
            lanes: ledger.lanes,
            hq: ledger.hq,
        })
    }

    pub fn member_history(&self, member: &str) -> Result<Vec<HqEntry>, HqError> {
        Ok(self.db.query(
            "SELECT kind, points, reference, lane, at FROM hq_loyalty_entry
             WHERE member = ?1 ORDER BY id",
            &[&member],
            |r| {
                Ok(HqEntry {
                    kind: r.get(0)?,
                    points: r.get(1)?,
                    reference: r.get(2)?,
                    lane: r.get(3)?,
                    at: r.get(4)?,
                })
            },
        )?)
    }

    /// The web shop's order `order_id` paid `paid_minor` (not in points): earns by HQ's
    /// rules, once per order (a retry returns the first answer). Returns the points.
    pub fn earn_online(
        &mut self,
        member: &MemberId,
        order_id: &str,
        paid_minor: i64,
    ) -> Result<i64, LoyaltyRefused> {
        if order_id.is_empty() || order_id.len() > 128 {
            return Err(invalid("order_id", "1 to 128 characters"));
        }
        if paid_minor < 0 {
            return Err(invalid("paid_minor", "must not be negative"));
        }
        let rules = self.loyalty_rules().ok_or(LoyaltyRefused::NoRules)?;
        let reference = format!("web:{order_id}");
        if let Some(points) = self.entry_points("earned", &reference)? {
            return Ok(points);
        }
        let points = rules.points_for(paid_minor);
        if points > 0 {
            self.insert_entry(member.as_str(), "earned", points, &reference, None)?;
        }
        tracing::info!(member = %member, order = order_id, points, "points earned online");
        Ok(points)
    }

    /// The web shop pays with `points` of the member's (`reference`: its payment, a retry
    /// spends once), only from what HQ holds and owes nobody.
    pub fn spend_online(
        &mut self,
        member: &MemberId,
        reference: &str,
        points: i64,
    ) -> Result<(), LoyaltyRefused> {
        if points <= 0 {
            return Err(invalid("points", "must be positive"));
        }
        if reference.is_empty() || reference.len() > 128 {
            return Err(invalid("reference", "1 to 128 characters"));
        }
        let reference = format!("web:{reference}");
        // The member's lock only: settlements and grants of the member's points hold it too.
        self.with_locks(&[], &[member_lock(member.as_str())], |hq| {
            if hq.entry_points("spent", &reference)?.is_some() {
                return Ok(());
            }
            let available = hq.member_ledger(member.as_str())?.hq_plan().1;
            if points > available {
                return Err(LoyaltyRefused::NotEnough {
                    member: member.to_string(),
                    available,
                });
            }
            hq.insert_entry(member.as_str(), "spent", points, &reference, None)?;
            tracing::info!(member = %member, points, "points spent online");
            Ok(())
        })
    }

    fn entry_points(&self, kind: &str, reference: &str) -> Result<Option<i64>, HqError> {
        Ok(self.db.query_opt(
            "SELECT points FROM hq_loyalty_entry WHERE kind = ?1 AND reference = ?2",
            &[&kind, &reference],
            |r| r.get(0),
        )?)
    }

    fn insert_entry(
        &self,
        member: &str,
        kind: &str,
        points: i64,
        reference: &str,
        lane: Option<&str>,
    ) -> Result<(), HqError> {
        let lane = lane.map(str::to_owned);
        self.db.execute(
            "INSERT INTO hq_loyalty_entry (member, kind, points, reference, lane, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            &[
                &member,
                &kind,
                &points,
                &reference,
                &lane,
                &crate::clock::now_utc(),
            ],
        )?;
        Ok(())
    }

    /// After a store's orders document changed: settles owed points and answers its lanes'
    /// wants with the member's pool. Never fails the ingest (logged; the next change of the
    /// document tries again).
    ///
    /// The members to look at are read from the store's rows (`hq_loyalty_lane`, exactly
    /// the document's totals, kept with it by `hq::state::figures`): only those with a lane
    /// whose wants are not all answered or that owes points, found by an index, rather than
    /// every member the document names.
    pub(in crate::hq) fn settle_loyalty(&mut self, changed: &DocId) -> Vec<Outgoing> {
        if changed.kind != DocKind::Orders {
            return Vec::new();
        }
        let open = match self.open_lanes(&changed.store) {
            Ok(open) => open,
            Err(error) => {
                tracing::warn!(store = %changed.store, %error, "loyalty grants not made; retried at the store's next change");
                return Vec::new();
            }
        };
        let due: Vec<String> = open
            .into_iter()
            .filter(|(member, (wants, owes))| {
                *wants || (*owes && self.member_ledger(member).is_ok_and(|l| l.hq_plan().0 > 0))
            })
            .map(|(member, _)| member)
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        let id = changed.clone();
        let points: Vec<String> = due.iter().map(|m| member_lock(m)).collect();
        match self.with_locks(std::slice::from_ref(&id), &points, |hq| {
            hq.settle_locked(&id, &due)
        }) {
            Ok(out) => out,
            Err(error) => {
                tracing::warn!(store = %changed.store, %error, "loyalty grants not made; retried at the store's next change");
                Vec::new()
            }
        }
    }

    /// Per member of `store`'s orders document with a lane whose wants are not all answered
    /// or that owes points: (some lane wants, some lane owes).
    fn open_lanes(&self, store: &str) -> Result<BTreeMap<String, (bool, bool)>, HqError> {
        // The condition is the partial index's, word for word (`figures_open.sql`).
        let rows: Vec<(String, i64, i64, i64)> = self.db.query(
            "SELECT member, wanted, served, owed FROM hq_loyalty_lane
             WHERE store = ?1 AND (wanted > served OR owed > 0)",
            &[&store],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let mut open: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        for (member, wanted, served, owed) in rows {
            let (wants, owes) = open.entry(member).or_default();
            *wants |= wanted > served;
            *owes |= owed > 0;
        }
        Ok(open)
    }

    fn settle_locked(&mut self, id: &DocId, members: &[String]) -> Result<Vec<Outgoing>, HqError> {
        self.refresh(id)?;
        let wanted: std::collections::BTreeSet<String> = members.iter().cloned().collect();
        let Some(mut ledgers) = self.read_orders(id, |doc| doc.loyalty_ledgers_of(&wanted)) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{}.", id.store);
        let mut entries = Vec::new();
        for member in members {
            let ledger = self.member_ledger(member)?;
            let (settle, mut grant) = ledger.hq_plan();
            if settle > 0 {
                let after = ledger.hq.settled.saturating_add(settle);
                let reference = format!("settle:{member}:{after}");
                self.insert_entry(member, "settled", settle, &reference, None)?;
            }
            for (lane, totals) in ledgers.remove(member).unwrap_or_default().lanes {
                if !lane.starts_with(&prefix) || totals.wanted <= totals.served {
                    continue;
                }
                let Ok(writer) = WriterId::new(&lane) else {
                    continue;
                };
                if grant > 0 {
                    let after = totals.granted.saturating_add(grant);
                    let reference = format!("grant:{lane}:{member}:{after}");
                    self.insert_entry(member, "granted", grant, &reference, Some(&lane))?;
                    tracing::info!(
                        member,
                        lane,
                        points = grant,
                        "loyalty points granted to a lane"
                    );
                }
                entries.push((member.clone(), LoyaltyField::Granted(writer.clone()), grant));
                let answered = totals.wanted - totals.served;
                entries.push((member.clone(), LoyaltyField::Served(writer), answered));
                grant = 0;
            }
        }
        let change = self
            .write_orders(id, |doc| doc.add_loyalty(&entries, crate::clock::now_ms()))
            .transpose()
            .map_err(|e| HqError::Doc(crate::crdt::doc::DocError::NotOurDocument(e.to_string())))?
            .flatten();
        match change {
            Some(change) => self.commit_order_change(id, change.bytes),
            None => Ok(Vec::new()),
        }
    }
}

fn invalid(field: &'static str, reason: &str) -> LoyaltyRefused {
    LoyaltyRefused::Invalid {
        field,
        reason: reason.to_owned(),
    }
}
