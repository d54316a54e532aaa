//! JSON request bodies of the store's API and HQ's: parsed from bytes (so the store can
//! fingerprint the same bytes for idempotency), whatever the `Content-Type` says, with
//! errors naming the offending field.

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// Parses a JSON body as `T`: 400 for what is not JSON and for JSON that does not fit, with
/// the field at fault named (the store's API).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_with(body, StatusCode::BAD_REQUEST)
}

/// [`parse`], with JSON that does not fit `T` answered `misfit` (HQ says 422).
pub fn parse_with<T: DeserializeOwned>(body: &[u8], misfit: StatusCode) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            None,
            "request body is empty; a JSON object is expected",
        ));
    }
    // Syntax first (serde_json refuses nesting deeper than 128), then the shape, on the tree.
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(None, format!("invalid JSON: {e}")))?;
    integral_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        let message = match &field {
            Some(f) => format!("{f}: {inner}"),
            None => format!("invalid request: {inner}"),
        };
        ApiError {
            field,
            ..ApiError::status(misfit, message)
        }
    })
}

/// JSON has one number type: `2.0` is the integer 2 (JSON Schema's `integer` says so, and
/// so do clients that keep every number as a double). serde refuses `2.0` for an `i64`, so
/// integral numbers in the 64-bit range become integers here; `2.5` and `1e30` stay
/// floats and are refused with the field named.
fn integral_numbers(value: &mut Value) {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    match value {
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        Value::Number(n) => {
            let Some(f) = n.as_f64().filter(|_| n.is_f64()) else {
                return;
            };
            if f.fract() != 0.0 {
                return;
            }
            // In range, the casts are exact: `f` is integral.
            if (-TWO_POW_63..TWO_POW_63).contains(&f) {
                *value = Value::from(f as i64);
            } else if (0.0..2.0 * TWO_POW_63).contains(&f) {
                *value = Value::from(f as u64);
            }
        }
        _ => {}
    }
}
