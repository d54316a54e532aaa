//! Serial barcode scanners and UHF RFID readers: pure codecs, presence tracking, simulators,
//! and the drivers that run each configured port.
//!
//! Data path: a port's bytes → codec (pure) → driver ([`scanner`], [`reader`]) →
//! [`pipeline`] (GS1 interpretation, item lookup, live events, batched writes via
//! [`persist`]). [`supervisor`] owns one task per port and reopens failed ports.

pub mod codec;
pub mod config;
pub mod pipeline;
pub mod port;
pub mod ports;
pub mod presence;
pub mod profiles;
pub mod reader;
pub mod scanner;
pub mod sim;
pub mod status;
pub mod supervisor;

pub use supervisor::{DeviceContext, start};
