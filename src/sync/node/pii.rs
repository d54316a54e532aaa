//! The node's MQTT side of customer data, beside the CRDT sync (it shares the sync
//! service's connection):
//!
//! - **in**: HQ's retained `storenode/v1/{t}/hq/pii/{store}/{order}` messages for this
//!   store: a customer is stored; a tombstone erases the row here. Retained messages are
//!   delivered at every subscribe, so a lane that was offline during an erasure erases when
//!   it reconnects;
//! - **out**: customers taken at this lane and this lane's tombstones (its confirmation of
//!   an erasure) on its own retained `storenode/v1/{t}/{store}/pii/{store}/{order}`. A
//!   tombstone overwrites the lane's retained customer message, so the broker drops the
//!   personal data it persisted. Pending messages are kept in SQLite (`published = 0`) and
//!   sent once connected.
//!
//! Logs name orders, never customers.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pace::Pace;
use crate::domain::customer::PiiPayload;
use crate::store::Store;
use crate::store::customers::{self as pii_store, Applied, Pending};
use crate::sync::mqtt::topics::{Id, Scope, Topic, TopicError, TopicSpace};
use crate::sync::mqtt::transport::{MqttHandle, OutgoingMessage, QoS};

/// How often pending customer data and tombstones are looked for.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The store lane's customer-data link.
pub struct PiiLink {
    store: Store,
    mqtt: MqttHandle,
    topics: TopicSpace,
    scope: Scope,
    store_id: Id,
    writer: String,
    wake: tokio::sync::Notify,
}

/// The lane's subscription: HQ's customer data and tombstones for this store's orders.
pub fn subscription(topics: &TopicSpace, store_id: &Id) -> String {
    topics.pii_filter(Some(&Scope::Hq), Some(store_id))
}

impl PiiLink {
    /// Starts the publisher task; messages come in through [`PiiLink::on_message`].
    pub fn start(
        store: Store,
        mqtt: MqttHandle,
        topics: TopicSpace,
        store_id: &Id,
        writer: &str,
        shutdown: CancellationToken,
    ) -> Result<(Arc<PiiLink>, JoinHandle<()>), TopicError> {
        let link = Arc::new(PiiLink {
            store,
            mqtt,
            topics,
            scope: Scope::store(store_id.clone())?,
            store_id: store_id.clone(),
            writer: writer.to_owned(),
            wake: tokio::sync::Notify::new(),
        });
        let task = tokio::spawn(link.clone().publish_loop(shutdown));
        Ok((link, task))
    }

    /// Handles a received `pii` message. Only HQ's messages about this store count.
    pub async fn on_message(&self, topic: &Topic, payload: &[u8]) -> Result<(), String> {
        let Topic::Pii {
            scope: Scope::Hq,
            store,
            order,
            ..
        } = topic
        else {
            return Err("customer data not published by HQ".into());
        };
        if *store != self.store_id {
            return Err("customer data of another store".into());
        }
        let payload = PiiPayload::decode(payload).map_err(|e| e.to_string())?;
        let order_id = order.as_str().to_owned();
        let (id, seen) = (order_id.clone(), payload.clone());
        let changes = self
            .store
            .read(move |conn| pii_store::would_apply(conn, &id, &seen))
            .await
            .map_err(|e| e.to_string())?;
        if !changes {
            return Ok(()); // redelivered at a reconnect: nothing to write
        }
        let applied = self
            .store
            .write(move |conn| {
                let now = crate::clock::now_utc();
                pii_store::apply_from_hq(conn, &order_id, &payload, &now)
            })
            .await
            .map_err(|e| e.to_string())?;
        match applied {
            Applied::Stored => tracing::info!(order = %order, "customer data received from HQ"),
            Applied::Erased => {
                tracing::info!(order = %order, "customer data erased at HQ's request");
                checkpoint(&self.store).await;
                self.wake.notify_one();
            }
            Applied::Ignored => {}
        }
        Ok(())
    }

    async fn publish_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut pace = Pace::every(PUBLISH_EVERY);
        while pace.next_round(&self.wake, &shutdown).await {
            if !self.mqtt.is_connected() {
                continue;
            }
            if let Err(e) = self.publish_pending().await
                && !shutdown.is_cancelled()
            {
                tracing::warn!(error = %e, "customer data not published yet; retried");
            }
        }
    }

    async fn publish_pending(&self) -> Result<(), String> {
        let pending = self
            .store
            .read(pii_store::pending)
            .await
            .map_err(|e| e.to_string())?;
        for item in pending {
            self.publish_one(&item).await?;
            let done = item.clone();
            self.store
                .write(move |conn| pii_store::mark_published(conn, &done))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn publish_one(&self, item: &Pending) -> Result<(), String> {
        let order = match order_segment(&item.order_id) {
            Ok(order) => order,
            Err(e) => {
                // Cannot happen for ids the store accepted; never retried forever silently.
                tracing::error!(order = item.order_id, error = %e, "order id unusable in a topic");
                return Ok(());
            }
        };
        let payload = match &item.payload {
            PiiPayload::Erased { erased_at, .. } => PiiPayload::Erased {
                erased_at: erased_at.clone(),
                by: Some(self.writer.clone()),
            },
            other => other.clone(),
        };
        let topic = self.topics.pii(&self.scope, &self.store_id, &order);
        let mut message =
            OutgoingMessage::new(topic.to_string(), payload.encode(), QoS::AtLeastOnce);
        message.retain = true;
        self.mqtt
            .publish_message(message)
            .await
            .map_err(|e| e.to_string())?;
        let what = match payload {
            PiiPayload::Customer(_) => "customer data",
            _ => "erasure tombstone",
        };
        tracing::info!(order = item.order_id, what, "published to HQ");
        Ok(())
    }
}

/// Checkpoints the store's WAL after an erasure (old page images of the erased row leave
/// the WAL file). Best effort: a failure only delays it to SQLite's next checkpoint.
pub async fn checkpoint(store: &Store) {
    let path = store.path().to_path_buf();
    let done = tokio::task::spawn_blocking(move || pii_store::checkpoint(&path)).await;
    match done {
        Ok(Ok((busy, wal_frames, moved))) => {
            tracing::debug!(busy, wal_frames, moved, "WAL checkpoint after erasure");
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "WAL checkpoint after erasure failed"),
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint task failed"),
    }
}
/// The topic segment of an order in the `pii` topics: the store-local order id. Store order
/// ids already obey the topic id rules (letters, digits, `-`, `_`, `.`, at most 64 bytes);
/// a document id with a writer prefix (`hq:web-1`) is given without it, because the topic
/// already names the store and a store's order ids are unique in its database.
pub fn order_segment(order_id: &str) -> Result<Id, TopicError> {
    let local = order_id.rsplit_once(':').map_or(order_id, |(_, id)| id);
    Id::new(local)
}

#[cfg(test)]
mod segment_tests {
    use super::order_segment;

    #[test]
    fn order_segments() {
        assert_eq!(order_segment("web-1").unwrap().as_str(), "web-1");
        assert_eq!(order_segment("hq:web-1").unwrap().as_str(), "web-1");
        assert!(order_segment("a/b").is_err());
        assert!(order_segment("").is_err());
    }
}
