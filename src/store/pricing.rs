//! The node's side of pricing: HQ's last published rules, kept in SQLite so the till prices
//! with them offline too, and the store's local time the rules' windows are read in.
//! The rules themselves are applied by the pure engine, [`crate::domain::pricing`].

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::domain::pricing::{LineDiscount, LocalDateTime, PricingRules};

/// Errors turning a UTC instant into a store's local time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalTimeError {
    #[error("unknown time zone {0:?} (not in the system's zoneinfo)")]
    UnknownZone(String),
    #[error("{0:?} is not a UTC timestamp")]
    BadInstant(String),
}

/// Replaces the stored rules when they differ from `rules`; `Ok(true)` when they did.
pub fn save_rules(conn: &Connection, rules: &PricingRules, now: &str) -> Result<bool, StoreError> {
    let json = serde_json::to_string(rules)
        .map_err(|e| StoreError::Inconsistent(format!("cannot encode pricing rules: {e}")))?;
    let changed = conn
        .prepare_cached(
            "INSERT INTO pricing_rules (id, rules, updated_at) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at
             WHERE rules <> excluded.rules",
        )?
        .execute(params![json, now])?;
    Ok(changed > 0)
}

/// The last rules HQ published, if any reached this node.
pub fn load_rules(conn: &Connection) -> Result<Option<PricingRules>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached("SELECT rules FROM pricing_rules WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| StoreError::Inconsistent(format!("stored pricing rules: {e}")))
    })
    .transpose()
}

/// The wall-clock time at `store` for the UTC instant `utc` (RFC 3339), in the zone the
/// rules give that store.
pub fn local_time(
    rules: &PricingRules,
    store: &str,
    utc: &str,
) -> Result<LocalDateTime, LocalTimeError> {
    let zone = rules.time_zone(store);
    let tz = jiff::tz::TimeZone::get(zone).map_err(|_| LocalTimeError::UnknownZone(zone.into()))?;
    let instant: jiff::Timestamp = utc
        .parse()
        .map_err(|_| LocalTimeError::BadInstant(utc.into()))?;
    let local = instant.to_zoned(tz).datetime();
    LocalDateTime::from_parts(
        i32::from(local.year()),
        local.month() as u8,
        local.day() as u8,
        local.hour() as u8,
        local.minute() as u8,
    )
    .ok_or_else(|| LocalTimeError::BadInstant(utc.into()))
}

/// Checks that every zone the rules name exists on this machine (HQ, before publishing).
pub fn check_zones(rules: &PricingRules) -> Result<(), LocalTimeError> {
    for zone in rules.time_zones.values() {
        jiff::tz::TimeZone::get(zone).map_err(|_| LocalTimeError::UnknownZone(zone.clone()))?;
    }
    Ok(())
}

/// Records what each promotion took off a sale line (the line's amount is already net).
pub fn insert_discounts(
    conn: &Connection,
    sale_id: i64,
    line_no: u32,
    discounts: &[LineDiscount],
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO sale_line_discount (sale_id, line_no, seq, promotion_id, name, amount_minor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (seq, d) in discounts.iter().enumerate() {
        insert.execute(params![
            sale_id,
            line_no,
            seq as i64 + 1,
            d.promotion_id,
            d.name,
            d.amount_minor
        ])?;
    }
    Ok(())
}

/// The discounts of one sale line, in the order they were applied.
pub fn line_discounts(
    conn: &Connection,
    sale_id: i64,
    line_no: u32,
) -> Result<Vec<LineDiscount>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT promotion_id, name, amount_minor FROM sale_line_discount
         WHERE sale_id = ?1 AND line_no = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![sale_id, line_no], |r| {
        Ok(LineDiscount {
            promotion_id: r.get(0)?,
            name: r.get(1)?,
            amount_minor: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_follows_the_stores_zone_and_dst() {
        let mut rules = PricingRules::default();
        rules.time_zones.insert("*".into(), "Europe/Berlin".into());
        rules
            .time_zones
            .insert("lis".into(), "Europe/Lisbon".into());
        let winter = local_time(&rules, "s1", "2026-12-05T09:30:00.000Z").unwrap();
        assert_eq!(winter.to_string(), "2026-12-05T10:30");
        let summer = local_time(&rules, "s1", "2026-07-05T09:30:00Z").unwrap();
        assert_eq!(summer.to_string(), "2026-07-05T11:30");
        let lisbon = local_time(&rules, "lis", "2026-12-05T09:30:00Z").unwrap();
        assert_eq!(lisbon.to_string(), "2026-12-05T09:30");
        rules.time_zones.insert("x".into(), "Mars/Olympus".into());
        assert!(matches!(
            local_time(&rules, "x", "2026-12-05T09:30:00Z"),
            Err(LocalTimeError::UnknownZone(_))
        ));
        assert!(check_zones(&rules).is_err());
    }
}
