//! GS1's EPCIS 2.0 JSON schema (tests/data/epcis, embedded): what makes an event an EPCIS
//! 2.0 event. HQ checks every event a store publishes against it before storing it, so its
//! export (`GET /v1/epcis/events`) stays a valid EPCISDocument whatever a store sends.

use serde_json::Value;

use super::document;

const SCHEMA: &str = include_str!("../../tests/data/epcis/EPCIS-JSON-Schema.json");
/// `creationDate` of the document the events are checked in (any valid time will do).
const CHECKED_AT: &str = "2000-01-01T00:00:00.000Z";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the EPCIS 2.0 schema does not compile: {0}")]
    Compile(String),
}

/// Why events are not EPCIS 2.0: the first complaint of the schema and how many it had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {index:?} is not EPCIS 2.0 ({count} schema errors), first: {first}")]
pub struct Invalid {
    /// The event the first complaint is about (`None`: about no one event).
    pub index: Option<usize>,
    pub first: String,
    pub count: usize,
}

/// The compiled schema (compile once, check many).
pub struct EventSchema {
    validator: jsonschema::Validator,
}

impl EventSchema {
    pub fn new() -> Result<Self, SchemaError> {
        let schema: Value =
            serde_json::from_str(SCHEMA).map_err(|e| SchemaError::Compile(e.to_string()))?;
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| SchemaError::Compile(e.to_string()))?;
        Ok(Self { validator })
    }

    /// Checks `events` as the body of an EPCISDocument: exactly what HQ's export makes
    /// of them (the extension prefix storenode's events use is declared there).
    pub fn check(&self, events: &[Value]) -> Result<(), Invalid> {
        let doc = document(events.to_vec(), CHECKED_AT, 0);
        let mut errors = self.validator.iter_errors(&doc);
        let Some(first) = errors.next() else {
            return Ok(());
        };
        let path = first.instance_path.to_string();
        let index = path
            .strip_prefix("/epcisBody/eventList/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|i| i.parse().ok());
        Err(Invalid {
            index,
            first: format!("{first} at {path}"),
            count: 1 + errors.count(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcis::{EventKind, EventRow, Origin, build_event};
    use serde_json::json;

    fn store_event() -> Value {
        let origin = Origin::new("acme", "s1", "lane1", Some("4012345000009")).unwrap();
        let row = EventRow {
            seq: 1,
            kind: EventKind::Receipt,
            source_id: 7,
            at: "2026-03-01T10:00:00.000Z".into(),
            sku: Some("MILK".into()),
            gtin14: Some("04012345000108".into()),
            quantity: Some(3),
            epc: None,
            reader: None,
            antenna: None,
            lines: Vec::new(),
        };
        build_event(&origin, &row).unwrap()
    }

    #[test]
    fn the_stores_events_pass_and_a_broken_one_is_named() {
        let schema = EventSchema::new().unwrap();
        let good = store_event();
        assert_eq!(schema.check(std::slice::from_ref(&good)), Ok(()));
        let mut broken = good.clone();
        broken["action"] = json!("STEAL");
        broken
            .as_object_mut()
            .unwrap()
            .remove("eventTimeZoneOffset");
        let invalid = schema.check(&[good.clone(), broken]).unwrap_err();
        assert_eq!(invalid.index, Some(1), "{invalid}");
        assert!(invalid.count >= 1);
        let not_an_event = json!({ "eventID": "urn:uuid:x", "eventTime": "yesterday" });
        assert_eq!(schema.check(&[not_an_event]).unwrap_err().index, Some(0));
    }
}
