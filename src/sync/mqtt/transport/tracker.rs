//! The publish queue's bookkeeping, from request to acknowledgement (see the module
//! documentation of `transport`, "Matching acknowledgements to publishes"); no I/O.

use std::collections::{HashMap, VecDeque};

use rumqttc::v5::mqttbytes::v5::PubAckReason;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{PublishError, PublishOutcome, QoS};

pub(super) type PublishResult = Result<PublishOutcome, PublishError>;

/// A publish whose packet id or acknowledgement is still to come.
#[derive(Debug)]
pub(super) struct Pending {
    /// `None` for the transport's own status publishes.
    pub(super) waiter: Option<oneshot::Sender<PublishResult>>,
    pub(super) qos: QoS,
    /// Room in the request channel, given back once rumqttc has taken the request.
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

impl Pending {
    pub(super) fn resolve(self, result: PublishResult) {
        if let Some(waiter) = self.waiter {
            // The caller may have timed out and gone; nothing to tell then.
            let _ = waiter.send(result);
        }
    }
}

/// Bookkeeping from publish request to acknowledgement; no I/O.
#[derive(Debug, Default)]
pub(super) struct PublishTracker {
    /// In request-channel order, not yet given a packet id by rumqttc.
    pub(super) queued: VecDeque<Pending>,
    /// QoS 1 publishes on the wire, by packet id.
    pub(super) inflight: HashMap<u16, Pending>,
    pub(super) closed: bool,
}

/// The tracker saw an event it cannot match; a bug, logged by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum TrackerError {
    #[error("rumqttc reported publish pkid {0} but no publish was queued")]
    NothingQueued(u16),
    #[error("rumqttc reported pkid {pkid} for a queued publish of {qos:?}")]
    QosMismatch { pkid: u16, qos: QoS },
    #[error("PUBACK for pkid {0} which is not in flight")]
    UnknownAck(u16),
}

impl PublishTracker {
    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(super) fn enqueue(&mut self, pending: Pending) {
        self.queued.push_back(pending);
    }

    /// Undoes the last `enqueue` when its request could not be queued.
    pub(super) fn cancel_last(&mut self) {
        self.queued.pop_back();
    }

    /// rumqttc took the next request from its channel and gave it `pkid` (0 for QoS 0).
    pub(super) fn on_outgoing_publish(&mut self, pkid: u16) -> Result<(), TrackerError> {
        let mut pending = self
            .queued
            .pop_front()
            .ok_or(TrackerError::NothingQueued(pkid))?;
        pending.permit = None;
        let qos = pending.qos;
        let consistent = (pkid == 0) == (qos == QoS::AtMostOnce);
        if pkid == 0 {
            pending.resolve(Ok(PublishOutcome::Sent));
        } else if let Some(previous) = self.inflight.insert(pkid, pending) {
            // Only possible if rumqttc reused a pkid before its ack; the old one is lost.
            previous.resolve(Err(PublishError::NotAcknowledged));
        }
        if consistent {
            Ok(())
        } else {
            Err(TrackerError::QosMismatch { pkid, qos })
        }
    }

    /// PUBACK for `pkid`; returns what the waiter was told. `before_resolve` sees the
    /// result first, so counters are up to date by the time the caller wakes up.
    pub(super) fn on_puback(
        &mut self,
        pkid: u16,
        reason: PubAckReason,
        before_resolve: impl FnOnce(&PublishResult),
    ) -> Result<PublishResult, TrackerError> {
        let pending = self
            .inflight
            .remove(&pkid)
            .ok_or(TrackerError::UnknownAck(pkid))?;
        let result = puback_result(reason);
        before_resolve(&result);
        pending.resolve(result.clone());
        Ok(result)
    }

    /// The connection is gone: everything in flight, and the first `unsent` queued
    /// requests (which rumqttc drained from its channel and will not send), failed.
    pub(super) fn on_connection_lost(&mut self, unsent: usize) -> usize {
        let mut failed = 0;
        for (_, pending) in self.inflight.drain() {
            pending.resolve(Err(PublishError::NotAcknowledged));
            failed += 1;
        }
        for _ in 0..unsent {
            let Some(pending) = self.queued.pop_front() else {
                break;
            };
            pending.resolve(Err(PublishError::NotAcknowledged));
            failed += 1;
        }
        failed
    }

    /// The event loop has ended: fail everything, refuse new publishes.
    pub(super) fn close(&mut self) {
        self.closed = true;
        for (_, pending) in self.inflight.drain() {
            pending.resolve(Err(PublishError::Closed));
        }
        for pending in self.queued.drain(..) {
            pending.resolve(Err(PublishError::Closed));
        }
    }
}

pub(super) fn puback_result(reason: PubAckReason) -> PublishResult {
    match reason {
        PubAckReason::Success => Ok(PublishOutcome::Accepted),
        PubAckReason::NoMatchingSubscribers => Ok(PublishOutcome::NoMatchingSubscribers),
        PubAckReason::NotAuthorized => Err(PublishError::Denied),
        other => {
            let (code, name) = puback_reason_code(other);
            Err(PublishError::Refused { code, name })
        }
    }
}

/// MQTT 5 PUBACK reason codes (spec section 3.4.2.1).
fn puback_reason_code(reason: PubAckReason) -> (u8, &'static str) {
    match reason {
        PubAckReason::Success => (0, "success"),
        PubAckReason::NoMatchingSubscribers => (16, "no matching subscribers"),
        PubAckReason::UnspecifiedError => (128, "unspecified error"),
        PubAckReason::ImplementationSpecificError => (131, "implementation specific error"),
        PubAckReason::NotAuthorized => (135, "not authorized"),
        PubAckReason::TopicNameInvalid => (144, "topic name invalid"),
        PubAckReason::PacketIdentifierInUse => (145, "packet identifier in use"),
        PubAckReason::QuotaExceeded => (151, "quota exceeded"),
        PubAckReason::PayloadFormatInvalid => (153, "payload format invalid"),
    }
}
