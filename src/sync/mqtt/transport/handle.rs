//! Publishing: the [`MqttHandle`] every task publishes with, and the message it takes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::state::{ConnectionStatus, Shared, TransportMetrics, bump, lock};
use super::tracker::{Pending, PublishResult};
use super::{PublishError, PublishOutcome, QoS};

/// A message to publish, with the MQTT 5 request/response properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    /// MQTT 5 message expiry, in seconds: the broker drops the message rather than deliver
    /// it later (a member lookup nobody waits for any more).
    pub expiry_secs: Option<u32>,
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
            expiry_secs: None,
        }
    }

    pub(super) fn properties(&self) -> PublishProperties {
        PublishProperties {
            response_topic: self.response_topic.clone(),
            correlation_data: self.correlation_data.clone(),
            message_expiry_interval: self.expiry_secs,
            ..PublishProperties::default()
        }
    }

    /// Size of the PUBLISH packet on the wire, as rumqttc's encoder will check it.
    pub(super) fn packet_size(&self) -> usize {
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

/// Cheap to clone; every clone publishes through the same connection.
#[derive(Debug, Clone)]
pub struct MqttHandle {
    pub(super) client: AsyncClient,
    pub(super) shared: Arc<Shared>,
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

pub(super) fn is_publishable_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#'])
}
