//! What the transport is told: broker, TLS, client id, subscriptions, the status messages,
//! bounds, and the reconnect backoff; checked and turned into rumqttc's options.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::MqttOptions;
use rumqttc::v5::mqttbytes::v5::LastWill;
use rumqttc::{TlsConfiguration, Transport};

use super::handle::is_publishable_topic;
use super::{QoS, TransportError};

/// Request-channel room beyond the publish permits, for the task's own requests
/// (SUBSCRIBE and the online status per CONNACK; offline status and DISCONNECT at the end).
pub(super) const INTERNAL_REQUEST_SLACK: usize = 8;

/// A retained status message: the online message sent on every connect, or the last will.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessage {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

/// Reconnect delays: attempt `n` waits a random time in `[0, min(max, initial * 2^n)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// A connection that lasted this long resets the attempt count; shorter ones (a broker
    /// that accepts and then drops us) keep growing the delay.
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            stable_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (0-based) given a uniform `unit` in [0, 1).
    pub(super) fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let factor = 2u32.checked_pow(attempt.min(31)).unwrap_or(u32::MAX);
        let cap = self.initial.saturating_mul(factor).min(self.max);
        cap.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Everything the transport needs; build with [`TransportConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub client_id: String,
    pub host: String,
    pub port: u16,
    /// `None`: plain TCP (tests, loopback). Production uses `crate::tls::client_config`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub keep_alive: Duration,
    pub connect_timeout: Duration,
    /// Largest packet accepted from the broker and sent to it (rumqttc's default is 10 KiB,
    /// too small for a batch of changes). The broker's own limit from CONNACK also applies.
    pub max_packet_size: u32,
    /// Subscribed again on every CONNACK.
    pub subscriptions: Vec<(String, QoS)>,
    pub last_will: Option<StatusMessage>,
    /// Published (QoS 1) on every CONNACK, normally retained `online` on the will's topic.
    pub online: Option<StatusMessage>,
    pub backoff: Backoff,
    /// Bound on one [`MqttHandle::publish`] call, including waiting for room and the PUBACK.
    pub publish_timeout: Duration,
    /// Publishes that may be queued towards the event loop at once.
    pub max_pending_publishes: usize,
    /// Capacity of the [`Incoming`] channel; when full the event loop waits (backpressure).
    pub incoming_capacity: usize,
    /// QoS 1 publishes in flight at once (the broker's receive maximum from CONNACK lowers
    /// it further: Mosquitto says 20). rumqttc allocates a slot per possible packet id up
    /// front, and its default (65,535) made that one vector about 13 MiB of every node's
    /// resident memory, whatever the broker allowed.
    pub max_inflight: u16,
}

impl TransportConfig {
    pub fn new(client_id: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        TransportConfig {
            client_id: client_id.into(),
            host: host.into(),
            port,
            tls: None,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_packet_size: 256 * 1024,
            subscriptions: Vec::new(),
            last_will: None,
            online: None,
            backoff: Backoff::default(),
            publish_timeout: Duration::from_secs(10),
            max_pending_publishes: 64,
            incoming_capacity: 256,
            max_inflight: 256,
        }
    }

    pub(super) fn validate(&self) -> Result<(), TransportError> {
        let invalid = |reason: String| Err(TransportError::InvalidConfig(reason));
        if self.client_id.is_empty() {
            return invalid("client_id is empty".into());
        }
        if self.host.is_empty() {
            return invalid("host is empty".into());
        }
        if self.max_packet_size < 1024 {
            return invalid(format!(
                "max_packet_size {} is below 1024 bytes",
                self.max_packet_size
            ));
        }
        if self.keep_alive.as_secs() == 0 || self.keep_alive.as_secs() > u64::from(u16::MAX) {
            return invalid(format!(
                "keep_alive {:?} must be 1 s to 65535 s",
                self.keep_alive
            ));
        }
        if self.max_pending_publishes == 0 || self.incoming_capacity == 0 || self.max_inflight == 0
        {
            return invalid(
                "max_pending_publishes, incoming_capacity and max_inflight must be > 0".into(),
            );
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return invalid(format!(
                "backoff initial {:?} must be > 0 and <= max {:?}",
                self.backoff.initial, self.backoff.max
            ));
        }
        if let Some((filter, _)) = self.subscriptions.iter().find(|(f, _)| f.is_empty()) {
            return invalid(format!("empty subscription filter {filter:?}"));
        }
        for status in self.last_will.iter().chain(&self.online) {
            if !is_publishable_topic(&status.topic) {
                return invalid(format!(
                    "status topic {:?} is not publishable",
                    status.topic
                ));
            }
        }
        Ok(())
    }

    pub(super) fn mqtt_options(&self) -> MqttOptions {
        let mut options = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        options
            .set_keep_alive(self.keep_alive)
            .set_clean_start(true)
            .set_connection_timeout(self.connect_timeout.as_secs().max(1))
            .set_max_packet_size(Some(self.max_packet_size))
            .set_request_channel_capacity(self.max_pending_publishes + INTERNAL_REQUEST_SLACK)
            .set_outgoing_inflight_upper_limit(self.max_inflight);
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
        }
        if let Some(will) = &self.last_will {
            options.set_last_will(LastWill::new(
                will.topic.clone(),
                will.payload.to_vec(),
                QoS::AtLeastOnce,
                will.retain,
                None,
            ));
        }
        options
    }
}
