//! A store's member lookup by phone or e-mail (`crate::domain::member_find`), answered from
//! the customer-data store: the request comes on the writer's `find` topic (HQ's instances
//! share that subscription, so one of them answers), the answer goes to the same writer's
//! `found` topic, which only that store may read. The topic's scope, which the broker's ACL
//! ties to the store's certificate, says where the answer goes: never a topic named in the
//! payload. Logs name the store and writer, never what was looked up.

use crate::domain::member_find::{FindReply, FindRequest};
use crate::hq::privacy::{SharedPrivacy, lock};
use crate::hq::state::Outgoing;
use crate::hq::warnings::Rejections;
use crate::sync::topics::{self, Scope, Topic};

/// Whether a received topic is a member lookup (routed here, not to the documents).
pub fn is_find_topic(topic: &str) -> bool {
    matches!(topics::parse(topic), Ok(Topic::Find { .. }))
}

/// Why a lookup message was refused (counted with the other rejections).
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Topic(#[from] topics::TopicError),
    #[error("a member lookup not published under a store's scope")]
    NotAStore,
    #[error(transparent)]
    Request(#[from] crate::domain::member_find::FindError),
}

/// Answers a store writer's lookup off the async runtime; returns the answer to publish.
pub async fn on_message(
    privacy: &SharedPrivacy,
    rejections: &Rejections,
    topic: String,
    payload: bytes::Bytes,
) -> Vec<Outgoing> {
    let privacy = privacy.clone();
    let shown = topic.clone();
    let answered = tokio::task::spawn_blocking(move || answer(&privacy, &topic, &payload)).await;
    match answered {
        Ok(Ok(out)) => vec![out],
        Ok(Err(e)) => {
            let reason = match e {
                Refused::Topic(_) => "topic",
                _ => "member_lookup",
            };
            rejections.reject(&shown, reason, &e);
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "member lookup handler failed");
            Vec::new()
        }
    }
}

fn answer(privacy: &SharedPrivacy, topic: &str, payload: &[u8]) -> Result<Outgoing, Refused> {
    let Topic::Find {
        scope: Scope::Store(store),
        writer,
        ..
    } = topics::parse(topic)?
    else {
        return Err(Refused::NotAStore);
    };
    let request = FindRequest::decode(payload)?;
    let privacy = lock(privacy);
    let result = match privacy.find_members(&request.query) {
        Ok(found) => {
            tracing::info!(store = %store, writer = %writer, by = request.query.by(), matches = found.members.len(), "member lookup from a store answered");
            Ok(found)
        }
        Err(e) => {
            tracing::warn!(store = %store, writer = %writer, error = %e, "member lookup from a store failed");
            Err("HQ could not search its member data".to_owned())
        }
    };
    let reply = FindReply {
        id: request.id,
        result,
    };
    Ok(Outgoing {
        topic: privacy
            .topics()
            .found(&Scope::Store(store), &writer)
            .to_string(),
        payload: reply.encode(),
        retain: false,
    })
}

#[cfg(test)]
#[path = "find_tests.rs"]
mod tests;
