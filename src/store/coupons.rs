//! Coupons at a store node (the rule is in [`crate::domain::coupons`], the layout in
//! `crdt::coupons`): HQ's definitions and what this lane holds, kept in SQLite so a till
//! redeems offline; a sale redeems a coupon in its own write, so a retried sale (same
//! idempotency key) redeems once; sync records the redemptions in the orders document. A
//! till refused because this lane holds no use makes the lane ask HQ for one ([`ask_hq`]),
//! which HQ's ingest grants from its pool.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::sales::WriteContext;
use crate::domain::coupons::{
    Coupon, CouponTotals, PROMOTION_PREFIX, Refusal, check_redeem, normalise_code,
};
use crate::domain::pricing::{AppliedPromotion, Promotion};

/// Coupons one sale may carry.
pub const MAX_PER_SALE: usize = 5;

/// A coupon on a receipt: what it took off the sale in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedCoupon {
    pub code: String,
    pub name: String,
    pub amount_minor: i64,
}

/// The coupons a sale presents, checked and ready to price with.
#[derive(Debug, Default)]
pub struct Presented {
    coupons: Vec<Coupon>,
}

impl Presented {
    /// Their discounts, as promotions for the pricing engine.
    pub fn promotions(&self) -> Vec<Promotion> {
        self.coupons.iter().map(Coupon::promotion).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.coupons.is_empty()
    }
}

fn refused(index: usize, refusal: Refusal) -> StoreError {
    tracing::info!(reason = refusal.reason(), %refusal, "coupon refused");
    match refusal {
        Refusal::UsedUp(_) | Refusal::HeldElsewhere(_) => {
            StoreError::Conflict(format!("coupons[{index}]: {refusal}"))
        }
        other => StoreError::unprocessable(format!("coupons[{index}]"), other.to_string()),
    }
}

/// Checks each presented code: known, valid now, and held by this lane.
pub fn present(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    codes: &[String],
) -> Result<Presented, StoreError> {
    if codes.len() > MAX_PER_SALE {
        return Err(StoreError::unprocessable(
            "coupons",
            format!("at most {MAX_PER_SALE} coupons per sale"),
        ));
    }
    let mut coupons: Vec<Coupon> = Vec::with_capacity(codes.len());
    for (i, raw) in codes.iter().enumerate() {
        let code = normalise_code(raw)
            .map_err(|e| StoreError::unprocessable(format!("coupons[{i}]"), e.to_string()))?;
        if coupons.iter().any(|c| c.code == code) {
            return Err(StoreError::unprocessable(
                format!("coupons[{i}]"),
                format!("coupon {code} is given twice"),
            ));
        }
        let coupon = definition(conn, &code)?;
        let (mine, store_redeemed) = level(conn, &code)?;
        check_redeem(&code, coupon.as_ref(), mine, store_redeemed, 1, ctx.now)
            .map_err(|r| refused(i, r))?;
        coupons.extend(coupon);
    }
    Ok(Presented { coupons })
}

/// Records one use of each presented coupon for sale `sale_id`, after pricing: a coupon that
/// took nothing off the basket is refused rather than spent.
pub fn redeem(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    presented: &Presented,
    sale_id: i64,
    promotions: &[AppliedPromotion],
) -> Result<(), StoreError> {
    for (i, coupon) in presented.coupons.iter().enumerate() {
        let id = coupon.promotion().id;
        let taken: i64 = promotions
            .iter()
            .filter(|p| p.promotion_id == id)
            .map(|p| p.amount_minor)
            .sum();
        if taken <= 0 {
            return Err(refused(i, Refusal::NotApplicable(coupon.code.clone())));
        }
        conn.prepare_cached(
            "INSERT INTO coupon_redemption (code, sale_id, uses, amount_minor, terminal, at)
             VALUES (?1, ?2, 1, ?3, ?4, ?5)",
        )?
        .execute(params![coupon.code, sale_id, taken, ctx.terminal, ctx.now])?;
        conn.prepare_cached(
            "INSERT INTO coupon_level (code, redeemed, store_redeemed) VALUES (?1, 1, 1)
             ON CONFLICT(code) DO UPDATE SET redeemed = redeemed + 1,
                store_redeemed = store_redeemed + 1",
        )?
        .execute([&coupon.code])?;
        tracing::info!(code = %coupon.code, sale_id, amount_minor = taken, "coupon redeemed");
    }
    Ok(())
}

