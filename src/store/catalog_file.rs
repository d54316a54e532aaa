//! A catalog file (CSV or JSON), read all rows or none: for `storenode catalog import`,
//! `provision --catalog` and HQ's `catalog publish`.
//!
//! Every row is parsed and validated first; if any row is bad, nothing is imported and every
//! bad row is reported with its line number. Otherwise all rows go in one transaction.
//! Refused as a whole: a CSV without its header row (its first item would be taken for
//! one), a file with no items, items priced in another currency than the store's, and a
//! GTIN that would move from one SKU to another unless `--move-gtins` (each move listed).

use std::fmt;
use std::path::Path;

use super::catalog::Item;
use rusqlite::OptionalExtension;

use super::StoreError;

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
    #[error("{file}: no items in the file, nothing imported")]
    Empty { file: String },
    #[error(
        "{file}: {} GTIN(s) would move to another SKU, nothing imported (give --move-gtins if this is meant):\n{}",
        .moves.len(),
        .moves.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n")
    )]
    GtinMoves { file: String, moves: Vec<GtinMove> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A GTIN the file gives to another SKU than the catalog does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GtinMove {
    pub gtin: String,
    pub from_sku: String,
    pub to_sku: String,
}

impl fmt::Display for GtinMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GTIN {} moves from SKU {} to SKU {}",
            self.gtin, self.from_sku, self.to_sku
        )
    }
}

/// What an imported item must agree with besides its own validity.
pub struct Rules<'a> {
    pub known_tax_class: &'a dyn Fn(&str) -> bool,
    /// The store's currency (`node.currency`); `None`: any, but one for the whole file.
    pub currency: Option<&'a str>,
}

/// The CSV columns; the first five are required in the header row.
const COLUMNS: [&str; 8] = [
    "sku",
    "name",
    "price_minor",
    "currency",
    "tax_class",
    "variable_measure",
    "gtins",
    "epc_patterns",
];
const REQUIRED_COLUMNS: usize = 5;

/// One CSV row. `gtins` holds several GTINs separated by `|`, `epc_patterns` several
/// patterns.
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
    #[serde(default)]
    epc_patterns: Option<String>,
}

/// Parses and validates `text`; `Err` lists every bad row as "line N: reason".
pub fn parse_items(
    file: &Path,
    text: &str,
    known_tax_class: &dyn Fn(&str) -> bool,
) -> Result<Vec<Item>, ImportError> {
    parse_items_with(
        file,
        text,
        &Rules {
            known_tax_class,
            currency: None,
        },
    )
}

/// [`parse_items`] with every rule: also the currency, GTINs given to two rows, no items.
pub fn parse_items_with(
    file: &Path,
    text: &str,
    rules: &Rules<'_>,
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
    // Which line gave each GTIN, and the file's currency when the store's is not known.
    let mut gtin_lines: std::collections::HashMap<String, u64> = Default::default();
    let mut file_currency = rules.currency.map(str::to_owned);
    for (line, row) in rows {
        let item = match row.and_then(|item| {
            item.validated(rules.known_tax_class)
                .map_err(|e| e.to_string())
        }) {
            Ok(item) => item,
            Err(reason) => {
                bad.push(format!("line {line}: {reason}"));
                continue;
            }
        };
        if items.iter().any(|i: &Item| i.sku == item.sku) {
            bad.push(format!("line {line}: SKU {} appears twice", item.sku));
            continue;
        }
        match &file_currency {
            Some(c) if *c != item.currency => bad.push(format!(
                "line {line}: currency {} is not the store's {c}",
                item.currency
            )),
            Some(_) => {}
            None => file_currency = Some(item.currency.clone()),
        }
        for gtin in &item.gtins {
            if let Some(first) = gtin_lines.insert(gtin.clone(), line) {
                bad.push(format!("line {line}: GTIN {gtin} is also on line {first}"));
            }
        }
        items.push(item);
    }
    if !bad.is_empty() {
        return Err(ImportError::BadRows {
            file: name,
            count: bad.len(),
            rows: bad,
        });
    }
    if items.is_empty() {
        return Err(ImportError::Empty { file: name });
    }
    Ok(items)
}

/// The header row must name the columns: a file without one would lose its first item.
fn check_header(headers: &csv::StringRecord) -> Result<(), String> {
    let unknown: Vec<&str> = headers.iter().filter(|h| !COLUMNS.contains(h)).collect();
    let missing: Vec<&str> = COLUMNS[..REQUIRED_COLUMNS]
        .iter()
        .copied()
        .filter(|c| !headers.iter().any(|h| h == *c))
        .collect();
    if unknown.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "no header row: the first line must name the columns ({}), found {:?}",
        COLUMNS.join(","),
        headers.iter().collect::<Vec<_>>().join(",")
    ))
}

