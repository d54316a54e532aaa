//! What the store's HTTP API and HQ's share, so both answer alike: the JSON error shape
//! ([`error`]), request bodies parsed with the field at fault named ([`json`]), the rate
//! buckets of the endpoints that need no token ([`limits`]), the conventions of their
//! OpenAPI documents ([`openapi`]) and the server loop with its connection limits and
//! optional TLS ([`server`]). A leaf: it knows neither the
//! store nor HQ.

pub mod error;
pub mod json;
pub mod limits;
pub mod openapi;
pub mod server;
