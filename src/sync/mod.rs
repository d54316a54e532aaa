//! Offline-first sync with HQ: automerge CRDT documents carried over MQTT.

pub mod config;
