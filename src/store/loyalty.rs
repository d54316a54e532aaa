//! The loyalty ledger at a store lane (the rule is in [`crate::domain::loyalty`], the layout in
//! [`crate::crdt::loyalty`]): a sale earns and spends points in its own savepoint (so its
//! idempotency key guards them: a retried sale earns once), a return takes its share back
//! and gives back, as points, the share of the sale that points paid, and the till may spend
//! only what HQ granted this lane and returns gave back, less what the lane already took.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::sales::WriteContext;
use super::sales::{PaymentMethod, PaymentRequest};
use crate::domain::loyalty::{LoyaltyRules, MemberId, points_to_refund, points_to_reverse};

/// A member as this lane sees them (`POST /v1/loyalty/lookup`, and on a receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    /// The card number (GSRN digits or the chain's code).
    pub member: String,
    /// Points the member may spend at this till now (HQ's grants to this lane, less what
    /// the lane took). Points earned elsewhere arrive once HQ has them and this lane is online.
    pub spendable_points: i64,
    /// What those points pay, in minor units (none without rules from HQ).
    pub spendable_minor: Option<i64>,
    /// HQ's rules, if this node has them (earning and spending need them).
    pub rules: Option<LoyaltyRules>,
}

/// `POST /v1/loyalty/lookup`: the member's card as scanned or typed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// An 18-digit GSRN, a scanned element string (`8018…`, `(8018)…`) or the chain's code.
    pub card: String,
}

/// What a sale did to the member's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaleLoyalty {
    pub member: String,
    pub points_earned: i64,
    pub points_spent: i64,
    /// Spendable here after this sale.
    pub spendable_points: i64,
}

/// What a return did to the member's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReturnLoyalty {
    pub member: String,
    /// Points the sale earned that this return took back.
    pub points_reversed: i64,
    /// The part of it this lane could not take (the member had spent the points): HQ takes
    /// it from the member's next points.
    pub points_owed: i64,
    /// Points given back: the returned share of what the sale paid in points (spendable at
    /// this till at once, and at HQ once synced). Never refunded as money.
    #[serde(default)]
    pub points_refunded: i64,
    /// What those points paid in the sale, in minor units (part of the return's
    /// `refund_minor`, not of its `refund_money_minor`).
    #[serde(default)]
    pub points_refunded_minor: i64,
}

pub fn parse_member(field: &str, card: &str) -> Result<MemberId, StoreError> {
    MemberId::parse(card).map_err(|e| StoreError::unprocessable(field, e.to_string()))
}

pub fn save_rules(
    conn: &Connection,
    rules: Option<&LoyaltyRules>,
    now: &str,
) -> Result<(), StoreError> {
    match rules {
        None => {
            conn.prepare_cached("DELETE FROM loyalty_rules")?
                .execute([])?;
        }
        Some(rules) => {
            let json = serde_json::to_string(rules).map_err(|e| {
                StoreError::Inconsistent(format!("cannot encode loyalty rules: {e}"))
            })?;
            conn.prepare_cached(
                "INSERT INTO loyalty_rules (id, rules, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at
                 WHERE rules <> excluded.rules",
            )?
            .execute(params![json, now])?;
        }
    }
    Ok(())
}

pub fn load_rules(conn: &Connection) -> Result<Option<LoyaltyRules>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached("SELECT rules FROM loyalty_rules WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| StoreError::Inconsistent(format!("stored loyalty rules: {e}")))
    })
    .transpose()
}

/// Points this lane may spend or reverse for `member` now: HQ's grants and the points
/// returns gave back, less what the lane took.
pub fn allowance(conn: &Connection, member: &str) -> Result<i64, StoreError> {
    let granted: i64 = conn
        .prepare_cached("SELECT granted FROM loyalty_grant WHERE member = ?1")?
        .query_row([member], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let (refunded, taken): (i64, i64) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(CASE WHEN kind = 'refunded' THEN points END), 0),
                    COALESCE(SUM(CASE WHEN kind IN ('spent', 'reversed', 'released') THEN points END), 0)
             FROM loyalty_entry WHERE member = ?1",
        )?
        .query_row([member], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(granted
        .saturating_add(refunded)
        .saturating_sub(taken)
        .max(0))
}

fn view(conn: &Connection, member: &MemberId) -> Result<MemberView, StoreError> {
    let rules = load_rules(conn)?;
    let spendable_points = allowance(conn, member.as_str())?;
    Ok(MemberView {
        member: member.to_string(),
        spendable_points,
        spendable_minor: rules.map(|r| spendable_points.saturating_mul(r.point_value_minor)),
        rules,
    })
}

/// The member of `card` as this lane sees them (a read: asks HQ for nothing).
pub fn view_of(conn: &Connection, card: &str) -> Result<MemberView, StoreError> {
    view(conn, &parse_member("card", card)?)
}

/// The till identified a member: shows what they may spend here and asks HQ (through the
/// orders document) to move the member's points to this lane.
pub fn lookup(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    request: &LookupRequest,
) -> Result<MemberView, StoreError> {
    let member = parse_member("card", &request.card)?;
    insert(conn, member.as_str(), "wanted", 1, None, None, ctx.now)?;
    view(conn, &member)
}

