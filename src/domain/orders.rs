//! Click-and-collect orders: the pure status fold and its stock effect.
//!
//! Orders live in their own document per store ([`super::orders_doc::OrdersDoc`]), not in the
//! stock document: the stock document rolls over into epochs by summing numbers, orders
//! need their open records carried over instead, and HQ writes online orders into a store's
//! orders document but never into its stock.
//!
//! # Status fold
//! Status changes are append-only events from any writer. The current status is a pure
//! function of the *set* of events ([`fold_status`]):
//! 1. any hand-over event (`Collected`, or `Shipped` for ship-from-store) → the earliest of
//!    those (the goods left with the customer or the carrier; nothing can undo that);
//! 2. else any `Cancelled`/`Expired` → the earliest of those by (time, writer, status);
//! 3. else the furthest progress status reached: `Placed < Reserved < Picking < Ready`.
//!
//! Each rule is a min or max over the set, so the result does not depend on the order
//! events arrive in nor on duplicates (property-tested below). Progress never goes back:
//! a re-pick is recorded as a new order, not as a step back.
//!
//! # Stock effect
//! A status implies how many of the order's units are physically gone from the shelf
//! ([`StockEffect`]). Reservations are a promise only (an availability figure), not a
//! movement; picking into the pickup area (`Ready`) removes the units; `Collected` sells
//! them; `Cancelled`/`Expired` releases them, so a cancel after pick returns the units.
//! Only the order's fulfilment writer turns effect changes into movements, and it records
//! which effect it applied, so every unit moves exactly once ([`settle_movements`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stock::Movement;

/// How the customer gets the goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Click-and-collect: picked up at a lane with the pickup code.
    #[default]
    Collect,
    /// Ship-from-store: packed and handed to a carrier.
    Ship,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collect => "collect",
            Self::Ship => "ship",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Collect, Self::Ship]
            .into_iter()
            .find(|d| d.as_str() == value)
    }
}

/// Order status (serialised as its lower-case name, as the store's API shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Placed,
    Reserved,
    Picking,
    Ready,
    Collected,
    Shipped,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        Self::Placed,
        Self::Reserved,
        Self::Picking,
        Self::Ready,
        Self::Collected,
        Self::Shipped,
        Self::Cancelled,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Reserved => "reserved",
            Self::Picking => "picking",
            Self::Ready => "ready",
            Self::Collected => "collected",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    pub fn is_withdrawal(self) -> bool {
        matches!(self, Self::Cancelled | Self::Expired)
    }

    pub fn is_handed_over(self) -> bool {
        matches!(self, Self::Collected | Self::Shipped)
    }

    /// No further status can change the fold's result class (handed over or withdrawn).
    pub fn is_closed(self) -> bool {
        self.is_handed_over() || self.is_withdrawal()
    }

    /// What this status means for the order's units.
    pub fn stock_effect(self) -> StockEffect {
        match self {
            Self::Placed => StockEffect::None,
            Self::Reserved | Self::Picking => StockEffect::Reserved,
            Self::Ready => StockEffect::Removed,
            Self::Collected | Self::Shipped => StockEffect::Sold,
            Self::Cancelled | Self::Expired => StockEffect::Released,
        }
    }
}

/// One status event. Its identity is the whole tuple, so a replayed event is the same event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct OrderEvent {
    pub status: OrderStatus,
    pub at_ms: i64,
    pub writer: String,
}

/// The folded state of an order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OrderState {
    pub status: OrderStatus,
    /// The event that decided the status.
    pub decided_by: OrderEvent,
}

