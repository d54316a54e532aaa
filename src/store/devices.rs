//! Device rows in the store: scans, tag presence events and item-level EPC inventory.
//!
//! Everything here runs on the store's writer (or a reader) connection and is called in
//! batches by `devices::pipeline`, so one group commit carries many device events. The sale
//! path calls [`mark_sold`] and [`mark_returned`] inside its own write, so an EPC's state
//! changes atomically with the sale that sold it.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::StoreError;
use super::catalog::{self, Item};
use crate::gs1::{Epc, EpcPattern, decode_epc};

/// A scan as stored in `scan_event`.
#[derive(Debug, Clone)]
pub struct ScanRow {
    pub device: String,
    pub at: String,
    pub symbology: Option<String>,
    pub raw: String,
    pub gtin14: Option<String>,
    pub sku: Option<String>,
    pub valid: bool,
    pub error: Option<String>,
}

/// A tag entering or leaving a read point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    Enter,
    Leave,
}

/// A presence change as stored in `tag_event`; `exit` marks an exit read point.
#[derive(Debug, Clone)]
pub struct TagRow {
    pub reader: String,
    pub antenna: u8,
    pub at: String,
    pub kind: PresenceKind,
    pub epc: Epc,
    pub rssi: Option<i16>,
    pub reads: u32,
    pub exit: bool,
}

/// Item-level state of one EPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EpcState {
    InStore,
    Sold,
    Left,
}

impl EpcState {
    pub fn as_str(self) -> &'static str {
        match self {
            EpcState::InStore => "in_store",
            EpcState::Sold => "sold",
            EpcState::Left => "left",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "in_store" => Ok(EpcState::InStore),
            "sold" => Ok(EpcState::Sold),
            "left" => Ok(EpcState::Left),
            other => Err(StoreError::Inconsistent(format!(
                "epc_item.state {other:?} is not in_store, sold or left"
            ))),
        }
    }
}

/// What applying one [`TagRow`] found out: the item, the EPC's state, and whether it was
/// an unsold item at an exit.
#[derive(Debug, Clone)]
pub struct TagOutcome {
    pub item: Option<Item>,
    pub state: EpcState,
    pub exit_alert: bool,
}

/// An `epc_item` row, for tests, `diag` and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpcItem {
    pub epc: String,
    pub scheme: String,
    pub gtin14: Option<String>,
    pub sku: Option<String>,
    pub state: EpcState,
    pub last_seen: Option<String>,
    pub last_reader: Option<String>,
    pub sold_sale_id: Option<i64>,
}

pub fn insert_scans(conn: &Connection, rows: &[ScanRow]) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO scan_event (device, at, symbology, raw, gtin14, sku, valid, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for row in rows {
        insert.execute(params![
            row.device,
            row.at,
            row.symbology,
            row.raw,
            row.gtin14,
            row.sku,
            row.valid,
            row.error
        ])?;
    }
    Ok(())
}

/// The catalog item a GTIN belongs to, if any.
pub fn item_for_gtin(conn: &Connection, gtin14: &str) -> Result<Option<Item>, StoreError> {
    match catalog::sku_for_gtin(conn, gtin14)? {
        Some(sku) => catalog::get(conn, &sku),
        None => Ok(None),
    }
}

/// Records presence changes and updates item-level inventory; one outcome per row.
pub fn apply_tag_events(conn: &Connection, rows: &[TagRow]) -> Result<Vec<TagOutcome>, StoreError> {
    rows.iter().map(|row| apply_tag_event(conn, row)).collect()
}

