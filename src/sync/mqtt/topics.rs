//! The MQTT topic layout of storenode sync, in one place.
//!
//! Every topic starts with `storenode/v1/{tenant}/{scope}/{kind}`. `scope` is the party
//! that *publishes* under it: a store id, or the reserved word `hq`. The kind keyword sits
//! at a fixed position, before any document or writer id, so that no id can be mistaken
//! for a keyword (a document called `status` stays a document) and so that one wildcard
//! filter per kind selects exactly that kind.
//!
//! | topic                                                          | who writes          | QoS | retained | meaning                                                     |
//! |----------------------------------------------------------------|---------------------|-----|----------|-------------------------------------------------------------|
//! | `storenode/v1/{t}/{scope}/changes/{doc}/{writer}`              | writers of `scope`  | 1   | no       | new automerge changes of `scope`'s document `doc`           |
//! | `storenode/v1/{t}/hq/changes/{store}/{doc}/{writer}`           | HQ only             | 1   | no       | HQ's changes of `store`'s document `doc` (orders, epochs)  |
//! | `storenode/v1/{t}/{scope}/heads/{doc_scope}/{doc}/{writer}`    | writers of `scope`  | 1   | yes      | the heads `writer` holds of document (`doc_scope`, `doc`)    |
//! | `storenode/v1/{t}/{scope}/status/{writer}`                     | writers of `scope`  | 1   | yes      | `online` on connect; last will `offline`                    |
//! | `storenode/v1/{t}/{scope}/req/{writer}`                        | writers of `scope`  | 1   | no       | `writer` asks HQ for missing changes (MQTT 5 response topic) |
//! | `storenode/v1/{t}/{scope}/resp/{writer}`                       | HQ only             | 1   | no       | HQ's answer to `writer`'s request                           |
//! | `storenode/v1/{t}/{scope}/pii/{store}/{order}`                 | HQ, lanes of `store`| 1   | yes      | customer data of `store`'s order, or its erasure tombstone (src/privacy) |
//! | `storenode/v1/{t}/{scope}/epcis/{writer}`                      | writers of `scope`  | 1   | no       | a batch of `writer`'s EPCIS 2.0 events (src/sync/node/epcis_link.rs) |
//! | `storenode/v1/{t}/hq/epcis-ack/{store}/{writer}`               | HQ only             | 1   | yes      | the last EPCIS event sequence of `writer` that HQ stored     |
//!
//! Who uses what:
//! - a store's lanes publish `changes` and `heads` of their store's documents under their
//!   own scope; the other lanes and HQ subscribe to them;
//! - HQ publishes catalog, prices and online orders as documents of scope `hq`
//!   (`storenode/v1/{t}/hq/changes/catalog/{hq-writer}`); its changes of a store's own
//!   documents (online orders, stock epoch announcements) name the store
//!   (`storenode/v1/{t}/hq/changes/{store}/orders/{hq-writer}`), so a store subscribes only
//!   to its own and the ACL denies it the others'; and announces what it has of
//!   every store document with `storenode/v1/{t}/hq/heads/{store}/{doc}/{hq-writer}`: that
//!   retained message is the end-to-end acknowledgement which lets a store drop a change
//!   from its durable outbox;
//! - a store lane announces what it has of HQ's documents with
//!   `storenode/v1/{t}/{store}/heads/hq/{doc}/{writer}`, HQ's acknowledgement in return;
//! - requests go from `{scope}/req/{writer}` (HQ subscribes `storenode/v1/{t}/+/req/+`) and
//!   the answer comes back on `{scope}/resp/{writer}`.
//!
//! ACLs stay simple because the publisher's identity is the scope segment: a store whose
//! certificate CN is its store id may write `storenode/v1/{t}/%u/{changes,heads,status,req}/#`,
//! and HQ (CN `hq`) writes under `storenode/v1/{t}/hq/...` and to `+/resp/#`. See
//! `config/mosquitto/acl`.
//!
//! Ids (tenant, store, document, writer) are one topic segment each: 1 to [`MAX_ID_LEN`]
//! bytes of ASCII letters, digits, `-`, `_` and `.`. That excludes the MQTT specials `/`,
//! `+`, `#`, a leading `$`, and anything that Mosquitto's `%u` pattern substitution or a
//! certificate CN would treat differently. A store may not be called `hq`.

