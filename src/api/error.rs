//! The store's errors in the API's one JSON shape ([`crate::http_shared::error`], shared
//! with HQ): one status per kind of [`StoreError`].

use axum::http::StatusCode;

pub use crate::http_shared::error::{ApiError, ErrorBody, json_errors};
use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::NotFound { .. } => Self::not_found(message),
            StoreError::Unprocessable { field, reason } => Self {
                field: Some(field),
                ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", reason)
            },
            StoreError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Unavailable(_) => Self {
                retry_after_secs: Some(5),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            },
            ref other if other.is_disk_trouble() => Self {
                retry_after_secs: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("writes refused, disk trouble: {message}"),
                )
            },
            _ => {
                tracing::error!(error = %message, "store error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the node's log",
                )
            }
        }
    }
}
