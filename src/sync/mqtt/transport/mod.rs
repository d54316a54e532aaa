//! MQTT 5 transport of the sync layer: one task owns the rumqttc event loop; the rest of
//! the program sees an [`MqttHandle`] to publish with and a channel of [`Incoming`] events.
//!
//! # Why MQTT 5
//! Under MQTT 3.1.1 Mosquitto silently drops a publish its ACL denies (PUBACK 0); under
//! MQTT 5 the PUBACK carries reason code 135 (not authorized), which [`MqttHandle::publish`]
//! reports as [`PublishError::Denied`].
//!
//! # The event-loop task never awaits a publish
//! The task that polls the rumqttc event loop is the only thing that moves packets; if it
//! awaited a publish while the request channel was full it would wait for itself. Its own
//! publishes (the retained online/offline status) use `try_publish`; everybody else calls
//! [`MqttHandle::publish`] from their own task.
//!
//! # Matching acknowledgements to publishes
//! rumqttc assigns packet ids inside the event loop and reports them only afterwards, as
//! `Outgoing::Publish(pkid)`, in the order it takes requests from its channel. The handle
//! appends a pending entry to a FIFO and puts the request into the channel *under one
//! lock*, so the FIFO order is the channel order; the event loop pops the FIFO front on
//! each `Outgoing::Publish(pkid)` and files the entry under `pkid` until the PUBACK comes.
//! The task's own status publishes go through the same FIFO (with nobody waiting).
//!
//! When the connection drops, rumqttc moves the requests it had not yet taken out of the
//! channel into `EventLoop::pending` (with packet id 0, never assigned) and would resend
//! them only into a resumed session. This transport always starts clean sessions and
//! resolves every publish that was not acknowledged with [`PublishError::NotAcknowledged`]:
//! the caller's durable outbox resends, there is no in-memory queue to lose. Requests put
//! into the channel after the drop stay queued and go out after the reconnect.
//!
//! # Reconnects
//! Exponential backoff with full jitter; every CONNACK re-subscribes (sessions are never
//! relied upon) and publishes the retained online message.

use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::AsyncClient;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use rumqttc::v5::mqttbytes::QoS;

mod config;
mod event_loop;
mod handle;
mod state;
mod tracker;

pub use config::{Backoff, StatusMessage, TransportConfig};
pub use handle::{MqttHandle, OutgoingMessage};
pub use state::{ConnectionStatus, MetricsSnapshot, TransportMetrics};

use config::INTERNAL_REQUEST_SLACK;
use event_loop::EventLoopTask;
use state::Shared;
use tracker::PublishTracker;

/// What the transport tells the rest of the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// CONNACK received; the SUBSCRIBE and the online message are queued. A publish made
    /// after this event is queued behind that SUBSCRIBE, and the broker handles one
    /// client's packets in order, so an answer to it (e.g. on a `resp` topic) is delivered.
    Connected,
    /// An established connection was lost (failed reconnect attempts are not repeated).
    Disconnected { reason: String },
    Message {
        topic: String,
        payload: Bytes,
        /// Set by a requester that wants an answer (MQTT 5 request/response).
        response_topic: Option<String>,
        correlation_data: Option<Bytes>,
        /// The broker delivered a stored retained message (e.g. heads, status).
        retain: bool,
    },
}

/// A publish the broker accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// QoS 1, PUBACK reason 0.
    Accepted,
    /// QoS 1, PUBACK reason 16: allowed, but nobody subscribes right now. Still a success.
    NoMatchingSubscribers,
    /// QoS 0: written to the connection; nobody acknowledges it.
    Sent,
}

/// Why a publish did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("broker refused the publish: not authorized (PUBACK reason 135); check the ACL")]
    Denied,
    #[error("broker refused the publish with PUBACK reason {code} ({name})")]
    Refused { code: u8, name: &'static str },
    #[error("connection lost before the broker acknowledged the publish")]
    NotAcknowledged,
    #[error("no acknowledgement within {0:?}")]
    Timeout(Duration),
    #[error("publish of {size} bytes exceeds the maximum packet size of {max} bytes")]
    TooLarge { size: usize, max: u32 },
    #[error("topic {0:?} cannot be published to (empty, or contains '+' or '#')")]
    InvalidTopic(String),
    #[error("QoS 2 is not supported: sync changes are idempotent, QoS 1 is enough")]
    UnsupportedQos,
    #[error("the event loop's request queue is full")]
    QueueFull,
    #[error("the MQTT transport has stopped")]
    Closed,
}

/// Why the transport could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("invalid MQTT transport configuration: {0}")]
    InvalidConfig(String),
}

/// Entry point; see the module documentation.
pub struct MqttTransport;

impl MqttTransport {
    /// Starts the event-loop task. It runs until `shutdown` is cancelled, then publishes the
    /// last will's payload (a graceful `offline`), disconnects and fails pending publishes
    /// with [`PublishError::Closed`]. Must be called inside a tokio runtime.
    ///
    /// Drain the returned receiver continuously: when it is full the event loop waits, and
    /// PUBACKs wait with it. A consumer that awaits a publish should not be the only reader.
    pub fn start(
        cfg: TransportConfig,
        shutdown: CancellationToken,
    ) -> Result<(MqttHandle, mpsc::Receiver<Incoming>, JoinHandle<()>), TransportError> {
        cfg.validate()?;
        let (client, eventloop) = AsyncClient::new(
            cfg.mqtt_options(),
            cfg.max_pending_publishes + INTERNAL_REQUEST_SLACK,
        );
        let shared = Arc::new(Shared {
            tracker: Mutex::new(PublishTracker::default()),
            permits: Arc::new(Semaphore::new(cfg.max_pending_publishes)),
            connected: AtomicBool::new(false),
            status: Mutex::new(ConnectionStatus::default()),
            metrics: Arc::new(TransportMetrics::default()),
            broker_max_packet: AtomicU32::new(0),
            max_packet_size: cfg.max_packet_size,
            publish_timeout: cfg.publish_timeout,
        });
        let (incoming_tx, incoming_rx) = mpsc::channel(cfg.incoming_capacity);
        let handle = MqttHandle {
            client: client.clone(),
            shared: shared.clone(),
        };
        let task = EventLoopTask {
            eventloop,
            client,
            shared,
            cfg,
            incoming: incoming_tx,
            shutdown,
            connected_at: None,
            attempt: 0,
        };
        let join = tokio::spawn(task.run());
        Ok((handle, incoming_rx, join))
    }
}

#[cfg(test)]
mod tests;
