//! The catalog: items by SKU, any number of GTINs per item.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::gs1::epc::EpcPattern;
use crate::gs1::gtin::Gtin14;

/// An item as the catalog holds it and the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    pub name: String,
    /// Price in minor units (cents); per kilogram for variable-measure items.
    pub price_minor: i64,
    pub currency: String,
    pub tax_class: String,
    /// Sold by weight: quantities and stock are in grams.
    #[serde(default)]
    pub variable_measure: bool,
    #[serde(default)]
    pub gtins: Vec<String>,
    /// GIAI or SSCC tags this item accepts on its sale line, as EPC pure identity URI
    /// prefixes (`urn:epc:id:giai:0614141.`; see `gs1::epc::pattern`). SGTIN tags go by
    /// the GTINs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epc_patterns: Vec<String>,
}

/// Largest SKU we accept: SKUs end up in topics, file names and receipts.
const MAX_SKU_LEN: usize = 64;
const MAX_NAME_LEN: usize = 200;

impl Item {
    /// Checks the item and normalises its GTINs to GTIN-14. Errors name the field.
    pub fn validated(mut self, known_tax_class: impl Fn(&str) -> bool) -> Result<Self, StoreError> {
        check_sku(&self.sku)?;
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(StoreError::unprocessable(
                "name",
                format!("must be 1 to {MAX_NAME_LEN} characters"),
            ));
        }
        self.name = name.to_string();
        if self.price_minor < 0 {
            return Err(StoreError::unprocessable(
                "price_minor",
                "must not be negative",
            ));
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(StoreError::unprocessable(
                "currency",
                format!("{:?} is not an ISO 4217 code", self.currency),
            ));
        }
        if !known_tax_class(&self.tax_class) {
            return Err(StoreError::unprocessable(
                "tax_class",
                format!("unknown tax class {:?}", self.tax_class),
            ));
        }
        let mut gtins = Vec::with_capacity(self.gtins.len());
        for (i, gtin) in self.gtins.iter().enumerate() {
            let normalised = Gtin14::parse(gtin.trim())
                .map_err(|e| StoreError::unprocessable(format!("gtins[{i}]"), e.to_string()))?;
            gtins.push(normalised.as_str().to_string());
        }
        gtins.sort();
        gtins.dedup();
        self.gtins = gtins;
        let mut patterns = Vec::with_capacity(self.epc_patterns.len());
        for (i, text) in self.epc_patterns.iter().enumerate() {
            let pattern = EpcPattern::parse(text).map_err(|e| {
                StoreError::unprocessable(format!("epc_patterns[{i}]"), e.to_string())
            })?;
            patterns.push(pattern.as_str().to_owned());
        }
        patterns.sort();
        patterns.dedup();
        self.epc_patterns = patterns;
        Ok(self)
    }
}

pub fn check_sku(sku: &str) -> Result<(), StoreError> {
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        return Err(StoreError::unprocessable(
            "sku",
            format!("must be 1 to {MAX_SKU_LEN} characters"),
        ));
    }
    if let Some(c) = sku
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "/+#".contains(*c))
    {
        return Err(StoreError::unprocessable(
            "sku",
            format!("character {c:?} is not allowed in a SKU"),
        ));
    }
    Ok(())
}

/// Inserts or replaces an item (already validated) and its GTINs. A GTIN that belonged to
/// another SKU moves to this one: the newer catalog is authoritative.
pub fn upsert(conn: &Connection, item: &Item, now: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO item (sku, name, price_minor, currency, tax_class, variable_measure, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(sku) DO UPDATE SET name = excluded.name, price_minor = excluded.price_minor,
           currency = excluded.currency, tax_class = excluded.tax_class,
           variable_measure = excluded.variable_measure, updated_at = excluded.updated_at",
    )?
    .execute(params![
        item.sku,
        item.name,
        item.price_minor,
        item.currency,
        item.tax_class,
        item.variable_measure,
        now
    ])?;
    conn.prepare_cached("DELETE FROM item_gtin WHERE sku = ?1")?
        .execute([&item.sku])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO item_gtin (gtin14, sku) VALUES (?1, ?2)
         ON CONFLICT(gtin14) DO UPDATE SET sku = excluded.sku",
    )?;
    for gtin in &item.gtins {
        insert.execute(params![gtin, item.sku])?;
    }
    conn.prepare_cached("DELETE FROM item_epc_pattern WHERE sku = ?1")?
        .execute([&item.sku])?;
    let mut insert =
        conn.prepare_cached("INSERT INTO item_epc_pattern (sku, pattern) VALUES (?1, ?2)")?;
    for pattern in &item.epc_patterns {
        insert.execute(params![item.sku, pattern])?;
    }
    Ok(())
}

