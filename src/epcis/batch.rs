//! The MQTT payloads of the EPCIS flow to HQ. Pure.
//!
//! A writer publishes its log in order as [`Batch`]es on `{store}/epcis/{writer}`: each
//! covers the log sequences `after+1 ..= last` and fits under the message cap. A batch
//! accounts for every sequence it covers: each event comes with its sequence (`seqs`), and
//! the sequences without an event (a row of an item without GTIN, or no row at all) are
//! listed as ranges (`no_event`). HQ refuses a batch that claims more than it carries
//! ([`Batch::check_coverage`]): an empty batch "covering" a gap would otherwise move HQ's
//! mark over events it never received. HQ stores the events by `eventID` (idempotent) and
//! acknowledges with a retained [`Ack`] of the highest `last` it holds *contiguously* (a
//! batch whose `after` is beyond its mark — an earlier batch was lost — is stored but does
//! not move the mark), so the writer re-sends from the mark and nothing is skipped.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Format version of [`Batch`]: 2 accounts for every covered sequence (1 did not, and is
/// refused: HQ cannot tell what a version 1 batch really carries).
pub const VERSION: u8 = 2;
/// Format version of [`Ack`].
pub const ACK_VERSION: u8 = 1;
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
    /// The log sequence of each event, in order.
    pub seqs: Vec<i64>,
    /// The covered sequences without an event, as inclusive ranges in order.
    pub no_event: Vec<[i64; 2]>,
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
    #[error("batch {after}..={last} does not carry what it covers: {reason}")]
    Coverage {
        after: i64,
        last: i64,
        reason: &'static str,
    },
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
        batch.check_coverage()?;
        Ok(batch)
    }

    /// Every sequence in `after+1 ..= last` is an event's or in a `no_event` range, once,
    /// and nothing else is.
    pub fn check_coverage(&self) -> Result<(), BatchError> {
        let refuse = |reason| BatchError::Coverage {
            after: self.after,
            last: self.last,
            reason,
        };
        if self.seqs.len() != self.events.len() {
            return Err(refuse("not one sequence per event"));
        }
        if self.no_event.iter().any(|[from, to]| from > to) {
            return Err(refuse("a backwards range"));
        }
        let mut parts: Vec<(i64, i64)> = self.seqs.iter().map(|s| (*s, *s)).collect();
        parts.extend(self.no_event.iter().map(|[from, to]| (*from, *to)));
        parts.sort_unstable();
        let mut covered = self.after;
        for (from, to) in parts {
            if from != covered.saturating_add(1) {
                return Err(refuse(if from <= covered {
                    "a sequence given twice or before the range"
                } else {
                    "sequences missing"
                }));
            }
            covered = to;
        }
        if covered != self.last {
            return Err(refuse(if covered < self.last {
                "sequences missing at the end"
            } else {
                "sequences beyond the range"
            }));
        }
        Ok(())
    }
}

