//! The one shape of HQ's HTTP handlers: check the bearer token ([`HttpState::authorise`]),
//! run the work with a shared state locked on the blocking pool (SQLite and automerge
//! block; see [`Authorised`]), and answer every refusal or failure in the store API's JSON
//! error shape, `{"error": code, "message": ...}` with a status ([`Problem`]). A handler
//! returns an [`Answer`].
//!
//! The token is checked in the handler body, after axum's extractors: a request whose path,
//! query or body cannot be read is refused for that first, as it always was.

use std::fmt::Display;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::task::JoinError;

use super::HttpState;
use crate::hq::epcis::HqEpcis;
use crate::hq::privacy::HqPrivacy;
use crate::hq::state::{HqError, HqState, Outgoing};
use crate::http_shared::error::ApiError;
use crate::http_shared::json::parse_with;

/// What an HQ handler answers: its response, or a [`Problem`].
pub type Answer = Result<Response, Problem>;

/// A refusal or failure in the JSON error shape the store's API uses too
/// ([`ErrorBody`](crate::http_shared::error::ErrorBody): `{"error": code, "message": ...,
/// "field"?: ...}`), with the odd fact beside it (when customer data was erased).
#[derive(Debug)]
pub struct Problem {
    error: ApiError,
    extra: Map<String, Value>,
}

impl Problem {
    /// An error whose code is its status's (`not_found`, `conflict`, ...).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            error: ApiError::status(status, message),
            extra: Map::new(),
        }
    }

    /// 500 with the error's text.
    pub fn internal(e: impl Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }

    /// 422 with the error's text.
    pub fn unprocessable(e: impl Display) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    }

    /// 500 that names nothing: the cause goes to HQ's log only. For customer data, whose
    /// errors could carry what they are about.
    pub fn hidden(e: impl Display) -> Self {
        tracing::error!(error = %e, "customer data request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see HQ's log",
        )
    }

    /// Names the request field (a JSON path, a query parameter) at fault.
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.error.field = Some(name.into());
        self
    }

    /// Adds a fact beside the shared fields (e.g. `erased_at`).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.error.status
    }
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            extra: Map::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        if self.extra.is_empty() {
            return self.error.into_response();
        }
        let mut body = self.error.body();
        if let Value::Object(fields) = &mut body {
            fields.extend(self.extra);
        }
        (self.error.status, Json(body)).into_response()
    }
}

/// A JSON request body, read whatever its `Content-Type` says, as the store's API reads it
/// (a `curl -d` without `--json` is JSON too; axum's `Json` answered it 415), with the same
/// parser ([`crate::http_shared::json`]): a body that is not JSON is a 400, one that does not
/// fit the request a 422, both naming the field at fault when there is one.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| Problem::new(e.status(), e.body_text()))?;
        parse_with(&bytes, StatusCode::UNPROCESSABLE_ENTITY)
            .map(JsonBody)
            .map_err(Problem::from)
    }
}

/// HQ's own errors: an unknown store is 404, an epoch still pending 409, the rest 500.
impl From<HqError> for Problem {
    fn from(e: HqError) -> Self {
        let status = match e {
            HqError::UnknownStore(_) => StatusCode::NOT_FOUND,
            HqError::EpochPending(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl HttpState {
    /// Checks that the bearer token is a client's (in constant time; [`super::clients`]
    /// has already checked its role for the route). The shared states are reached through
    /// the [`Authorised`] this returns.
    pub fn authorise(&self, headers: &HeaderMap) -> Result<Authorised<'_>, Problem> {
        match self.clients.caller(headers) {
            Some(_) => Ok(Authorised(self)),
            None => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
            )),
        }
    }
}

/// A request that showed the right token: runs work on HQ's shared states and publishes.
///
/// Each of [`hq`](Self::hq), [`privacy`](Self::privacy) and [`epcis`](Self::epcis) takes
/// its lock on the blocking pool and returns what the work returned; `Err` only when the work could not finish (it panicked), as a 500. The work's
/// own errors are the caller's to map (`?` through a `From` into [`Problem`], or `map_err`).
pub struct Authorised<'a>(&'a HttpState);

impl Authorised<'_> {
    /// Runs `work` with HQ's documents and stock locked. The work takes from the database
    /// only the documents it reads, as stored (another HQ instance may have written since:
    /// `hq::state` refreshes every document it uses); memory is cut back to the bound after.
    pub async fn hq<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HqState) -> T + Send + 'static,
    ) -> Result<T, Problem> {
        locked(&self.0.hq, |hq: &mut HqState| {
            let answer = work(hq);
            hq.trim();
            answer
        })
        .await
        .map_err(Problem::internal)
    }

    /// Runs `work` with HQ's customer data locked; a failure names nothing ([`Problem::hidden`]).
    pub async fn privacy<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HqPrivacy) -> T + Send + 'static,
    ) -> Result<T, Problem> {
        locked(&self.0.privacy, work).await.map_err(Problem::hidden)
    }

    /// Runs `work` with HQ's EPCIS events locked.
    pub async fn epcis<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HqEpcis) -> T + Send + 'static,
    ) -> Result<T, Problem> {
        locked(&self.0.epcis, work).await.map_err(Problem::internal)
    }

    /// Queues messages for the publisher (a closed queue means HQ is stopping: dropped).
    pub fn publish(&self, messages: Vec<Outgoing>) {
        for m in messages {
            let _ = self.0.publish.send(m);
        }
    }
}

/// Runs `work` on the blocking pool with `shared` locked. A poisoned lock is taken anyway,
/// like every lock of HQ (`hq::lock`).
async fn locked<S: Send + 'static, T: Send + 'static>(
    shared: &Arc<Mutex<S>>,
    work: impl FnOnce(&mut S) -> T + Send + 'static,
) -> Result<T, JoinError> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        work(&mut state)
    })
    .await
}
