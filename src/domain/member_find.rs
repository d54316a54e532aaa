//! Finding a loyalty member by phone or e-mail at the till, without personal data at the
//! store: the till asks (through its node and the MQTT connection) HQ, which keeps members'
//! personal data in its customer-data store, and gets back card numbers with a masked name
//! for staff to confirm ("A. E."), nothing else personal.
//!
//! - [`MemberQuery`]: a checked query (phone matched by its digits, e-mail case-insensitively,
//!   as the privacy erasure matches them: [`customer::phone_key`], [`customer::email_key`]);
//! - [`mask_name`]: what of a name leaves HQ;
//! - [`FindRequest`] / [`FindReply`]: what travels on the `find` / `found` topics
//!   (`crate::sync::topics`). Neither is retained nor stored anywhere.
//!
//! `Debug` of a query or request shows no phone number or e-mail, and no error quotes one.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::customer::{self, PrivacyError};

/// Most members one lookup answers: enough for a shared family phone, few enough that a
/// lookup is no way to list members.
pub const MAX_MATCHES: usize = 5;
/// Largest `find` or `found` payload accepted from the network.
pub const MAX_PAYLOAD_BYTES: usize = 2048;
/// Longest request id (a random hex string in practice).
pub const MAX_ID_LEN: usize = 64;
/// Longest masked name accepted in a reply (initials of two words).
const MAX_MASKED_CHARS: usize = 16;

/// Why a lookup was refused or a message could not be read. Never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error("give exactly one of phone or email")]
    OneSelector,
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("member lookup message: {0}")]
    Payload(String),
}

impl From<PrivacyError> for FindError {
    fn from(e: PrivacyError) -> Self {
        match e {
            PrivacyError::Invalid { field, reason } => FindError::Invalid { field, reason },
            PrivacyError::Payload(p) => FindError::Payload(p),
        }
    }
}

/// A checked lookup, holding the key HQ matches: the phone's digits, or the lower-cased
/// e-mail.
#[derive(Clone, PartialEq, Eq)]
pub enum MemberQuery {
    Phone(String),
    Email(String),
}

impl MemberQuery {
    /// Exactly one of `phone` (5 to 20 digits, as a customer's phone) or `email`
    /// (`local@domain.tld`); blank counts as not given.
    pub fn new(phone: Option<&str>, email: Option<&str>) -> Result<Self, FindError> {
        match (given(phone), given(email)) {
            (Some(phone), None) => {
                customer::check_phone(phone)?;
                Ok(Self::Phone(customer::phone_key(phone)))
            }
            (None, Some(email)) => {
                customer::check_email(email)?;
                Ok(Self::Email(customer::email_key(email)))
            }
            _ => Err(FindError::OneSelector),
        }
    }

    /// What the query is by, for logs: `phone` or `email` (never its value).
    pub fn by(&self) -> &'static str {
        match self {
            Self::Phone(_) => "phone",
            Self::Email(_) => "email",
        }
    }

    /// The key HQ's customer-data store matches (`phone_key` or `email_key`).
    pub fn key(&self) -> &str {
        match self {
            Self::Phone(key) | Self::Email(key) => key,
        }
    }
}

/// A selector that is there and not blank, trimmed.
fn given(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Redacted: a query is personal data.
impl fmt::Debug for MemberQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberQuery {{ by: {}, <redacted> }}", self.by())
    }
}

/// What staff see of a member's name: the initials of its first and last word, upper case,
/// each with a dot (`"Ada Lovelace Example"` → `"A. E."`); `"?"` for a name without letters.
pub fn mask_name(name: &str) -> String {
    let initials: Vec<String> = name
        .split_whitespace()
        .filter_map(|word| word.chars().find(|c| c.is_alphabetic()))
        .map(|c| c.to_uppercase().collect())
        .collect();
    match initials.as_slice() {
        [] => "?".to_owned(),
        [only] => format!("{only}."),
        [first, .., last] => format!("{first}. {last}."),
    }
}

/// One member a lookup found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberMatch {
    /// The member's card: scan-free identification at the till from here on.
    pub card: String,
    /// Initials only (`"A. E."`), for staff to confirm with the customer.
    pub name: String,
}

/// What a lookup found: at most [`MAX_MATCHES`] members, by card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberMatches {
    pub members: Vec<MemberMatch>,
    /// More members matched than are shown: ask for the card.
    pub more: bool,
}