fn apply_tag_event(conn: &Connection, row: &TagRow) -> Result<TagOutcome, StoreError> {
    let gtin14 = row.epc.gtin14().map(|g| g.as_str().to_owned());
    let item = gtin14
        .as_deref()
        .map(|g| item_for_gtin(conn, g))
        .transpose()?
        .flatten();
    let previous = epc_state(conn, row.epc.hex())?;
    let (state, exit_alert) = next_state(previous, row);
    upsert_epc_item(conn, row, item.as_ref(), state)?;
    let kind = match row.kind {
        PresenceKind::Enter => "enter",
        PresenceKind::Leave => "leave",
    };
    conn.prepare_cached(
        "INSERT INTO tag_event (reader, antenna, at, kind, epc, gtin14, sku, rssi, reads, exit_alert)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        row.reader,
        row.antenna,
        row.at,
        kind,
        row.epc.hex(),
        gtin14,
        item.as_ref().map(|i| &i.sku),
        row.rssi,
        row.reads,
        exit_alert
    ])?;
    Ok(TagOutcome {
        item,
        state,
        exit_alert,
    })
}

/// The item-level state machine. A sold item stays sold wherever it is seen (the customer
/// carries it out); an unsold item entering an exit read point raises an alert and is
/// marked `left`; a `left` item seen inside again is back `in_store`.
fn next_state(previous: Option<EpcState>, row: &TagRow) -> (EpcState, bool) {
    match (previous, row.kind) {
        (Some(EpcState::Sold), _) => (EpcState::Sold, false),
        (_, PresenceKind::Enter) if row.exit => (EpcState::Left, true),
        (Some(EpcState::Left), PresenceKind::Leave) => (EpcState::Left, false),
        (None | Some(EpcState::InStore) | Some(EpcState::Left), _) => (EpcState::InStore, false),
    }
}

fn upsert_epc_item(
    conn: &Connection,
    row: &TagRow,
    item: Option<&Item>,
    state: EpcState,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO epc_item (epc, scheme, gtin14, serial, sku, state, first_seen, last_seen, last_reader)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
         ON CONFLICT(epc) DO UPDATE SET state = excluded.state, sku = COALESCE(excluded.sku, sku),
           first_seen = COALESCE(first_seen, excluded.first_seen),
           last_seen = excluded.last_seen, last_reader = excluded.last_reader",
    )?
    .execute(params![
        row.epc.hex(),
        row.epc.scheme_name(),
        row.epc.gtin14().map(|g| g.as_str()),
        serial_of(&row.epc),
        item.map(|i| &i.sku),
        state.as_str(),
        row.at,
        row.reader
    ])?;
    Ok(())
}

fn serial_of(epc: &Epc) -> Option<&str> {
    match epc {
        Epc::Sgtin { serial, .. } => Some(serial),
        _ => None,
    }
}

pub fn epc_state(conn: &Connection, epc_hex: &str) -> Result<Option<EpcState>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT state FROM epc_item WHERE epc = ?1")?
        .query_row([epc_hex], |r| r.get(0))
        .optional()?;
    text.as_deref().map(EpcState::parse).transpose()
}