/// Folds a set of events into the current state (see the module docs for the rule).
/// `None` when there are no events.
pub fn fold_status<'a, I>(events: I) -> Option<OrderState>
where
    I: IntoIterator<Item = &'a OrderEvent>,
{
    let mut earliest_handover: Option<&OrderEvent> = None;
    let mut earliest_withdrawal: Option<&OrderEvent> = None;
    let mut furthest_progress: Option<&OrderEvent> = None;
    for event in events {
        let slot = match event.status {
            s if s.is_handed_over() => &mut earliest_handover,
            s if s.is_withdrawal() => &mut earliest_withdrawal,
            _ => {
                keep_if(&mut furthest_progress, event, |new, old| {
                    progress_key(new) > progress_key(old)
                });
                continue;
            }
        };
        keep_if(slot, event, |new, old| time_key(new) < time_key(old));
    }
    earliest_handover
        .or(earliest_withdrawal)
        .or(furthest_progress)
        .map(|event| OrderState {
            status: event.status,
            decided_by: event.clone(),
        })
}

fn keep_if<'a>(
    slot: &mut Option<&'a OrderEvent>,
    candidate: &'a OrderEvent,
    better: impl Fn(&OrderEvent, &OrderEvent) -> bool,
) {
    match slot {
        Some(current) if !better(candidate, current) => {}
        _ => *slot = Some(candidate),
    }
}

/// Earliest first; ties broken by writer then status, so the choice is total.
fn time_key(event: &OrderEvent) -> (i64, &str, OrderStatus) {
    (event.at_ms, event.writer.as_str(), event.status)
}

/// Furthest status first; among events of one status the earliest decides.
fn progress_key(event: &OrderEvent) -> (OrderStatus, std::cmp::Reverse<(i64, &str)>) {
    (
        event.status,
        std::cmp::Reverse((event.at_ms, event.writer.as_str())),
    )
}

/// What an order's status means for its units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum StockEffect {
    /// Nothing promised yet.
    None,
    /// Units promised to the order but still on the shelf (lowers availability only).
    Reserved,
    /// Units taken off the shelf into the pickup area.
    Removed,
    /// Units handed to the customer.
    Sold,
    /// Order withdrawn: nothing held, picked units back on the shelf.
    Released,
}

impl StockEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Reserved => "reserved",
            Self::Removed => "removed",
            Self::Sold => "sold",
            Self::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::None,
            Self::Reserved,
            Self::Removed,
            Self::Sold,
            Self::Released,
        ]
        .into_iter()
        .find(|effect| effect.as_str() == s)
    }

    /// Whether the units are out of on-hand stock under this effect.
    pub fn units_out_of_stock(self) -> bool {
        matches!(self, Self::Removed | Self::Sold)
    }

    /// Whether the units count against availability (reserved or already out).
    pub fn holds_units(self) -> bool {
        matches!(self, Self::Reserved | Self::Removed | Self::Sold)
    }
}

