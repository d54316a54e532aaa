//! The ids a topic is made of: one validated segment ([`Id`]) and the publishing party
//! ([`Scope`]).

use std::fmt;
use std::str::FromStr;

use super::{HQ_SCOPE, MAX_ID_LEN, TopicError};
use crate::crdt::catalog::CATALOG_STORE;
use crate::crdt::doc::{DocId, DocKind};

/// One validated topic segment (tenant, store, document or writer id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(String);

impl Id {
    /// Validates `id` as a topic segment (see the documentation of `topics` for the rules).
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

/// The topic segment of a document kind.
pub fn kind_id(kind: DocKind) -> Result<Id, TopicError> {
    Id::new(kind.as_str())
}

/// The scope a document belongs to: HQ for the catalog, else its store.
pub fn scope_of(doc: &DocId) -> Result<Scope, TopicError> {
    if doc.store == CATALOG_STORE {
        Ok(Scope::Hq)
    } else {
        Scope::store(Id::new(doc.store.clone())?)
    }
}