pub fn epc_item(conn: &Connection, epc_hex: &str) -> Result<Option<EpcItem>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT epc, scheme, gtin14, sku, state, last_seen, last_reader, sold_sale_id
             FROM epc_item WHERE epc = ?1",
        )?
        .query_row([epc_hex.to_ascii_uppercase()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, String>(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .optional()?;
    let Some((epc, scheme, gtin14, sku, state, last_seen, last_reader, sold_sale_id)) = row else {
        return Ok(None);
    };
    Ok(Some(EpcItem {
        epc,
        scheme,
        gtin14,
        sku,
        state: EpcState::parse(&state)?,
        last_seen,
        last_reader,
        sold_sale_id,
    }))
}

/// Marks the EPC of a sale line sold (a no-op for lines without an EPC). Called by
/// `store::sales::record_sale` inside the sale's write; `epc` is validated uppercase hex.
///
/// The tag must belong to the line's item: an SGTIN's GTIN must be one of the item's GTINs,
/// a tag of another scheme (GIAI, SSCC, unknown) must be commissioned to the item in
/// `epc_item`. A tag already sold is refused (409): otherwise a jacket's tag scanned on a
/// milk line would be marked sold and pass the exit reader without an alarm.
pub fn mark_sold(
    conn: &Connection,
    field: &str,
    epc: Option<&str>,
    item: &Item,
    sale_id: i64,
    now: &str,
) -> Result<(), StoreError> {
    let Some(epc_hex) = epc else {
        return Ok(());
    };
    let bytes = hex::decode(epc_hex)
        .map_err(|e| StoreError::unprocessable(field, format!("not hex: {e}")))?;
    let decoded = decode_epc(&bytes);
    let known = known_tag(conn, decoded.hex())?;
    check_sellable(field, &decoded, known.as_ref(), item)?;
    conn.prepare_cached(
        "INSERT INTO epc_item (epc, scheme, gtin14, serial, state, sold_sale_id, sold_at)
         VALUES (?1, ?2, ?3, ?4, 'sold', ?5, ?6)
         ON CONFLICT(epc) DO UPDATE SET state = 'sold', sold_sale_id = excluded.sold_sale_id,
           sold_at = excluded.sold_at",
    )?
    .execute(params![
        decoded.hex(),
        decoded.scheme_name(),
        decoded.gtin14().map(|g| g.as_str()),
        serial_of(&decoded),
        sale_id,
        now
    ])?;
    Ok(())
}

/// What the item-level inventory knows of a tag: its state and the item it is commissioned to.
struct KnownTag {
    state: EpcState,
    sku: Option<String>,
}

fn known_tag(conn: &Connection, epc_hex: &str) -> Result<Option<KnownTag>, StoreError> {
    let row: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT state, sku FROM epc_item WHERE epc = ?1")?
        .query_row([epc_hex], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(state, sku)| {
        Ok(KnownTag {
            state: EpcState::parse(&state)?,
            sku,
        })
    })
    .transpose()
}

/// Whether a tag may be sold on a line of `item` (pure: the caller looked the tag up).
fn check_sellable(
    field: &str,
    epc: &Epc,
    known: Option<&KnownTag>,
    item: &Item,
) -> Result<(), StoreError> {
    if known.is_some_and(|k| k.state == EpcState::Sold) {
        return Err(StoreError::Conflict(format!(
            "{field}: tag {} is already sold",
            epc.hex()
        )));
    }
    match epc.gtin14() {
        Some(gtin) if item.gtins.iter().any(|g| g == gtin.as_str()) => Ok(()),
        Some(gtin) => Err(StoreError::unprocessable(
            field,
            format!(
                "tag {} is GTIN {}, which is not item {}",
                epc.hex(),
                gtin.as_str(),
                item.sku
            ),
        )),
        None if known.and_then(|k| k.sku.as_deref()) == Some(item.sku.as_str()) => Ok(()),
        None if accepts(item, epc) => Ok(()),
        None => Err(StoreError::unprocessable(
            field,
            format!(
                "tag {} ({}) is not commissioned to item {}; only SGTIN tags of the item's GTINs, \
                 tags commissioned to it or tags its epc_patterns name can be sold on its line",
                epc.hex(),
                epc.scheme_name(),
                item.sku
            ),
        )),
    }
}

/// Whether one of the item's `epc_patterns` names this (GIAI or SSCC) tag.
fn accepts(item: &Item, epc: &Epc) -> bool {
    item.epc_patterns
        .iter()
        .filter_map(|p| EpcPattern::parse(p).ok())
        .any(|p| p.matches(epc))
}

/// A returned sale line puts its EPC (if it had one) back in the store. Called by
/// `store::sales::record_return` inside the return's write.
pub fn mark_returned(conn: &Connection, sale_id: i64, line_no: u32) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE epc_item SET state = 'in_store', sold_sale_id = NULL, sold_at = NULL
         WHERE epc = (SELECT epc FROM sale_line WHERE sale_id = ?1 AND line_no = ?2)
           AND sold_sale_id = ?1",
    )?
    .execute(params![sale_id, line_no])?;
    Ok(())
}

