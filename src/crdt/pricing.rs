//! Price lists, promotions, categories and stores' time zones in HQ's catalog document.
//!
//! Layout: one root map `pricing` (made by HQ, the catalog's only writer, on its first
//! pricing edit) with one JSON string per entry: `promotion/{id}`, `price_list/{id}`,
//! `category/{name}` (a list of SKUs) and `time_zone/{store}`. A node that predates pricing
//! reads only `items`, so it ignores these. Each entry is replaced whole (entries are small
//! and HQ-only, so nothing merges below them).

use automerge::ReadDoc;
use automerge::transaction::Transactable;

use super::catalog::{CatalogDoc, CatalogError};
use super::doc::{LocalChange, SyncDoc, child_map, map_at, str_at};
use crate::domain::pricing::{PriceList, PricingRules, Promotion};

const KEY_PRICING: &str = "pricing";
const PROMOTION: &str = "promotion/";
const PRICE_LIST: &str = "price_list/";
const CATEGORY: &str = "category/";
const TIME_ZONE: &str = "time_zone/";

/// One change HQ makes to the pricing rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PricingEdit {
    PutPromotion(Promotion),
    /// Removes the promotion: it no longer applies anywhere.
    EndPromotion(String),
    PutPriceList(PriceList),
    EndPriceList(String),
    /// Replaces a category's members (empty: removes the category).
    PutCategory {
        name: String,
        skus: Vec<String>,
    },
    /// Sets a store's time zone (`*`: every other store); `None` removes it.
    PutTimeZone {
        store: String,
        zone: Option<String>,
    },
}

impl PricingEdit {
    /// The rules after this edit (to validate the result before writing it).
    fn apply_to(&self, rules: &mut PricingRules) {
        match self {
            Self::PutPromotion(p) => {
                rules.promotions.retain(|o| o.id != p.id);
                rules.promotions.push(p.clone());
            }
            Self::EndPromotion(id) => rules.promotions.retain(|o| &o.id != id),
            Self::PutPriceList(l) => {
                rules.price_lists.retain(|o| o.id != l.id);
                rules.price_lists.push(l.clone());
            }
            Self::EndPriceList(id) => rules.price_lists.retain(|o| &o.id != id),
            Self::PutCategory { name, skus } if skus.is_empty() => {
                rules.categories.remove(name);
            }
            Self::PutCategory { name, skus } => {
                rules
                    .categories
                    .insert(name.clone(), skus.iter().cloned().collect());
            }
            Self::PutTimeZone { store, zone: None } => {
                rules.time_zones.remove(store);
            }
            Self::PutTimeZone {
                store,
                zone: Some(z),
            } => {
                rules.time_zones.insert(store.clone(), z.clone());
            }
        }
    }

