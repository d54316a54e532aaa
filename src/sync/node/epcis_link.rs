//! The node's side of the EPCIS flow to HQ (it shares the sync service's connection):
//!
//! - **out**: this writer's `epcis_event` log, in order, as batches of EPCIS 2.0 events on
//!   `storenode/v1/{t}/{store}/epcis/{writer}` (QoS 1, not retained), each under the message
//!   cap (`crate::epcis::batch`);
//! - **in**: HQ's retained `storenode/v1/{t}/hq/epcis-ack/{store}/{writer}`: the highest log
//!   sequence HQ stored contiguously. It is kept in SQLite (`epcis_ack`); after every
//!   (re)connect, and when HQ has not moved it for [`RESEND_AFTER`], sending restarts from
//!   it. HQ stores by `eventID`, so what is sent twice is stored once.
//!
//! The log itself is written by triggers in the same transaction as each sale, receipt,
//! count or tag read, so an event made while the store was cut off waits in SQLite.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pace::Pace;
use crate::epcis::batch::{Ack, batches};
use crate::epcis::{Origin, build_event, source};
use crate::store::Store;
use crate::sync::mqtt::topics::{Id, Scope, Topic, TopicError, TopicSpace};
use crate::sync::mqtt::transport::{MqttHandle, QoS};
use crate::sync::wire::payload::MAX_MESSAGE_BYTES;

/// How often the log is looked at for new events.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Re-send from HQ's mark when it has not moved for this long (a batch or ack was lost).
const RESEND_AFTER: Duration = Duration::from_secs(10);
/// Log rows read per round; the rest follows in the next round.
const ROWS_PER_ROUND: u32 = 2000;

/// This writer's EPCIS link.
pub struct EpcisLink {
    store: Store,
    mqtt: MqttHandle,
    batch_topic: String,
    store_id: Id,
    writer: Id,
    origin: Origin,
    state: Mutex<LinkState>,
    wake: tokio::sync::Notify,
}

/// What was sent in this connection. `None`: start again from HQ's mark.
struct LinkState {
    sent: Option<i64>,
    progress_at: Instant,
}

/// The writer's subscription: HQ's acknowledgement of its events.
pub fn subscription(topics: &TopicSpace, store_id: &Id, writer: &Id) -> String {
    topics.epcis_ack_filter(store_id, writer)
}

impl EpcisLink {
    /// Starts the publisher task; acknowledgements come in through [`EpcisLink::on_message`].
    pub fn start(
        store: Store,
        mqtt: MqttHandle,
        topics: &TopicSpace,
        store_id: &Id,
        writer: &Id,
        origin: Origin,
        shutdown: CancellationToken,
    ) -> Result<(Arc<EpcisLink>, JoinHandle<()>), TopicError> {
        let scope = Scope::store(store_id.clone())?;
        let link = Arc::new(EpcisLink {
            store,
            mqtt,
            batch_topic: topics.epcis(&scope, writer).to_string(),
            store_id: store_id.clone(),
            writer: writer.clone(),
            origin,
            state: Mutex::new(LinkState {
                sent: None,
                progress_at: Instant::now(),
            }),
            wake: tokio::sync::Notify::new(),
        });
        let task = tokio::spawn(link.clone().publish_loop(shutdown));
        Ok((link, task))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Handles HQ's acknowledgement of this writer's events.
    pub async fn on_message(&self, topic: &Topic, payload: &[u8]) -> Result<(), String> {
        let Topic::EpcisAck {
            scope: Scope::Hq,
            store,
            writer,
            ..
        } = topic
        else {
            return Err("EPCIS acknowledgement not published by HQ".into());
        };
        if *store != self.store_id || *writer != self.writer {
            return Err("EPCIS acknowledgement for another writer".into());
        }
        let ack = Ack::decode(payload).map_err(|e| e.to_string())?;
        let before = self
            .store
            .read(source::acked)
            .await
            .map_err(|e| e.to_string())?;
        if ack.seq > before {
            self.store
                .write(move |conn| source::set_acked(conn, ack.seq))
                .await
                .map_err(|e| e.to_string())?;
            self.state().progress_at = Instant::now();
            tracing::debug!(seq = ack.seq, "HQ stored EPCIS events");
        }
        self.wake.notify_one();
        Ok(())
    }

    async fn publish_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut pace = Pace::every(PUBLISH_EVERY);
        while pace.next_round(&self.wake, &shutdown).await {
            if !self.mqtt.is_connected() {
                // Whatever was in flight may be lost with the session: start again from the
                // mark once connected.
                self.state().sent = None;
                continue;
            }
            if let Err(e) = self.publish_new().await
                && !shutdown.is_cancelled()
            {
                self.state().sent = None;
                tracing::warn!(error = %e, "EPCIS events not published yet; retried");
            }
        }
    }

    /// Where to continue: after what was sent, or from HQ's mark after a reconnect or
    /// when HQ has not acknowledged anything for [`RESEND_AFTER`].
    fn resume_point(&self, acked: i64) -> i64 {
        let mut state = self.state();
        let stalled = state.progress_at.elapsed() > RESEND_AFTER;
        match state.sent {
            Some(sent) if sent > acked && stalled => {
                state.progress_at = Instant::now();
                acked
            }
            Some(sent) => sent.max(acked),
            None => acked,
        }
    }

    async fn publish_new(&self) -> Result<(), String> {
        let acked = self
            .store
            .read(source::acked)
            .await
            .map_err(|e| e.to_string())?;
        let after = self.resume_point(acked);
        let filter = source::Filter {
            after,
            limit: ROWS_PER_ROUND,
            ..source::Filter::default()
        };
        let rows = self
            .store
            .read(move |conn| source::rows(conn, &filter))
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            // Nothing new: a writer fully acknowledged is not stalled.
            let mut state = self.state();
            state.sent = Some(after);
            if after <= acked {
                state.progress_at = Instant::now();
            }
            return Ok(());
        }
        // Each event is built when its batch needs it and kept as bytes only: a catch-up of
        // a long offline history is hundreds of such rounds back to back (issue 18).
        let items = rows.iter().map(|r| (r.seq, build_event(&self.origin, r)));
        for batch in batches(after, items, MAX_MESSAGE_BYTES) {
            self.mqtt
                .publish(
                    self.batch_topic.clone(),
                    batch.bytes,
                    QoS::AtLeastOnce,
                    false,
                )
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(
                after = batch.after,
                last = batch.last,
                events = batch.events,
                "EPCIS batch published"
            );
            self.state().sent = Some(batch.last);
        }
        Ok(())
    }
}
