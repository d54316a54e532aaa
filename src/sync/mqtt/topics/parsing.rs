//! Reading a topic received from the broker back into a [`Topic`], strictly.

use super::{
    CHANGES, EPCIS, EPCIS_ACK, FIND, FOUND, HEADS, Id, PII, PREFIX, REQUEST, RESPONSE, RETIRED,
    STATUS, Scope, Topic, TopicError,
};

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
        STATUS | RETIRED | REQUEST | RESPONSE | FIND | FOUND => {
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
                RETIRED => Topic::Retired {
                    tenant,
                    scope,
                    writer,
                },
                REQUEST => Topic::Request {
                    tenant,
                    scope,
                    writer,
                },
                FIND => Topic::Find {
                    tenant,
                    scope,
                    writer,
                },
                FOUND => Topic::Found {
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
        RETIRED => RETIRED,
        REQUEST => REQUEST,
        FIND => FIND,
        FOUND => FOUND,
        _ => RESPONSE,
    }
}