    /// `(key, Some(json))` to write, `(key, None)` to delete.
    fn entry(&self) -> Result<(String, Option<String>), serde_json::Error> {
        Ok(match self {
            Self::PutPromotion(p) => (format!("{PROMOTION}{}", p.id), Some(to_json(p)?)),
            Self::EndPromotion(id) => (format!("{PROMOTION}{id}"), None),
            Self::PutPriceList(l) => (format!("{PRICE_LIST}{}", l.id), Some(to_json(l)?)),
            Self::EndPriceList(id) => (format!("{PRICE_LIST}{id}"), None),
            Self::PutCategory { name, skus } => (
                format!("{CATEGORY}{name}"),
                (!skus.is_empty()).then(|| to_json(skus)).transpose()?,
            ),
            Self::PutTimeZone { store, zone } => (format!("{TIME_ZONE}{store}"), zone.clone()),
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(value)
}

impl CatalogDoc {
    /// HQ: applies `edits` as one change, refusing them all if the resulting rules are
    /// invalid. `None` when nothing changed.
    pub fn edit_pricing(
        &mut self,
        edits: &[PricingEdit],
        at_ms: i64,
    ) -> Result<Option<LocalChange>, CatalogError> {
        if !self.core().writer().is_hq() {
            return Err(CatalogError::NotHq(self.core().writer().to_string()));
        }
        let mut rules = self.pricing_rules();
        edits.iter().for_each(|e| e.apply_to(&mut rules));
        rules
            .validate()
            .map_err(|e| CatalogError::InvalidPricing(e.to_string()))?;
        let entries = edits
            .iter()
            .map(PricingEdit::entry)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CatalogError::InvalidPricing(e.to_string()))?;
        let current: Vec<Option<String>> = entries.iter().map(|(k, _)| self.entry(k)).collect();
        self.core_mut().commit(at_ms, "pricing", |tx| {
            let root = child_map(tx, &automerge::ROOT, KEY_PRICING)?;
            for ((key, value), old) in entries.iter().zip(current) {
                match value {
                    Some(v) if old.as_ref() != Some(v) => {
                        tx.put(&root, key.as_str(), v.as_str())?
                    }
                    None if old.is_some() => tx.delete(&root, key.as_str())?,
                    _ => {}
                }
            }
            Ok::<(), CatalogError>(())
        })
    }

    fn entry(&self, key: &str) -> Option<String> {
        let doc = self.core().automerge();
        str_at(doc, &map_at(doc, &automerge::ROOT, KEY_PRICING)?, key)
    }

    /// The rules as published.
    pub fn pricing_rules(&self) -> PricingRules {
        read_rules(self.core())
    }
}

/// The rules a catalog document holds. An entry that does not parse (written by a newer HQ)
/// is skipped with a warning, so the rest still price.
pub fn read_rules(core: &SyncDoc) -> PricingRules {
    let mut rules = PricingRules::default();
    let doc = core.automerge();
    let Some(root) = map_at(doc, &automerge::ROOT, KEY_PRICING) else {
        return rules;
    };
    for key in doc.keys(&root) {
        let Some(json) = str_at(doc, &root, &key) else {
            continue;
        };
        if let Err(error) = read_entry(&mut rules, &key, &json) {
            tracing::warn!(key = %key, %error, "pricing entry from HQ skipped");
        }
    }
    rules
}

fn read_entry(rules: &mut PricingRules, key: &str, json: &str) -> Result<(), serde_json::Error> {
    if key.starts_with(PROMOTION) {
        rules.promotions.push(serde_json::from_str(json)?);
    } else if key.starts_with(PRICE_LIST) {
        rules.price_lists.push(serde_json::from_str(json)?);
    } else if let Some(name) = key.strip_prefix(CATEGORY) {
        rules
            .categories
            .insert(name.to_owned(), serde_json::from_str(json)?);
    } else if let Some(store) = key.strip_prefix(TIME_ZONE) {
        rules.time_zones.insert(store.to_owned(), json.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::doc::WriterId;
    use crate::domain::pricing::{Rule, Scope, Target, Window};

    fn promo(id: &str, percent_bp: u32) -> Promotion {
        Promotion {
            id: id.into(),
            name: format!("{id} off"),
            priority: 0,
            exclusive: false,
            scope: Scope::default(),
            window: Window::default(),
            rule: Rule::PercentOff {
                target: Target {
                    skus: ["a".to_owned()].into(),
                    categories: Default::default(),
                },
                percent_bp,
            },
        }
    }

    #[test]
    fn hq_publishes_and_ends_promotions_a_store_reads_them() {
        let mut hq = CatalogDoc::genesis(1, WriterId::hq()).unwrap();
        let edits = [
            PricingEdit::PutPromotion(promo("p1", 1000)),
            PricingEdit::PutPromotion(promo("p2", 2000)),
            PricingEdit::PutCategory {
                name: "fruit".into(),
                skus: vec!["a".into()],
            },
            PricingEdit::PutTimeZone {
                store: "*".into(),
                zone: Some("Europe/Berlin".into()),
            },
        ];
        hq.edit_pricing(&edits, 1).unwrap().unwrap();
        // The same edit again changes nothing.
        assert!(hq.edit_pricing(&edits[..1], 2).unwrap().is_none());
        hq.edit_pricing(&[PricingEdit::EndPromotion("p1".into())], 3)
            .unwrap()
            .unwrap();

        let mut store = CatalogDoc::genesis(1, WriterId::new("s001.lane1").unwrap()).unwrap();
        let changes = hq.core().changes_since(&store.core().heads());
        store.core_mut().apply_changes(&changes).unwrap();
        let rules = store.pricing_rules();
        assert_eq!(rules.promotions, vec![promo("p2", 2000)]);
        assert_eq!(rules.time_zone("s001"), "Europe/Berlin");
        assert!(rules.categories["fruit"].contains("a"));
        assert!(store.items().is_empty());
        assert!(matches!(
            store.edit_pricing(&edits, 4),
            Err(CatalogError::NotHq(_))
        ));
    }

    #[test]
    fn invalid_rules_are_refused_whole() {
        let mut hq = CatalogDoc::genesis(1, WriterId::hq()).unwrap();
        let edits = [
            PricingEdit::PutPromotion(promo("ok", 1000)),
            PricingEdit::PutPromotion(promo("bad", 0)),
        ];
        let err = hq.edit_pricing(&edits, 1).unwrap_err();
        assert!(err.to_string().contains("percent_bp"), "{err}");
        assert!(hq.pricing_rules().promotions.is_empty());
    }
}
