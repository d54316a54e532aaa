//! The CRDT documents a store and HQ share (automerge): their schemas and how each is read
//! and written. No SQLite, no MQTT: `store` projects them into SQLite, `sync` carries them.

pub mod catalog;
pub mod coupons;
pub mod doc;
pub mod epoch;
pub mod epoch_orders;
pub mod escrow;
pub mod loyalty;
pub mod orders;
pub mod pricing;
pub mod stock;
pub mod transfers;