/// `GET /v1/coupons/{code}` at the store: what the till may expect before it sells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CouponAtStore {
    pub code: String,
    pub name: String,
    /// Uses issued in all (across every store and the web shop).
    pub uses: i64,
    /// Uses this lane holds: it redeems these offline too.
    pub held: i64,
    /// Redemptions at this store that this lane knows of.
    pub store_redeemed: i64,
    /// This lane asked HQ for a use and HQ has not answered yet.
    #[serde(default)]
    pub asked_hq: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub revoked: bool,
}

/// What this node knows of `code` (`None`: unknown here).
pub fn view(conn: &Connection, code: &str) -> Result<Option<CouponAtStore>, StoreError> {
    let Ok(code) = normalise_code(code) else {
        return Ok(None);
    };
    let Some(coupon) = definition(conn, &code)? else {
        return Ok(None);
    };
    let (mine, store_redeemed) = level(conn, &code)?;
    Ok(Some(CouponAtStore {
        code: coupon.code,
        name: coupon.name,
        uses: coupon.uses,
        held: mine.held(),
        store_redeemed,
        asked_hq: mine.open_asks() > 0,
        expires_at: coupon.expires_at,
        revoked: coupon.revoked,
    }))
}

/// The coupons among a receipt's promotions.
pub fn on_receipt(promotions: &[AppliedPromotion]) -> Vec<AppliedCoupon> {
    promotions
        .iter()
        .filter_map(|p| {
            Some(AppliedCoupon {
                code: p.promotion_id.strip_prefix(PROMOTION_PREFIX)?.to_owned(),
                name: p.name.clone(),
                amount_minor: p.amount_minor,
            })
        })
        .collect()
}

/// HQ's definition of `code`, if this node knows it.
pub fn definition(conn: &Connection, code: &str) -> Result<Option<Coupon>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached("SELECT definition FROM coupon WHERE code = ?1")?
        .query_row([code], |r| r.get(0))
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| StoreError::Inconsistent(format!("stored coupon {code}: {e}")))
    })
    .transpose()
}

/// This lane's totals of `code` and the store's redemptions of it (every lane).
pub fn level(conn: &Connection, code: &str) -> Result<(CouponTotals, i64), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT granted, redeemed, released, store_redeemed, wanted, served
             FROM coupon_level WHERE code = ?1",
        )?
        .query_row([code], |r| {
            Ok((
                CouponTotals {
                    granted: r.get(0)?,
                    redeemed: r.get(1)?,
                    released: r.get(2)?,
                    wanted: r.get(4)?,
                    served: r.get(5)?,
                },
                r.get(3)?,
            ))
        })
        .optional()?
        .unwrap_or_default())
}

/// Replaces the definitions with HQ's (`coupons`: code → definition); rewrites only what
/// changed.
pub fn save_definitions(
    conn: &Connection,
    coupons: &BTreeMap<String, Coupon>,
    now: &str,
) -> Result<(), StoreError> {
    let known: Vec<String> = conn
        .prepare_cached("SELECT code FROM coupon")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for code in known.iter().filter(|c| !coupons.contains_key(*c)) {
        conn.prepare_cached("DELETE FROM coupon WHERE code = ?1")?
            .execute([code])?;
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO coupon (code, definition, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(code) DO UPDATE SET definition = excluded.definition,
            updated_at = excluded.updated_at
         WHERE definition <> excluded.definition",
    )?;
    for (code, coupon) in coupons {
        let json = serde_json::to_string(coupon)
            .map_err(|e| StoreError::Inconsistent(format!("cannot encode coupon: {e}")))?;
        upsert.execute(params![code, json, now])?;
    }
    Ok(())
}

/// A redemption, uses given back to HQ, or a use asked of HQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseKind {
    Redeem,
    Release,
    Want,
}

