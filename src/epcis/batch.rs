//! The MQTT payloads of the EPCIS flow to HQ. Pure.
//!
//! A writer publishes its log in order as [`Batch`]es on `{store}/epcis/{writer}`: each
//! covers the log sequences `after+1 ..= last` (rows that map to no event, e.g. an item
//! without GTIN, are covered but carry no event) and fits under the message cap. HQ stores
//! the events by `eventID` (idempotent) and acknowledges with a retained [`Ack`] of the
//! highest `last` it holds *contiguously* (a batch whose `after` is beyond its mark — an
//! earlier batch was lost — is stored but does not move the mark), so the writer re-sends
//! from the mark and nothing is skipped.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Format version of [`Batch`] and [`Ack`].
pub const VERSION: u8 = 1;
/// Room left in a message for the batch's own fields.
const OVERHEAD: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub v: u8,
    /// The log sequence before the first one covered.
    pub after: i64,
    /// The last log sequence covered.
    pub last: i64,
    /// EPCIS 2.0 ObjectEvents, each with its `eventID`.
    pub events: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub v: u8,
    /// Every log sequence up to this one is stored at HQ.
    pub seq: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("payload of {0} bytes is over the cap")]
    TooLarge(usize),
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("unsupported version {0}")]
    Version(u8),
    #[error("batch range {after}..={last} is empty or negative")]
    Range { after: i64, last: i64 },
    #[error("event {0} has no eventID or eventTime")]
    Event(usize),
}

impl Batch {
    pub fn encode(&self) -> Vec<u8> {
        // A Value tree of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a received batch (`max`: the message cap).
    pub fn decode(bytes: &[u8], max: usize) -> Result<Batch, BatchError> {
        if bytes.len() > max {
            return Err(BatchError::TooLarge(bytes.len()));
        }
        let batch: Batch =
            serde_json::from_slice(bytes).map_err(|e| BatchError::Malformed(e.to_string()))?;
        if batch.v != VERSION {
            return Err(BatchError::Version(batch.v));
        }
        if batch.after < 0 || batch.last <= batch.after {
            return Err(BatchError::Range {
                after: batch.after,
                last: batch.last,
            });
        }
        for (i, e) in batch.events.iter().enumerate() {
            if event_id(e).is_none() || e["eventTime"].as_str().is_none() {
                return Err(BatchError::Event(i));
            }
        }
        Ok(batch)
    }
}

impl Ack {
    pub fn new(seq: i64) -> Ack {
        Ack { v: VERSION, seq }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Ack, BatchError> {
        let ack: Ack =
            serde_json::from_slice(bytes).map_err(|e| BatchError::Malformed(e.to_string()))?;
        if ack.v != VERSION {
            return Err(BatchError::Version(ack.v));
        }
        Ok(ack)
    }
}

/// The `eventID` of an event, if it has a plausible one: `urn:uuid:` (this version) or
/// `ni:///` (stores running an older version, still accepted by HQ).
pub fn event_id(event: &Value) -> Option<&str> {
    event["eventID"]
        .as_str()
        .filter(|id| (id.starts_with("urn:uuid:") || id.starts_with("ni:///")) && id.len() <= 256)
}

/// Splits log rows (`seq`, its event if any), in `seq` order after `after`, into batches
/// whose encoding stays under `max_bytes`. One event is never split; the largest (a sale of
/// the maximum 500 lines, all EPCs: about 19 KB) is far below the cap.
pub fn split(after: i64, rows: Vec<(i64, Option<Value>)>, max_bytes: usize) -> Vec<Batch> {
    let budget = max_bytes.saturating_sub(OVERHEAD);
    let mut batches = Vec::new();
    let mut current = Batch {
        v: VERSION,
        after,
        last: after,
        events: Vec::new(),
    };
    let mut size = 0usize;
    for (seq, event) in rows {
        if let Some(e) = event {
            let len = serde_json::to_vec(&e).map(|b| b.len()).unwrap_or(0) + 1;
            if !current.events.is_empty() && size + len > budget {
                let next_after = current.last;
                batches.push(std::mem::replace(
                    &mut current,
                    Batch {
                        v: VERSION,
                        after: next_after,
                        last: next_after,
                        events: Vec::new(),
                    },
                ));
                size = 0;
            }
            size += len;
            current.events.push(e);
        }
        current.last = seq;
    }
    if current.last > current.after {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(n: i64, pad: usize) -> Value {
        json!({ "eventID": format!("urn:uuid:00000000-0000-5000-8000-{n:012}"), "eventTime": "2026-01-01T00:00:00.000Z", "pad": "x".repeat(pad) })
    }

    #[test]
    fn round_trip_and_checks() {
        let b = Batch {
            v: VERSION,
            after: 3,
            last: 5,
            events: vec![event(4, 0)],
        };
        assert_eq!(Batch::decode(&b.encode(), 1 << 20), Ok(b.clone()));
        assert!(matches!(
            Batch::decode(&b.encode(), 10),
            Err(BatchError::TooLarge(_))
        ));
        let mut bad = b.clone();
        bad.last = 3;
        assert!(matches!(
            Batch::decode(&bad.encode(), 1 << 20),
            Err(BatchError::Range { .. })
        ));
        let mut no_id = b;
        no_id.events = vec![json!({"eventTime": "t"})];
        assert_eq!(
            Batch::decode(&no_id.encode(), 1 << 20),
            Err(BatchError::Event(0))
        );
        assert!(Batch::decode(b"{\"v\":1}", 1 << 20).is_err());
        assert_eq!(Ack::decode(&Ack::new(9).encode()), Ok(Ack::new(9)));
        assert!(Ack::decode(b"{\"v\":2,\"seq\":1}").is_err());
    }

    #[test]
    fn rows_without_event_are_covered() {
        let batches = split(0, vec![(1, None), (2, Some(event(2, 0))), (3, None)], 4096);
        assert_eq!(batches.len(), 1);
        assert_eq!((batches[0].after, batches[0].last), (0, 3));
        assert_eq!(batches[0].events.len(), 1);
        assert!(split(7, Vec::new(), 4096).is_empty());
    }

    proptest! {
        // Batches are contiguous, cover every row once, keep every event in order, and each
        // stays under the cap.
        #[test]
        fn split_is_contiguous_and_bounded(
            after in 0i64..1000,
            rows in proptest::collection::vec((1i64..4, proptest::option::of(0usize..300)), 0..60),
            cap in 600usize..3000,
        ) {
            let mut seq = after;
            let input: Vec<(i64, Option<Value>)> = rows.iter().map(|(step, pad)| {
                seq += step;
                (seq, pad.map(|p| event(seq, p)))
            }).collect();
            let expected: Vec<Value> = input.iter().filter_map(|(_, e)| e.clone()).collect();
            let batches = split(after, input.clone(), cap);
            let mut mark = after;
            let mut got = Vec::new();
            for b in &batches {
                prop_assert_eq!(b.after, mark);
                prop_assert!(b.last > b.after);
                prop_assert!(b.encode().len() <= cap, "{} > {}", b.encode().len(), cap);
                let decoded = Batch::decode(&b.encode(), cap);
                prop_assert_eq!(decoded.as_ref(), Ok(b));
                mark = b.last;
                got.extend(b.events.iter().cloned());
            }
            prop_assert_eq!(mark, input.last().map_or(after, |r| r.0));
            prop_assert_eq!(got, expected);
        }
    }
}
