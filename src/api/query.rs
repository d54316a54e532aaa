//! Query strings, parsed so that an error names the parameter at fault (axum's `Query`
//! answers plain text without it).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Smallest and largest page a list route gives.
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 100;

/// A query string as `T` (a struct with `deny_unknown_fields`).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parses `query` as `T`; the error's `field` is the parameter at fault.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // An unknown parameter has no path yet: its name is in serde's message.
        let field = match path.as_str() {
            "." | "?" => inner.split('`').nth(1).map(str::to_string),
            _ => Some(path),
        };
        let message = match &field {
            Some(f) => format!("query parameter {f}: {inner}"),
            None => format!("query string: {inner}"),
        };
        ApiError::bad_request(field, message)
    })
}

/// The page size of a list route: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when not given.
pub fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            Some("limit".into()),
            format!("limit: give 1 to {MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Page {
        after: Option<String>,
        limit: Option<u32>,
    }

    #[test]
    fn errors_name_the_parameter() {
        let err = parse::<Page>("limit=ten").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("limit"), "{}", err.message);
        let err = parse::<Page>("after=A&colour=red").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("colour"), "{}", err.message);
        let err = parse::<Page>("limit=-1").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("limit"), "{}", err.message);
        assert_eq!(parse::<Page>("limit=5").unwrap().limit, Some(5));
        assert_eq!(parse::<Page>("").unwrap().limit, None);
        assert_eq!(
            parse::<Page>("after=A%20B").unwrap().after.as_deref(),
            Some("A B")
        );
    }

    #[test]
    fn limit_out_of_range_is_refused_not_clamped() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(1000)).unwrap(), 1000);
        for bad in [0, 1001] {
            let err = limit(Some(bad)).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("limit"));
        }
    }
}
