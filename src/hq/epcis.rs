//! HQ's side of the EPCIS flow: stores every store writer's EPCIS 2.0 events once (by
//! `eventID`), acknowledges with a retained `hq/epcis-ack/{store}/{writer}` message, and
//! serves them: `GET /v1/epcis/events?store=S&from=&to=&limit=&after=` (an EPCISDocument,
//! paged with `Link: <…&after=N>; rel="next"`). See `crate::sync::node::epcis_link` for the node.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::Value;

use super::db::{Db, Target};
use super::http::{Answer, HttpState, Problem};
use super::state::Outgoing;
use super::warnings::Rejections;
use crate::epcis::batch::{self, Ack, Batch};
use crate::epcis::schema::EventSchema;
use crate::sync::payload::MAX_MESSAGE_BYTES;
use crate::sync::topics::{self, Id, Scope, Topic, TopicSpace};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum HqEpcisError {
    #[error(transparent)]
    Db(#[from] crate::hq::db::DbError),
    #[error(transparent)]
    Topic(#[from] topics::TopicError),
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
    #[error("not an EPCIS batch of a store writer")]
    NotAStoreBatch,
    #[error("writer {writer:?} does not belong to store {store:?}")]
    ForeignWriter { store: String, writer: String },
    #[error("event {index}: {reason}")]
    BadEvent { index: usize, reason: String },
    #[error(transparent)]
    NotEpcis(#[from] crate::epcis::schema::Invalid),
    #[error(transparent)]
    Schema(#[from] crate::epcis::schema::SchemaError),
}

impl HqEpcisError {
    /// The reason as counted and logged (`storenode_hq_rejected_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Db(_) | Self::Schema(_) => "epcis_store",
            Self::Topic(_) => "topic",
            Self::Batch(batch::BatchError::Coverage { .. }) => "epcis_range",
            Self::Batch(_) => "epcis_batch",
            Self::NotAStoreBatch | Self::ForeignWriter { .. } => "epcis_writer",
            Self::BadEvent { .. } | Self::NotEpcis(_) => "epcis_event",
        }
    }
}

pub type SharedEpcis = Arc<Mutex<HqEpcis>>;

pub fn lock(e: &SharedEpcis) -> MutexGuard<'_, HqEpcis> {
    e.lock().unwrap_or_else(PoisonError::into_inner)
}

/// HQ's EPCIS store: its own connection to HQ's database.
pub struct HqEpcis {
    conn: Db,
    topics: TopicSpace,
    /// GS1's EPCIS 2.0 schema, compiled once: every received event is checked against it.
    schema: EventSchema,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Events not stored before.
    pub new: usize,
    /// The writer's contiguous mark after the batch.
    pub mark: i64,
}

impl HqEpcis {
    pub fn open(target: &Target, topics: TopicSpace) -> Result<Self, HqEpcisError> {
        Ok(Self {
            conn: Db::open(target)?,
            topics,
            schema: EventSchema::new()?,
        })
    }

    /// Stores a batch of `store`'s `writer` in one transaction and moves its mark if the
    /// batch continues it. Events already stored are left as they are.
    pub fn receive(
        &mut self,
        store: &str,
        writer: &str,
        batch: &Batch,
    ) -> Result<Received, HqEpcisError> {
        let now = crate::clock::now_utc();
        let tx = self.conn.begin()?;
        // HQ instances share the batches: one writer's marks move under its own lock, so two
        // batches handled at once cannot move its mark back.
        tx.lock_document(&format!("{store}/{writer}/epcis"))?;
        let mut new = 0;
        for (index, event) in batch.events.iter().enumerate() {
            let bad = |reason: &str| HqEpcisError::BadEvent {
                index,
                reason: reason.to_string(),
            };
            let id = batch::event_id(event).ok_or_else(|| bad("no eventID"))?;
            let time = event["eventTime"]
                .as_str()
                .ok_or_else(|| bad("no eventTime"))?;
            let time =
                crate::epcis::normalize_time("eventTime", time).map_err(|e| bad(&e.to_string()))?;
            let inserted = tx.execute(
                "INSERT INTO hq_epcis_event (event_id, store, writer, event_time, event, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(event_id) DO NOTHING",
                &[&id, &store, &writer, &time, &event.to_string(), &now],
            )?;
            new += usize::try_from(inserted).unwrap_or(usize::MAX);
        }
        let mark: i64 = tx
            .query_opt(
                "SELECT seq FROM hq_epcis_mark WHERE store = ?1 AND writer = ?2",
                &[&store, &writer],
                |r| r.get(0),
            )?
            .unwrap_or(0);
        // A batch beyond the mark means an earlier one is missing: keep its events, but
        // acknowledge only what is contiguous, so the writer re-sends the gap.
        let mark = if batch.after <= mark {
            mark.max(batch.last)
        } else {
            mark
        };
        tx.execute(
            "INSERT INTO hq_epcis_mark (store, writer, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT(store, writer) DO UPDATE SET seq = excluded.seq",
            &[&store, &writer, &mark],
        )?;
        tx.commit()?;
        Ok(Received { new, mark })
    }

    /// Handles a received `epcis` message; returns the retained acknowledgement.
    pub fn handle(&mut self, topic: &Topic, payload: &[u8]) -> Result<Outgoing, HqEpcisError> {
        let Topic::Epcis {
            scope: Scope::Store(store),
            writer,
            ..
        } = topic
        else {
            return Err(HqEpcisError::NotAStoreBatch);
        };
        // The broker's ACL ties the scope to the store's certificate; the writer must be one
        // of that store's (`{store}.{node}`), as for its document changes.
        if !writer
            .as_str()
            .strip_prefix(store.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
        {
            return Err(HqEpcisError::ForeignWriter {
                store: store.to_string(),
                writer: writer.to_string(),
            });
        }
        // Checked whole before anything is stored: its range is accounted for (`decode`)
        // and every event is EPCIS 2.0, so the export stays valid and the mark honest.
        let batch = Batch::decode(payload, MAX_MESSAGE_BYTES)?;
        self.schema.check(&batch.events)?;
        let received = self.receive(store.as_str(), writer.as_str(), &batch)?;
        tracing::debug!(store = %store, writer = %writer, new = received.new, mark = received.mark, "EPCIS batch stored");
        Ok(self.ack(store, writer, received.mark))
    }

    fn ack(&self, store: &Id, writer: &Id, seq: i64) -> Outgoing {
        Outgoing {
            topic: self.topics.epcis_ack(store, writer).to_string(),
            payload: Ack::new(seq).encode(),
            retain: true,
        }
    }

    /// Stored events in arrival order (`id` > `after`), optionally of one store and time window.
    pub fn events(&self, q: &EventQuery) -> Result<Vec<(i64, Value)>, HqEpcisError> {
        let rows = self.conn.query(
            "SELECT id, event FROM hq_epcis_event
              WHERE id > ?1 AND (CAST(?2 AS TEXT) IS NULL OR store = ?2)
                AND (CAST(?3 AS TEXT) IS NULL OR event_time >= ?3) AND (CAST(?4 AS TEXT) IS NULL OR event_time < ?4)
              ORDER BY id LIMIT ?5",
            &[&q.after, &q.store, &q.from, &q.to, &q.limit],
            |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)),
        )?;
        // Stored from parsed JSON, so it parses back; a row that would not is skipped.
        Ok(rows
            .into_iter()
            .filter_map(|(id, text)| serde_json::from_str(&text).ok().map(|v| (id, v)))
            .collect())
    }
}

