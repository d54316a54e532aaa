//! The one task that polls rumqttc: connects, renews the subscriptions and the online
//! status on every CONNACK, delivers messages, matches acknowledgements, reconnects with
//! backoff, and ends with `offline` and DISCONNECT.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Filter, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, Request};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::config::{StatusMessage, TransportConfig};
use super::state::{Shared, bump, lock};
use super::tracker::{Pending, PublishResult};
use super::{Incoming, PublishError, QoS};

/// How long a graceful shutdown may spend publishing `offline` and sending DISCONNECT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The one task that polls rumqttc.
pub(super) struct EventLoopTask {
    pub(super) eventloop: EventLoop,
    pub(super) client: AsyncClient,
    pub(super) shared: Arc<Shared>,
    pub(super) cfg: TransportConfig,
    pub(super) incoming: mpsc::Sender<Incoming>,
    pub(super) shutdown: CancellationToken,
    /// When the current connection's CONNACK arrived; `None` while disconnected.
    pub(super) connected_at: Option<Instant>,
    /// Consecutive failed or short-lived connections, for the backoff.
    pub(super) attempt: u32,
}

impl EventLoopTask {
    pub(super) async fn run(mut self) {
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
