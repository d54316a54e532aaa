//! Who writes: a writer id and the incarnation (automerge actor) that writes as it.

use automerge::ActorId;

use super::*;

/// A stable writer identity (a store lane or HQ), and the incarnation that writes as it.
///
/// Two writers are equal when their ids are: the incarnation only chooses the automerge
/// actor ([`Self::actor`]), so a writer's entries stay under `writers/{id}` whichever of
/// its incarnations wrote them.
#[derive(Clone, Debug)]
pub struct WriterId {
    id: String,
    /// `None`: the actor is the id itself (HQ, and every writer before incarnations).
    incarnation: Option<String>,
}

impl PartialEq for WriterId {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for WriterId {}

impl PartialOrd for WriterId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WriterId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl std::hash::Hash for WriterId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl serde::Serialize for WriterId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

/// Separates a writer id from its incarnation in an actor id (`s1.lane1~3f9c…`); never
/// part of a writer id.
pub const INCARNATION_SEPARATOR: char = '~';
/// Longest incarnation accepted in an actor id (hex digits).
const MAX_INCARNATION_LEN: usize = 32;

impl WriterId {
    /// Validates `id`: 1-64 bytes of `a-z 0-9 . - _`.
    pub fn new(id: &str) -> Result<Self, DocError> {
        if crate::domain::ids::is_name(id, MAX_WRITER_ID_LEN) {
            Ok(Self {
                id: id.to_owned(),
                incarnation: None,
            })
        } else {
            Err(DocError::InvalidWriterId(id.to_owned()))
        }
    }

    /// The HQ writer.
    pub fn hq() -> Self {
        Self {
            id: HQ_WRITER.to_owned(),
            incarnation: None,
        }
    }

    /// This writer as a new, random incarnation: a fresh automerge actor, so sequence
    /// numbers an earlier incarnation used (say, one whose database was later restored
    /// from a backup) are never used again with other content.
    pub fn new_incarnation(&self) -> Self {
        let nonce: u64 = rand::random();
        Self {
            id: self.id.clone(),
            incarnation: Some(format!("{nonce:016x}")),
        }
    }

    /// This incarnation's id (`None` for a writer whose actor is its id).
    pub fn incarnation(&self) -> Option<&str> {
        self.incarnation.as_deref()
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn is_hq(&self) -> bool {
        self.id == HQ_WRITER
    }

    /// The automerge actor of this incarnation: `{id}~{incarnation}`, or the id's bytes.
    pub fn actor(&self) -> ActorId {
        match &self.incarnation {
            Some(inc) => {
                ActorId::from(format!("{}{INCARNATION_SEPARATOR}{inc}", self.id).as_bytes())
            }
            None => ActorId::from(self.id.as_bytes()),
        }
    }

    /// The writer (and incarnation) behind an actor id, if it is one of ours.
    pub fn from_actor(actor: &ActorId) -> Result<Self, DocError> {
        let invalid = || DocError::InvalidWriterId(actor.to_hex_string());
        let text = std::str::from_utf8(actor.to_bytes()).map_err(|_| invalid())?;
        match text.split_once(INCARNATION_SEPARATOR) {
            None => Self::new(text),
            Some((id, inc)) => {
                let hex = !inc.is_empty()
                    && inc.len() <= MAX_INCARNATION_LEN
                    && inc
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !hex {
                    return Err(invalid());
                }
                Ok(Self {
                    incarnation: Some(inc.to_owned()),
                    ..Self::new(id)?
                })
            }
        }
    }

    /// Whether `actor` is any incarnation of this writer.
    pub fn owns_actor(&self, actor: &ActorId) -> bool {
        Self::from_actor(actor).is_ok_and(|w| w == *self)
    }
}

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}
