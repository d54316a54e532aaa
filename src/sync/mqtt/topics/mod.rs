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
//! | `storenode/v1/{t}/{scope}/retired/{writer}`                   | lanes of `scope`    | 1   | yes      | `writer` was retired (`storenode lane retire`); empty: not any more |
//! | `storenode/v1/{t}/{scope}/req/{writer}`                        | writers of `scope`  | 1   | no       | `writer` asks HQ for missing changes (MQTT 5 response topic) |
//! | `storenode/v1/{t}/{scope}/resp/{writer}`                       | HQ only             | 1   | no       | HQ's answer to `writer`'s request                           |
//! | `storenode/v1/{t}/{scope}/pii/{store}/{order}`                 | HQ, lanes of `store`| 1   | yes      | customer data of `store`'s order, or its erasure tombstone (src/privacy) |
//! | `storenode/v1/{t}/{scope}/epcis/{writer}`                      | writers of `scope`  | 1   | no       | a batch of `writer`'s EPCIS 2.0 events (src/sync/node/epcis_link.rs) |
//! | `storenode/v1/{t}/hq/epcis-ack/{store}/{writer}`               | HQ only             | 1   | yes      | the last EPCIS event sequence of `writer` that HQ stored     |
//! | `storenode/v1/{t}/{scope}/find/{writer}`                       | writers of `scope`  | 1   | no       | `writer` looks a loyalty member up by phone or e-mail (src/domain/member_find.rs) |
//! | `storenode/v1/{t}/{scope}/found/{writer}`                      | HQ only             | 1   | no       | HQ's answer to `writer`'s lookup: cards and masked names     |
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
//!   the answer comes back on `{scope}/resp/{writer}`; member lookups likewise from
//!   `{scope}/find/{writer}` to `{scope}/found/{writer}` (never retained: they carry a phone
//!   number or an e-mail one way and initials the other).
//!
//! ACLs stay simple because the publisher's identity is the scope segment: a store whose
//! certificate CN is its store id may write `storenode/v1/{t}/%u/{changes,heads,status,req,find}/#`,
//! and HQ (CN `hq`) writes under `storenode/v1/{t}/hq/...` and to `+/resp/#` and `+/found/#`. See
//! `config/mosquitto/acl`.
//!
//! Ids (tenant, store, document, writer) are one topic segment each: 1 to [`MAX_ID_LEN`]
//! bytes of ASCII letters, digits, `-`, `_` and `.`. That excludes the MQTT specials `/`,
//! `+`, `#`, a leading `$`, and anything that Mosquitto's `%u` pattern substitution or a
//! certificate CN would treat differently. A store may not be called `hq`.

use std::fmt;

mod id;
mod parsing;
mod space;

pub use id::{Id, Scope, kind_id, scope_of};
pub use parsing::parse;
pub use space::TopicSpace;

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
        "topic {topic:?} has an unknown kind {kind:?} (expected changes, heads, status, retired, req, resp, pii, epcis, epcis-ack, find or found)"
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
    /// Retained: `writer` of `scope` was retired for good (`storenode lane retire`), so its
    /// peers stop re-offering to it; an empty payload takes the retirement back.
    Retired {
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
    /// `writer`'s lookup of a loyalty member by phone or e-mail (`crate::domain::member_find`).
    Find {
        tenant: Id,
        scope: Scope,
        writer: Id,
    },
    /// HQ's answer to `writer`'s lookup, under the store's scope (as `Response`).
    Found {
        tenant: Id,
        scope: Scope,
        writer: Id,
    },
}

impl Topic {
    /// Whether messages on this topic are published retained (the latest state matters,
    /// not the history).
    pub fn is_retained(&self) -> bool {
        matches!(
            self,
            Topic::Heads { .. }
                | Topic::Status { .. }
                | Topic::Retired { .. }
                | Topic::Pii { .. }
                | Topic::EpcisAck { .. }
        )
    }

    pub fn tenant(&self) -> &Id {
        match self {
            Topic::Changes { tenant, .. }
            | Topic::Heads { tenant, .. }
            | Topic::Status { tenant, .. }
            | Topic::Retired { tenant, .. }
            | Topic::Request { tenant, .. }
            | Topic::Response { tenant, .. }
            | Topic::Pii { tenant, .. }
            | Topic::Epcis { tenant, .. }
            | Topic::EpcisAck { tenant, .. }
            | Topic::Find { tenant, .. }
            | Topic::Found { tenant, .. } => tenant,
        }
    }

    /// The publisher's scope, which the broker ACL has checked against its certificate.
    pub fn scope(&self) -> &Scope {
        match self {
            Topic::Changes { scope, .. }
            | Topic::Heads { scope, .. }
            | Topic::Status { scope, .. }
            | Topic::Retired { scope, .. }
            | Topic::Request { scope, .. }
            | Topic::Response { scope, .. }
            | Topic::Pii { scope, .. }
            | Topic::Epcis { scope, .. }
            | Topic::EpcisAck { scope, .. }
            | Topic::Find { scope, .. }
            | Topic::Found { scope, .. } => scope,
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
            Topic::Retired {
                tenant,
                scope,
                writer,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{RETIRED}/{writer}"),
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
            Topic::Find {
                tenant,
                scope,
                writer,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{FIND}/{writer}"),
            Topic::Found {
                tenant,
                scope,
                writer,
            } => write!(f, "{PREFIX}/{tenant}/{scope}/{FOUND}/{writer}"),
        }
    }
}

const CHANGES: &str = "changes";
const HEADS: &str = "heads";
const STATUS: &str = "status";
const RETIRED: &str = "retired";
const REQUEST: &str = "req";
const RESPONSE: &str = "resp";
const PII: &str = "pii";
const EPCIS: &str = "epcis";
const EPCIS_ACK: &str = "epcis-ack";
const FIND: &str = "find";
const FOUND: &str = "found";

#[cfg(test)]
mod tests;