fn insert(
    conn: &Connection,
    member: &str,
    kind: &str,
    points: i64,
    sale_no: Option<&str>,
    return_no: Option<&str>,
    now: &str,
) -> Result<(), StoreError> {
    if points <= 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO loyalty_entry (member, kind, points, sale_no, return_no, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![member, kind, points, sale_no, return_no, now])?;
    Ok(())
}

/// Gives everything this lane holds for the member back to HQ's pool (the member will shop
/// elsewhere: another store's till then gets the points when it identifies the member).
pub fn release(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    request: &LookupRequest,
) -> Result<MemberView, StoreError> {
    let member = parse_member("card", &request.card)?;
    let held = allowance(conn, member.as_str())?;
    insert(conn, member.as_str(), "released", held, None, None, ctx.now)?;
    tracing::info!(member = %member, points = held, "loyalty points released to HQ");
    view(conn, &member)
}

/// Inside a sale's savepoint: spends the points that pay `points_minor` (only from this
/// lane's allowance; never with change to give) and earns on the rest of `total_minor`.
pub fn on_sale(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    card: Option<&str>,
    sale_no: &str,
    total_minor: i64,
    points_minor: i64,
    change_minor: i64,
) -> Result<Option<SaleLoyalty>, StoreError> {
    let Some(card) = card else {
        if points_minor > 0 {
            return Err(StoreError::unprocessable(
                "member",
                "a payment in points needs the member's card",
            ));
        }
        return Ok(None);
    };
    let member = parse_member("member", card)?;
    let Some(rules) = load_rules(conn)? else {
        if points_minor > 0 {
            return Err(StoreError::Conflict(
                "this node has no loyalty rules from HQ yet: points cannot pay".into(),
            ));
        }
        return Ok(None);
    };
    // Points are never paid out: with change to give, the points paid more than was due.
    if points_minor > 0 && change_minor > 0 {
        return Err(StoreError::unprocessable(
            "payments",
            format!("points and change together: points give no change ({change_minor} over)"),
        ));
    }
    let spent = if points_minor > 0 {
        rules
            .points_paying(points_minor)
            .map_err(|e| StoreError::unprocessable("payments", e.to_string()))?
    } else {
        0
    };
    let available = allowance(conn, member.as_str())?;
    if spent > available {
        return Err(StoreError::Conflict(format!(
            "member {member} may spend {available} points at this till, not {spent}: points earned elsewhere arrive once HQ has them and this node is online"
        )));
    }
    let earned = rules.points_for(total_minor - points_minor);
    insert(
        conn,
        member.as_str(),
        "spent",
        spent,
        Some(sale_no),
        None,
        ctx.now,
    )?;
    insert(
        conn,
        member.as_str(),
        "earned",
        earned,
        Some(sale_no),
        None,
        ctx.now,
    )?;
    tracing::info!(sale = sale_no, member = %member, earned, spent, "loyalty points of a sale");
    Ok(Some(SaleLoyalty {
        member: member.to_string(),
        points_earned: earned,
        points_spent: spent,
        spendable_points: available - spent,
    }))
}

/// What a stored sale did to points (for `GET /v1/sales/{id}`).
pub fn of_sale(conn: &Connection, sale_no: &str) -> Result<Option<SaleLoyalty>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT member, kind, points FROM loyalty_entry WHERE sale_no = ?1 AND return_no IS NULL",
    )?;
    let rows = stmt.query_map([sale_no], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out: Option<SaleLoyalty> = None;
    for row in rows {
        let (member, kind, points) = row?;
        let slot = out.get_or_insert_with(|| SaleLoyalty {
            member: member.clone(),
            points_earned: 0,
            points_spent: 0,
            spendable_points: 0,
        });
        match kind.as_str() {
            "earned" => slot.points_earned += points,
            "spent" => slot.points_spent += points,
            _ => {}
        }
    }
    if let Some(s) = &mut out {
        s.spendable_points = allowance(conn, &s.member)?;
    }
    Ok(out)
}

