//! The state the handles and the event-loop task share: connection status, counters, the
//! publish bookkeeping and the packet-size limits.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use super::tracker::PublishTracker;

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

pub(super) fn bump(counter: &AtomicU64) {
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
pub(super) struct Shared {
    pub(super) tracker: Mutex<PublishTracker>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) connected: AtomicBool,
    pub(super) status: Mutex<ConnectionStatus>,
    pub(super) metrics: Arc<TransportMetrics>,
    /// Maximum packet size the broker announced in CONNACK (0: none announced).
    pub(super) broker_max_packet: AtomicU32,
    pub(super) max_packet_size: u32,
    pub(super) publish_timeout: Duration,
}

/// A poisoned lock only means another thread panicked while holding it; the data inside
/// (a queue of waiters, timestamps) is still consistent enough to carry on.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn set_connected(&self, at: SystemTime) {
        self.connected.store(true, Ordering::Release);
        let mut status = lock(&self.status);
        status.connected = true;
        status.last_connected = Some(at);
    }

    pub(super) fn set_disconnected(&self, at: SystemTime, reason: &str) {
        self.connected.store(false, Ordering::Release);
        let mut status = lock(&self.status);
        status.connected = false;
        status.last_disconnected = Some(at);
        status.last_error = Some(reason.to_owned());
    }

    pub(super) fn record_connect_failure(&self, reason: &str) {
        lock(&self.status).last_error = Some(reason.to_owned());
    }

    pub(super) fn max_outgoing_packet(&self) -> u32 {
        match self.broker_max_packet.load(Ordering::Acquire) {
            0 => self.max_packet_size,
            broker => broker.min(self.max_packet_size),
        }
    }
}