use std::fmt;
use std::str::FromStr;

/// The first two segments of every storenode topic; `v1` changes only when the layout does.
pub const PREFIX: &str = "storenode/v1";
/// The reserved scope of the HQ aggregator.
pub const HQ_SCOPE: &str = "hq";
/// Longest id accepted in one segment. Keeps topics well below broker limits and makes
/// the id usable as a certificate CN (at most 64 characters).
pub const MAX_ID_LEN: usize = crate::domain::ids::MAX_SEGMENT_LEN;

/// Why a topic or an id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("empty id: every topic segment needs at least one character")]
    EmptyId,
    #[error("id of {len} bytes is longer than the {MAX_ID_LEN} allowed")]
    IdTooLong { len: usize },
    #[error(
        "id {id:?} contains {found:?}: only ASCII letters, digits, '-', '_' and '.' are allowed"
    )]
    InvalidIdChar { id: String, found: char },
    #[error("store id {HQ_SCOPE:?} is reserved for the HQ scope")]
    ReservedStoreId,
    #[error("topic {topic:?} does not start with {PREFIX:?}")]
    WrongPrefix { topic: String },
    #[error(
        "topic {topic:?} has an unknown kind {kind:?} (expected changes, heads, status, req, resp, pii, epcis or epcis-ack)"
    )]
    UnknownKind { topic: String, kind: String },
    #[error("topic {topic:?} has {found} segments, a {kind} topic has {expected}")]
    WrongSegmentCount {
        topic: String,
        kind: &'static str,
        expected: usize,
        found: usize,
    },
}

/// One validated topic segment (tenant, store, document or writer id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(String);