/// This node's redemptions and releases with id above `mark`, as (id, code, kind, uses).
pub fn redemptions_since(
    conn: &Connection,
    mark: i64,
) -> Result<Vec<(i64, String, UseKind, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, code, kind, uses FROM coupon_redemption WHERE id > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([mark], |r| {
        let kind = match r.get::<_, String>(2)?.as_str() {
            "release" => UseKind::Release,
            "want" => UseKind::Want,
            _ => UseKind::Redeem,
        };
        Ok((r.get(0)?, r.get(1)?, kind, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `POST /v1/coupons/{code}/release`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub uses: i64,
}

/// `POST /v1/coupons/{code}/release`: gives `uses` this lane holds back to HQ's pool (so HQ
/// can move them to another store). Takes effect here at once, at HQ once synced.
pub fn release(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    code: &str,
    request: &ReleaseRequest,
) -> Result<CouponAtStore, StoreError> {
    let uses = super::sales::positive("uses", request.uses)?;
    let unknown = || StoreError::not_found(format!("coupon {code:?}"));
    let shown = view(conn, code)?.ok_or_else(unknown)?;
    if shown.held < uses {
        return Err(StoreError::Conflict(format!(
            "this lane holds {} uses of coupon {}",
            shown.held, shown.code
        )));
    }
    conn.prepare_cached(
        "INSERT INTO coupon_redemption (code, kind, uses, amount_minor, terminal, at)
         VALUES (?1, 'release', ?2, 0, ?3, ?4)",
    )?
    .execute(params![shown.code, uses, ctx.terminal, ctx.now])?;
    conn.prepare_cached(
        "INSERT INTO coupon_level (code, released) VALUES (?1, ?2)
         ON CONFLICT(code) DO UPDATE SET released = released + excluded.released",
    )?
    .execute(params![shown.code, uses])?;
    tracing::info!(code = %shown.code, uses, "coupon uses given back to HQ");
    view(conn, &shown.code)?.ok_or_else(unknown)
}

/// After a sale was refused: for each of its coupons that this lane does not hold (but HQ
/// may: not used up, unknown, expired or revoked as far as this lane knows), asks HQ for one
/// use, unless an ask of this lane is open already (so retries do not pile up asks). Returns
/// the codes with an ask open now; HQ's ingest answers them (`hq::coupons`).
pub fn ask_hq(
    conn: &Connection,
    terminal: &str,
    now: &str,
    codes: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut asked = Vec::new();
    for raw in codes.iter().take(MAX_PER_SALE) {
        let Ok(code) = normalise_code(raw) else {
            continue;
        };
        let coupon = definition(conn, &code)?;
        let (mine, store_redeemed) = level(conn, &code)?;
        let refusal = check_redeem(&code, coupon.as_ref(), mine, store_redeemed, 1, now);
        if !matches!(refusal, Err(Refusal::HeldElsewhere(_))) || asked.contains(&code) {
            continue;
        }
        if mine.open_asks() == 0 {
            conn.prepare_cached(
                "INSERT INTO coupon_redemption (code, kind, uses, amount_minor, terminal, at)
                 VALUES (?1, 'want', 1, 0, ?2, ?3)",
            )?
            .execute(params![code, terminal, now])?;
            conn.prepare_cached(
                "INSERT INTO coupon_level (code, wanted) VALUES (?1, 1)
                 ON CONFLICT(code) DO UPDATE SET wanted = wanted + 1",
            )?
            .execute([&code])?;
            tracing::info!(code = %code, "coupon use asked of HQ");
        }
        asked.push(code);
    }
    Ok(asked)
}

/// Replaces the levels with what the orders document says (`mine`: this lane's totals;
/// `store_redeemed`: every lane's redemptions), plus redemptions not recorded yet.
pub fn replace_levels(
    conn: &Connection,
    levels: &BTreeMap<String, (CouponTotals, i64)>,
    unrecorded: &[(i64, String, UseKind, i64)],
) -> Result<(), StoreError> {
    conn.execute("DELETE FROM coupon_level", [])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO coupon_level (code, granted, redeemed, released, store_redeemed, wanted, served)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(code) DO UPDATE SET granted = granted + excluded.granted,
            redeemed = redeemed + excluded.redeemed, released = released + excluded.released,
            store_redeemed = store_redeemed + excluded.store_redeemed,
            wanted = wanted + excluded.wanted, served = served + excluded.served",
    )?;
    for (code, (t, store_redeemed)) in levels {
        insert.execute(params![
            code,
            t.granted,
            t.redeemed,
            t.released,
            store_redeemed,
            t.wanted,
            t.served
        ])?;
    }
    for (_, code, kind, uses) in unrecorded {
        match kind {
            UseKind::Redeem => insert.execute(params![code, 0, uses, 0, uses, 0, 0])?,
            UseKind::Release => insert.execute(params![code, 0, 0, uses, 0, 0, 0])?,
            UseKind::Want => insert.execute(params![code, 0, 0, 0, 0, uses, 0])?,
        };
    }
    Ok(())
}

#[cfg(test)]
#[path = "coupons_tests.rs"]
mod tests;
