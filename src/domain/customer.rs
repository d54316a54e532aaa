//! Customer personal data (PII) of click-and-collect and ship-from-store orders, kept
//! *beside* the CRDT documents: automerge history cannot forget, these rows can.
//!
//! - [`Customer`]: always valid once built (deserialising validates), and its `Debug` /
//!   `Display` show nothing personal, so an accidental `?customer` in a log leaks nothing;
//! - [`PiiPayload`]: what travels on the retained `pii` topics (a customer or a tombstone).
//!
//! The node keeps them in `store::customers`, carries them in `sync::pii`; HQ's side is
//! `hq::privacy`, and `storenode privacy erase` is `hq::erase`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest phone number as typed (digits, spaces, `+-().`).
pub const MAX_PHONE_CHARS: usize = 32;
/// Longest delivery address, in characters (several lines).
pub const MAX_ADDRESS_CHARS: usize = 500;
/// Largest `pii` payload accepted from the network.
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// Why customer data or a `pii` payload was refused. Messages name the field, never the
/// value: they reach HTTP answers and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivacyError {
    #[error("customer.{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("pii payload: {0}")]
    Payload(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PrivacyError {
    PrivacyError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The wire form before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomer {
    name: String,
    phone: String,
    email: String,
    #[serde(default)]
    address: Option<String>,
}

/// A customer's contact data. Fields are private: a `Customer` always passed
/// [`Customer::new`]'s checks.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
// `deny_unknown_fields` is enforced by `RawCustomer`; here it tells the OpenAPI schema.
// The patterns describe `Customer::new`'s checks (values are trimmed first).
#[serde(try_from = "RawCustomer", deny_unknown_fields)]
pub struct Customer {
    /// Not blank, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*\s*$"
    )]
    name: String,
    /// 5 to 20 digits; spaces, '-', '(', ')', '.' and a leading '+'.
    #[schema(
        max_length = 32,
        pattern = r"^\s*\+?[ ().-]*(?:[0-9][ ().-]*){5,20}\s*$"
    )]
    phone: String,
    /// `local@domain.tld`.
    #[schema(
        max_length = 254,
        pattern = r#"^\s*[^@"(),:;<>\[\\\]\s\u0000-\u001f\u007f-\u009f]{1,64}@[^\W_]+(?:-+[^\W_]+)*(?:\.[^\W_]+(?:-+[^\W_]+)*)+\s*$"#
    )]
    email: String,
    /// Delivery address (ship-from-store); newlines allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 500,
        pattern = r"^\s*[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*\s*$"
    )]
    address: Option<String>,
}

impl TryFrom<RawCustomer> for Customer {
    type Error = PrivacyError;
    fn try_from(raw: RawCustomer) -> Result<Self, PrivacyError> {
        Customer::new(raw.name, raw.phone, raw.email, raw.address)
    }
}