impl Ack {
    pub fn new(seq: i64) -> Ack {
        Ack {
            v: ACK_VERSION,
            seq,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Ack, BatchError> {
        let ack: Ack =
            serde_json::from_slice(bytes).map_err(|e| BatchError::Malformed(e.to_string()))?;
        if ack.v != ACK_VERSION {
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

/// The most a `no_event` range (or an event's sequence) adds to a batch's encoding.
const RANGE_BYTES: usize = 44;

/// One batch as it goes on the wire: [`Batch::encode`]'s bytes, built from the events'
/// own encodings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub after: i64,
    pub last: i64,
    /// Events it carries.
    pub events: usize,
    pub bytes: Vec<u8>,
}

/// The batch being filled: its events already encoded, comma-separated.
#[derive(Debug)]
struct Filling {
    after: i64,
    last: i64,
    events: Vec<u8>,
    count: usize,
    seqs: Vec<i64>,
    no_event: Vec<[i64; 2]>,
    /// What the size accounting has counted so far (events, sequences, ranges).
    size: usize,
}

impl Filling {
    fn empty(after: i64) -> Filling {
        Filling {
            after,
            last: after,
            events: Vec::new(),
            count: 0,
            seqs: Vec::new(),
            no_event: Vec::new(),
            size: 0,
        }
    }

    /// Covers `last+1 ..= to` as sequences without an event (merged with a range that ends
    /// at `last`).
    fn cover_without_event(&mut self, to: i64) {
        if to <= self.last {
            return;
        }
        match self.no_event.last_mut() {
            Some([_, end]) if *end == self.last => *end = to,
            _ => self.no_event.push([self.last + 1, to]),
        }
        self.last = to;
    }

    /// The same bytes as `serde_json::to_vec` of the equivalent [`Batch`] (its fields in
    /// declaration order, compact).
    fn encode(self) -> Encoded {
        let mut bytes = Vec::with_capacity(self.events.len() + 64 + 24 * self.seqs.len());
        bytes.extend_from_slice(
            format!(
                "{{\"v\":{VERSION},\"after\":{},\"last\":{},\"events\":[",
                self.after, self.last
            )
            .as_bytes(),
        );
        bytes.extend_from_slice(&self.events);
        bytes.extend_from_slice(b"],\"seqs\":");
        // Integers into a Vec: serde_json has no failure path here.
        let _ = serde_json::to_writer(&mut bytes, &self.seqs);
        bytes.extend_from_slice(b",\"no_event\":");
        let _ = serde_json::to_writer(&mut bytes, &self.no_event);
        bytes.push(b'}');
        Encoded {
            after: self.after,
            last: self.last,
            events: self.count,
            bytes,
        }
    }
}

/// Splits log rows (`seq`, its event if any), in `seq` order after `after`, into batches
/// whose encoding stays under `max_bytes`. One event is never split; the largest (a sale of
/// the maximum 500 lines, all EPCs: about 19 KB) is far below the cap.
///
/// Lazy: a row is taken from `rows` (and its event built, if `rows` builds them) only when
/// the batch being filled needs it, and each event is kept as its encoding only. A round of
/// the link once built its 2,000 events as JSON trees (dozens of small blocks each) and
/// split them afterwards: megabytes of small blocks at once, every round of a catch-up,
/// which left the heap fragmented and resident (issue 18). Now one event tree exists at a
/// time and a batch is its bytes.
pub fn batches<I>(after: i64, rows: I, max_bytes: usize) -> Batches<I::IntoIter>
where
    I: IntoIterator<Item = (i64, Option<Value>)>,
{
    Batches {
        rows: rows.into_iter(),
        budget: max_bytes.saturating_sub(OVERHEAD),
        current: Filling::empty(after),
        scratch: Vec::new(),
    }
}

/// The iterator of [`batches`].
#[derive(Debug)]
pub struct Batches<I> {
    rows: I,
    budget: usize,
    current: Filling,
    /// The latest event's encoding, before it is known which batch it goes into.
    scratch: Vec<u8>,
}

impl<I> Batches<I> {
    /// Ends the batch being filled when `more` bytes would take it over the budget (and it
    /// carries an event: one event alone always goes, whatever its size).
    fn cut_before(&mut self, more: usize) -> Option<Encoded> {
        if self.current.count == 0 || self.current.size + more <= self.budget {
            return None;
        }
        let next = Filling::empty(self.current.last);
        Some(std::mem::replace(&mut self.current, next).encode())
    }

    /// Adds one row; returns the batch it closed, if it did not fit there.
    fn add(&mut self, seq: i64, event: Option<Value>) -> Option<Encoded> {
        if seq <= self.current.last {
            return None; // not in order: never from the log, and not claimable
        }
        self.scratch.clear();
        // A Value tree of strings and numbers always serialises into a Vec; one that did
        // not would be covered as a row without event rather than sent broken.
        let encoded = event.is_some_and(|e| serde_json::to_writer(&mut self.scratch, &e).is_ok());
        if encoded {
            // The event, its sequence, and the range of rows without event before it.
            let len = self.scratch.len() + RANGE_BYTES * 2;
            let closed = self.cut_before(len);
            let current = &mut self.current;
            current.size += len;
            current.cover_without_event(seq - 1);
            if current.count > 0 {
                current.events.push(b',');
            }
            current.events.extend_from_slice(&self.scratch);
            current.count += 1;
            current.seqs.push(seq);
            current.last = seq;
            closed
        } else {
            let closed = self.cut_before(RANGE_BYTES);
            let current = &mut self.current;
            if current
                .no_event
                .last()
                .is_none_or(|[_, to]| *to != current.last)
            {
                current.size += RANGE_BYTES;
            }
            current.cover_without_event(seq);
            closed
        }
    }
}

impl<I: Iterator<Item = (i64, Option<Value>)>> Iterator for Batches<I> {
    type Item = Encoded;

    fn next(&mut self) -> Option<Encoded> {
        while let Some((seq, event)) = self.rows.next() {
            if let Some(closed) = self.add(seq, event) {
                return Some(closed);
            }
        }
        if self.current.last > self.current.after {
            let next = Filling::empty(self.current.last);
            return Some(std::mem::replace(&mut self.current, next).encode());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(n: i64, pad: usize) -> Value {
        json!({ "eventID": format!("urn:uuid:00000000-0000-5000-8000-{n:012}"), "eventTime": "2026-01-01T00:00:00.000Z", "pad": "x".repeat(pad) })
    }

    /// The batches of `rows`, parsed back; each one's bytes are exactly serde's encoding of
    /// what they parse to, and the counts on the side agree with them.
    fn split(after: i64, rows: Vec<(i64, Option<Value>)>, cap: usize) -> Vec<Batch> {
        batches(after, rows, cap)
            .map(|e| {
                let b: Batch = serde_json::from_slice(&e.bytes).unwrap();
                assert_eq!(b.encode(), e.bytes);
                assert_eq!(
                    (e.after, e.last, e.events),
                    (b.after, b.last, b.events.len())
                );
                b
            })
            .collect()
    }

    /// Regression (issue 18): a round built all its events (2,000 JSON trees) before the
    /// first batch went out. The first batch now comes once it is full, with one row read
    /// past it, so at most one event exists outside the batches' bytes.
    #[test]
    fn a_batch_is_ready_before_the_rest_of_the_rows_are_read() {
        let pulled = std::cell::Cell::new(0usize);
        let rows = (1..=2000i64).map(|seq| {
            pulled.set(pulled.get() + 1);
            (seq, Some(event(seq, 200)))
        });
        let mut out = batches(0, rows, 4096);
        let first = out.next().unwrap();
        assert!(first.events > 1 && first.events < 100, "{}", first.events);
        assert_eq!(pulled.get(), first.events + 1);
        let rest: Vec<Encoded> = out.collect();
        assert_eq!(pulled.get(), 2000);
        assert_eq!(rest.last().map(|b| b.last), Some(2000));
    }

    #[test]
    fn round_trip_and_checks() {
        let b = Batch {
            v: VERSION,
            after: 3,
            last: 5,
            events: vec![event(4, 0)],
            seqs: vec![4],
            no_event: vec![[5, 5]],
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
        let mut no_id = b.clone();
        no_id.events = vec![json!({"eventTime": "t"})];
        assert_eq!(
            Batch::decode(&no_id.encode(), 1 << 20),
            Err(BatchError::Event(0))
        );
        assert!(Batch::decode(b"{\"v\":1}", 1 << 20).is_err());
        // Version 1 did not account for its sequences: refused.
        let v1 = br#"{"v":1,"after":2,"last":6,"events":[]}"#;
        assert!(Batch::decode(v1, 1 << 20).is_err());
        assert_eq!(Ack::decode(&Ack::new(9).encode()), Ok(Ack::new(9)));
        assert!(Ack::decode(b"{\"v\":2,\"seq\":1}").is_err());
    }

    #[test]
    fn rows_without_event_are_covered() {
        let batches = split(0, vec![(1, None), (2, Some(event(2, 0))), (3, None)], 4096);
        assert_eq!(batches.len(), 1);
        assert_eq!((batches[0].after, batches[0].last), (0, 3));
        assert_eq!(batches[0].events.len(), 1);
        assert_eq!(batches[0].seqs, vec![2]);
        assert_eq!(batches[0].no_event, vec![[1, 1], [3, 3]]);
        assert!(split(7, Vec::new(), 4096).is_empty());
        // Sequences with no row (none in the log) are covered without event too.
        let gaps = split(0, vec![(3, Some(event(3, 0))), (4, None), (9, None)], 4096);
        assert_eq!(gaps[0].no_event, vec![[1, 2], [4, 9]]);
        assert_eq!(gaps[0].check_coverage(), Ok(()));
    }

    fn carried(after: i64, last: i64, seqs: Vec<i64>, no_event: Vec<[i64; 2]>) -> Batch {
        Batch {
            v: VERSION,
            after,
            last,
            events: seqs.iter().map(|s| event(*s, 0)).collect(),
            seqs,
            no_event,
        }
    }

    #[test]
    fn a_batch_claiming_more_than_it_carries_is_refused() {
        // The empty batch "covering" a gap: HQ's mark would pass events it never got.
        let empty = carried(2, 6, vec![], vec![]);
        assert!(matches!(
            Batch::decode(&empty.encode(), 1 << 20),
            Err(BatchError::Coverage { .. })
        ));
        for bad in [
            carried(2, 6, vec![3, 4], vec![]),       // 5 and 6 missing
            carried(2, 6, vec![3, 6], vec![[5, 5]]), // 4 missing
            carried(2, 6, vec![3, 4], vec![[4, 6]]), // 4 twice
            carried(2, 6, vec![2, 3], vec![[4, 6]]), // 2 is before the range
            carried(2, 6, vec![3], vec![[4, 7]]),    // beyond the range
            carried(2, 6, vec![3], vec![[6, 4]]),    // backwards
        ] {
            assert!(bad.check_coverage().is_err(), "{bad:?}");
        }
        let mut uneven = carried(2, 4, vec![3, 4], vec![]);
        uneven.seqs.pop();
        assert!(uneven.check_coverage().is_err());
        assert_eq!(
            carried(2, 6, vec![4], vec![[3, 3], [5, 6]]).check_coverage(),
            Ok(())
        );
        assert_eq!(carried(2, 6, vec![], vec![[3, 6]]).check_coverage(), Ok(()));
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
