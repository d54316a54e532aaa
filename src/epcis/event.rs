//! Rows of the EPCIS event log → EPCIS 2.0 ObjectEvents and EPCISDocuments. Pure.

use serde_json::{Map, Value, json};

use super::EpcisError;
pub use super::id::event_id;
use crate::gs1::{check_digit, decode_epc_hex, epc::Epc, gtin::Gtin14};

/// The JSON-LD context every EPCIS 2.0 document names.
pub const CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

/// The JSON-LD prefix of storenode's EPCIS extension fields (EPCIS 2.0 allows any field
/// named by a URI, a prefix declared in `@context` included).
pub const EXTENSION_PREFIX: &str = "storenode";
const EXTENSION_NAMESPACE: &str = "urn:storenode:epcis:";
/// On an event: its sale lines without a GTIN (no GS1 identity, so not in `quantityList`).
pub const LINES_WITHOUT_GTIN: &str = "storenode:linesWithoutGtin";
/// On a document: the facts of this page that name nothing with a GS1 identity (a receipt,
/// count or sale of items without GTIN), so have no event.
pub const FACTS_WITHOUT_GTIN: &str = "storenode:factsWithoutGtin";

/// The GS1 Digital Link resolver domain used for class-level and location identifiers.
const DL_BASE: &str = "https://id.gs1.org";

/// What happened in the store, one kind per source of the `epcis_event` log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Receipt,
    Count,
    Sale,
    TagRead,
    ExitAlert,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Count => "count",
            Self::Sale => "sale",
            Self::TagRead => "tag_read",
            Self::ExitAlert => "exit_alert",
        }
    }

    pub fn parse(s: &str) -> Result<Self, EpcisError> {
        Ok(match s {
            "receipt" => Self::Receipt,
            "count" => Self::Count,
            "sale" => Self::Sale,
            "tag_read" => Self::TagRead,
            "exit_alert" => Self::ExitAlert,
            other => return Err(EpcisError::UnknownKind(other.to_string())),
        })
    }

    /// CBV 2.0 business step and disposition.
    fn cbv(self) -> (&'static str, &'static str) {
        match self {
            // Received goods are sellable but in the back room until shelved; the node does
            // not record the CBV `stocking` step that would make them accessible.
            Self::Receipt => ("receiving", "sellable_not_accessible"),
            // A stock count and an RFID inventory read both observe what is on hand.
            Self::Count | Self::TagRead => ("cycle_counting", "sellable_accessible"),
            Self::Sale => ("retail_selling", "retail_sold"),
            // An unsold item passed an exit read point: `entering_exiting` is exactly that
            // observation. Whether it was stolen, an unscanned sale or a stray read is for
            // staff to find out; `stolen` would assert what the node cannot know, so the
            // disposition is CBV `unknown`.
            Self::ExitAlert => ("entering_exiting", "unknown"),
        }
    }
}

/// One sale line as the event needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleLine {
    pub gtin14: Option<String>,
    pub quantity: i64,
    /// `piece` or `gram`.
    pub unit: String,
    /// EPC bank hex when the line was sold by its RFID tag.
    pub epc: Option<String>,
}

/// One row of the `epcis_event` log, with the sale's lines for a sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub kind: EventKind,
    pub source_id: i64,
    /// RFC 3339 UTC, as stored.
    pub at: String,
    pub sku: Option<String>,
    /// The SKU's GTIN (the line's, or the catalog's first) for class-level events.
    pub gtin14: Option<String>,
    pub quantity: Option<i64>,
    pub epc: Option<String>,
    pub reader: Option<String>,
    pub antenna: Option<i64>,
    pub lines: Vec<SaleLine>,
}

/// Where the store is, as configured: its GLN and its time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub gln: Option<String>,
    pub time_zone: jiff::tz::TimeZone,
}

impl Default for Site {
    fn default() -> Self {
        Self {
            gln: None,
            time_zone: jiff::tz::TimeZone::UTC,
        }
    }
}

/// Who and where: the identity of this node in the chain and the store's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub tenant: String,
    pub store_id: String,
    pub node_id: String,
    /// The store's GLN, if configured: locations become GS1 Digital Link URIs.
    pub gln: Option<String>,
    /// The store's time zone (`node.time_zone`): each event's `eventTimeZoneOffset` is the
    /// store's local offset at the event's time (DST included). UTC unless configured.
    pub time_zone: jiff::tz::TimeZone,
}

