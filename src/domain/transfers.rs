//! Store-to-store transfers: the pure status fold and the stock effect of a status.
//!
//! # Status fold
//! Status events are a set per transfer, written by the sending lane (`in_transit`,
//! `cancelled`), the receiving lane (`received`) and HQ (which only copies events from one
//! store's document into the other's). The status is a pure function of that set
//! ([`fold_status`]):
//! 1. any `Received` → `Received`, decided by the earliest receipt: the goods physically
//!    arrived and were counted into the receiving store, so a cancel made concurrently at the
//!    sender (while it could not know) is overruled, and the sender books the units out again;
//! 2. else any `Cancelled` → `Cancelled` (earliest);
//! 3. else any `InTransit` → `InTransit`.
//!
//! "Earliest" is by (time, HQ last, writer): HQ's events are copies of a store's with the
//! same time, so the store's own event is named as the decider.
//!
//! Each rule is a min over the set, so the result ignores arrival order and duplicates
//! (property-tested below) and a merge of two replicas folds like the set union.
//!
//! # Stock effect
//! The units a status implies per store ([`sender_effect`], [`receiver_effect`]) are a
//! *target*: the writer that owns a side (the dispatching lane at the sender, the receiving
//! lane at the receiver) books `target − already booked` for the transfer
//! ([`settle`]), so replays, duplicated events and status flips (cancel overruled by a
//! receipt) move every unit exactly once.

use std::collections::BTreeMap;

use super::HQ_WRITER;

/// Status of a transfer (serialised lower-case with `_`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    InTransit,
    Received,
    Cancelled,
}

impl TransferStatus {
    pub const ALL: [TransferStatus; 3] = [Self::InTransit, Self::Received, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InTransit => "in_transit",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Rank in the fold: a higher rank decides.
    fn rank(self) -> u8 {
        match self {
            Self::InTransit => 0,
            Self::Cancelled => 1,
            Self::Received => 2,
        }
    }
}

/// One writer's record that a transfer reached a status.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct TransferEvent {
    pub status: TransferStatus,
    pub at_ms: i64,
    pub writer: String,
}

/// The folded state: the status and the event that decided it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TransferState {
    pub status: TransferStatus,
    pub decided_by: TransferEvent,
}

/// The status of a set of events (see the module docs); `None` for no events.
pub fn fold_status(events: &[TransferEvent]) -> Option<TransferState> {
    let top = events.iter().map(|e| e.status.rank()).max()?;
    let decided_by = events
        .iter()
        .filter(|e| e.status.rank() == top)
        .min_by_key(|e| (e.at_ms, e.writer == HQ_WRITER, &e.writer))?
        .clone();
    Some(TransferState {
        status: decided_by.status,
        decided_by,
    })
}

/// Per SKU, the on-hand change the status implies at the sending store: the dispatched
/// units are out while in transit and once received, back (zero) when cancelled.
pub fn sender_effect(
    status: TransferStatus,
    dispatched: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    match status {
        TransferStatus::InTransit | TransferStatus::Received => dispatched
            .iter()
            .map(|(sku, qty)| (sku.clone(), qty.saturating_neg()))
            .collect(),
        TransferStatus::Cancelled => BTreeMap::new(),
    }
}

/// Per SKU, the on-hand change the status implies at the receiving store: what was counted
/// in on receipt, nothing before (or if cancelled).
pub fn receiver_effect(
    status: TransferStatus,
    received: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    match status {
        TransferStatus::Received => received.clone(),
        TransferStatus::InTransit | TransferStatus::Cancelled => BTreeMap::new(),
    }
}

/// The movements still to book so that `booked` becomes `target`, per SKU (non-zero only).
pub fn settle(
    target: &BTreeMap<String, i64>,
    booked: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for sku in target.keys().chain(booked.keys()) {
        let want = target.get(sku).copied().unwrap_or(0);
        let have = booked.get(sku).copied().unwrap_or(0);
        let delta = want.saturating_sub(have);
        if delta != 0 {
            out.insert(sku.clone(), delta);
        }
    }
    out
}

