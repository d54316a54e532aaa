//! The online channel's escrow: units of a store's stock granted to the web shop, so that it
//! can promise them while the store is cut off without the store selling them too.
//!
//! # Rule (a bounded counter per store and SKU)
//! - The **store** grants units: `granted` grows, only by units the store has free
//!   (`on_hand − reserved − remaining`), and the store's tills may not sell granted units.
//! - **HQ** consumes units for each online order it places (`consumed` grows in the very change
//!   that creates the order) and gives unused units back (`returned` grows), both only while
//!   `remaining = granted − consumed − returned` covers them *in HQ's view*.
//!
//! Every total only grows and each has one kind of writer, so both sides see a view that errs
//! on the safe side: HQ may lag behind on grants (its `remaining` is too low, never too high)
//! and the store may lag behind on consumption and returns (its `remaining` is too high, so
//! its free units too low). Neither can promise a unit the other already promised, with or
//! without a connection; see the property test below. An online order's units move from
//! `remaining` to the store's `reserved` when the order reaches the store, in the same
//! change, so they are never counted twice nor dropped in between. A cancelled online order
//! releases its reservation to the store, not back to the escrow; the store grants again.
//!
//! # Layout
//! In the store's orders document; see `crdt::escrow`.

/// One of the three totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscrowField {
    Granted,
    Consumed,
    Returned,
}

impl EscrowField {
    pub const ALL: [EscrowField; 3] = [Self::Granted, Self::Consumed, Self::Returned];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Consumed => "consumed",
            Self::Returned => "returned",
        }
    }
}

/// The escrow of one SKU, summed over writers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EscrowTotals {
    pub granted: i64,
    pub consumed: i64,
    pub returned: i64,
}

impl EscrowTotals {
    /// Units the online channel may still promise.
    pub fn remaining(&self) -> i64 {
        self.granted
            .saturating_sub(self.consumed)
            .saturating_sub(self.returned)
    }

    pub fn add(&mut self, field: &str, value: i64) {
        let slot = match field {
            "granted" => &mut self.granted,
            "consumed" => &mut self.consumed,
            "returned" => &mut self.returned,
            _ => return,
        };
        *slot = slot.saturating_add(value);
    }
}
