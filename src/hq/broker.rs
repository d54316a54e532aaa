//! The embedded MQTT broker (rumqttd) for the demo and single-machine trials.
//!
//! Not for production: rumqttd keeps nothing on disk (retained heads and queued messages
//! are lost with the process; the stores' outboxes and `Need` requests repair that), has no
//! ACL file (any client may publish anywhere: HQ's own author check is the only guard),
//! listens on loopback only and without TLS. Production uses Mosquitto with
//! `config/mosquitto/`. rumqttd's broker loop cannot be stopped: it runs on its own thread
//! until the process exits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker address {0} is not loopback")]
    NotLoopback(SocketAddr),
    #[error("cannot start the embedded broker thread: {0}")]
    Thread(std::io::Error),
    #[error("embedded broker did not accept connections on {0} within 5 s")]
    NotReady(SocketAddr),
}

/// Handle of the broker thread (detached: see the module docs).
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
}

impl EmbeddedBroker {
    pub fn start(addr: SocketAddr) -> Result<Self, BrokerError> {
        if !addr.ip().is_loopback() {
            return Err(BrokerError::NotLoopback(addr));
        }
        let config = broker_config(addr);
        std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let mut broker = Broker::new(config);
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded broker stopped");
                }
            })
            .map_err(BrokerError::Thread)?;
        wait_until_listening(addr)?;
        tracing::warn!(%addr, "embedded MQTT broker running: no persistence, no ACL, no TLS (demo and trials only)");
        Ok(Self { addr })
    }
}

fn wait_until_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotReady(addr))
}

fn broker_config(addr: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "v5-loopback".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 2 * crate::sync::payload::MAX_MESSAGE_BYTES,
            max_inflight_count: 200,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 1000,
            max_segment_size: 64 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v5: Some(HashMap::from([("v5".to_owned(), server)])),
        ..Config::default()
    }
}
