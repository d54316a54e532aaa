//! The control plane of a running node: the unix control socket `storenode diag` talks to,
//! and the systemd watchdog.
//!
//! The socket speaks line-delimited JSON ([`protocol`]); the daemon answers from its own
//! store handle ([`handlers`]), so diagnostics never open the database behind its back.

pub mod client;
pub mod handlers;
pub mod protocol;
pub mod server;
pub mod watchdog;

pub use client::{Client, ClientError};
pub use handlers::ControlContext;