/// Movements that take stock from `applied` to `target` for an order with `lines`
/// (sku → quantity). Empty when on-hand stock does not change, e.g. Reserved → Released;
/// Ready → Cancelled gives +qty per line (the units go back to the shelf).
pub fn settle_movements(
    applied: StockEffect,
    target: StockEffect,
    lines: &BTreeMap<String, i64>,
) -> Vec<Movement> {
    let sign = match (applied.units_out_of_stock(), target.units_out_of_stock()) {
        (false, true) => -1,
        (true, false) => 1,
        _ => return Vec::new(),
    };
    lines
        .iter()
        .filter(|(_, qty)| **qty != 0)
        .map(|(sku, qty)| Movement {
            sku: sku.clone(),
            delta: qty.saturating_mul(sign),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fold_testing::shuffled_with_duplicates;
    use proptest::prelude::*;

    fn ev(status: OrderStatus, at_ms: i64, writer: &str) -> OrderEvent {
        OrderEvent {
            status,
            at_ms,
            writer: writer.to_owned(),
        }
    }

    fn status_of(events: &[OrderEvent]) -> Option<OrderStatus> {
        fold_status(events).map(|s| s.status)
    }

    #[test]
    fn progress_takes_the_furthest_status() {
        use OrderStatus::*;
        assert_eq!(status_of(&[]), None);
        let events = [ev(Ready, 5, "a"), ev(Placed, 1, "hq"), ev(Picking, 9, "b")];
        assert_eq!(status_of(&events), Some(Ready));
    }

    #[test]
    fn collected_wins_over_everything() {
        use OrderStatus::*;
        let events = [
            ev(Cancelled, 1, "hq"),
            ev(Collected, 50, "a"),
            ev(Ready, 2, "b"),
        ];
        assert_eq!(status_of(&events), Some(Collected));
    }

    #[test]
    fn earliest_withdrawal_wins_over_progress() {
        use OrderStatus::*;
        let events = [
            ev(Ready, 9, "a"),
            ev(Expired, 8, "hq"),
            ev(Cancelled, 3, "b"),
        ];
        let state = fold_status(&events).unwrap();
        assert_eq!(state.status, Cancelled);
        assert_eq!(state.decided_by, ev(Cancelled, 3, "b"));
        // Same time: the writer id breaks the tie.
        let tie = [ev(Expired, 3, "hq"), ev(Cancelled, 3, "b")];
        assert_eq!(status_of(&tie), Some(Cancelled));
    }

    #[test]
    fn cancel_after_pick_returns_units_and_collect_sells_them() {
        let lines = BTreeMap::from([("sku1".to_owned(), 2), ("sku2".to_owned(), 1)]);
        let picked = OrderStatus::Ready.stock_effect();
        let cancelled = OrderStatus::Cancelled.stock_effect();
        let back = settle_movements(picked, cancelled, &lines);
        assert_eq!(
            back,
            vec![
                Movement {
                    sku: "sku1".into(),
                    delta: 2
                },
                Movement {
                    sku: "sku2".into(),
                    delta: 1
                }
            ]
        );
        assert!(settle_movements(StockEffect::Reserved, cancelled, &lines).is_empty());
        assert!(settle_movements(picked, StockEffect::Sold, &lines).is_empty());
        let sold = settle_movements(StockEffect::Reserved, StockEffect::Sold, &lines);
        assert_eq!(sold.iter().map(|m| m.delta).sum::<i64>(), -3);
        // Collected after a cancel: the units leave again.
        assert_eq!(
            settle_movements(cancelled, StockEffect::Sold, &lines).len(),
            2
        );
    }

    #[test]
    fn names_round_trip() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            let effect = status.stock_effect();
            assert_eq!(StockEffect::parse(effect.as_str()), Some(effect));
        }
        assert_eq!(OrderStatus::parse("lost"), None);
    }

    fn arb_event() -> impl Strategy<Value = OrderEvent> {
        (
            prop::sample::select(OrderStatus::ALL.to_vec()),
            0_i64..20,
            prop::sample::select(vec!["hq", "s1.l1", "s1.l2"]),
        )
            .prop_map(|(status, at, writer)| ev(status, at, writer))
    }

    proptest! {
        #[test]
        fn fold_ignores_order_and_duplicates(
            events in prop::collection::vec(arb_event(), 0..12),
            shuffle_seed in any::<u64>(),
            dup_mask in any::<u16>(),
        ) {
            let expected = fold_status(&events);
            let shuffled = shuffled_with_duplicates(&events, shuffle_seed, dup_mask);
            prop_assert_eq!(fold_status(&shuffled), expected);
        }

        #[test]
        fn fold_merges_like_a_set_union(
            left in prop::collection::vec(arb_event(), 0..8),
            right in prop::collection::vec(arb_event(), 0..8),
        ) {
            // The fold is a merge: folding the union equals folding the two deciding
            // events, so states can be combined incrementally as changes arrive.
            let union: Vec<_> = left.iter().chain(right.iter()).cloned().collect();
            let deciders: Vec<_> = [fold_status(&left), fold_status(&right)]
                .into_iter()
                .flatten()
                .map(|s| s.decided_by)
                .collect();
            let whole = fold_status(&union);
            prop_assert_eq!(fold_status(&deciders), whole.clone());
            prop_assert_eq!(union.is_empty(), whole.is_none());
        }
    }
}