/// Whether a received topic is an `epcis` batch (routed here, not to the documents).
pub fn is_epcis_topic(topic: &str) -> bool {
    matches!(topics::parse(topic), Ok(Topic::Epcis { .. }))
}

pub async fn on_message(
    epcis: &SharedEpcis,
    rejections: &Rejections,
    topic: String,
    payload: bytes::Bytes,
) -> Vec<Outgoing> {
    let epcis = epcis.clone();
    let shown = topic.clone();
    let handled = tokio::task::spawn_blocking(move || {
        let parsed = topics::parse(&topic)?;
        lock(&epcis).handle(&parsed, &payload)
    })
    .await;
    match handled {
        Ok(Ok(ack)) => vec![ack],
        Ok(Err(e)) => {
            rejections.reject(&shown, e.reason(), &e);
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "EPCIS batch handler failed");
            Vec::new()
        }
    }
}

// ---- HTTP ----

/// The validated query of `GET /v1/epcis/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub store: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub after: i64,
    pub limit: u32,
}

fn bad(field: &str, message: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, message).field(field)
}

fn parse_query(pairs: &[(String, String)]) -> Result<EventQuery, Problem> {
    let mut q = EventQuery {
        store: None,
        from: None,
        to: None,
        after: 0,
        limit: DEFAULT_LIMIT,
    };
    for (key, value) in pairs {
        let time = |field: &'static str| {
            crate::epcis::normalize_time(field, value).map_err(|e| bad(field, e.to_string()))
        };
        match key.as_str() {
            "store" => q.store = Some(value.clone()),
            "from" => q.from = Some(time("from")?),
            "to" => q.to = Some(time("to")?),
            "after" => {
                q.after = value
                    .parse()
                    .map_err(|_| bad("after", format!("after: not a number: {value:?}")))?
            }
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad("limit", format!("limit: give 1 to {MAX_LIMIT}")))?
            }
            other => return Err(bad(other, format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(q)
}

fn next_link(pairs: &[(String, String)], after: i64) -> Option<HeaderValue> {
    let mut parts: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k != "after")
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    parts.push(format!("after={after}"));
    HeaderValue::from_str(&format!(
        "</v1/epcis/events?{}>; rel=\"next\"",
        parts.join("&")
    ))
    .ok()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Stores' GS1 EPCIS 2.0 events, as an EPCIS document (`Link: rel="next"` when more).
#[utoipa::path(get, path = "/v1/epcis/events", tag = "epcis",
    params(("store" = Option<String>, Query),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("after" = Option<i64>, Query, description = "The `next` link's cursor")),
    responses((status = 200, body = Object, description = "An EPCIS 2.0 document")))]