impl Customer {
    /// Trims and validates: a name, a phone number with 5 to 20 digits, an e-mail of the
    /// shape `local@domain.tld`, an optional delivery address.
    pub fn new(
        name: impl Into<String>,
        phone: impl Into<String>,
        email: impl Into<String>,
        address: Option<String>,
    ) -> Result<Customer, PrivacyError> {
        let name = name.into().trim().to_owned();
        let phone = phone.into().trim().to_owned();
        let email = email.into().trim().to_owned();
        let address = address
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        check_text("name", &name, MAX_NAME_CHARS, false)?;
        check_phone(&phone)?;
        check_email(&email)?;
        if let Some(address) = &address {
            check_text("address", address, MAX_ADDRESS_CHARS, true)?;
        }
        Ok(Customer {
            name,
            phone,
            email,
            address,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn phone(&self) -> &str {
        &self.phone
    }
    pub fn email(&self) -> &str {
        &self.email
    }
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// The e-mail as erasure requests match it: lower case.
    pub fn email_key(&self) -> String {
        email_key(&self.email)
    }

    /// The phone number as erasure requests match it: digits only.
    pub fn phone_key(&self) -> String {
        phone_key(&self.phone)
    }
}

/// Lower-cased, trimmed e-mail: the key erasure by e-mail matches.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Digits of a phone number: the key erasure by phone matches (`+46 70-123 45 67` and
/// `0046701234567` differ; callers give the number as the customer gave it).
pub fn phone_key(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

fn check_text(
    field: &'static str,
    value: &str,
    max_chars: usize,
    newlines: bool,
) -> Result<(), PrivacyError> {
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.chars().count() > max_chars {
        return Err(invalid(
            field,
            format!("longer than {max_chars} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(newlines && c == '\n'))
    {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

/// A phone number as typed: at most [`MAX_PHONE_CHARS`], only digits, spaces, `-`, `(`, `)`,
/// `.` and a leading `+`, 5 to 20 digits. Also the check of a member lookup by phone.
pub fn check_phone(phone: &str) -> Result<(), PrivacyError> {
    if phone.chars().count() > MAX_PHONE_CHARS {
        return Err(invalid(
            "phone",
            format!("longer than {MAX_PHONE_CHARS} characters"),
        ));
    }
    if !phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        || phone.chars().skip(1).any(|c| c == '+')
    {
        return Err(invalid(
            "phone",
            "only digits, spaces, '-', '(', ')', '.' and a leading '+'",
        ));
    }
    let digits = phone_key(phone).len();
    if !(5..=20).contains(&digits) {
        return Err(invalid("phone", "needs 5 to 20 digits"));
    }
    Ok(())
}

/// An e-mail address of the shape `local@domain.tld`. Also the check of a member lookup by
/// e-mail.
pub fn check_email(email: &str) -> Result<(), PrivacyError> {
    // Characters, not bytes, as the OpenAPI schema's `maxLength` and pattern count them: a
    // client that checks against the schema must never be refused by these checks.
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid(
            "email",
            format!("longer than {MAX_EMAIL_CHARS} characters"),
        ));
    }
    let shape = "must look like name@example.com";
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("email", shape));
    };
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.contains(['@', '"', '(', ')', ',', ':', ';', '<', '>', '[', '\\', ']'])
        && !local.chars().any(|c| c.is_whitespace() || c.is_control());
    if local_ok && labels_ok {
        Ok(())
    } else {
        Err(invalid("email", shape))
    }
}

/// Redacted: logs and panics never show personal data.
impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Customer { <redacted> }")
    }
}

/// Redacted, like `Debug`.
impl fmt::Display for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<customer redacted>")
    }
}

/// What a retained `pii` message says about one order: its customer, or that the customer
/// data was erased (a tombstone, with no personal data). JSON: `{"customer": {...}}` or
/// `{"erased_at": "2026-11-23T16:00:00.000Z", "by": "s1.lane1"}`. An empty payload is the
/// MQTT way to delete a retained message and is read as [`PiiPayload::Cleared`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PiiPayload {
    Customer(Customer),
    Erased {
        erased_at: String,
        /// The writer that erased (for HQ's confirmation view); not personal.
        by: Option<String>,
    },
    Cleared,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer: Option<Customer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    erased_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
}

impl PiiPayload {
    pub fn encode(&self) -> Vec<u8> {
        let wire = match self {
            PiiPayload::Customer(c) => WirePayload {
                customer: Some(c.clone()),
                erased_at: None,
                by: None,
            },
            PiiPayload::Erased { erased_at, by } => WirePayload {
                customer: None,
                erased_at: Some(erased_at.clone()),
                by: by.clone(),
            },
            PiiPayload::Cleared => return Vec::new(),
        };
        // Serialising plain strings cannot fail; an empty payload would only clear.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Reads a payload from the network. Errors never quote the payload.
    pub fn decode(bytes: &[u8]) -> Result<PiiPayload, PrivacyError> {
        if bytes.is_empty() {
            return Ok(PiiPayload::Cleared);
        }
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(PrivacyError::Payload(format!(
                "{} bytes is over the {MAX_PAYLOAD_BYTES} cap",
                bytes.len()
            )));
        }
        let wire: WirePayload = serde_json::from_slice(bytes).map_err(|e| {
            // serde's message may quote a value; keep only where it failed.
            PrivacyError::Payload(format!(
                "not a customer or tombstone (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        match (wire.customer, wire.erased_at) {
            (Some(customer), None) => Ok(PiiPayload::Customer(customer)),
            (None, Some(erased_at)) if is_timestamp(&erased_at) => Ok(PiiPayload::Erased {
                erased_at,
                by: wire.by.filter(|b| super::ids::is_segment_id(b)),
            }),
            _ => Err(PrivacyError::Payload(
                "needs exactly one of customer or a valid erased_at".into(),
            )),
        }
    }
}

fn is_timestamp(at: &str) -> bool {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok()
}

#[cfg(test)]
#[path = "customer_tests.rs"]
mod tests;