impl Origin {
    /// Checks the GLN (13 digits, mod-10 check digit).
    pub fn new(
        tenant: &str,
        store_id: &str,
        node_id: &str,
        gln: Option<&str>,
    ) -> Result<Self, EpcisError> {
        if let Some(g) = gln {
            check_gln(g)?;
        }
        Ok(Self {
            tenant: tenant.to_string(),
            store_id: store_id.to_string(),
            node_id: node_id.to_string(),
            gln: gln.map(str::to_string),
            time_zone: jiff::tz::TimeZone::UTC,
        })
    }

    /// The same origin in the store's time zone.
    pub fn with_time_zone(mut self, time_zone: jiff::tz::TimeZone) -> Self {
        self.time_zone = time_zone;
        self
    }

    /// `eventTimeZoneOffset` (`+HH:MM`) of an event at `at` (RFC 3339): the store's offset
    /// then. A time that does not parse (never written by this node) gets UTC's.
    pub fn offset_at(&self, at: &str) -> String {
        let seconds = at
            .parse::<jiff::Timestamp>()
            .map_or(0, |t| self.time_zone.to_offset(t).seconds());
        let sign = if seconds < 0 { '-' } else { '+' };
        let minutes = seconds.unsigned_abs() / 60;
        format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }

    /// The store: `https://id.gs1.org/414/{gln}`, or a storenode URN without a GLN.
    pub fn biz_location(&self) -> String {
        match &self.gln {
            Some(gln) => format!("{DL_BASE}/414/{gln}"),
            None => format!(
                "urn:storenode:loc:{}:{}",
                uri_part(&self.tenant),
                uri_part(&self.store_id)
            ),
        }
    }

    /// Where the event was seen: an RFID reader's antenna, or this node (the tills and
    /// handhelds that call it), as a GLN extension (AI 254) of the store's GLN.
    pub fn read_point(&self, reader: Option<(&str, i64)>) -> String {
        let ext = match reader {
            Some((name, antenna)) => format!("{name}.{antenna}"),
            None => self.node_id.clone(),
        };
        match &self.gln {
            Some(_) => format!("{}/254/{}", self.biz_location(), uri_part(&ext)),
            None => format!("{}:{}", self.biz_location(), uri_part(&ext)),
        }
    }
}