/// Inside a return's savepoint, after its refund is written: gives back as points the share
/// of `refund_minor` that points paid (credited to this lane's allowance first), then takes
/// back the share of the sale's earned points; what this lane's allowance cannot cover is
/// recorded as owed.
pub fn on_return(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    sale_no: &str,
    return_no: &str,
    refund_minor: i64,
) -> Result<Option<ReturnLoyalty>, StoreError> {
    let Some(member) = member_of_sale(conn, sale_no)? else {
        return Ok(None);
    };
    let (points_refunded, points_refunded_minor) =
        refund_points(conn, ctx, &member, sale_no, return_no, refund_minor)?;
    let earned: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(points), 0) FROM loyalty_entry
             WHERE sale_no = ?1 AND kind = 'earned' AND return_no IS NULL",
        )?
        .query_row([sale_no], |r| r.get(0))?;
    let (already, sale_total): (i64, i64) = conn
        .prepare_cached(concat!(
            "SELECT (SELECT COALESCE(SUM(points), 0) FROM loyalty_entry
                     WHERE sale_no = ?1 AND kind IN ('reversed', 'owed')),
                    (SELECT total_minor FROM sale WHERE sale_no = ?1 AND id = ",
            crate::store::sales::sale_id_of!(),
            ")"
        ))?
        .query_row([sale_no], |r| Ok((r.get(0)?, r.get(1)?)))?;
    // The returned share of the sale (points payments included: a sale paid half in points
    // earned on the other half only, and its return takes back that share).
    let reverse = points_to_reverse(earned, already, refund_minor, sale_total);
    if reverse == 0 && points_refunded == 0 {
        return Ok(None);
    }
    let take = reverse.min(allowance(conn, &member)?);
    let owed = reverse - take;
    insert(
        conn,
        &member,
        "reversed",
        take,
        Some(sale_no),
        Some(return_no),
        ctx.now,
    )?;
    insert(
        conn,
        &member,
        "owed",
        owed,
        Some(sale_no),
        Some(return_no),
        ctx.now,
    )?;
    tracing::info!(sale = sale_no, member = %member, reversed = reverse, owed, refunded = points_refunded, "loyalty points of a return");
    Ok(Some(ReturnLoyalty {
        member,
        points_reversed: reverse,
        points_owed: owed,
        points_refunded,
        points_refunded_minor,
    }))
}

/// The member a sale earned or spent points for (`None`: the sale named no member, or
/// earned and spent nothing).
fn member_of_sale(conn: &Connection, sale_no: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT member FROM loyalty_entry
             WHERE sale_no = ?1 AND kind IN ('earned', 'spent') AND return_no IS NULL LIMIT 1",
        )?
        .query_row([sale_no], |r| r.get(0))
        .optional()?)
}

/// Gives back, as `refunded` points, the share of this return that the sale paid in points
/// (`domain::loyalty::points_to_refund`: earlier returns of the sale count, the last gets the
/// remainder). Returns (points, what they paid in minor units).
fn refund_points(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    member: &str,
    sale_no: &str,
    return_no: &str,
    refund_minor: i64,
) -> Result<(i64, i64), StoreError> {
    let (spent, paid_minor, already): (i64, i64, i64) = conn
        .prepare_cached(concat!(
            "SELECT (SELECT COALESCE(SUM(points), 0) FROM loyalty_entry
                     WHERE sale_no = ?1 AND kind = 'spent' AND return_no IS NULL),
                    (SELECT COALESCE(SUM(p.amount_minor), 0) FROM payment p JOIN sale s ON s.id = p.sale_id
                     WHERE s.sale_no = ?1 AND p.method = 'points' AND s.id = ",
            crate::store::sales::sale_id_of!(),
            "),
                    (SELECT COALESCE(SUM(points), 0) FROM loyalty_entry
                     WHERE sale_no = ?1 AND kind = 'refunded')"
        ))?
        .query_row([sale_no], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if spent <= 0 || paid_minor <= 0 {
        return Ok((0, 0));
    }
    // What a point paid in this sale (exact: the till took whole points), so a change of HQ's
    // rules since does not change what the member gets back.
    let point_value = paid_minor / spent;
    let (refundable, before): (i64, i64) = conn
        .prepare_cached(concat!(
            "SELECT (SELECT COALESCE(SUM(l.amount_minor), 0) FROM sale_line l JOIN sale s ON s.id = l.sale_id
                     WHERE s.sale_no = ?1 AND s.id = ",
            crate::store::sales::sale_id_of!(),
            "),
                    (SELECT COALESCE(SUM(r.refund_minor), 0) FROM sale_return r JOIN sale s ON s.id = r.sale_id
                     WHERE s.sale_no = ?1 AND r.return_no <> ?2 AND s.id = ",
            crate::store::sales::sale_id_of!(),
            ")"
        ))?
        .query_row(params![sale_no, return_no], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let points = points_to_refund(
        spent,
        point_value,
        already,
        before,
        refund_minor,
        refundable,
    );
    insert(
        conn,
        member,
        "refunded",
        points,
        Some(sale_no),
        Some(return_no),
        ctx.now,
    )?;
    Ok((points, points.saturating_mul(point_value)))
}

/// What the sale's `points` payments pay, in minor units (their sum is checked already).
pub fn points_minor(payments: &[PaymentRequest]) -> i64 {
    payments
        .iter()
        .filter(|p| p.method == PaymentMethod::Points)
        .fold(0_i64, |acc, p| acc.saturating_add(p.amount_minor))
}

/// This lane's entries with id above `mark`, as (id, member, kind, points).
pub fn entries_since(
    conn: &Connection,
    mark: i64,
) -> Result<Vec<(i64, String, String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, member, kind, points FROM loyalty_entry WHERE id > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([mark], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces HQ's grants to this lane with what the orders document says.
pub fn replace_grants(conn: &Connection, grants: &[(String, i64)]) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM loyalty_grant")?
        .execute([])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO loyalty_grant (member, granted) VALUES (?1, ?2)
         ON CONFLICT(member) DO UPDATE SET granted = excluded.granted",
    )?;
    for (member, granted) in grants {
        insert.execute(params![member, granted])?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "loyalty_tests.rs"]
mod tests;
