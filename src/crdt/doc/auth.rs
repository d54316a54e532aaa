//! HQ's side: a change is accepted only from an allowed writer, and only touching what that
//! writer owns (its `writers/{id}` entry, its own order ids, objects it made; `hq`: the
//! genesis maps).

use std::collections::BTreeSet;

use automerge::{ActorId, Change, ObjId};

use super::*;

/// Why HQ refused a change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("change is malformed: {0}")]
    Malformed(String),
    #[error("change author {0:?} is not a valid writer id")]
    UnknownAuthor(String),
    #[error("writer {0} may not write to this document")]
    WriterNotAllowed(String),
    #[error("writer {writer} touched {what}, which it does not own")]
    OutOfScope { writer: String, what: String },
}

impl SyncDoc {
    /// HQ's check of every change in a bundle (see [`Self::check_change`]); returns the
    /// authors.
    pub fn check_bundle(
        &self,
        bundle: &[u8],
        allowed: &BTreeSet<WriterId>,
    ) -> Result<BTreeSet<WriterId>, AuthError> {
        let changes = decode_bundle(bundle).map_err(|e| AuthError::Malformed(e.to_string()))?;
        changes
            .iter()
            .map(|change| self.check_decoded(change, allowed))
            .collect()
    }

    /// HQ's check of a change for this document: decodes it, checks the author is in
    /// `allowed`, and that every operation stays inside what the author owns.
    pub fn check_change(
        &self,
        bytes: &[u8],
        allowed: &BTreeSet<WriterId>,
    ) -> Result<WriterId, AuthError> {
        let change = decode_change(bytes).map_err(AuthError::Malformed)?;
        self.check_decoded(&change, allowed)
    }

    fn check_decoded(
        &self,
        change: &Change,
        allowed: &BTreeSet<WriterId>,
    ) -> Result<WriterId, AuthError> {
        let writer = WriterId::from_actor(change.actor_id())
            .map_err(|_| AuthError::UnknownAuthor(change.actor_id().to_hex_string()))?;
        if !allowed.contains(&writer) {
            return Err(AuthError::WriterNotAllowed(writer.to_string()));
        }
        let scope = self.genesis_scope();
        for op in change.decode().operations {
            scope.check_op(&writer, &op)?;
        }
        Ok(writer)
    }

    fn genesis_scope(&self) -> GenesisScope {
        let counter_of = |key: &str| match self.root_map(key) {
            Some(ObjId::Id(counter, _, _)) => Some(counter),
            _ => None,
        };
        GenesisScope {
            writers: counter_of(KEY_WRITERS),
            orders: counter_of(KEY_ORDERS),
        }
    }
}

/// Object counters of the genesis maps a non-HQ writer may add keys to.
struct GenesisScope {
    writers: Option<u64>,
    orders: Option<u64>,
}

impl GenesisScope {
    fn check_op(&self, writer: &WriterId, op: &automerge::legacy::Op) -> Result<(), AuthError> {
        use automerge::legacy::{Key, ObjectId};
        let out_of_scope = |what: String| AuthError::OutOfScope {
            writer: writer.to_string(),
            what,
        };
        let ObjectId::Id(obj) = &op.obj else {
            return Err(out_of_scope("the document root".to_owned()));
        };
        if obj.1.to_bytes() != GENESIS_ACTOR {
            // An object made by a writer: only its maker (any incarnation) may write in it.
            return if writer.owns_actor(&obj.1) {
                Ok(())
            } else {
                Err(out_of_scope(format!("an object of {}", obj.1)))
            };
        }
        let key = match &op.key {
            Key::Map(key) => key.as_str(),
            Key::Seq(_) => return Err(out_of_scope("a list in a genesis map".to_owned())),
        };
        if Some(obj.0) == self.writers {
            if key == writer.as_str() {
                return Ok(());
            }
            return Err(out_of_scope(format!("writers/{key}")));
        }
        if Some(obj.0) == self.orders {
            if order_id_belongs_to(key, writer) {
                return Ok(());
            }
            return Err(out_of_scope(format!("orders/{key}")));
        }
        // `base`, `cut` and `items` are HQ's.
        if writer.is_hq() {
            Ok(())
        } else {
            Err(out_of_scope(format!("an HQ map (key {key})")))
        }
    }
}

pub(super) fn is_genesis_actor(actor: &ActorId) -> bool {
    actor.to_bytes() == GENESIS_ACTOR
}

/// Order ids are `{writer}:{local id}`, so the creating writer owns the key.
pub fn order_id_belongs_to(order_id: &str, writer: &WriterId) -> bool {
    order_id
        .strip_prefix(writer.as_str())
        .is_some_and(|rest| rest.len() > 1 && rest.starts_with(':'))
}

/// The distinct authors of a bundle's changes (HQ builds the allowed set from them).
pub fn bundle_authors(bundle: &[u8]) -> Result<BTreeSet<WriterId>, AuthError> {
    let changes = decode_bundle(bundle).map_err(|e| AuthError::Malformed(e.to_string()))?;
    changes
        .iter()
        .map(|change| {
            WriterId::from_actor(change.actor_id())
                .map_err(|_| AuthError::UnknownAuthor(change.actor_id().to_hex_string()))
        })
        .collect()
}

/// The author and time (the writer's clock, Unix ms) of each encoded change: what HQ checks
/// against a lane's retirement.
pub fn authored_times(changes: &[Vec<u8>]) -> Result<Vec<(WriterId, i64)>, AuthError> {
    changes
        .iter()
        .map(|bytes| {
            let change = decode_change(bytes).map_err(AuthError::Malformed)?;
            author_time(&change)
        })
        .collect()
}

/// [`authored_times`] of the changes in a bundle.
pub fn bundle_authored_times(bundle: &[u8]) -> Result<Vec<(WriterId, i64)>, AuthError> {
    decode_bundle(bundle)
        .map_err(|e| AuthError::Malformed(e.to_string()))?
        .iter()
        .map(author_time)
        .collect()
}

fn author_time(change: &Change) -> Result<(WriterId, i64), AuthError> {
    let writer = WriterId::from_actor(change.actor_id())
        .map_err(|_| AuthError::UnknownAuthor(change.actor_id().to_hex_string()))?;
    Ok((writer, change.timestamp()))
}

/// The writer who authored an encoded change.
pub fn change_author(bytes: &[u8]) -> Result<WriterId, AuthError> {
    let change = decode_change(bytes).map_err(AuthError::Malformed)?;
    WriterId::from_actor(change.actor_id())
        .map_err(|_| AuthError::UnknownAuthor(change.actor_id().to_hex_string()))
}