/// A GLN: 13 digits with a valid mod-10 check digit.
pub fn check_gln(gln: &str) -> Result<(), EpcisError> {
    let bad = || EpcisError::BadGln(gln.to_string());
    if gln.len() != 13 || !gln.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (body, check) = gln.split_at(12);
    let expected = check_digit(body).map_err(|_| bad())?;
    if check != expected.to_string() {
        return Err(bad());
    }
    Ok(())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn uri_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The pure identity URI of an EPC, or its TDS raw URI when it is not a known scheme.
fn epc_uri(hex_epc: &str) -> String {
    let raw = || {
        format!(
            "urn:epc:raw:{}.x{}",
            hex_epc.len() * 4,
            hex_epc.to_uppercase()
        )
    };
    match decode_epc_hex(hex_epc) {
        Ok(epc @ (Epc::Sgtin { .. } | Epc::Sscc { .. } | Epc::Giai { .. })) => {
            epc.pure_identity_uri().unwrap_or_else(raw)
        }
        _ => raw(),
    }
}

/// The class of a trade item: its GTIN as a GS1 Digital Link URI, always the 14-digit form
/// GS1 Digital Link requires (a sale line may hold the GTIN-13 the till was given). EPCIS
/// 2.0 accepts these wherever an EPC class URN is allowed; a GTIN alone does not tell the
/// company prefix length an `urn:epc:idpat:sgtin` would need. `None`: not a valid GTIN
/// (an old row), which has no GS1 identity either.
fn gtin_class(gtin: &str) -> Option<String> {
    let gtin14 = Gtin14::parse(gtin).ok()?;
    Some(format!("{DL_BASE}/01/{}", gtin14.as_str()))
}

fn quantity_element(gtin: &str, quantity: Option<i64>, unit: &str) -> Option<Value> {
    let mut q = Map::new();
    q.insert("epcClass".into(), json!(gtin_class(gtin)?));
    if let Some(n) = quantity {
        q.insert("quantity".into(), json!(n));
        if unit == "gram" {
            // UN/ECE Recommendation 20 code for gram; pieces carry no uom.
            q.insert("uom".into(), json!("GRM"));
        }
    }
    Some(Value::Object(q))
}

/// What the event is about: EPCs (item level), classes with quantities (SKU level), and
/// how many sale lines name nothing with a GS1 identity.
fn what(row: &EventRow) -> (Vec<Value>, Vec<Value>, usize) {
    let mut epcs = Vec::new();
    let mut quantities = Vec::new();
    let mut without_gtin = 0;
    match row.kind {
        EventKind::Receipt | EventKind::Count => {
            quantities.extend(
                row.gtin14
                    .as_deref()
                    .and_then(|g| quantity_element(g, row.quantity, "piece")),
            );
        }
        EventKind::TagRead | EventKind::ExitAlert => {
            if let Some(e) = &row.epc {
                epcs.push(json!(epc_uri(e)));
            }
        }
        EventKind::Sale => {
            for line in &row.lines {
                let class =
                    || quantity_element(line.gtin14.as_deref()?, Some(line.quantity), &line.unit);
                match (&line.epc, class()) {
                    (Some(e), _) => epcs.push(json!(epc_uri(e))),
                    (None, Some(q)) => quantities.push(q),
                    // An item without GTIN has no GS1 identity to report: counted, and the
                    // event says how many.
                    (None, None) => without_gtin += 1,
                }
            }
        }
    }
    (epcs, quantities, without_gtin)
}

/// The ObjectEvent of one log row; `None` when it names nothing with a GS1 identity (an
/// item without GTIN): no event, counted in the document ([`FACTS_WITHOUT_GTIN`]).
pub fn build_event(origin: &Origin, row: &EventRow) -> Option<Value> {
    let (epcs, quantities, without_gtin) = what(row);
    if epcs.is_empty() && quantities.is_empty() {
        return None;
    }
    let (biz_step, disposition) = row.kind.cbv();
    let reader = match (&row.reader, row.antenna) {
        (Some(r), a) => Some((r.as_str(), a.unwrap_or(0))),
        _ => None,
    };
    let mut e = Map::new();
    e.insert("type".into(), json!("ObjectEvent"));
    e.insert(
        "eventID".into(),
        json!(event_id(origin, row.kind, row.source_id, &row.at)),
    );
    e.insert("eventTime".into(), json!(row.at));
    e.insert(
        "eventTimeZoneOffset".into(),
        json!(origin.offset_at(&row.at)),
    );
    if !epcs.is_empty() {
        e.insert("epcList".into(), Value::Array(epcs));
    }
    if !quantities.is_empty() {
        e.insert("quantityList".into(), Value::Array(quantities));
    }
    // OBSERVE: the node sees the objects; it neither commissions nor decommissions them.
    e.insert("action".into(), json!("OBSERVE"));
    e.insert("bizStep".into(), json!(biz_step));
    e.insert("disposition".into(), json!(disposition));
    e.insert(
        "readPoint".into(),
        json!({ "id": origin.read_point(reader) }),
    );
    e.insert("bizLocation".into(), json!({ "id": origin.biz_location() }));
    if without_gtin > 0 {
        e.insert(LINES_WITHOUT_GTIN.into(), json!(without_gtin));
    }
    Some(Value::Object(e))
}

/// An EPCISDocument holding `events`. EPCISDocument (not EPCISQueryDocument) because it is
/// what an EPCIS 2.0 repository's capture interface takes: the export can be posted to any
/// repository as is, while a query document needs a named query this node does not run.
///
/// `facts_without_gtin`: the facts this document covers that have no event (see
/// [`FACTS_WITHOUT_GTIN`]); said in the document when not zero.
pub fn document(events: Vec<Value>, creation_date: &str, facts_without_gtin: usize) -> Value {
    let mut doc = json!({
        "@context": [CONTEXT, { EXTENSION_PREFIX: EXTENSION_NAMESPACE }],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": creation_date,
        "epcisBody": { "eventList": events },
    });
    if facts_without_gtin > 0 {
        doc[FACTS_WITHOUT_GTIN] = json!(facts_without_gtin);
    }
    doc
}

/// An RFC 3339 time (any offset) as stored in the log: UTC, milliseconds, `Z`, so text
/// comparison orders it correctly.
pub fn normalize_time(field: &'static str, value: &str) -> Result<String, EpcisError> {
    let bad = || EpcisError::BadTime {
        field,
        value: value.to_string(),
    };
    let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?
        .to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).map_err(|_| bad())
}

#[cfg(test)]
mod tests;
