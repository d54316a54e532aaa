//! The chain catalog and prices, published by HQ (the only writer, so plain puts are safe).
//!
//! Layout: `items/{sku} = { name, price_minor, currency, tax_class, gtins (list),
//! variable_measure, epc_patterns (list, only when set) }`. Only changed fields are written, to keep history small. Its
//! document id uses the store id `hq`.

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};

use super::doc::{
    DocError, DocId, DocKind, KEY_ITEMS, LocalChange, SyncDoc, WriterId, int_at, map_at, map_keys,
    str_at,
};

/// Store id of the catalog document.
pub const CATALOG_STORE: &str = "hq";

/// Errors of the catalog document.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("only the hq writer publishes the catalog, not {0}")]
    NotHq(String),
    #[error("item {sku}: {reason}")]
    InvalidItem { sku: String, reason: String },
    #[error("pricing rules: {0}")]
    InvalidPricing(String),
}

super::doc::doc_error!(CatalogError);

/// One catalog item. Money in minor units (cents).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogItem {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    /// ISO 4217 code, e.g. "EUR".
    pub currency: String,
    pub tax_class: String,
    pub gtins: Vec<String>,
    /// Sold by weight/measure (variable-measure GTINs carry price or weight).
    pub variable_measure: bool,
    /// GIAI or SSCC tags the item accepts on its sale line (`gs1::epc::pattern`).
    #[serde(default)]
    pub epc_patterns: Vec<String>,
}

/// The catalog document (one epoch).
#[derive(Debug, Clone)]
pub struct CatalogDoc {
    core: SyncDoc,
}

impl CatalogDoc {
    pub fn genesis(epoch: u32, writer: WriterId) -> Result<Self, CatalogError> {
        let id = DocId::new(CATALOG_STORE, DocKind::Catalog)?;
        Ok(Self {
            core: SyncDoc::genesis(&id, epoch, writer)?,
        })
    }

    pub fn load(bytes: &[u8], writer: WriterId) -> Result<Self, CatalogError> {
        Self::from_core(SyncDoc::load(bytes, writer)?)
    }

    /// Wraps a document rebuilt elsewhere (e.g. from SQLite), checking its kind.
    pub fn from_core(core: SyncDoc) -> Result<Self, CatalogError> {
        core.expect_kind(DocKind::Catalog)?;
        Ok(Self { core })
    }

    pub fn core(&self) -> &SyncDoc {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut SyncDoc {
        &mut self.core
    }

    /// The document back, without a copy (HQ keeps it in memory between its edits).
    pub fn into_core(self) -> SyncDoc {
        self.core
    }

    /// HQ: inserts or updates `items` and removes `removed` SKUs, as one change.
    pub fn publish(
        &mut self,
        items: &[CatalogItem],
        removed: &[String],
        at_ms: i64,
    ) -> Result<Option<LocalChange>, CatalogError> {
        if !self.core.writer().is_hq() {
            return Err(CatalogError::NotHq(self.core.writer().to_string()));
        }
        items.iter().try_for_each(validate)?;
        let root_items = self
            .core
            .root_map(KEY_ITEMS)
            .ok_or_else(|| DocError::NotOurDocument("no items map".to_owned()))?;
        let current: Vec<Option<CatalogItem>> = items.iter().map(|i| self.item(&i.sku)).collect();
        self.core.commit(at_ms, "catalog", |tx| {
            for (item, old) in items.iter().zip(current) {
                if old.as_ref() == Some(item) {
                    continue;
                }
                let obj = match map_at(tx, &root_items, &item.sku) {
                    Some(obj) => obj,
                    None => tx.put_object(&root_items, item.sku.as_str(), ObjType::Map)?,
                };
                write_changed_fields(tx, &obj, item, old.as_ref())?;
            }
            for sku in removed {
                if map_at(tx, &root_items, sku).is_some() {
                    tx.delete(&root_items, sku.as_str())?;
                }
            }
            Ok::<(), CatalogError>(())
        })
    }

    /// One item, if present and well formed.
    pub fn item(&self, sku: &str) -> Option<CatalogItem> {
        read_item(&self.core, sku)
    }

    /// Every SKU, sorted.
    pub fn skus(&self) -> Vec<String> {
        match self.core.root_map(KEY_ITEMS) {
            Some(root_items) => map_keys(self.core.automerge(), &root_items, None),
            None => Vec::new(),
        }
    }

    /// All items, sorted by SKU.
    pub fn items(&self) -> Vec<CatalogItem> {
        let Some(root_items) = self.core.root_map(KEY_ITEMS) else {
            return Vec::new();
        };
        map_keys(self.core.automerge(), &root_items, None)
            .iter()
            .filter_map(|sku| self.item(sku))
            .collect()
    }
}

/// One item of a catalog document (HQ reads it without wrapping), if present and well formed.
pub fn read_item(core: &SyncDoc, sku: &str) -> Option<CatalogItem> {
    let doc = core.automerge();
    let obj = map_at(doc, &core.root_map(KEY_ITEMS)?, sku)?;
    let gtins = str_list(doc, &obj, "gtins");
    let variable_measure = match doc.get(&obj, "variable_measure") {
        Ok(Some((Value::Scalar(s), _))) => matches!(s.as_ref(), ScalarValue::Boolean(true)),
        _ => false,
    };
    Some(CatalogItem {
        sku: sku.to_owned(),
        name: str_at(doc, &obj, "name")?,
        price_minor: int_at(doc, &obj, "price_minor")?,
        currency: str_at(doc, &obj, "currency")?,
        tax_class: str_at(doc, &obj, "tax_class")?,
        gtins,
        variable_measure,
        epc_patterns: str_list(doc, &obj, "epc_patterns"),
    })
}

/// The strings of the list at `key` of `obj` (empty if absent).
fn str_list(doc: &automerge::Automerge, obj: &ObjId, key: &str) -> Vec<String> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::List), list))) => doc
            .list_range(&list, ..)
            .filter_map(|item| match item.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                    Some(s.into_owned())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn validate(item: &CatalogItem) -> Result<(), CatalogError> {
    let invalid = |reason: &str| CatalogError::InvalidItem {
        sku: item.sku.clone(),
        reason: reason.to_owned(),
    };
    if item.sku.is_empty() || item.sku.len() > super::stock::MAX_SKU_LEN {
        return Err(invalid("sku must be 1-128 bytes"));
    }
    if item.price_minor < 0 {
        return Err(invalid("negative price"));
    }
    if item.currency.len() != 3 || !item.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid("currency must be a 3-letter ISO 4217 code"));
    }
    // A store would skip the whole item for a bad pattern: refused at HQ instead.
    for pattern in &item.epc_patterns {
        crate::gs1::EpcPattern::parse(pattern)
            .map_err(|e| invalid(&format!("epc pattern {pattern:?}: {e}")))?;
    }
    Ok(())
}

