//! Helpers shared by the integration tests. Each test binary uses a different subset, so
//! unused items in one binary are expected.
#![allow(dead_code)]

pub mod faultproxy;
pub mod front;
pub mod mosquitto;
pub mod node;
pub mod pki;
pub mod provision;