pub async fn events(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Answer {
    let auth = state.authorise(&headers)?;
    let query = parse_query(&pairs)?;
    let limit = query.limit as usize;
    // One row more than the page: a `next` link only when there is a next page, so a
    // client may stop at the first page without one (or at a short page).
    let probe = EventQuery {
        limit: query.limit.saturating_add(1),
        ..query
    };
    let mut rows = auth
        .epcis(move |epcis| epcis.events(&probe))
        .await?
        .map_err(Problem::internal)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let last = rows.last().map(|(id, _)| *id);
    let doc = crate::epcis::document(
        rows.into_iter().map(|(_, e)| e).collect(),
        &crate::clock::now_utc(),
        0,
    );
    let mut response = Json(doc).into_response();
    if let Some(link) = last.filter(|_| more).and_then(|l| next_link(&pairs, l)) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hq() -> (crate::hq::db::testing::TestDb, HqEpcis) {
        let dir = crate::hq::db::testing::TestDb::new();
        let topics = TopicSpace::new(Id::new("acme").unwrap());
        let epcis = HqEpcis::open(&dir.target, topics).unwrap();
        (dir, epcis)
    }

    fn event(n: u32) -> Value {
        json!({ "type": "ObjectEvent", "eventID": format!("ni:///sha-256;{n}"),
                "eventTime": format!("2026-01-01T00:00:0{n}.000Z"),
                "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
                "epcList": [format!("urn:epc:id:sgtin:4012345.000010.{n}")] })
    }

    /// A batch of `events` at sequences `after+1 ..`, the rest of the range without event.
    fn batch(after: i64, last: i64, events: Vec<Value>) -> Batch {
        let seqs: Vec<i64> = (after + 1..).take(events.len()).collect();
        let end = seqs.last().copied().unwrap_or(after);
        Batch {
            v: batch::VERSION,
            after,
            last,
            events,
            seqs,
            no_event: if end < last {
                vec![[end + 1, last]]
            } else {
                Vec::new()
            },
        }
    }

    fn s1_topic() -> Topic {
        topics::parse("storenode/v1/acme/s1/epcis/s1.lane1").unwrap()
    }

    fn mark(hq: &HqEpcis) -> i64 {
        hq.conn
            .query_one("SELECT seq FROM hq_epcis_mark", &[], |r| r.get(0))
            .unwrap()
    }

    // Failed before the fix: the event was stored (and the export failed the schema).
    #[test]
    fn an_event_that_is_not_epcis_2_is_refused_with_its_batch() {
        let (_dir, mut hq) = hq();
        let mut broken = event(2);
        broken["action"] = json!("STEAL");
        let payload = batch(0, 2, vec![event(1), broken]).encode();
        let refused = hq.handle(&s1_topic(), &payload).unwrap_err();
        assert!(matches!(refused, HqEpcisError::NotEpcis(_)), "{refused}");
        assert_eq!(refused.reason(), "epcis_event");
        assert!(hq.events(&query()).unwrap().is_empty(), "nothing stored");
        let ack = hq
            .handle(&s1_topic(), &batch(0, 2, vec![event(1), event(2)]).encode())
            .unwrap();
        assert_eq!(Ack::decode(&ack.payload).unwrap().seq, 2);
    }

    // Failed before the fix: the empty batch moved the mark to 6, so 3 and 4 never came.
    #[test]
    fn an_empty_batch_claiming_a_gap_does_not_move_the_mark() {
        let (_dir, mut hq) = hq();
        hq.handle(&s1_topic(), &batch(0, 2, vec![event(1), event(2)]).encode())
            .unwrap();
        hq.handle(&s1_topic(), &batch(4, 6, vec![event(5), event(6)]).encode())
            .unwrap();
        let mut claim = batch(2, 6, Vec::new());
        claim.no_event.clear();
        let refused = hq.handle(&s1_topic(), &claim.encode()).unwrap_err();
        assert_eq!(refused.reason(), "epcis_range", "{refused}");
        let v1 = br#"{"v":1,"after":2,"last":6,"events":[]}"#;
        assert!(hq.handle(&s1_topic(), v1).is_err());
        assert_eq!(mark(&hq), 2);
        let ack = hq
            .handle(&s1_topic(), &batch(2, 4, vec![event(3), event(4)]).encode())
            .unwrap();
        assert_eq!(Ack::decode(&ack.payload).unwrap().seq, 4);
    }

    fn query() -> EventQuery {
        EventQuery {
            store: Some("s1".into()),
            from: None,
            to: None,
            after: 0,
            limit: 100,
        }
    }

    #[test]
    fn duplicates_are_stored_once_and_the_mark_is_contiguous() {
        let (_dir, mut hq) = hq();
        let first = batch(0, 2, vec![event(1), event(2)]);
        assert_eq!(
            hq.receive("s1", "s1.lane1", &first).unwrap(),
            Received { new: 2, mark: 2 }
        );
        assert_eq!(
            hq.receive("s1", "s1.lane1", &first).unwrap(),
            Received { new: 0, mark: 2 }
        );
        // 3..=4 lost; 5..=6 arrives: stored, mark stays.
        let late = batch(4, 6, vec![event(5)]);
        assert_eq!(
            hq.receive("s1", "s1.lane1", &late).unwrap(),
            Received { new: 1, mark: 2 }
        );
        let gap = batch(2, 4, vec![event(3)]);
        assert_eq!(
            hq.receive("s1", "s1.lane1", &gap).unwrap(),
            Received { new: 1, mark: 4 }
        );
        assert_eq!(
            hq.receive("s1", "s1.lane1", &late).unwrap(),
            Received { new: 0, mark: 6 }
        );
        assert_eq!(hq.events(&query()).unwrap().len(), 4);
    }

    #[test]
    fn writers_of_other_stores_are_refused() {
        let (_dir, mut hq) = hq();
        let topic = topics::parse("storenode/v1/acme/s1/epcis/s2.lane1").unwrap();
        let payload = batch(0, 1, vec![event(1)]).encode();
        assert!(matches!(
            hq.handle(&topic, &payload),
            Err(HqEpcisError::ForeignWriter { .. })
        ));
        let topic = topics::parse("storenode/v1/acme/s1/epcis/s1.lane1").unwrap();
        let ack = hq.handle(&topic, &payload).unwrap();
        assert_eq!(ack.topic, "storenode/v1/acme/hq/epcis-ack/s1/s1.lane1");
        assert!(ack.retain);
        assert_eq!(Ack::decode(&ack.payload).unwrap().seq, 1);
    }

    #[test]
    fn time_window_store_and_paging() {
        let (_dir, mut hq) = hq();
        hq.receive(
            "s1",
            "s1.lane1",
            &batch(0, 3, vec![event(1), event(2), event(3)]),
        )
        .unwrap();
        hq.receive("s2", "s2.lane1", &batch(0, 1, vec![event(4)]))
            .unwrap();
        let mut q = query();
        q.from = Some("2026-01-01T00:00:02.000Z".into());
        q.to = Some("2026-01-01T00:00:03.000Z".into());
        let got = hq.events(&q).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1["eventID"], "ni:///sha-256;2");
        let mut q = query();
        q.limit = 2;
        let page = hq.events(&q).unwrap();
        assert_eq!(page.len(), 2);
        q.after = page[1].0;
        assert_eq!(hq.events(&q).unwrap().len(), 1);
    }

    #[test]
    fn bad_query_names_the_field() {
        for (k, v) in [
            ("from", "x"),
            ("limit", "0"),
            ("after", "y"),
            ("shop", "s1"),
        ] {
            let pairs = vec![(k.to_string(), v.to_string())];
            let response = parse_query(&pairs).unwrap_err();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{k}");
        }
    }
}
