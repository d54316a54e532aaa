//! The node's side of a member lookup by phone or e-mail (`crate::domain::member_find`):
//! a request on this writer's `find` topic over the sync service's MQTT connection, and
//! HQ's answer on its `found` topic, paired by a random request id.
//!
//! Nothing of it is kept: the query lives in the request future until HQ answers or the
//! bounded wait ends, the request is never retained and expires at the broker after that
//! wait (MQTT 5 message expiry), and nothing is written to SQLite. A node that is offline,
//! or whose HQ is, answers at once; the till is told to scan the card.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::domain::member_find::{FindReply, FindRequest, MemberMatches, MemberQuery};
use crate::sync::mqtt::topics::{Id, Scope, TopicSpace};
use crate::sync::mqtt::transport::{
    MqttHandle, OutgoingMessage, PublishError, PublishOutcome, QoS,
};

/// How long a till waits for HQ's answer.
pub const FIND_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a lookup got no answer. No variant carries the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindUnavailable {
    #[error("this node does not sync with HQ")]
    NoSync,
    #[error("sync is still starting")]
    Loading,
    #[error("the node is not connected to the broker")]
    Offline,
    #[error("HQ is offline")]
    HqOffline,
    #[error("no HQ instance listens for member lookups")]
    NoListener,
    #[error("the lookup could not be sent: {0}")]
    Publish(PublishError),
    #[error("HQ did not answer within {0:?}")]
    Timeout(Duration),
    #[error("HQ could not search: {0}")]
    Hq(String),
}

/// Lookups waiting for HQ's answer, by request id.
type Waiting = Mutex<HashMap<String, oneshot::Sender<FindReply>>>;

/// The writer's member lookups.
pub struct MemberFinder {
    mqtt: MqttHandle,
    /// This writer's `find` topic.
    topic: String,
    waiting: Waiting,
}

fn lock(
    waiting: &Waiting,
) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<FindReply>>> {
    waiting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// This writer's `found` topic: its subscription.
pub fn subscription(topics: &TopicSpace, scope: &Scope, me: &Id) -> String {
    topics.found(scope, me).to_string()
}

/// Takes a request out of [`Waiting`] however its future ends (answered, timed out, or
/// dropped because the till hung up).
struct Ticket<'a> {
    waiting: &'a Waiting,
    id: String,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        lock(self.waiting).remove(&self.id);
    }
}

impl MemberFinder {
    pub fn new(mqtt: MqttHandle, topics: &TopicSpace, scope: &Scope, me: &Id) -> Self {
        Self {
            mqtt,
            topic: topics.find(scope, me).to_string(),
            waiting: Mutex::default(),
        }
    }

    /// Asks HQ, waiting at most `wait`. `hq_online`: whether any HQ instance's retained
    /// status says online (without one, nobody would answer).
    pub async fn find(
        &self,
        query: MemberQuery,
        hq_online: bool,
        wait: Duration,
    ) -> Result<MemberMatches, FindUnavailable> {
        if !self.mqtt.is_connected() {
            return Err(FindUnavailable::Offline);
        }
        if !hq_online {
            return Err(FindUnavailable::HqOffline);
        }
        let id = format!("{:032x}", rand::random::<u128>());
        let (answer, answered) = oneshot::channel();
        lock(&self.waiting).insert(id.clone(), answer);
        let _ticket = Ticket {
            waiting: &self.waiting,
            id: id.clone(),
        };
        let mut message = OutgoingMessage::new(
            self.topic.clone(),
            FindRequest { id, query }.encode(),
            QoS::AtLeastOnce,
        );
        // Rounded up: the broker must not drop it before the till stops waiting.
        message.expiry_secs = Some(u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX));
        let asked = async {
            match self.mqtt.publish_message(message).await {
                Ok(PublishOutcome::NoMatchingSubscribers) => {
                    return Err(FindUnavailable::NoListener);
                }
                Ok(_) => {}
                Err(e) => return Err(FindUnavailable::Publish(e)),
            }
            // The sender goes only with the service: it stopped.
            let reply = answered.await.map_err(|_| FindUnavailable::Offline)?;
            reply.result.map_err(FindUnavailable::Hq)
        };
        tokio::time::timeout(wait, asked)
            .await
            .map_err(|_| FindUnavailable::Timeout(wait))?
    }

    /// HQ's answer on this writer's `found` topic: handed to the lookup that waits for it.
    /// An answer nobody waits for (the till gave up) is dropped.
    pub fn on_reply(&self, payload: &[u8]) -> Result<(), String> {
        let reply = FindReply::decode(payload).map_err(|e| e.to_string())?;
        let waiter = lock(&self.waiting).remove(&reply.id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(reply);
            }
            None => tracing::debug!("a member lookup answer arrived after its till gave up"),
        }
        Ok(())
    }
}
