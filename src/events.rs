//! The live event bus: scans, tag events and alerts, fanned out to SSE clients.

use std::sync::Arc;

use tokio::sync::broadcast;

/// One event, already encoded: encoding once serves every subscriber.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub kind: &'static str,
    pub device: Arc<str>,
    pub json: String,
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<LiveEvent>,
}

/// Events kept for a slow subscriber before it is told it lagged.
const CAPACITY: usize = 4096;

impl Default for EventBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: LiveEvent) {
        // No subscriber is normal (no terminal listening): nothing to do then.
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }
}
