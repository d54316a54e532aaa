//! Unit tests of the transport: publish bookkeeping, backoff, configuration checks, packet
//! sizes.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PubAckReason;
use tokio::sync::oneshot;

use super::config::*;
use super::handle::*;
use super::tracker::*;
use super::*;

fn pending(qos: QoS) -> (Pending, oneshot::Receiver<PublishResult>) {
    let (tx, rx) = oneshot::channel();
    (
        Pending {
            waiter: Some(tx),
            qos,
            permit: None,
        },
        rx,
    )
}

#[test]
fn acks_are_matched_to_publishes_in_request_order() {
    let mut tracker = PublishTracker::default();
    let (a, mut rx_a) = pending(QoS::AtLeastOnce);
    let (b, mut rx_b) = pending(QoS::AtLeastOnce);
    tracker.enqueue(a);
    tracker.enqueue(b);
    tracker.on_outgoing_publish(7).unwrap();
    tracker.on_outgoing_publish(8).unwrap();
    // Acks may come in any order; each lands on its own publish.
    assert_eq!(
        tracker.on_puback(8, PubAckReason::NotAuthorized, |_| {}),
        Ok(Err(PublishError::Denied))
    );
    assert_eq!(
        tracker.on_puback(7, PubAckReason::NoMatchingSubscribers, |_| {}),
        Ok(Ok(PublishOutcome::NoMatchingSubscribers))
    );
    assert_eq!(
        rx_a.try_recv().unwrap(),
        Ok(PublishOutcome::NoMatchingSubscribers)
    );
    assert_eq!(rx_b.try_recv().unwrap(), Err(PublishError::Denied));
}

#[test]
fn qos0_resolves_when_written() {
    let mut tracker = PublishTracker::default();
    let (a, mut rx) = pending(QoS::AtMostOnce);
    tracker.enqueue(a);
    tracker.on_outgoing_publish(0).unwrap();
    assert_eq!(rx.try_recv().unwrap(), Ok(PublishOutcome::Sent));
}

#[test]
fn connection_loss_fails_inflight_and_drained_but_keeps_later_requests() {
    let mut tracker = PublishTracker::default();
    let (inflight, mut rx_inflight) = pending(QoS::AtLeastOnce);
    let (drained, mut rx_drained) = pending(QoS::AtLeastOnce);
    let (later, mut rx_later) = pending(QoS::AtLeastOnce);
    tracker.enqueue(inflight);
    tracker.on_outgoing_publish(1).unwrap();
    tracker.enqueue(drained);
    tracker.enqueue(later);
    assert_eq!(tracker.on_connection_lost(1), 2);
    assert_eq!(
        rx_inflight.try_recv().unwrap(),
        Err(PublishError::NotAcknowledged)
    );
    assert_eq!(
        rx_drained.try_recv().unwrap(),
        Err(PublishError::NotAcknowledged)
    );
    assert!(rx_later.try_recv().is_err(), "still waiting");
    // After the reconnect the later request gets its own pkid and ack.
    tracker.on_outgoing_publish(1).unwrap();
    assert_eq!(
        tracker.on_puback(1, PubAckReason::Success, |_| {}),
        Ok(Ok(PublishOutcome::Accepted))
    );
    assert_eq!(rx_later.try_recv().unwrap(), Ok(PublishOutcome::Accepted));
}

#[test]
fn unmatched_events_are_reported_not_panicked() {
    let mut tracker = PublishTracker::default();
    assert_eq!(
        tracker.on_outgoing_publish(3),
        Err(TrackerError::NothingQueued(3))
    );
    assert!(matches!(
        tracker.on_puback(3, PubAckReason::Success, |_| {}),
        Err(TrackerError::UnknownAck(3))
    ));
    let (a, _rx) = pending(QoS::AtLeastOnce);
    tracker.enqueue(a);
    assert!(matches!(
        tracker.on_outgoing_publish(0),
        Err(TrackerError::QosMismatch { pkid: 0, .. })
    ));
}

#[test]
fn close_fails_everything_and_refuses_more() {
    let mut tracker = PublishTracker::default();
    let (a, mut rx_a) = pending(QoS::AtLeastOnce);
    let (b, mut rx_b) = pending(QoS::AtLeastOnce);
    tracker.enqueue(a);
    tracker.on_outgoing_publish(1).unwrap();
    tracker.enqueue(b);
    tracker.close();
    assert!(tracker.is_closed());
    assert_eq!(rx_a.try_recv().unwrap(), Err(PublishError::Closed));
    assert_eq!(rx_b.try_recv().unwrap(), Err(PublishError::Closed));
}

#[test]
fn other_puback_reasons_carry_their_code() {
    assert_eq!(
        puback_result(PubAckReason::QuotaExceeded),
        Err(PublishError::Refused {
            code: 151,
            name: "quota exceeded"
        })
    );
    assert_eq!(
        puback_result(PubAckReason::Success),
        Ok(PublishOutcome::Accepted)
    );
}

#[test]
fn backoff_is_capped_full_jitter() {
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        stable_after: Duration::from_secs(5),
    };
    assert_eq!(backoff.delay(0, 1.0), Duration::from_millis(100));
    assert_eq!(backoff.delay(2, 1.0), Duration::from_millis(400));
    assert_eq!(backoff.delay(10, 1.0), Duration::from_secs(1));
    assert_eq!(backoff.delay(u32::MAX, 1.0), Duration::from_secs(1));
    assert_eq!(backoff.delay(3, 0.0), Duration::ZERO);
    assert_eq!(backoff.delay(3, 0.5), Duration::from_millis(400));
}

#[test]
fn config_validation_names_the_problem() {
    let mut cfg = TransportConfig::new("", "127.0.0.1", 1883);
    let err = cfg.validate().unwrap_err();
    assert!(err.to_string().contains("client_id"), "{err}");
    cfg.client_id = "n1".into();
    cfg.max_packet_size = 10;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("max_packet_size")
    );
    cfg.max_packet_size = 256 * 1024;
    cfg.online = Some(StatusMessage {
        topic: "a/+".into(),
        payload: Bytes::from_static(b"online"),
        retain: true,
    });
    assert!(cfg.validate().unwrap_err().to_string().contains("a/+"));
    cfg.online = None;
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn packet_size_counts_topic_payload_and_properties() {
    let small = OutgoingMessage::new("a/b", vec![0u8; 10], QoS::AtLeastOnce);
    let mut with_response = small.clone();
    with_response.response_topic = Some("reply/here".into());
    assert!(small.packet_size() >= 3 + 10);
    assert!(with_response.packet_size() > small.packet_size());
}