fn parse_csv(text: &str) -> Vec<(u64, Result<Item, String>)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(e) => return vec![(1, Err(format!("header: {e}")))],
    };
    if let Err(reason) = check_header(&headers) {
        return vec![(1, Err(reason))];
    }
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
        let list = |cell: Option<String>| -> Vec<String> {
            cell.unwrap_or_default()
                .split('|')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
                .collect()
        };
        Item {
            sku: self.sku,
            name: self.name,
            price_minor: self.price_minor,
            currency: self.currency,
            tax_class: self.tax_class,
            variable_measure: self.variable_measure.unwrap_or(false),
            gtins: list(self.gtins),
            epc_patterns: list(self.epc_patterns),
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

/// The GTINs of `items` that the catalog gives to another SKU now.
pub fn gtin_moves(
    conn: &rusqlite::Connection,
    items: &[Item],
) -> Result<Vec<GtinMove>, StoreError> {
    let mut moves = Vec::new();
    let mut owner = conn.prepare_cached("SELECT sku FROM item_gtin WHERE gtin14 = ?1")?;
    for item in items {
        for gtin in &item.gtins {
            let from: Option<String> = owner.query_row([gtin], |r| r.get(0)).optional()?;
            if let Some(from) = from.filter(|f| *f != item.sku) {
                moves.push(GtinMove {
                    gtin: gtin.clone(),
                    from_sku: from,
                    to_sku: item.sku.clone(),
                });
            }
        }
    }
    Ok(moves)
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
    fn a_csv_row_lists_the_epc_patterns_of_its_item() {
        let text = "sku,name,price_minor,currency,tax_class,epc_patterns\n\
                    BIKE,Bike rental,1500,EUR,standard,urn:epc:id:sscc:0614141.|urn:epc:id:giai:0614141.\n";
        let items = parse_items(Path::new("c.csv"), text, &|_| true).unwrap();
        assert_eq!(
            items[0].epc_patterns,
            vec!["urn:epc:id:giai:0614141.", "urn:epc:id:sscc:0614141."]
        );
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

    fn parse_eur(text: &str) -> Result<Vec<Item>, String> {
        parse_items_with(
            Path::new("c.csv"),
            text,
            &Rules {
                known_tax_class: &|_| true,
                currency: Some("EUR"),
            },
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_csv_without_header_row_is_refused() {
        // Before: the first item was taken for the header and "imported 0 items".
        let err = parse_eur("A1,Milk 1l,119,EUR,reduced,false,4006381333931\n").unwrap_err();
        assert!(err.contains("line 1: no header row"), "{err}");
        // Columns in another order, or without the optional ones, are a header.
        let items = parse_eur("name,sku,currency,price_minor,tax_class\nMilk,A1,EUR,119,reduced\n");
        assert_eq!(items.map(|i| i.len()), Ok(1));
        assert!(parse_eur(HEADER).unwrap_err().contains("no items"));
        assert!(parse_items(Path::new("c.json"), "[]", &|_| true).is_err());
    }

    #[test]
    fn another_currency_and_a_gtin_on_two_rows_are_refused() {
        let err = parse_eur(&format!("{HEADER}A1,Milk,119,USD,reduced,false,\n")).unwrap_err();
        assert!(
            err.contains("line 2: currency USD is not the store's EUR"),
            "{err}"
        );
        // Without a store currency (HQ), one currency per file.
        let mixed =
            format!("{HEADER}A1,Milk,119,EUR,reduced,false,\nB2,Tea,5,USD,reduced,false,\n");
        let err = parse_items(Path::new("c.csv"), &mixed, &|_| true).unwrap_err();
        assert!(err.to_string().contains("line 3: currency USD"), "{err}");
        let twice = format!(
            "{HEADER}A1,Milk,119,EUR,reduced,false,4006381333931\nB2,Oat milk,149,EUR,reduced,false,04006381333931\n"
        );
        let err = parse_eur(&twice).unwrap_err();
        assert!(
            err.contains("line 3: GTIN 04006381333931 is also on line 2"),
            "{err}"
        );
    }

    #[test]
    fn gtin_moves_are_found() {
        let conn = crate::store::testing::memory_db();
        conn.execute_batch(
            "INSERT INTO item VALUES ('MILK','Milk',119,'EUR','reduced',0,'t');
             INSERT INTO item_gtin VALUES ('04006381333931','MILK');",
        )
        .unwrap();
        let items = parse_eur(&format!(
            "{HEADER}MILK,Milk,119,EUR,reduced,false,4006381333931\nOAT,Oat,149,EUR,reduced,false,4006381333931|96385074\n"
        ));
        // The file itself gives the GTIN twice: refused before the database is asked.
        assert!(items.is_err());
        let items = parse_eur(&format!(
            "{HEADER}OAT,Oat,149,EUR,reduced,false,4006381333931|96385074\n"
        ))
        .unwrap();
        let moves = gtin_moves(&conn, &items).unwrap();
        assert_eq!(
            moves,
            [GtinMove {
                gtin: "04006381333931".into(),
                from_sku: "MILK".into(),
                to_sku: "OAT".into()
            }]
        );
        assert_eq!(
            moves[0].to_string(),
            "GTIN 04006381333931 moves from SKU MILK to SKU OAT"
        );
    }

    #[test]
    fn unknown_extension_is_refused() {
        assert!(matches!(
            parse_items(Path::new("c.xlsx"), "", &|_| true),
            Err(ImportError::Format { .. })
        ));
    }
}
