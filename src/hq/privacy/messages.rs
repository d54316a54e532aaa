//! The stores' `pii` messages (a customer, or an erasure tombstone) handled off the async
//! runtime, and HQ's tombstones published again each time it connects.

use super::{HqPrivacyError, SharedPrivacy, lock};
use crate::hq::state::Outgoing;
use crate::hq::warnings::Rejections;
use crate::sync::topics::{self, Topic};

/// Erasure tombstones republished each time HQ connects, newest first: a broker that lost
/// its retained messages (restart without persistence) still tells a lane that was offline
/// during an erasure. Identical retained messages are harmless.
pub const REPUBLISH_TOMBSTONES: u32 = 10_000;

/// HQ's tombstones to publish again on connect (see [`REPUBLISH_TOMBSTONES`]).
pub async fn tombstones(privacy: &SharedPrivacy) -> Vec<Outgoing> {
    let privacy = privacy.clone();
    let listed = tokio::task::spawn_blocking(move || lock(&privacy).recent_tombstones()).await;
    match listed {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot list erasure tombstones to republish");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "tombstone listing failed");
            Vec::new()
        }
    }
}

/// Whether a received topic is a `pii` one (routed here, not to the documents).
pub fn is_pii_topic(topic: &str) -> bool {
    matches!(topics::parse(topic), Ok(Topic::Pii { .. }))
}

/// Handles a store's `pii` message off the async runtime; returns what to publish.
pub async fn on_message(
    privacy: &SharedPrivacy,
    rejections: &Rejections,
    topic: String,
    payload: bytes::Bytes,
) -> Vec<Outgoing> {
    let privacy = privacy.clone();
    let shown = topic.clone();
    let handled = tokio::task::spawn_blocking(move || {
        let parsed = topics::parse(&topic)?;
        lock(&privacy).handle(&parsed, &payload)
    })
    .await;
    match handled {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            let reason = match e {
                HqPrivacyError::Topic(_) => "topic",
                _ => "customer_data",
            };
            rejections.reject(&shown, reason, &e);
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "customer data handler failed");
            Vec::new()
        }
    }
}
