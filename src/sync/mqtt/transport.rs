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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Filter, LastWill, Packet, PubAck, PubAckReason, Publish, PublishProperties, SubAck,
    SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Request};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub use rumqttc::v5::mqttbytes::QoS;

/// How long a graceful shutdown may spend publishing `offline` and sending DISCONNECT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Request-channel room beyond the publish permits, for the task's own requests
/// (SUBSCRIBE and the online status per CONNACK; offline status and DISCONNECT at the end).
const INTERNAL_REQUEST_SLACK: usize = 8;

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
    fn delay(&self, attempt: u32, unit: f64) -> Duration {
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
        }
    }

    fn validate(&self) -> Result<(), TransportError> {
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
        if self.max_pending_publishes == 0 || self.incoming_capacity == 0 {
            return invalid("max_pending_publishes and incoming_capacity must be > 0".into());
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

    fn mqtt_options(&self) -> MqttOptions {
        let mut options = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        options
            .set_keep_alive(self.keep_alive)
            .set_clean_start(true)
            .set_connection_timeout(self.connect_timeout.as_secs().max(1))
            .set_max_packet_size(Some(self.max_packet_size))
            .set_request_channel_capacity(self.max_pending_publishes + INTERNAL_REQUEST_SLACK);
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

/// A message to publish, with the MQTT 5 request/response properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
}

impl OutgoingMessage {
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>, qos: QoS) -> Self {
        OutgoingMessage {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain: false,
            response_topic: None,
            correlation_data: None,
        }
    }

    fn properties(&self) -> PublishProperties {
        PublishProperties {
            response_topic: self.response_topic.clone(),
            correlation_data: self.correlation_data.clone(),
            ..PublishProperties::default()
        }
    }

    /// Size of the PUBLISH packet on the wire, as rumqttc's encoder will check it.
    fn packet_size(&self) -> usize {
        let mut publish = Publish::new(
            self.topic.as_str(),
            self.qos,
            self.payload.clone(),
            Some(self.properties()),
        );
        publish.retain = self.retain;
        publish.size()
    }
}

/// Counters for metrics export; plain atomics, read with [`TransportMetrics::snapshot`].
#[derive(Debug, Default)]
pub struct TransportMetrics {
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub disconnects: AtomicU64,
    pub published: AtomicU64,
    pub denied: AtomicU64,
    pub publish_failures: AtomicU64,
    pub received: AtomicU64,
}

/// A point-in-time copy of [`TransportMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub connects: u64,
    pub connect_failures: u64,
    pub disconnects: u64,
    pub published: u64,
    pub denied: u64,
    pub publish_failures: u64,
    pub received: u64,
}

impl TransportMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            connects: read(&self.connects),
            connect_failures: read(&self.connect_failures),
            disconnects: read(&self.disconnects),
            published: read(&self.published),
            denied: read(&self.denied),
            publish_failures: read(&self.publish_failures),
            received: read(&self.received),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Connection state for readiness checks and diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionStatus {
    pub connected: bool,
    pub last_connected: Option<SystemTime>,
    pub last_disconnected: Option<SystemTime>,
    /// The most recent connection error (failed attempt or lost connection).
    pub last_error: Option<String>,
}

/// State shared by the handle(s) and the event-loop task.
#[derive(Debug)]
struct Shared {
    tracker: Mutex<PublishTracker>,
    permits: Arc<Semaphore>,
    connected: AtomicBool,
    status: Mutex<ConnectionStatus>,
    metrics: Arc<TransportMetrics>,
    /// Maximum packet size the broker announced in CONNACK (0: none announced).
    broker_max_packet: AtomicU32,
    max_packet_size: u32,
    publish_timeout: Duration,
}

