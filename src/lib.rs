//! storenode: the edge node of a retail store. See README.md for the architecture.

pub mod api;
pub mod bench;
pub mod cli;
pub mod cli_numbers;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod devices;
pub mod diag;
pub mod domain;
pub mod epcis;
pub mod events;
pub mod gs1;
pub mod health;
pub mod hq;
pub mod http_client;
pub mod import;
pub mod metrics;
pub mod money;
pub mod ownership;
pub mod privacy;
pub mod provision;
pub mod store;
pub mod sync;
pub mod telemetry;