impl MemberMatches {
    /// From HQ's rows `(card, full name)`, ordered, of which at most `MAX_MATCHES + 1` were
    /// read: names are masked here, before they leave HQ's customer-data store.
    pub fn from_rows(rows: Vec<(String, String)>) -> Self {
        let more = rows.len() > MAX_MATCHES;
        let members = rows
            .into_iter()
            .take(MAX_MATCHES)
            .map(|(card, name)| MemberMatch {
                name: mask_name(&name),
                card,
            })
            .collect();
        Self { members, more }
    }
}

/// A node's request to HQ, on its writer's `find` topic. `id` pairs HQ's reply with it.
#[derive(Clone, PartialEq, Eq)]
pub struct FindRequest {
    pub id: String,
    pub query: MemberQuery,
}

/// Redacted, as the query.
impl fmt::Debug for FindRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FindRequest {{ id: {:?}, query: {:?} }}",
            self.id, self.query
        )
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

fn check_id(id: &str) -> Result<(), FindError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FindError::Payload(
            "request id: 1 to 64 letters, digits or '-'".into(),
        ))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, FindError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(FindError::Payload(format!(
            "{} bytes is over the {MAX_PAYLOAD_BYTES} cap",
            bytes.len()
        )));
    }
    // serde's message may quote a value; keep only where it failed.
    serde_json::from_slice(bytes).map_err(|e| {
        FindError::Payload(format!(
            "not a {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

impl FindRequest {
    /// JSON `{"id", "phone"}` or `{"id", "email"}`: the key, not the number as typed.
    pub fn encode(&self) -> Vec<u8> {
        let (phone, email) = match &self.query {
            MemberQuery::Phone(key) => (Some(key.clone()), None),
            MemberQuery::Email(key) => (None, Some(key.clone())),
        };
        let wire = WireRequest {
            id: self.id.clone(),
            phone,
            email,
        };
        // Serialising plain strings cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Reads and checks a request from the network (HQ checks again what the node checked).
    pub fn decode(bytes: &[u8]) -> Result<Self, FindError> {
        let wire: WireRequest = read_json(bytes, "member lookup")?;
        check_id(&wire.id)?;
        Ok(Self {
            query: MemberQuery::new(wire.phone.as_deref(), wire.email.as_deref())?,
            id: wire.id,
        })
    }
}

/// HQ's answer on the writer's `found` topic: the members, or that HQ could not search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindReply {
    pub id: String,
    /// `Err`: why HQ could not search (no personal data; the till is told to scan the card).
    pub result: Result<MemberMatches, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireReply {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    members: Option<Vec<MemberMatch>>,
    #[serde(default)]
    more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl FindReply {
    pub fn encode(&self) -> Vec<u8> {
        let wire = match &self.result {
            Ok(found) => WireReply {
                id: self.id.clone(),
                members: Some(found.members.clone()),
                more: found.more,
                error: None,
            },
            Err(reason) => WireReply {
                id: self.id.clone(),
                members: None,
                more: false,
                error: Some(reason.clone()),
            },
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Reads a reply, holding HQ to its side of the rule: at most [`MAX_MATCHES`] members,
    /// each a valid card with a masked name no longer than a pair of initials.
    pub fn decode(bytes: &[u8]) -> Result<Self, FindError> {
        let wire: WireReply = read_json(bytes, "member lookup reply")?;
        check_id(&wire.id)?;
        let result = match (wire.members, wire.error) {
            (Some(members), None) => {
                if members.len() > MAX_MATCHES {
                    return Err(FindError::Payload(format!(
                        "more than {MAX_MATCHES} members"
                    )));
                }
                for m in &members {
                    super::loyalty::MemberId::parse(&m.card)
                        .map_err(|_| FindError::Payload("a member's card is not a card".into()))?;
                    if m.name.chars().count() > MAX_MASKED_CHARS {
                        return Err(FindError::Payload("a member's name is not masked".into()));
                    }
                }
                Ok(MemberMatches {
                    members,
                    more: wire.more,
                })
            }
            (None, Some(error)) => Err(error.chars().take(200).collect()),
            _ => {
                return Err(FindError::Payload(
                    "needs exactly one of members or error".into(),
                ));
            }
        };
        Ok(Self {
            id: wire.id,
            result,
        })
    }
}

#[cfg(test)]
#[path = "member_find_tests.rs"]
mod tests;
