//! `storenode diag`: the technician's tools.
//!
//! Field operations (helper for issue 12): the commands in [`ops`]; they talk to the
//! running node through [`crate::control`] or, where no node is needed, to the hardware.

pub mod bundle;
pub mod decode;
pub mod lane;
pub mod net;
pub mod ops;
pub mod ports;
pub mod probe;
pub mod redact;
pub mod report;
pub mod restore;
pub mod simulate;
pub mod style;
pub mod target;
