//! The node's side of pricing: HQ's last published rules, kept in SQLite so the till prices
//! with them offline too, and the store's local time the rules' windows are read in.
//! The rules themselves are applied by the pure engine, [`crate::domain::pricing`].

use std::sync::{Arc, Mutex};

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
            "INSERT INTO pricing_rules (id, version, rules, updated_at) VALUES (1, 1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET rules = excluded.rules,
                 updated_at = excluded.updated_at, version = version + 1
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
    json.as_deref().map(parse_rules).transpose()
}

fn parse_rules(json: &str) -> Result<PricingRules, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Inconsistent(format!("stored pricing rules: {e}")))
}

/// The parsed rules of one database, kept until their version moves: a sale reads one
/// integer instead of parsing the rules' JSON (about 0.5 ms for 200 promotions) every time.
/// One per [`super::Store`]; the writer thread and readers share it.
#[derive(Debug, Default)]
pub struct RulesCache {
    parsed: Mutex<Option<(i64, Arc<PricingRules>)>>,
}

impl RulesCache {
    /// The rules as stored in `conn`'s database now (parsed again only after a change).
    pub fn rules(&self, conn: &Connection) -> Result<Option<Arc<PricingRules>>, StoreError> {
        let version: Option<i64> = conn
            .prepare_cached("SELECT version FROM pricing_rules WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        let Some(version) = version else {
            return Ok(None);
        };
        // A poisoned lock only means another thread panicked while holding a parse result;
        // the version check below still decides whether that result is current.
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, rules)) = parsed.as_ref()
            && *cached == version
        {
            return Ok(Some(Arc::clone(rules)));
        }
        // Version and rules from one statement, so they are of the same snapshot.
        let row: Option<(i64, String)> = conn
            .prepare_cached("SELECT version, rules FROM pricing_rules WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((version, json)) = row else {
            return Ok(None);
        };
        let rules = Arc::new(parse_rules(&json)?);
        *parsed = Some((version, Arc::clone(&rules)));
        Ok(Some(rules))
    }
}

/// The store a writer id `{store}.{node}` belongs to (promotions are scoped by store).
pub fn store_of(writer_id: &str) -> &str {
    writer_id
        .split_once('.')
        .map_or(writer_id, |(store, _)| store)
}

/// What `item` costs at this store now and the promotions that may apply to it, for the
/// till's item lookup (`None` until HQ published rules: the catalog price stands).
pub fn item_offers(
    conn: &Connection,
    cache: &RulesCache,
    writer_id: &str,
    now: &str,
    sku: &str,
    list_price_minor: i64,
) -> Result<Option<ItemPricing>, StoreError> {
    let Some(rules) = cache.rules(conn)? else {
        return Ok(None);
    };
    let store = store_of(writer_id);
    let at = local_time(&rules, store, now)
        .map_err(|e| StoreError::Inconsistent(format!("pricing: {e}")))?;
    let offers = crate::domain::pricing::item_offers(
        &rules,
        crate::domain::pricing::PriceContext { store, at },
        sku,
        list_price_minor,
    );
    Ok(Some(ItemPricing {
        unit_price_minor: offers.unit_price_minor,
        price_list: offers.price_list.map(str::to_owned),
        promotions: offers
            .promotions
            .into_iter()
            .map(|p| ItemPromotion {
                id: p.id.clone(),
                name: p.name.clone(),
                exclusive: p.exclusive,
                until: p.window.until.map(|u| u.to_string()),
                rule: p.rule.clone(),
            })
            .collect(),
    }))
}

/// An item's price now and its promotions (`GET /v1/items/{key}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ItemPricing {
    /// The unit price a sale starts from now (per kg for weighed items): an active price
    /// list's, else the catalog's.
    pub unit_price_minor: i64,
    /// The price list that set it, if one did.
    pub price_list: Option<String>,
    /// Item promotions active now that target this item, in the order a sale applies them.
    /// Multi-buy and mix-and-match ones need more units in the basket to take anything.
    pub promotions: Vec<ItemPromotion>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ItemPromotion {
    pub id: String,
    /// As printed on the receipt.
    pub name: String,
    /// A line it discounts takes no basket promotion.
    pub exclusive: bool,
    /// The store's local time it ends (`YYYY-MM-DDTHH:MM`), if it does.
    pub until: Option<String>,
    /// The rule as HQ published it: `kind` (`percent_off`, `amount_off`, `multi_buy`,
    /// `mix_match`) and its figures (minor units, basis points).
    #[schema(value_type = Object)]
    pub rule: crate::domain::pricing::Rule,
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

    #[test]
    fn cached_rules_follow_every_change_and_are_parsed_once() {
        let conn = crate::store::testing::memory_db();
        let cache = RulesCache::default();
        assert!(cache.rules(&conn).unwrap().is_none());
        let mut rules = PricingRules::default();
        rules.time_zones.insert("*".into(), "Europe/Berlin".into());
        assert!(save_rules(&conn, &rules, "t1").unwrap());
        let first = cache.rules(&conn).unwrap().unwrap();
        assert_eq!(*first, rules);
        let again = cache.rules(&conn).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "parsed again without a change");
        // A change in the same millisecond still moves the version.
        rules
            .time_zones
            .insert("lis".into(), "Europe/Lisbon".into());
        assert!(save_rules(&conn, &rules, "t1").unwrap());
        let changed = cache.rules(&conn).unwrap().unwrap();
        assert_eq!(*changed, rules);
        // Publishing the same rules again changes nothing, so nothing is parsed again.
        assert!(!save_rules(&conn, &rules, "t2").unwrap());
        assert!(Arc::ptr_eq(&changed, &cache.rules(&conn).unwrap().unwrap()));
    }
}