fn write_changed_fields(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &ObjId,
    item: &CatalogItem,
    old: Option<&CatalogItem>,
) -> Result<(), CatalogError> {
    if old.is_none_or(|o| o.name != item.name) {
        tx.put(obj, "name", item.name.as_str())?;
    }
    if old.is_none_or(|o| o.price_minor != item.price_minor) {
        tx.put(obj, "price_minor", item.price_minor)?;
    }
    if old.is_none_or(|o| o.currency != item.currency) {
        tx.put(obj, "currency", item.currency.as_str())?;
    }
    if old.is_none_or(|o| o.tax_class != item.tax_class) {
        tx.put(obj, "tax_class", item.tax_class.as_str())?;
    }
    if old.is_none_or(|o| o.variable_measure != item.variable_measure) {
        tx.put(obj, "variable_measure", item.variable_measure)?;
    }
    if old.is_none_or(|o| o.gtins != item.gtins) {
        put_list(tx, obj, "gtins", &item.gtins)?;
    }
    // Most items have none: not written until set, to keep the history small.
    let old_patterns = old.map_or(&[][..], |o| o.epc_patterns.as_slice());
    if old_patterns != item.epc_patterns.as_slice() {
        put_list(tx, obj, "epc_patterns", &item.epc_patterns)?;
    }
    Ok(())
}

fn put_list(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &ObjId,
    key: &str,
    values: &[String],
) -> Result<(), CatalogError> {
    let list = tx.put_object(obj, key, ObjType::List)?;
    for (i, value) in values.iter().enumerate() {
        tx.insert(&list, i, value.as_str())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hq() -> CatalogDoc {
        CatalogDoc::genesis(1, WriterId::hq()).unwrap()
    }

    fn item(sku: &str, price: i64) -> CatalogItem {
        CatalogItem {
            sku: sku.to_owned(),
            name: format!("Item {sku}"),
            price_minor: price,
            currency: "EUR".to_owned(),
            tax_class: "standard".to_owned(),
            gtins: vec!["4006381333931".to_owned()],
            epc_patterns: Vec::new(),
            variable_measure: false,
        }
    }

    #[test]
    fn publish_and_read_back_on_a_store() {
        let mut doc = hq();
        doc.publish(&[item("a", 199), item("b", 250)], &[], 1)
            .unwrap();
        let mut changed = item("a", 149);
        changed.gtins.push("2112345000007".to_owned());
        changed.variable_measure = true;
        changed.epc_patterns = vec!["urn:epc:id:giai:0614141.".to_owned()];
        doc.publish(&[changed.clone(), item("b", 250)], &["zz".into()], 2)
            .unwrap()
            .unwrap();
        assert!(doc.publish(&[item("b", 250)], &[], 3).unwrap().is_none());
        doc.publish(&[], &["b".into()], 4).unwrap().unwrap();

        let mut store = CatalogDoc::genesis(1, WriterId::new("s001.lane1").unwrap()).unwrap();
        let changes = doc.core().changes_since(&store.core().heads());
        store.core_mut().apply_changes(&changes).unwrap();
        assert_eq!(store.items(), vec![changed]);
    }

    #[test]
    fn only_hq_publishes_valid_items() {
        let mut store = CatalogDoc::genesis(1, WriterId::new("s001.lane1").unwrap()).unwrap();
        assert!(matches!(
            store.publish(&[item("a", 1)], &[], 1),
            Err(CatalogError::NotHq(_))
        ));
        let mut doc = hq();
        let mut bad = item("a", 1);
        bad.currency = "euro".to_owned();
        assert!(matches!(
            doc.publish(&[bad], &[], 1),
            Err(CatalogError::InvalidItem { .. })
        ));
        assert!(matches!(
            doc.publish(&[item("a", -1)], &[], 1),
            Err(CatalogError::InvalidItem { .. })
        ));
        let mut sgtin_pattern = item("a", 1);
        sgtin_pattern.epc_patterns = vec!["urn:epc:id:sgtin:0614141.812345.".to_owned()];
        assert!(matches!(
            doc.publish(&[sgtin_pattern], &[], 1),
            Err(CatalogError::InvalidItem { .. })
        ));
    }
}
