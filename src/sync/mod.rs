//! Offline-first sync with HQ: automerge CRDT documents carried over MQTT.
//!
//! By role (the document schemas themselves are in [`crate::crdt`]):
//! - [`mqtt`]: the broker connection, the topic layout, the writer claim;
//! - [`wire`]: the bytes of a sync message and the messages built from document state;
//! - [`local`]: a store node's documents and their projections into its SQLite;
//! - [`persist`]: the durable form of the documents and the outbox (node and HQ);
//! - [`node`]: the store node's replication service, its commit hook and its links for
//!   customer data and EPCIS events;
//! - [`config`]: the `[sync]` and `[hq]` sections.

pub mod config;
pub mod hq_api;
pub mod local;
pub mod mqtt;
pub mod node;
pub mod persist;
pub mod wire;

// The paths HQ, the integration tests, the examples and the fuzz targets import from.
pub use mqtt::{topics, transport};
pub use node::{pii, service};
pub use wire::payload;
