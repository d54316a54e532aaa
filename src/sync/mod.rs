//! Offline-first sync with HQ: automerge CRDT documents carried over MQTT.

pub mod claim;
pub mod config;
pub mod epcis_link;
pub mod hook;
pub mod local;
pub mod node;
pub mod payload;
pub mod persist;
pub mod pii;
pub mod service;
pub mod topics;
pub mod transport;
pub mod wire;