/// Per SKU, received − dispatched (negative: short, positive: over); zero lines omitted.
pub fn discrepancy(
    dispatched: &BTreeMap<String, i64>,
    received: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    settle(received, dispatched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fold_testing::shuffled_with_duplicates;
    use TransferStatus::*;
    use proptest::prelude::*;

    fn ev(status: TransferStatus, at_ms: i64, writer: &str) -> TransferEvent {
        TransferEvent {
            status,
            at_ms,
            writer: writer.to_owned(),
        }
    }

    fn status_of(events: &[TransferEvent]) -> Option<TransferStatus> {
        fold_status(events).map(|s| s.status)
    }

    fn lines(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect()
    }

    #[test]
    fn received_wins_over_a_concurrent_cancel() {
        assert_eq!(status_of(&[]), None);
        assert_eq!(status_of(&[ev(InTransit, 1, "a")]), Some(InTransit));
        let both = [
            ev(InTransit, 1, "a"),
            ev(Cancelled, 5, "a"),
            ev(Received, 9, "b"),
        ];
        let state = fold_status(&both).unwrap();
        assert_eq!(state.status, Received);
        assert_eq!(state.decided_by.writer, "b");
        assert_eq!(
            status_of(&[ev(InTransit, 1, "a"), ev(Cancelled, 5, "hq")]),
            Some(Cancelled)
        );
    }

    #[test]
    fn the_earliest_deciding_event_is_named() {
        let events = [ev(Received, 9, "hq"), ev(Received, 7, "b")];
        assert_eq!(
            fold_status(&events).unwrap().decided_by,
            ev(Received, 7, "b")
        );
        // HQ's copy of an event has the same time: the store's own event is named.
        let copies = [ev(Received, 7, "hq"), ev(Received, 7, "s2.lane1")];
        assert_eq!(fold_status(&copies).unwrap().decided_by.writer, "s2.lane1");
    }

    #[test]
    fn a_cancel_overruled_by_a_receipt_books_the_units_out_again() {
        let sent = lines(&[("MILK", 5)]);
        let mut booked = BTreeMap::new();
        for status in [InTransit, Cancelled, Received] {
            let delta = settle(&sender_effect(status, &sent), &booked);
            for (sku, d) in delta {
                *booked.entry(sku).or_insert(0) += d;
            }
        }
        assert_eq!(booked, lines(&[("MILK", -5)]));
        // Settling again books nothing.
        assert!(settle(&sender_effect(Received, &sent), &booked).is_empty());
    }

    #[test]
    fn discrepancy_is_received_minus_dispatched() {
        let sent = lines(&[("MILK", 5), ("MUG", 2)]);
        let got = lines(&[("MILK", 4), ("MUG", 2), ("TEA", 1)]);
        assert_eq!(discrepancy(&sent, &got), lines(&[("MILK", -1), ("TEA", 1)]));
    }

    fn arb_event() -> impl Strategy<Value = TransferEvent> {
        (
            prop::sample::select(TransferStatus::ALL.to_vec()),
            0_i64..50,
            prop::sample::select(vec!["hq", "s1.lane1", "s2.lane1"]),
        )
            .prop_map(|(status, at_ms, writer)| ev(status, at_ms, writer))
    }

    proptest! {
        #[test]
        fn fold_ignores_order_and_duplicates(
            events in prop::collection::vec(arb_event(), 0..12),
            seed in any::<u64>(),
            dup_mask in any::<u16>(),
        ) {
            let expected = fold_status(&events);
            let shuffled = shuffled_with_duplicates(&events, seed, dup_mask);
            prop_assert_eq!(fold_status(&shuffled), expected);
        }

        #[test]
        fn fold_merges_like_a_set_union_and_never_unreceives(
            left in prop::collection::vec(arb_event(), 0..8),
            right in prop::collection::vec(arb_event(), 0..8),
        ) {
            let union: Vec<_> = left.iter().chain(right.iter()).cloned().collect();
            let reversed: Vec<_> = right.iter().chain(left.iter()).cloned().collect();
            prop_assert_eq!(fold_status(&union), fold_status(&reversed));
            if status_of(&left) == Some(Received) {
                prop_assert_eq!(status_of(&union), Some(Received));
            }
        }

        /// Whatever sequence of statuses a side sees, settling after each one leaves exactly
        /// the effect of the last one booked: units are never lost or doubled.
        #[test]
        fn settling_any_status_sequence_books_exactly_the_final_effect(
            statuses in prop::collection::vec(prop::sample::select(TransferStatus::ALL.to_vec()), 1..10),
            sent in 1_i64..100,
            got in 0_i64..100,
        ) {
            let dispatched = lines(&[("A", sent)]);
            let received = lines(&[("A", got)]);
            let mut at_sender = BTreeMap::new();
            let mut at_receiver = BTreeMap::new();
            for status in &statuses {
                for (sku, d) in settle(&sender_effect(*status, &dispatched), &at_sender) {
                    *at_sender.entry(sku).or_insert(0) += d;
                }
                for (sku, d) in settle(&receiver_effect(*status, &received), &at_receiver) {
                    *at_receiver.entry(sku).or_insert(0) += d;
                }
            }
            let last = *statuses.last().unwrap();
            let net = |m: &BTreeMap<String, i64>| m.values().sum::<i64>();
            prop_assert_eq!(net(&at_sender), net(&sender_effect(last, &dispatched)));
            prop_assert_eq!(net(&at_receiver), net(&receiver_effect(last, &received)));
            // Chain-wide: what left the sender is what arrived plus the discrepancy.
            if last == Received {
                prop_assert_eq!(net(&at_sender) + net(&at_receiver), got - sent);
            }
        }
    }
}