/// A poisoned lock only means another thread panicked while holding it; the data inside
/// (a queue of waiters, timestamps) is still consistent enough to carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn set_connected(&self, at: SystemTime) {
        self.connected.store(true, Ordering::Release);
        let mut status = lock(&self.status);
        status.connected = true;
        status.last_connected = Some(at);
    }

    fn set_disconnected(&self, at: SystemTime, reason: &str) {
        self.connected.store(false, Ordering::Release);
        let mut status = lock(&self.status);
        status.connected = false;
        status.last_disconnected = Some(at);
        status.last_error = Some(reason.to_owned());
    }

    fn record_connect_failure(&self, reason: &str) {
        lock(&self.status).last_error = Some(reason.to_owned());
    }

    fn max_outgoing_packet(&self) -> u32 {
        match self.broker_max_packet.load(Ordering::Acquire) {
            0 => self.max_packet_size,
            broker => broker.min(self.max_packet_size),
        }
    }
}

/// Cheap to clone; every clone publishes through the same connection.
#[derive(Debug, Clone)]
pub struct MqttHandle {
    client: AsyncClient,
    shared: Arc<Shared>,
}

impl MqttHandle {
    /// Publishes and resolves when the broker has acknowledged (QoS 1) or the packet was
    /// handed to the connection (QoS 0). Bounded by `publish_timeout`.
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<PublishOutcome, PublishError> {
        let mut message = OutgoingMessage::new(topic, payload, qos);
        message.retain = retain;
        self.publish_message(message).await
    }

    /// Like [`MqttHandle::publish`], with response topic and correlation data.
    pub async fn publish_message(
        &self,
        message: OutgoingMessage,
    ) -> Result<PublishOutcome, PublishError> {
        let result = self.publish_checked(message).await;
        if let Err(err) = &result
            && *err != PublishError::Denied
        {
            bump(&self.shared.metrics.publish_failures);
        }
        result
    }

    async fn publish_checked(
        &self,
        message: OutgoingMessage,
    ) -> Result<PublishOutcome, PublishError> {
        if message.qos == QoS::ExactlyOnce {
            return Err(PublishError::UnsupportedQos);
        }
        if !is_publishable_topic(&message.topic) {
            return Err(PublishError::InvalidTopic(message.topic));
        }
        let max = self.shared.max_outgoing_packet();
        let size = message.packet_size();
        if size > max as usize {
            // rumqttc would fail the whole connection on an oversized packet; refuse it here.
            return Err(PublishError::TooLarge { size, max });
        }
        let timeout = self.shared.publish_timeout;
        tokio::time::timeout(timeout, async {
            let permit = self
                .shared
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| PublishError::Closed)?;
            let acknowledgement = self.enqueue(message, permit)?;
            acknowledgement.await.map_err(|_| PublishError::Closed)?
        })
        .await
        .map_err(|_| PublishError::Timeout(timeout))?
    }

    /// Registers the waiter and queues the request under one lock: see the module docs.
    fn enqueue(
        &self,
        message: OutgoingMessage,
        permit: OwnedSemaphorePermit,
    ) -> Result<oneshot::Receiver<PublishResult>, PublishError> {
        let (waiter, acknowledgement) = oneshot::channel();
        let mut tracker = lock(&self.shared.tracker);
        if tracker.is_closed() {
            return Err(PublishError::Closed);
        }
        tracker.enqueue(Pending {
            waiter: Some(waiter),
            qos: message.qos,
            permit: Some(permit),
        });
        let properties = message.properties();
        let sent = self.client.try_publish_with_properties(
            message.topic,
            message.qos,
            message.retain,
            message.payload,
            properties,
        );
        if sent.is_err() {
            tracker.cancel_last();
            return Err(PublishError::QueueFull);
        }
        Ok(acknowledgement)
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    pub fn status(&self) -> ConnectionStatus {
        lock(&self.shared.status).clone()
    }

    pub fn metrics(&self) -> Arc<TransportMetrics> {
        self.shared.metrics.clone()
    }
}

fn is_publishable_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#'])
}

type PublishResult = Result<PublishOutcome, PublishError>;

/// A publish whose packet id or acknowledgement is still to come.
#[derive(Debug)]
struct Pending {
    /// `None` for the transport's own status publishes.
    waiter: Option<oneshot::Sender<PublishResult>>,
    qos: QoS,
    /// Room in the request channel, given back once rumqttc has taken the request.
    permit: Option<OwnedSemaphorePermit>,
}