/// Deletes scan and tag events older than `before` (RFC 3339, same format as `at`).
pub fn prune_events(conn: &Connection, before: &str) -> Result<usize, StoreError> {
    let scans = conn
        .prepare_cached("DELETE FROM scan_event WHERE at < ?1")?
        .execute([before])?;
    let tags = conn
        .prepare_cached("DELETE FROM tag_event WHERE at < ?1")?
        .execute([before])?;
    Ok(scans + tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::memory_db;

    const TDS_EPC: &str = "3074257BF7194E4000001A85";

    fn tag(kind: PresenceKind, exit: bool) -> TagRow {
        TagRow {
            reader: if exit { "door" } else { "shelf" }.into(),
            antenna: 1,
            at: "2025-01-01T00:00:00.000Z".into(),
            kind,
            epc: decode_epc(&hex::decode(TDS_EPC).unwrap()),
            rssi: Some(-50),
            reads: 1,
            exit,
        }
    }

    fn tee(gtins: &[&str]) -> Item {
        Item {
            sku: "TEE".into(),
            name: "T-shirt".into(),
            price_minor: 1299,
            currency: "EUR".into(),
            tax_class: "standard".into(),
            variable_measure: false,
            gtins: gtins.iter().map(|g| g.to_string()).collect(),
            epc_patterns: Vec::new(),
        }
    }

    fn with_item(conn: &Connection) {
        catalog::upsert(conn, &tee(&["80614141123458"]), "t").unwrap();
    }

    fn sell(conn: &Connection, epc: &str, item: &Item) -> Result<(), StoreError> {
        mark_sold(conn, "lines[0].epc", Some(epc), item, 7, "t")
    }

    #[test]
    fn only_a_tag_of_the_lines_item_is_sold_and_only_once() {
        let conn = memory_db();
        let wrong = sell(&conn, TDS_EPC, &tee(&["04006381333931"]));
        assert!(
            matches!(&wrong, Err(StoreError::Unprocessable { field, .. }) if field == "lines[0].epc"),
            "{wrong:?}"
        );
        assert!(matches!(
            sell(&conn, TDS_EPC, &tee(&[])),
            Err(StoreError::Unprocessable { .. })
        ));
        sell(&conn, TDS_EPC, &tee(&["80614141123458"])).unwrap();
        let again = sell(&conn, TDS_EPC, &tee(&["80614141123458"]));
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    }

    #[test]
    fn a_tag_of_another_scheme_sells_only_on_the_item_it_is_commissioned_to() {
        let conn = memory_db();
        let unknown = "E28011704000021D35AE4008";
        let refused = sell(&conn, unknown, &tee(&[]));
        assert!(matches!(refused, Err(StoreError::Unprocessable { .. })));
        conn.execute(
            "INSERT INTO epc_item (epc, scheme, sku, state) VALUES (?1, 'unknown', 'TEE', 'in_store')",
            [unknown],
        )
        .unwrap();
        sell(&conn, unknown, &tee(&[])).unwrap();
        assert_eq!(epc_state(&conn, unknown).unwrap(), Some(EpcState::Sold));
    }

    fn state(conn: &Connection) -> Option<EpcState> {
        epc_state(conn, TDS_EPC).unwrap()
    }

    #[test]
    fn enter_resolves_item_and_marks_in_store() {
        let conn = memory_db();
        with_item(&conn);
        let out = apply_tag_events(&conn, &[tag(PresenceKind::Enter, false)]).unwrap();
        assert_eq!(out[0].item.as_ref().unwrap().sku, "TEE");
        assert!(!out[0].exit_alert);
        let stored = epc_item(&conn, TDS_EPC).unwrap().unwrap();
        assert_eq!(stored.state, EpcState::InStore);
        assert_eq!(stored.sku.as_deref(), Some("TEE"));
        assert_eq!(stored.gtin14.as_deref(), Some("80614141123458"));
    }

    #[test]
    fn unsold_item_at_exit_alerts_and_sold_item_does_not() {
        let conn = memory_db();
        apply_tag_events(&conn, &[tag(PresenceKind::Enter, false)]).unwrap();
        let out = apply_tag_events(&conn, &[tag(PresenceKind::Enter, true)]).unwrap();
        assert!(out[0].exit_alert);
        assert_eq!(state(&conn), Some(EpcState::Left));

        sell(&conn, TDS_EPC, &tee(&["80614141123458"])).unwrap();
        let out = apply_tag_events(&conn, &[tag(PresenceKind::Enter, true)]).unwrap();
        assert!(!out[0].exit_alert);
        assert_eq!(state(&conn), Some(EpcState::Sold));
    }

    #[test]
    fn unknown_epc_is_kept_as_hex() {
        let conn = memory_db();
        let mut row = tag(PresenceKind::Enter, false);
        row.epc = decode_epc(&hex::decode("E28011704000021D35AE4008").unwrap());
        let out = apply_tag_events(&conn, &[row]).unwrap();
        assert!(out[0].item.is_none());
        let stored = epc_item(&conn, "E28011704000021D35AE4008")
            .unwrap()
            .unwrap();
        assert_eq!(stored.scheme, "unknown");
        assert_eq!(stored.gtin14, None);
    }

    #[test]
    fn sale_marks_the_epc_sold_and_its_return_clears_it() {
        use crate::store::TaxConfig;
        use crate::store::sales::{self, WriteContext};
        let conn = memory_db();
        with_item(&conn);
        let tax = TaxConfig {
            prices_include_tax: true,
            classes: vec![("standard".into(), 1900)],
        };
        let ctx = WriteContext {
            terminal: "pos1",
            writer_id: "s1.lane1",
            currency: "EUR",
            tax: &tax,
            now: "2025-01-01T00:00:00.000Z",
            pricing: None,
        };
        let sale: sales::SaleRequest = serde_json::from_value(serde_json::json!({
            "lines": [{"sku": "TEE", "quantity": 1, "epc": TDS_EPC.to_ascii_lowercase()}],
            "payments": [{"method": "card", "amount_minor": 1299}]
        }))
        .unwrap();
        let receipt = sales::record_sale(&conn, &ctx, &sale).unwrap();
        let sold = epc_item(&conn, TDS_EPC).unwrap().unwrap();
        assert_eq!(sold.state, EpcState::Sold);
        assert!(sold.sold_sale_id.is_some());
        let out = apply_tag_events(&conn, &[tag(PresenceKind::Enter, true)]).unwrap();
        assert!(!out[0].exit_alert, "a sold item may leave");

        let ret: sales::ReturnRequest = serde_json::from_value(serde_json::json!({
            "sale_id": receipt.sale_id, "lines": [{"line_no": 1, "quantity": 1}]
        }))
        .unwrap();
        sales::record_return(&conn, &ctx, &ret).unwrap();
        assert_eq!(state(&conn), Some(EpcState::InStore));
        let out = apply_tag_events(&conn, &[tag(PresenceKind::Enter, true)]).unwrap();
        assert!(out[0].exit_alert, "returned goods are store stock again");
    }

    #[test]
    fn scans_and_pruning() {
        let conn = memory_db();
        let row = ScanRow {
            device: "s0".into(),
            at: "2020-01-01T00:00:00.000Z".into(),
            symbology: Some("]E0".into()),
            raw: "]E05901234123457".into(),
            gtin14: Some("05901234123457".into()),
            sku: None,
            valid: true,
            error: None,
        };
        insert_scans(&conn, &[row.clone(), row]).unwrap();
        assert_eq!(prune_events(&conn, "2021-01-01T00:00:00.000Z").unwrap(), 2);
    }
}
