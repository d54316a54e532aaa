//! GS1 EPCIS 2.0: the store's receipts, counts, sales, RFID reads and exit alerts as
//! JSON-LD ObjectEvents with CBV 2.0 business steps and dispositions.
//!
//! [`event`] and [`document`] are pure (rows in, JSON out); [`schema`] checks events
//! against GS1's EPCIS 2.0 JSON schema; [`source`] is the only part that reads SQLite
//! (the `epcis_event` log, filled by triggers in the same transaction as each business
//! fact, see `schema.sql`).

pub mod batch;
mod event;
mod id;
#[cfg(feature = "hq")]
pub mod schema;
pub mod source;

pub use event::{
    CONTEXT, EventKind, EventRow, FACTS_WITHOUT_GTIN, LINES_WITHOUT_GTIN, Origin, SaleLine, Site,
    build_event, check_gln, document, event_id, normalize_time,
};

/// Errors of the EPCIS mapping and its query parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EpcisError {
    /// A time filter that is not RFC 3339.
    #[error("{field}: not an RFC 3339 time: {value:?}")]
    BadTime { field: &'static str, value: String },
    /// A GLN that is not 13 digits with a valid check digit.
    #[error("not a GLN (13 digits with check digit): {0:?}")]
    BadGln(String),
    /// A row of the event log with a kind this binary does not know (a newer binary wrote it).
    #[error("unknown EPCIS event kind {0:?}")]
    UnknownKind(String),
}