impl Pending {
    fn resolve(self, result: PublishResult) {
        if let Some(waiter) = self.waiter {
            // The caller may have timed out and gone; nothing to tell then.
            let _ = waiter.send(result);
        }
    }
}

/// Bookkeeping from publish request to acknowledgement; no I/O.
#[derive(Debug, Default)]
struct PublishTracker {
    /// In request-channel order, not yet given a packet id by rumqttc.
    queued: VecDeque<Pending>,
    /// QoS 1 publishes on the wire, by packet id.
    inflight: HashMap<u16, Pending>,
    closed: bool,
}

/// The tracker saw an event it cannot match; a bug, logged by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum TrackerError {
    #[error("rumqttc reported publish pkid {0} but no publish was queued")]
    NothingQueued(u16),
    #[error("rumqttc reported pkid {pkid} for a queued publish of {qos:?}")]
    QosMismatch { pkid: u16, qos: QoS },
    #[error("PUBACK for pkid {0} which is not in flight")]
    UnknownAck(u16),
}

impl PublishTracker {
    fn is_closed(&self) -> bool {
        self.closed
    }

    fn enqueue(&mut self, pending: Pending) {
        self.queued.push_back(pending);
    }

    /// Undoes the last `enqueue` when its request could not be queued.
    fn cancel_last(&mut self) {
        self.queued.pop_back();
    }

    /// rumqttc took the next request from its channel and gave it `pkid` (0 for QoS 0).
    fn on_outgoing_publish(&mut self, pkid: u16) -> Result<(), TrackerError> {
        let mut pending = self
            .queued
            .pop_front()
            .ok_or(TrackerError::NothingQueued(pkid))?;
        pending.permit = None;
        let qos = pending.qos;
        let consistent = (pkid == 0) == (qos == QoS::AtMostOnce);
        if pkid == 0 {
            pending.resolve(Ok(PublishOutcome::Sent));
        } else if let Some(previous) = self.inflight.insert(pkid, pending) {
            // Only possible if rumqttc reused a pkid before its ack; the old one is lost.
            previous.resolve(Err(PublishError::NotAcknowledged));
        }
        if consistent {
            Ok(())
        } else {
            Err(TrackerError::QosMismatch { pkid, qos })
        }
    }

    /// PUBACK for `pkid`; returns what the waiter was told. `before_resolve` sees the
    /// result first, so counters are up to date by the time the caller wakes up.
    fn on_puback(
        &mut self,
        pkid: u16,
        reason: PubAckReason,
        before_resolve: impl FnOnce(&PublishResult),
    ) -> Result<PublishResult, TrackerError> {
        let pending = self
            .inflight
            .remove(&pkid)
            .ok_or(TrackerError::UnknownAck(pkid))?;
        let result = puback_result(reason);
        before_resolve(&result);
        pending.resolve(result.clone());
        Ok(result)
    }

    /// The connection is gone: everything in flight, and the first `unsent` queued
    /// requests (which rumqttc drained from its channel and will not send), failed.
    fn on_connection_lost(&mut self, unsent: usize) -> usize {
        let mut failed = 0;
        for (_, pending) in self.inflight.drain() {
            pending.resolve(Err(PublishError::NotAcknowledged));
            failed += 1;
        }
        for _ in 0..unsent {
            let Some(pending) = self.queued.pop_front() else {
                break;
            };
            pending.resolve(Err(PublishError::NotAcknowledged));
            failed += 1;
        }
        failed
    }

    /// The event loop has ended: fail everything, refuse new publishes.
    fn close(&mut self) {
        self.closed = true;
        for (_, pending) in self.inflight.drain() {
            pending.resolve(Err(PublishError::Closed));
        }
        for pending in self.queued.drain(..) {
            pending.resolve(Err(PublishError::Closed));
        }
    }
}

fn puback_result(reason: PubAckReason) -> PublishResult {
    match reason {
        PubAckReason::Success => Ok(PublishOutcome::Accepted),
        PubAckReason::NoMatchingSubscribers => Ok(PublishOutcome::NoMatchingSubscribers),
        PubAckReason::NotAuthorized => Err(PublishError::Denied),
        other => {
            let (code, name) = puback_reason_code(other);
            Err(PublishError::Refused { code, name })
        }
    }
}