impl Id {
    /// Validates `id` as a topic segment (see the module documentation for the rules).
    pub fn new(id: impl Into<String>) -> Result<Id, TopicError> {
        let id = id.into();
        validate_id(&id)?;
        Ok(Id(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_id(id: &str) -> Result<(), TopicError> {
    if id.is_empty() {
        return Err(TopicError::EmptyId);
    }
    if id.len() > MAX_ID_LEN {
        return Err(TopicError::IdTooLong { len: id.len() });
    }
    match id.chars().find(|c| !is_id_char(*c)) {
        Some(found) => Err(TopicError::InvalidIdChar {
            id: id.to_owned(),
            found,
        }),
        None => Ok(()),
    }
}

fn is_id_char(c: char) -> bool {
    crate::domain::ids::is_segment_char(c)
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Id {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Id, TopicError> {
        Id::new(s)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Who publishes under a topic (and, for heads, whose document it is).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Hq,
    Store(Id),
}

impl Scope {
    /// A store scope; `hq` is refused because it would alias HQ's topics.
    pub fn store(id: Id) -> Result<Scope, TopicError> {
        if id.as_str() == HQ_SCOPE {
            return Err(TopicError::ReservedStoreId);
        }
        Ok(Scope::Store(id))
    }

    /// Reads a scope segment: `hq` is HQ, any other valid id a store.
    pub fn parse(segment: &str) -> Result<Scope, TopicError> {
        if segment == HQ_SCOPE {
            return Ok(Scope::Hq);
        }
        Ok(Scope::Store(Id::new(segment)?))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Scope::Hq => HQ_SCOPE,
            Scope::Store(id) => id.as_str(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed storenode topic. `Display` renders the topic string; [`parse`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// New changes of `doc_scope`'s document `doc`, published by `writer` of `scope`.
    /// `doc_scope` is the publisher's own scope except for HQ's changes of a store's
    /// documents (its orders, epoch announcements), which carry the store in the topic so a
    /// store subscribes to, and the ACL lets it read, only its own.
    Changes {
        tenant: Id,
        scope: Scope,
        doc_scope: Scope,
        doc: Id,
        writer: Id,
    },
    /// Retained: the heads `writer` (publishing under `scope`) holds of `doc_scope`'s `doc`.
    Heads {
        tenant: Id,
        scope: Scope,
        doc_scope: Scope,
        doc: Id,
        writer: Id,
    },
    /// Retained: `online`, or the last will `offline`.
    Status {
        tenant: Id,
        scope: Scope,
        writer: Id,
    },
    /// A writer's request to HQ for missing changes.
    Request {
        tenant: Id,
        scope: Scope,
        writer: Id,
    },
    /// HQ's answer to a writer's request.
    Response {
        tenant: Id,
        scope: Scope,
        writer: Id,
    },
    /// Retained: customer data (personal data, kept out of CRDT history) of `store`'s order
    /// `order`, or its erasure tombstone. See `crate::privacy`.
    Pii {
        tenant: Id,
        scope: Scope,
        store: Id,
        order: Id,
    },
    /// A batch of `writer`'s EPCIS events, published under its store's scope.
    Epcis {
        tenant: Id,
        scope: Scope,
        writer: Id,
    },
    /// Retained: the last EPCIS event sequence of `store`'s `writer` that HQ (`scope`) stored.
    EpcisAck {
        tenant: Id,
        scope: Scope,
        store: Id,
        writer: Id,
    },
}

impl Topic {
    /// Whether messages on this topic are published retained (the latest state matters,
    /// not the history).
    pub fn is_retained(&self) -> bool {
        matches!(
            self,
            Topic::Heads { .. } | Topic::Status { .. } | Topic::Pii { .. } | Topic::EpcisAck { .. }
        )
    }

    pub fn tenant(&self) -> &Id {
        match self {
            Topic::Changes { tenant, .. }
            | Topic::Heads { tenant, .. }
            | Topic::Status { tenant, .. }
            | Topic::Request { tenant, .. }
            | Topic::Response { tenant, .. }
            | Topic::Pii { tenant, .. }
            | Topic::Epcis { tenant, .. }
            | Topic::EpcisAck { tenant, .. } => tenant,
        }
    }

    /// The publisher's scope, which the broker ACL has checked against its certificate.
    pub fn scope(&self) -> &Scope {
        match self {
            Topic::Changes { scope, .. }
            | Topic::Heads { scope, .. }
            | Topic::Status { scope, .. }
            | Topic::Request { scope, .. }
            | Topic::Response { scope, .. }
            | Topic::Pii { scope, .. }
            | Topic::Epcis { scope, .. }
            | Topic::EpcisAck { scope, .. } => scope,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Changes {
                tenant,
                scope,
                doc_scope,
                doc,
                writer,
            } if doc_scope == scope => {
                write!(f, "{PREFIX}/{tenant}/{scope}/{CHANGES}/{doc}/{writer}")
            }
            Topic::Changes {
                tenant,
                scope,
                doc_scope,
                doc,
                writer,
            } => write!(
                f,
                "{PREFIX}/{tenant}/{scope}/{CHANGES}/{doc_scope}/{doc}/{writer}"
            ),
            Topic::Heads {
                tenant,
                scope,
                doc_scope,
                doc,
                writer,
            } => write!(
                f,
                "{PREFIX}/{tenant}/{scope}/{HEADS}/{doc_scope}/{doc}/{writer}"
            ),
            Topic::Status {
                tenant,
                scope,
                writer,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{STATUS}/{writer}"),
            Topic::Request {
                tenant,
                scope,
                writer,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{REQUEST}/{writer}"),
            Topic::Response {
                tenant,
                scope,
                writer,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{RESPONSE}/{writer}"),
            Topic::Pii {
                tenant,
                scope,
                store,
                order,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{PII}/{store}/{order}"),
            Topic::Epcis {
                tenant,
                scope,
                writer,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{EPCIS}/{writer}"),
            Topic::EpcisAck {
                tenant,
                scope,
                store,
                writer,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{EPCIS_ACK}/{store}/{writer}"),
        }
    }
}

const CHANGES: &str = "changes";
const HEADS: &str = "heads";
const STATUS: &str = "status";
const REQUEST: &str = "req";
const RESPONSE: &str = "resp";
const PII: &str = "pii";
const EPCIS: &str = "epcis";
const EPCIS_ACK: &str = "epcis-ack";

/// Segments before the kind-specific part: `storenode`, `v1`, tenant, scope, kind.
const HEADER_SEGMENTS: usize = 5;

/// Parses and validates a topic received from the broker.
pub fn parse(topic: &str) -> Result<Topic, TopicError> {
    let rest = topic
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| TopicError::WrongPrefix {
            topic: topic.to_owned(),
        })?;
    let segments: Vec<&str> = rest.split('/').collect();
    let [tenant, scope, kind, ids @ ..] = segments.as_slice() else {
        return Err(TopicError::WrongSegmentCount {
            topic: topic.to_owned(),
            kind: "storenode",
            expected: HEADER_SEGMENTS + 1,
            found: segments.len() + 2,
        });
    };
    let tenant = Id::new(*tenant)?;
    let scope = Scope::parse(scope)?;
    let count_error = |kind: &'static str, ids_expected: usize| TopicError::WrongSegmentCount {
        topic: topic.to_owned(),
        kind,
        expected: HEADER_SEGMENTS + ids_expected,
        found: HEADER_SEGMENTS + ids.len(),
    };
    match *kind {
        CHANGES => match ids {
            [doc, writer] => Ok(Topic::Changes {
                tenant,
                doc_scope: scope.clone(),
                scope,
                doc: Id::new(*doc)?,
                writer: Id::new(*writer)?,
            }),
            [doc_scope, doc, writer] => Ok(Topic::Changes {
                tenant,
                scope,
                doc_scope: Scope::parse(doc_scope)?,
                doc: Id::new(*doc)?,
                writer: Id::new(*writer)?,
            }),
            _ => Err(count_error(CHANGES, 2)),
        },
        HEADS => match ids {
            [doc_scope, doc, writer] => Ok(Topic::Heads {
                tenant,
                scope,
                doc_scope: Scope::parse(doc_scope)?,
                doc: Id::new(*doc)?,
                writer: Id::new(*writer)?,
            }),
            _ => Err(count_error(HEADS, 3)),
        },
        PII => match ids {
            [store, order] => Ok(Topic::Pii {
                tenant,
                scope,
                store: Id::new(*store)?,
                order: Id::new(*order)?,
            }),
            _ => Err(count_error(PII, 2)),
        },
        EPCIS => match ids {
            [writer] => Ok(Topic::Epcis {
                tenant,
                scope,
                writer: Id::new(*writer)?,
            }),
            _ => Err(count_error(EPCIS, 1)),
        },
        EPCIS_ACK => match ids {
            [store, writer] => Ok(Topic::EpcisAck {
                tenant,
                scope,
                store: Id::new(*store)?,
                writer: Id::new(*writer)?,
            }),
            _ => Err(count_error(EPCIS_ACK, 2)),
        },
        STATUS | REQUEST | RESPONSE => {
            let [writer] = ids else {
                return Err(count_error(kind_name(kind), 1));
            };
            let writer = Id::new(*writer)?;
            Ok(match *kind {
                STATUS => Topic::Status {
                    tenant,
                    scope,
                    writer,
                },
                REQUEST => Topic::Request {
                    tenant,
                    scope,
                    writer,
                },
                _ => Topic::Response {
                    tenant,
                    scope,
                    writer,
                },
            })
        }
        other => Err(TopicError::UnknownKind {
            topic: topic.to_owned(),
            kind: other.to_owned(),
        }),
    }
}

/// The `'static` name of a one-writer kind, for error messages.
fn kind_name(kind: &str) -> &'static str {
    match kind {
        STATUS => STATUS,
        REQUEST => REQUEST,
        _ => RESPONSE,
    }
}

/// Topic and filter builders for one tenant, so call sites never format topics by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpace {
    tenant: Id,
}

/// `+` in a filter where `None` is given: any scope.
fn scope_or_any(scope: Option<&Scope>) -> &str {
    scope.map_or("+", Scope::as_str)
}

impl TopicSpace {
    pub fn new(tenant: Id) -> TopicSpace {
        TopicSpace { tenant }
    }

    pub fn tenant(&self) -> &Id {
        &self.tenant
    }

    pub fn changes(&self, scope: &Scope, doc: &Id, writer: &Id) -> Topic {
        self.changes_about(scope, scope, doc, writer)
    }

    /// Changes `scope` publishes of `doc_scope`'s document: HQ's of a store's orders.
    pub fn changes_about(&self, scope: &Scope, doc_scope: &Scope, doc: &Id, writer: &Id) -> Topic {
        Topic::Changes {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            doc_scope: doc_scope.clone(),
            doc: doc.clone(),
            writer: writer.clone(),
        }
    }

    pub fn heads(&self, scope: &Scope, doc_scope: &Scope, doc: &Id, writer: &Id) -> Topic {
        Topic::Heads {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            doc_scope: doc_scope.clone(),
            doc: doc.clone(),
            writer: writer.clone(),
        }
    }

    pub fn status(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Status {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    pub fn request(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Request {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    pub fn response(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Response {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    /// Changes of every document published under `scope` (`None`: every scope; HQ uses this).
    pub fn changes_filter(&self, scope: Option<&Scope>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        format!("{PREFIX}/{tenant}/{scope}/{CHANGES}/+/+")
    }

    /// Changes `scope` publishes of documents of `doc_scope` (another scope than its own).
    /// A store reads HQ's changes of its own documents with
    /// `changes_about_filter(Some(&Scope::Hq), Some(&own))`.
    pub fn changes_about_filter(&self, scope: Option<&Scope>, doc_scope: Option<&Scope>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        let doc_scope = scope_or_any(doc_scope);
        format!("{PREFIX}/{tenant}/{scope}/{CHANGES}/{doc_scope}/+/+")
    }

    /// Heads published under `scope` about documents of `doc_scope` (`None`: any).
    /// A store watching HQ's acknowledgements uses `heads_filter(Some(&Scope::Hq), Some(&own))`.
    pub fn heads_filter(&self, scope: Option<&Scope>, doc_scope: Option<&Scope>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        let doc_scope = scope_or_any(doc_scope);
        format!("{PREFIX}/{tenant}/{scope}/{HEADS}/{doc_scope}/+/+")
    }

    /// Status of every writer under `scope` (`None`: every scope).
    pub fn status_filter(&self, scope: Option<&Scope>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        format!("{PREFIX}/{tenant}/{scope}/{STATUS}/+")
    }

    pub fn pii(&self, scope: &Scope, store: &Id, order: &Id) -> Topic {
        Topic::Pii {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            store: store.clone(),
            order: order.clone(),
        }
    }

    /// Customer data published under `scope` about orders of `store` (`None`: any).
    /// A store lane reads HQ's with `pii_filter(Some(&Scope::Hq), Some(&own))`.
    pub fn pii_filter(&self, scope: Option<&Scope>, store: Option<&Id>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        let store = store.map_or("+", Id::as_str);
        format!("{PREFIX}/{tenant}/{scope}/{PII}/{store}/+")
    }

    pub fn epcis(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Epcis {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    pub fn epcis_ack(&self, store: &Id, writer: &Id) -> Topic {
        Topic::EpcisAck {
            tenant: self.tenant.clone(),
            scope: Scope::Hq,
            store: store.clone(),
            writer: writer.clone(),
        }
    }

    /// EPCIS event batches of every store's writers: HQ's subscription.
    pub fn epcis_filter(&self) -> String {
        let tenant = &self.tenant;
        format!("{PREFIX}/{tenant}/+/{EPCIS}/+")
    }

    /// HQ's acknowledgement of one writer's EPCIS events: that writer's subscription.
    pub fn epcis_ack_filter(&self, store: &Id, writer: &Id) -> String {
        self.epcis_ack(store, writer).to_string()
    }

    /// Every writer's requests: HQ's subscription.
    pub fn requests_filter(&self) -> String {
        let tenant = &self.tenant;
        format!("{PREFIX}/{tenant}/+/{REQUEST}/+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn space() -> TopicSpace {
        TopicSpace::new(id("acme"))
    }

    fn store(s: &str) -> Scope {
        Scope::store(id(s)).unwrap()
    }

    #[test]
    fn builds_the_documented_topics() {
        let t = space();
        let s = store("s042");
        assert_eq!(
            t.changes(&s, &id("stock"), &id("lane1")).to_string(),
            "storenode/v1/acme/s042/changes/stock/lane1"
        );
        assert_eq!(
            t.heads(&Scope::Hq, &s, &id("stock"), &id("hq1"))
                .to_string(),
            "storenode/v1/acme/hq/heads/s042/stock/hq1"
        );
        assert_eq!(
            t.status(&s, &id("lane1")).to_string(),
            "storenode/v1/acme/s042/status/lane1"
        );
        assert_eq!(
            t.request(&s, &id("lane1")).to_string(),
            "storenode/v1/acme/s042/req/lane1"
        );
        assert_eq!(
            t.response(&s, &id("lane1")).to_string(),
            "storenode/v1/acme/s042/resp/lane1"
        );
    }

    #[test]
    fn builds_filters() {
        let t = space();
        let s = store("s042");
        assert_eq!(t.changes_filter(None), "storenode/v1/acme/+/changes/+/+");
        assert_eq!(
            t.changes_filter(Some(&Scope::Hq)),
            "storenode/v1/acme/hq/changes/+/+"
        );
        assert_eq!(
            t.heads_filter(Some(&Scope::Hq), Some(&s)),
            "storenode/v1/acme/hq/heads/s042/+/+"
        );
        assert_eq!(t.status_filter(None), "storenode/v1/acme/+/status/+");
        assert_eq!(t.requests_filter(), "storenode/v1/acme/+/req/+");
    }

    #[test]
    fn epcis_topics_round_trip() {
        let t = space();
        let batch = t.epcis(&store("s042"), &id("s042.lane1"));
        assert_eq!(batch.to_string(), "storenode/v1/acme/s042/epcis/s042.lane1");
        assert!(!batch.is_retained());
        assert_eq!(parse(&batch.to_string()), Ok(batch));
        let ack = t.epcis_ack(&id("s042"), &id("s042.lane1"));
        assert_eq!(
            ack.to_string(),
            "storenode/v1/acme/hq/epcis-ack/s042/s042.lane1"
        );
        assert!(ack.is_retained());
        assert_eq!(ack.scope(), &Scope::Hq);
        assert_eq!(parse(&ack.to_string()), Ok(ack));
        assert_eq!(t.epcis_filter(), "storenode/v1/acme/+/epcis/+");
        assert!(matches!(
            parse("storenode/v1/acme/s042/epcis/a/b"),
            Err(TopicError::WrongSegmentCount { .. })
        ));
        assert!(matches!(
            parse("storenode/v1/acme/hq/epcis-ack/s042"),
            Err(TopicError::WrongSegmentCount { .. })
        ));
    }

    #[test]
    fn parses_hq_heads_of_a_store_document() {
        let topic = parse("storenode/v1/acme/hq/heads/s042/stock/hq1").unwrap();
        assert_eq!(
            topic,
            Topic::Heads {
                tenant: id("acme"),
                scope: Scope::Hq,
                doc_scope: store("s042"),
                doc: id("stock"),
                writer: id("hq1"),
            }
        );
        assert!(topic.is_retained());
        assert_eq!(topic.scope(), &Scope::Hq);
    }

    #[test]
    fn hq_changes_of_a_store_document_name_the_store() {
        let t = space();
        let topic = t.changes_about(&Scope::Hq, &store("s042"), &id("orders"), &id("hq"));
        assert_eq!(
            topic.to_string(),
            "storenode/v1/acme/hq/changes/s042/orders/hq"
        );
        assert_eq!(parse(&topic.to_string()), Ok(topic));
        assert_eq!(
            t.changes_about_filter(Some(&Scope::Hq), Some(&store("s042"))),
            "storenode/v1/acme/hq/changes/s042/+/+"
        );
        // The own-scope form keeps the short layout (catalog, a lane's own documents).
        assert_eq!(
            t.changes_about(&Scope::Hq, &Scope::Hq, &id("catalog"), &id("hq"))
                .to_string(),
            "storenode/v1/acme/hq/changes/catalog/hq"
        );
        assert_eq!(
            parse("storenode/v1/acme/s1/changes/s1/stock/w"),
            Ok(t.changes(&store("s1"), &id("stock"), &id("w")))
        );
    }

    #[test]
    fn a_document_named_like_a_kind_is_still_a_document() {
        let topic = parse("storenode/v1/acme/s1/changes/status/heads").unwrap();
        assert_eq!(
            topic,
            space().changes(&store("s1"), &id("status"), &id("heads"))
        );
        assert!(!topic.is_retained());
    }

    #[test]
    fn rejects_wrong_prefix() {
        for bad in [
            "",
            "storenode",
            "storenode/v2/a/b/status/w",
            "xstorenode/v1/a/b/status/w",
        ] {
            assert!(
                matches!(parse(bad), Err(TopicError::WrongPrefix { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_wildcards_and_empty_segments() {
        assert!(matches!(
            parse("storenode/v1/acme/+/status/w"),
            Err(TopicError::InvalidIdChar { found: '+', .. })
        ));
        assert!(matches!(
            parse("storenode/v1/acme/s1/status/#"),
            Err(TopicError::InvalidIdChar { found: '#', .. })
        ));
        assert_eq!(
            parse("storenode/v1/acme//status/w"),
            Err(TopicError::EmptyId)
        );
        assert_eq!(
            parse("storenode/v1/acme/s1/status/"),
            Err(TopicError::EmptyId)
        );
    }

    #[test]
    fn rejects_wrong_segment_counts() {
        assert!(matches!(
            parse("storenode/v1/acme/s1/status/w/extra"),
            Err(TopicError::WrongSegmentCount {
                kind: "status",
                expected: 6,
                found: 7,
                ..
            })
        ));
        assert!(matches!(
            parse("storenode/v1/acme/s1/changes/doc"),
            Err(TopicError::WrongSegmentCount {
                kind: "changes",
                expected: 7,
                found: 6,
                ..
            })
        ));
        assert!(matches!(
            parse("storenode/v1/acme/s1"),
            Err(TopicError::WrongSegmentCount { .. })
        ));
    }

    #[test]
    fn pii_topics_round_trip_and_filter() {
        let t = space();
        let topic = t.pii(&Scope::Hq, &id("s042"), &id("web-1"));
        assert_eq!(topic.to_string(), "storenode/v1/acme/hq/pii/s042/web-1");
        assert_eq!(parse(&topic.to_string()), Ok(topic.clone()));
        assert!(topic.is_retained());
        assert_eq!(
            t.pii_filter(Some(&Scope::Hq), Some(&id("s042"))),
            "storenode/v1/acme/hq/pii/s042/+"
        );
        assert_eq!(t.pii_filter(None, None), "storenode/v1/acme/+/pii/+/+");
        assert!(matches!(
            parse("storenode/v1/acme/hq/pii/s042"),
            Err(TopicError::WrongSegmentCount { kind: "pii", .. })
        ));
        assert!(matches!(
            parse("storenode/v1/acme/hq/pii/s042/hq:web-1"),
            Err(TopicError::InvalidIdChar { found: ':', .. })
        ));
    }

    #[test]
    fn rejects_unknown_kind() {
        assert!(matches!(
            parse("storenode/v1/acme/s1/gossip/w"),
            Err(TopicError::UnknownKind { .. })
        ));
    }

    #[test]
    fn id_rules() {
        assert_eq!(Id::new(""), Err(TopicError::EmptyId));
        assert!(Id::new("a".repeat(MAX_ID_LEN)).is_ok());
        assert_eq!(
            Id::new("a".repeat(MAX_ID_LEN + 1)),
            Err(TopicError::IdTooLong {
                len: MAX_ID_LEN + 1
            })
        );
        for bad in ["a/b", "a+b", "a#b", "$SYS", "a b", "é"] {
            assert!(
                matches!(Id::new(bad), Err(TopicError::InvalidIdChar { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(Scope::store(id("hq")), Err(TopicError::ReservedStoreId));
    }

    fn arb_id() -> impl Strategy<Value = Id> {
        "[A-Za-z0-9._-]{1,64}".prop_map(|s| Id::new(s).unwrap())
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        prop_oneof![
            Just(Scope::Hq),
            arb_id().prop_map(|id| Scope::parse(id.as_str()).unwrap()),
        ]
    }

    fn arb_topic() -> impl Strategy<Value = Topic> {
        (
            arb_id(),
            arb_scope(),
            arb_scope(),
            arb_id(),
            arb_id(),
            0..5u8,
        )
            .prop_map(|(tenant, scope, doc_scope, doc, writer, kind)| match kind {
                0 => Topic::Changes {
                    tenant,
                    scope,
                    doc_scope,
                    doc,
                    writer,
                },
                1 => Topic::Heads {
                    tenant,
                    scope,
                    doc_scope,
                    doc,
                    writer,
                },
                2 => Topic::Status {
                    tenant,
                    scope,
                    writer,
                },
                3 => Topic::Request {
                    tenant,
                    scope,
                    writer,
                },
                _ => Topic::Response {
                    tenant,
                    scope,
                    writer,
                },
            })
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(topic in arb_topic()) {
            prop_assert_eq!(parse(&topic.to_string()), Ok(topic));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            let _ = parse(&s);
        }

        #[test]
        fn near_miss_topics_never_panic(tail in "[a-z/+#]{0,40}") {
            let _ = parse(&format!("storenode/v1/{tail}"));
        }
    }
}