pub fn get(conn: &Connection, sku: &str) -> Result<Option<Item>, StoreError> {
    let item = conn
        .prepare_cached(
            "SELECT sku, name, price_minor, currency, tax_class, variable_measure FROM item WHERE sku = ?1",
        )?
        .query_row([sku], |row| {
            Ok(Item {
                sku: row.get(0)?,
                name: row.get(1)?,
                price_minor: row.get(2)?,
                currency: row.get(3)?,
                tax_class: row.get(4)?,
                variable_measure: row.get(5)?,
                gtins: Vec::new(),
                epc_patterns: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut item) = item else {
        return Ok(None);
    };
    // Sorted here, not by `ORDER BY`: the index is on `sku` alone, so SQLite would build a
    // temporary B-tree for the one or two GTINs of every sale line (`perf`, issue 18).
    let mut stmt = conn.prepare_cached("SELECT gtin14 FROM item_gtin WHERE sku = ?1")?;
    item.gtins = stmt
        .query_map([sku], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    item.gtins.sort_unstable();
    let mut stmt = conn
        .prepare_cached("SELECT pattern FROM item_epc_pattern WHERE sku = ?1 ORDER BY pattern")?;
    item.epc_patterns = stmt
        .query_map([sku], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(Some(item))
}

/// The SKU a GTIN (any length, check digit verified) belongs to.
pub fn sku_for_gtin(conn: &Connection, gtin: &str) -> Result<Option<String>, StoreError> {
    let Ok(gtin) = Gtin14::parse(gtin) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT sku FROM item_gtin WHERE gtin14 = ?1")?
        .query_row([gtin.as_str()], |row| row.get(0))
        .optional()?)
}

/// Looks an item up by SKU or by any of its GTINs. A valid GTIN is tried first.
pub fn find(conn: &Connection, key: &str) -> Result<Option<Item>, StoreError> {
    if let Some(sku) = sku_for_gtin(conn, key)? {
        return get(conn, &sku);
    }
    get(conn, key)
}

/// Resolves a request's `sku` or `gtin` to an item, with errors naming `field`.
pub fn resolve(
    conn: &Connection,
    field: &str,
    sku: Option<&str>,
    gtin: Option<&str>,
) -> Result<Item, StoreError> {
    match (sku, gtin) {
        (Some(sku), None) => get(conn, sku)?
            .ok_or_else(|| StoreError::not_found(format!("item {field}.sku {sku:?}"))),
        (None, Some(gtin)) => {
            Gtin14::parse(gtin)
                .map_err(|e| StoreError::unprocessable(format!("{field}.gtin"), e.to_string()))?;
            let sku = sku_for_gtin(conn, gtin)?
                .ok_or_else(|| StoreError::not_found(format!("item {field}.gtin {gtin:?}")))?;
            get(conn, &sku)?.ok_or_else(|| {
                StoreError::Inconsistent(format!("GTIN {gtin} points to missing SKU {sku}"))
            })
        }
        _ => Err(StoreError::unprocessable(
            field,
            "give exactly one of sku or gtin",
        )),
    }
}

pub fn count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM item", [], |row| row.get(0))?;
    Ok(n.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::memory_db;

    pub fn sample(sku: &str, gtin: &str) -> Item {
        Item {
            sku: sku.into(),
            name: format!("Item {sku}"),
            price_minor: 199,
            currency: "EUR".into(),
            tax_class: "standard".into(),
            variable_measure: false,
            gtins: vec![gtin.into()],
            epc_patterns: Vec::new(),
        }
    }

    #[test]
    fn gtins_normalise_and_find_by_any() {
        let conn = memory_db();
        let item = sample("A1", "5901234123457").validated(|_| true).unwrap();
        assert_eq!(item.gtins, vec!["05901234123457"]);
        upsert(&conn, &item, "t").unwrap();
        assert_eq!(find(&conn, "5901234123457").unwrap().unwrap().sku, "A1");
        assert_eq!(find(&conn, "05901234123457").unwrap().unwrap().sku, "A1");
        assert_eq!(find(&conn, "A1").unwrap().unwrap().gtins.len(), 1);
        assert!(find(&conn, "nope").unwrap().is_none());
    }

    #[test]
    fn bad_items_name_the_field() {
        let bad_gtin = sample("A1", "5901234123458")
            .validated(|_| true)
            .unwrap_err();
        assert!(bad_gtin.to_string().starts_with("gtins[0]:"), "{bad_gtin}");
        let mut negative = sample("A1", "5901234123457");
        negative.price_minor = -1;
        assert!(
            negative
                .validated(|_| true)
                .unwrap_err()
                .to_string()
                .starts_with("price_minor")
        );
        let tax = sample("A1", "5901234123457")
            .validated(|_| false)
            .unwrap_err();
        assert!(tax.to_string().starts_with("tax_class"));
        assert!(sample("A/1", "5901234123457").validated(|_| true).is_err());
    }

    #[test]
    fn gtin_moves_to_newer_item() {
        let conn = memory_db();
        upsert(&conn, &sample("A1", "05901234123457"), "t").unwrap();
        upsert(&conn, &sample("B2", "05901234123457"), "t").unwrap();
        assert_eq!(find(&conn, "5901234123457").unwrap().unwrap().sku, "B2");
        assert!(get(&conn, "A1").unwrap().unwrap().gtins.is_empty());
    }
}
