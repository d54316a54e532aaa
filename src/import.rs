//! `storenode catalog import FILE`: CSV or JSON, all rows or none.
//!
//! Every row is parsed and validated first; if any row is bad, nothing is imported and every
//! bad row is reported with its line number. Otherwise all rows go in one transaction.

use std::fmt;
use std::path::Path;

use crate::config::Config;
use crate::store::catalog::{self, Item};
use crate::store::{NoHook, Store, StoreError, StoreOptions};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: unknown format: use a .csv or .json file")]
    Format { file: String },
    #[error("{file}: {count} bad row(s), nothing imported:\n{}", .rows.join("\n"))]
    BadRows {
        file: String,
        count: usize,
        rows: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub struct ImportReport {
    pub imported: usize,
    pub catalog_size: u64,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "imported {} items in one transaction; catalog now holds {}",
            self.imported, self.catalog_size
        )
    }
}

/// One CSV row. `gtins` holds several GTINs separated by `|`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRow {
    sku: String,
    name: String,
    price_minor: i64,
    currency: String,
    tax_class: String,
    #[serde(default)]
    variable_measure: Option<bool>,
    #[serde(default)]
    gtins: Option<String>,
}

/// Parses and validates `text`; `Err` lists every bad row as "line N: reason".
pub fn parse_items(
    file: &Path,
    text: &str,
    known_tax_class: &dyn Fn(&str) -> bool,
) -> Result<Vec<Item>, ImportError> {
    let name = file.display().to_string();
    let rows = match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => parse_csv(text),
        Some("json") => parse_json(text),
        _ => return Err(ImportError::Format { file: name }),
    };
    let mut items = Vec::new();
    let mut bad = Vec::new();
    for (line, row) in rows {
        match row.and_then(|item| item.validated(known_tax_class).map_err(|e| e.to_string())) {
            Ok(item) if items.iter().any(|i: &Item| i.sku == item.sku) => {
                bad.push(format!("line {line}: SKU {} appears twice", item.sku))
            }
            Ok(item) => items.push(item),
            Err(reason) => bad.push(format!("line {line}: {reason}")),
        }
    }
    if bad.is_empty() {
        Ok(items)
    } else {
        Err(ImportError::BadRows {
            file: name,
            count: bad.len(),
            rows: bad,
        })
    }
}

fn parse_csv(text: &str) -> Vec<(u64, Result<Item, String>)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(e) => return vec![(1, Err(format!("header: {e}")))],
    };
    reader
        .records()
        .map(|record| match record {
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(csv_reason(&e))),
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                let row = record.deserialize::<CsvRow>(Some(&headers));
                (line, row.map(CsvRow::into_item).map_err(|e| csv_reason(&e)))
            }
        })
        .collect()
}

impl CsvRow {
    fn into_item(self) -> Item {
        let gtins = self.gtins.unwrap_or_default();
        Item {
            sku: self.sku,
            name: self.name,
            price_minor: self.price_minor,
            currency: self.currency,
            tax_class: self.tax_class,
            variable_measure: self.variable_measure.unwrap_or(false),
            gtins: gtins
                .split('|')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect(),
        }
    }
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(field) => format!("field {}: {}", field + 1, err.kind()),
            None => err.kind().to_string(),
        },
        _ => e.to_string(),
    }
}

fn parse_json(text: &str) -> Vec<(u64, Result<Item, String>)> {
    let values: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return vec![(
                e.line() as u64,
                Err(format!("not a JSON array of items: {e}")),
            )];
        }
    };
    // serde_json does not report positions of array elements; number them instead.
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            (
                i as u64 + 1,
                serde_json::from_value::<Item>(v).map_err(|e| format!("item {}: {e}", i + 1)),
            )
        })
        .collect()
}

/// Imports `file` into the node's database (works whether or not the node is running: SQLite
/// serialises the writers).
pub async fn import_file(config: &Config, file: &Path) -> Result<ImportReport, ImportError> {
    let text = std::fs::read_to_string(file).map_err(|source| ImportError::Read {
        file: file.display().to_string(),
        source,
    })?;
    let tax = config.tax.clone();
    let items = parse_items(file, &text, &|class| tax.rate_bp(class).is_some())?;
    let store = Store::open(
        StoreOptions {
            path: config.database.path.clone(),
            max_batch: 1,
            writer_id: config.node.writer_id(),
        },
        Box::new(NoHook),
    )?;
    let imported = items.len();
    let result = store
        .write(move |conn| {
            let now = crate::store::now_utc();
            for item in &items {
                catalog::upsert(conn, item, &now)?;
            }
            catalog::count(conn)
        })
        .await;
    store.close().await;
    // `sudo storenode catalog import` before the service's first start would otherwise
    // leave a root-owned store.db that the service opens read-only.
    if let Some(note) =
        crate::ownership::hand_over_database(&config.database.path, &config.node.data_dir)
    {
        tracing::warn!(note = %note, "database ownership");
    }
    Ok(ImportReport {
        imported,
        catalog_size: result?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "sku,name,price_minor,currency,tax_class,variable_measure,gtins\n";

    #[test]
    fn csv_rows_with_several_gtins() {
        let text = format!(
            "{HEADER}A1,Milk 1l,119,EUR,reduced,false,4006381333931|96385074\nB2,Apples,299,EUR,reduced,true,\n"
        );
        let items = parse_items(Path::new("c.csv"), &text, &|_| true).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].gtins, vec!["00000096385074", "04006381333931"]);
        assert!(items[1].variable_measure);
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_nothing_passes() {
        let text = format!(
            "{HEADER}A1,Milk,119,EUR,reduced,false,4006381333931\nB2,Bad,abc,EUR,reduced,false,\nC3,Bad gtin,5,EUR,reduced,false,4006381333932\n"
        );
        let err = parse_items(Path::new("c.csv"), &text, &|_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 bad row(s)"), "{err}");
        assert!(err.contains("line 3:"), "{err}");
        assert!(err.contains("line 4: gtins[0]"), "{err}");
    }

    #[test]
    fn json_items_and_errors() {
        let ok = r#"[{"sku":"A1","name":"Milk","price_minor":119,"currency":"EUR","tax_class":"reduced","gtins":["4006381333931"]}]"#;
        assert_eq!(
            parse_items(Path::new("c.json"), ok, &|_| true)
                .unwrap()
                .len(),
            1
        );
        let bad = r#"[{"sku":"A1","name":"Milk","price_minor":-1,"currency":"EUR","tax_class":"reduced"}]"#;
        let err = parse_items(Path::new("c.json"), bad, &|_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: price_minor"), "{err}");
    }

    #[test]
    fn unknown_extension_is_refused() {
        assert!(matches!(
            parse_items(Path::new("c.xlsx"), "", &|_| true),
            Err(ImportError::Format { .. })
        ));
    }
}
