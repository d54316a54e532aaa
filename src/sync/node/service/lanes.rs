//! The lanes of this store as this lane sees them, and retiring one for good.
//!
//! `storenode lane retire NODE` asks a running lane to publish a retained record on
//! `{store}/retired/{store}.{NODE}`. Every lane subscribes to those records: a retired lane
//! is never offered changes again, its heads are forgotten, and changes it still publishes
//! are refused (counted). A retired lane that comes back hears its own record and stops
//! syncing with the reason in its log, `diag sync` and `/readyz`, as a refused clone does.
//! `storenode lane unretire NODE` clears the record (an empty retained message).

use std::collections::BTreeSet;

use super::{Ctx, SyncService, lock};
use crate::crdt::doc::WriterId;
use crate::sync::mqtt::topics::Id;
use crate::sync::mqtt::transport::{OutgoingMessage, QoS};

/// Why a lane cannot be retired (or brought back).
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error("invalid lane id {node:?}: {reason}")]
    Id { node: String, reason: String },
    #[error("{0} is this lane: retire it from another lane of the store")]
    Own(String),
    #[error("not connected to the broker: try again when `diag sync` says connected")]
    Offline,
    #[error("the broker refused the record: {0}")]
    Publish(String),
}

/// One lane of the store in `storenode lane list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaneView {
    pub writer: String,
    /// `online`, `offline`, `retired`, or `unknown` (heads heard, no status).
    pub status: String,
    /// The retirement record (`retired {unix ms} by {writer}`), when retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
    /// This lane itself.
    pub this_lane: bool,
}

impl SyncService {
    /// Publishes (or with `retire == false` clears) the retained retirement of lane `node` of
    /// this store. Returns the retired writer id.
    pub async fn retire_lane(&self, node: &str, retire: bool) -> Result<String, RetireError> {
        let ctx = &self.ctx;
        let id_error = |reason: String| RetireError::Id {
            node: node.to_owned(),
            reason,
        };
        let store = ctx.scope.as_str();
        let name = if node.contains('.') {
            node.to_owned()
        } else {
            format!("{store}.{node}")
        };
        let writer = WriterId::new(&name).map_err(|e| id_error(e.to_string()))?;
        if !name.starts_with(&format!("{store}.")) {
            return Err(id_error(format!("not a lane of store {store}")));
        }
        if writer.as_str() == ctx.writer.as_str() {
            return Err(RetireError::Own(name));
        }
        if !ctx.mqtt.is_connected() {
            return Err(RetireError::Offline);
        }
        let topic_id = Id::new(&name).map_err(|e| id_error(e.to_string()))?;
        let topic = ctx.topics.retired(&ctx.scope, &topic_id).to_string();
        let record = if retire {
            format!(
                "retired {} by {}",
                crate::clock::now_ms(),
                ctx.writer.as_str()
            )
        } else {
            String::new()
        };
        let mut message =
            OutgoingMessage::new(topic, record.clone().into_bytes(), QoS::AtLeastOnce);
        message.retain = true;
        ctx.mqtt
            .publish_message(message)
            .await
            .map_err(|e| RetireError::Publish(e.to_string()))?;
        // Recorded here at once; the broker's echo says the same.
        note_retirement(ctx, &name, record.as_bytes());
        Ok(name)
    }

    /// Every lane of this store this lane has heard of, this one first.
    pub fn lanes(&self) -> Vec<LaneView> {
        let ctx = &self.ctx;
        let me = ctx.writer.as_str().to_owned();
        let retired = lock(&ctx.shared.retired).clone();
        let statuses = lock(&ctx.shared.statuses).clone();
        let mut writers: BTreeSet<String> = statuses.keys().cloned().collect();
        for (_, writer) in lock(&ctx.shared.peer_heads).keys() {
            if !WriterId::new(writer).is_ok_and(|w| w.is_hq()) {
                writers.insert(writer.clone());
            }
        }
        writers.extend(retired.keys().cloned());
        writers.remove(&me);
        let view = |writer: String| {
            let record = retired.get(&writer).cloned();
            let status = match (&record, statuses.get(&writer)) {
                (Some(_), _) => "retired",
                (None, Some(true)) => "online",
                (None, Some(false)) => "offline",
                (None, None) => "unknown",
            };
            LaneView {
                this_lane: writer == me,
                status: status.to_owned(),
                retired: record,
                writer,
            }
        };
        std::iter::once(me.clone())
            .chain(writers)
            .map(view)
            .collect()
    }
}

/// A retained record heard (or just published) on `{store}/retired/{writer}`: an empty
/// payload takes the retirement back. This lane's own record stops its sync.
pub(super) fn note_retirement(ctx: &Ctx, writer: &str, payload: &[u8]) {
    if payload.is_empty() {
        lock(&ctx.shared.retired).remove(writer);
        return;
    }
    let record = String::from_utf8_lossy(payload).into_owned();
    if writer == ctx.writer.as_str() {
        let reason = format!(
            "this lane ({writer}) was retired ({record}); it does not sync any more: give this box a new node id, or run `storenode lane unretire {writer}` on another lane of the store and restart this one"
        );
        tracing::error!(writer, record, "{reason}");
        *lock(&ctx.shared.refused) = Some(reason);
        ctx.shutdown.cancel();
        return;
    }
    let newly = lock(&ctx.shared.retired)
        .insert(writer.to_owned(), record.clone())
        .is_none();
    lock(&ctx.shared.peer_heads).retain(|(_, w), _| w != writer);
    if newly {
        tracing::info!(
            lane = writer,
            record,
            "lane retired: not offered changes any more"
        );
    }
}
