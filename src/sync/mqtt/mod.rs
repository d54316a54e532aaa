//! The MQTT side of sync: the connection to the broker ([`transport`]), the topic layout
//! ([`topics`]) and the retained status by which one box claims a writer id ([`claim`]).

pub mod claim;
pub mod topics;
pub mod transport;