/// MQTT 5 PUBACK reason codes (spec section 3.4.2.1).
fn puback_reason_code(reason: PubAckReason) -> (u8, &'static str) {
    match reason {
        PubAckReason::Success => (0, "success"),
        PubAckReason::NoMatchingSubscribers => (16, "no matching subscribers"),
        PubAckReason::UnspecifiedError => (128, "unspecified error"),
        PubAckReason::ImplementationSpecificError => (131, "implementation specific error"),
        PubAckReason::NotAuthorized => (135, "not authorized"),
        PubAckReason::TopicNameInvalid => (144, "topic name invalid"),
        PubAckReason::PacketIdentifierInUse => (145, "packet identifier in use"),
        PubAckReason::QuotaExceeded => (151, "quota exceeded"),
        PubAckReason::PayloadFormatInvalid => (153, "payload format invalid"),
    }
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

/// The one task that polls rumqttc.
struct EventLoopTask {
    eventloop: EventLoop,
    client: AsyncClient,
    shared: Arc<Shared>,
    cfg: TransportConfig,
    incoming: mpsc::Sender<Incoming>,
    shutdown: CancellationToken,
    /// When the current connection's CONNACK arrived; `None` while disconnected.
    connected_at: Option<Instant>,
    /// Consecutive failed or short-lived connections, for the backoff.
    attempt: u32,
}

impl EventLoopTask {
    async fn run(mut self) {
        let client_id = self.cfg.client_id.clone();
        info!(client_id, host = %self.cfg.host, port = self.cfg.port, "MQTT transport starting");
        loop {
            let polled = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                polled = self.eventloop.poll() => polled,
            };
            match polled {
                Ok(event) => {
                    if !self.handle_event(event).await {
                        break;
                    }
                }
                Err(err) => {
                    if !self.handle_connection_error(err).await {
                        break;
                    }
                }
            }
        }
        self.stop().await;
        info!(client_id, "MQTT transport stopped");
    }

    /// Returns false when shutdown was requested while waiting.
    async fn handle_event(&mut self, event: Event) -> bool {
        match event {
            Event::Incoming(Packet::ConnAck(connack)) => self.on_connack(&connack).await,
            Event::Incoming(Packet::Publish(publish)) => self.deliver(publish).await,
            Event::Incoming(Packet::PubAck(puback)) => {
                self.on_puback(&puback);
                true
            }
            Event::Incoming(Packet::SubAck(suback)) => {
                self.log_refused_subscriptions(&suback);
                true
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Err(err) = lock(&self.shared.tracker).on_outgoing_publish(pkid) {
                    error!(cause = %err, "publish bookkeeping out of step");
                }
                true
            }
            _ => true,
        }
    }

    async fn on_connack(&mut self, connack: &ConnAck) -> bool {
        let broker_max = connack
            .properties
            .as_ref()
            .and_then(|props| props.max_packet_size)
            .unwrap_or(0);
        self.shared
            .broker_max_packet
            .store(broker_max, Ordering::Release);
        self.connected_at = Some(Instant::now());
        self.shared.set_connected(SystemTime::now());
        bump(&self.shared.metrics.connects);
        info!(client_id = %self.cfg.client_id, broker_max_packet = broker_max, "MQTT connected");
        self.subscribe_all();
        if let Some(online) = self.cfg.online.clone() {
            self.publish_status(&online);
        }
        self.emit(Incoming::Connected).await
    }

    /// Subscriptions are renewed on every connection: sessions start clean.
    fn subscribe_all(&self) {
        if self.cfg.subscriptions.is_empty() {
            return;
        }
        let filters = self
            .cfg
            .subscriptions
            .iter()
            .map(|(filter, qos)| Filter::new(filter.clone(), *qos));
        if let Err(err) = self.client.try_subscribe_many(filters) {
            // Cannot happen with the reserved slack; if it does, the next connect retries.
            error!(cause = %err, "could not queue SUBSCRIBE");
        }
    }

    /// The task's own publish: through the tracker (to keep the FIFO in step), never awaited.
    fn publish_status(&self, status: &StatusMessage) {
        let mut tracker = lock(&self.shared.tracker);
        tracker.enqueue(Pending {
            waiter: None,
            qos: QoS::AtLeastOnce,
            permit: None,
        });
        let queued = self.client.try_publish(
            status.topic.clone(),
            QoS::AtLeastOnce,
            status.retain,
            status.payload.clone(),
        );
        if let Err(err) = queued {
            tracker.cancel_last();
            warn!(cause = %err, topic = %status.topic, "could not queue status message");
        }
    }

    fn on_puback(&self, puback: &PubAck) {
        let metrics = &self.shared.metrics;
        let count = |result: &PublishResult| match result {
            Ok(_) => bump(&metrics.published),
            Err(PublishError::Denied) => bump(&metrics.denied),
            Err(_) => {}
        };
        let result = lock(&self.shared.tracker).on_puback(puback.pkid, puback.reason, count);
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(PublishError::Denied)) => {
                warn!(
                    pkid = puback.pkid,
                    "publish denied by broker ACL (reason 135)"
                );
            }
            Ok(Err(err)) => warn!(pkid = puback.pkid, cause = %err, "publish refused"),
            Err(err) => error!(cause = %err, "publish bookkeeping out of step"),
        }
    }

    fn log_refused_subscriptions(&self, suback: &SubAck) {
        let filters = self.cfg.subscriptions.iter().map(|(filter, _)| filter);
        for (code, filter) in suback.return_codes.iter().zip(filters) {
            if !matches!(code, SubscribeReasonCode::Success(_)) {
                error!(filter = %filter, reason = ?code, "broker refused subscription");
            }
        }
    }

    async fn deliver(&mut self, publish: Publish) -> bool {
        let Ok(topic) = String::from_utf8(publish.topic.to_vec()) else {
            warn!("dropping message whose topic is not UTF-8");
            return true;
        };
        bump(&self.shared.metrics.received);
        let (response_topic, correlation_data) = publish
            .properties
            .map(|props| (props.response_topic, props.correlation_data))
            .unwrap_or_default();
        self.emit(Incoming::Message {
            topic,
            payload: publish.payload,
            response_topic,
            correlation_data,
            retain: publish.retain,
        })
        .await
    }

    /// Hands an event to the consumer; false when shutdown came first.
    async fn emit(&mut self, event: Incoming) -> bool {
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => false,
            sent = self.incoming.send(event) => {
                if sent.is_err() {
                    debug!("incoming receiver dropped; event discarded");
                }
                true
            }
        }
    }

    /// Accounts for the dead connection, tells the consumer, waits out the backoff.
    /// Returns false when shutdown was requested.
    async fn handle_connection_error(&mut self, err: ConnectionError) -> bool {
        let reason = err.to_string();
        if !self.settle_dead_connection().await {
            return false;
        }
        let was_connected = self.connected_at.take();
        if let Some(since) = was_connected {
            if since.elapsed() >= self.cfg.backoff.stable_after {
                self.attempt = 0;
            }
            self.shared.set_disconnected(SystemTime::now(), &reason);
            bump(&self.shared.metrics.disconnects);
            warn!(client_id = %self.cfg.client_id, cause = %reason, "MQTT connection lost");
            if !self.emit(Incoming::Disconnected { reason }).await {
                return false;
            }
        } else {
            self.shared.record_connect_failure(&reason);
            bump(&self.shared.metrics.connect_failures);
            warn!(client_id = %self.cfg.client_id, cause = %reason, "MQTT connect failed");
        }
        let delay = self.cfg.backoff.delay(self.attempt, rand::random::<f64>());
        self.attempt = self.attempt.saturating_add(1);
        debug!(?delay, attempt = self.attempt, "reconnecting after backoff");
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    /// rumqttc may have buffered events of the dead connection (a packet id handed out
    /// just before the write failed, acks read in the same batch): process them first so
    /// the bookkeeping is complete, then fail what will never be acknowledged.
    async fn settle_dead_connection(&mut self) -> bool {
        let stale: Vec<Event> = self.eventloop.state.events.drain(..).collect();
        for event in stale {
            if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                continue;
            }
            if !self.handle_event(event).await {
                return false;
            }
        }
        let drained_unsent = self
            .eventloop
            .pending
            .iter()
            .filter(|request| matches!(request, Request::Publish(p) if p.pkid == 0))
            .count();
        // A publish parked on a packet-id collision has had no Outgoing::Publish yet.
        let collided = usize::from(self.eventloop.state.collision.take().is_some());
        // Never resend into the next (clean) session: the callers' outboxes resend.
        self.eventloop.pending.clear();
        let failed = lock(&self.shared.tracker).on_connection_lost(drained_unsent + collided);
        if failed > 0 {
            debug!(
                failed,
                drained_unsent, collided, "pending publishes failed with NotAcknowledged"
            );
        }
        true
    }

    /// Graceful end: announce offline, send DISCONNECT, fail what is left.
    async fn stop(&mut self) {
        if self.connected_at.is_some() {
            if let Some(will) = self.cfg.last_will.clone() {
                // A normal DISCONNECT suppresses the will, so say `offline` ourselves.
                self.publish_status(&will);
            }
            if self.client.try_disconnect().is_ok() {
                self.drive_until_disconnect_sent().await;
            }
            self.shared
                .set_disconnected(SystemTime::now(), "transport shut down");
        }
        lock(&self.shared.tracker).close();
        self.shared.permits.close();
    }

    async fn drive_until_disconnect_sent(&mut self) {
        let drive = async {
            loop {
                match self.eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(Event::Incoming(Packet::PubAck(puback))) => self.on_puback(&puback),
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        // Keeps the offline publish's bookkeeping in step.
                        let _ = lock(&self.shared.tracker).on_outgoing_publish(pkid);
                    }
                    Ok(_) => {}
                }
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drive).await.is_err() {
            warn!("MQTT DISCONNECT not sent within the shutdown grace period");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(qos: QoS) -> (Pending, oneshot::Receiver<PublishResult>) {
        let (tx, rx) = oneshot::channel();
        (
            Pending {
                waiter: Some(tx),
                qos,
                permit: None,
            },
            rx,
        )
    }

    #[test]
    fn acks_are_matched_to_publishes_in_request_order() {
        let mut tracker = PublishTracker::default();
        let (a, mut rx_a) = pending(QoS::AtLeastOnce);
        let (b, mut rx_b) = pending(QoS::AtLeastOnce);
        tracker.enqueue(a);
        tracker.enqueue(b);
        tracker.on_outgoing_publish(7).unwrap();
        tracker.on_outgoing_publish(8).unwrap();
        // Acks may come in any order; each lands on its own publish.
        assert_eq!(
            tracker.on_puback(8, PubAckReason::NotAuthorized, |_| {}),
            Ok(Err(PublishError::Denied))
        );
        assert_eq!(
            tracker.on_puback(7, PubAckReason::NoMatchingSubscribers, |_| {}),
            Ok(Ok(PublishOutcome::NoMatchingSubscribers))
        );
        assert_eq!(
            rx_a.try_recv().unwrap(),
            Ok(PublishOutcome::NoMatchingSubscribers)
        );
        assert_eq!(rx_b.try_recv().unwrap(), Err(PublishError::Denied));
    }

    #[test]
    fn qos0_resolves_when_written() {
        let mut tracker = PublishTracker::default();
        let (a, mut rx) = pending(QoS::AtMostOnce);
        tracker.enqueue(a);
        tracker.on_outgoing_publish(0).unwrap();
        assert_eq!(rx.try_recv().unwrap(), Ok(PublishOutcome::Sent));
    }

    #[test]
    fn connection_loss_fails_inflight_and_drained_but_keeps_later_requests() {
        let mut tracker = PublishTracker::default();
        let (inflight, mut rx_inflight) = pending(QoS::AtLeastOnce);
        let (drained, mut rx_drained) = pending(QoS::AtLeastOnce);
        let (later, mut rx_later) = pending(QoS::AtLeastOnce);
        tracker.enqueue(inflight);
        tracker.on_outgoing_publish(1).unwrap();
        tracker.enqueue(drained);
        tracker.enqueue(later);
        assert_eq!(tracker.on_connection_lost(1), 2);
        assert_eq!(
            rx_inflight.try_recv().unwrap(),
            Err(PublishError::NotAcknowledged)
        );
        assert_eq!(
            rx_drained.try_recv().unwrap(),
            Err(PublishError::NotAcknowledged)
        );
        assert!(rx_later.try_recv().is_err(), "still waiting");
        // After the reconnect the later request gets its own pkid and ack.
        tracker.on_outgoing_publish(1).unwrap();
        assert_eq!(
            tracker.on_puback(1, PubAckReason::Success, |_| {}),
            Ok(Ok(PublishOutcome::Accepted))
        );
        assert_eq!(rx_later.try_recv().unwrap(), Ok(PublishOutcome::Accepted));
    }

    #[test]
    fn unmatched_events_are_reported_not_panicked() {
        let mut tracker = PublishTracker::default();
        assert_eq!(
            tracker.on_outgoing_publish(3),
            Err(TrackerError::NothingQueued(3))
        );
        assert!(matches!(
            tracker.on_puback(3, PubAckReason::Success, |_| {}),
            Err(TrackerError::UnknownAck(3))
        ));
        let (a, _rx) = pending(QoS::AtLeastOnce);
        tracker.enqueue(a);
        assert!(matches!(
            tracker.on_outgoing_publish(0),
            Err(TrackerError::QosMismatch { pkid: 0, .. })
        ));
    }

    #[test]
    fn close_fails_everything_and_refuses_more() {
        let mut tracker = PublishTracker::default();
        let (a, mut rx_a) = pending(QoS::AtLeastOnce);
        let (b, mut rx_b) = pending(QoS::AtLeastOnce);
        tracker.enqueue(a);
        tracker.on_outgoing_publish(1).unwrap();
        tracker.enqueue(b);
        tracker.close();
        assert!(tracker.is_closed());
        assert_eq!(rx_a.try_recv().unwrap(), Err(PublishError::Closed));
        assert_eq!(rx_b.try_recv().unwrap(), Err(PublishError::Closed));
    }

    #[test]
    fn other_puback_reasons_carry_their_code() {
        assert_eq!(
            puback_result(PubAckReason::QuotaExceeded),
            Err(PublishError::Refused {
                code: 151,
                name: "quota exceeded"
            })
        );
        assert_eq!(
            puback_result(PubAckReason::Success),
            Ok(PublishOutcome::Accepted)
        );
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            stable_after: Duration::from_secs(5),
        };
        assert_eq!(backoff.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff.delay(2, 1.0), Duration::from_millis(400));
        assert_eq!(backoff.delay(10, 1.0), Duration::from_secs(1));
        assert_eq!(backoff.delay(u32::MAX, 1.0), Duration::from_secs(1));
        assert_eq!(backoff.delay(3, 0.0), Duration::ZERO);
        assert_eq!(backoff.delay(3, 0.5), Duration::from_millis(400));
    }

    #[test]
    fn config_validation_names_the_problem() {
        let mut cfg = TransportConfig::new("", "127.0.0.1", 1883);
        let err = cfg.validate().unwrap_err();
        assert!(err.to_string().contains("client_id"), "{err}");
        cfg.client_id = "n1".into();
        cfg.max_packet_size = 10;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("max_packet_size")
        );
        cfg.max_packet_size = 256 * 1024;
        cfg.online = Some(StatusMessage {
            topic: "a/+".into(),
            payload: Bytes::from_static(b"online"),
            retain: true,
        });
        assert!(cfg.validate().unwrap_err().to_string().contains("a/+"));
        cfg.online = None;
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn packet_size_counts_topic_payload_and_properties() {
        let small = OutgoingMessage::new("a/b", vec![0u8; 10], QoS::AtLeastOnce);
        let mut with_response = small.clone();
        with_response.response_topic = Some("reply/here".into());
        assert!(small.packet_size() >= 3 + 10);
        assert!(with_response.packet_size() > small.packet_size());
    }
}
