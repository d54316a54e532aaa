//! Offline-first sync with HQ: automerge CRDT documents carried over MQTT.

pub mod claim;
pub mod config;
pub mod doc;
pub mod doc_catalog;
pub mod doc_pricing;
pub mod doc_stock;
pub mod epcis_link;
pub mod epoch;
pub mod epoch_orders;
pub mod escrow;
pub mod hook;
pub mod local;
pub mod node;
pub mod orders;
pub mod orders_doc;
pub mod payload;
pub mod persist;
pub mod service;
pub mod tls;
pub mod topics;
pub mod transfers;
pub mod transfers_doc;
pub mod transport;
pub mod wire;
