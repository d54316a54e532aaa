//! The online escrow's layout in a store's orders document (the rule is in
//! `domain::escrow`): `writers/{w}/escrow/{sku}/{granted|consumed|returned} = total`, each
//! writer adding to its own entries (store lanes write `granted`, HQ writes `consumed` and
//! `returned`). In an epoch ≥ 1 a writer's totals are its base entry (at HQ's cut) plus its
//! live entry (its carry-over `now − at cut` and what it added since), see
//! [`super::epoch_orders`].

use std::collections::BTreeMap;

use automerge::transaction::Transactable;

use super::doc::{
    LocalChange, WriterId, child_map, int_at, int_entries, map_at, map_at_heads, map_keys,
};
use super::orders::{OrdersDoc, OrdersError};
pub use crate::domain::escrow::{EscrowField, EscrowTotals};

pub(super) const KEY_ESCROW: &str = "escrow";

impl OrdersDoc {
    /// Adds to this writer's escrow totals, one change for all entries.
    pub fn add_escrow(
        &mut self,
        entries: &[(String, EscrowField, i64)],
        at_ms: i64,
    ) -> Result<Option<LocalChange>, OrdersError> {
        if entries.is_empty() {
            return Ok(None);
        }
        let writers = self.writers_map()?;
        let writer = self.core().writer().clone();
        self.core_mut().commit(at_ms, "escrow", |tx| {
            put_escrow(tx, &writers, &writer, entries)
        })
    }

    /// Escrow totals per SKU over every writer (this epoch's entries plus HQ's base).
    pub fn escrow_totals(&self) -> BTreeMap<String, EscrowTotals> {
        let mut totals: BTreeMap<String, EscrowTotals> = BTreeMap::new();
        for per_sku in self.escrow_by_writer().into_values() {
            for (sku, t) in per_sku {
                let slot = totals.entry(sku).or_default();
                slot.granted = slot.granted.saturating_add(t.granted);
                slot.consumed = slot.consumed.saturating_add(t.consumed);
                slot.returned = slot.returned.saturating_add(t.returned);
            }
        }
        totals
    }

    /// Per writer and SKU: its totals (its own entries plus what HQ's base carried for it).
    pub fn escrow_by_writer(&self) -> BTreeMap<WriterId, BTreeMap<String, EscrowTotals>> {
        let doc = self.core().automerge();
        let mut out: BTreeMap<WriterId, BTreeMap<String, EscrowTotals>> = BTreeMap::new();
        for (writer, own) in self.writer_maps() {
            let Some(escrow) = map_at(doc, &own, KEY_ESCROW) else {
                continue;
            };
            let per_sku = out.entry(writer).or_default();
            for (sku, entry) in escrow_entries(doc, &escrow, None) {
                let slot = per_sku.entry(sku).or_default();
                for (field, value) in entry {
                    slot.add(&field, value);
                }
            }
        }
        out
    }

    /// `writer`'s own entries of this epoch (not the base) as of `heads` (`None`: now):
    /// sku → field → total. Used to carry a writer's post-cut grants into the next epoch.
    pub fn own_escrow_at(
        &self,
        writer: &WriterId,
        heads: Option<&[automerge::ChangeHash]>,
    ) -> BTreeMap<String, BTreeMap<String, i64>> {
        let doc = self.core().automerge();
        let Some(writers) = self.core().root_map(super::doc::KEY_WRITERS) else {
            return BTreeMap::new();
        };
        map_at_heads(doc, &writers, writer.as_str(), heads)
            .and_then(|own| map_at_heads(doc, &own, KEY_ESCROW, heads))
            .map(|escrow| escrow_entries(doc, &escrow, heads))
            .unwrap_or_default()
    }

    /// The escrow of one SKU.
    pub fn escrow_of(&self, sku: &str) -> EscrowTotals {
        self.escrow_totals().remove(sku).unwrap_or_default()
    }
}

/// sku → field → total of an `escrow` map as of `heads` (`None`: now).
fn escrow_entries(
    doc: &automerge::Automerge,
    escrow: &automerge::ObjId,
    heads: Option<&[automerge::ChangeHash]>,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    map_keys(doc, escrow, heads)
        .into_iter()
        .filter_map(|sku| {
            let entry = map_at_heads(doc, escrow, &sku, heads)?;
            Some((sku, int_entries(doc, &entry, heads).into_iter().collect()))
        })
        .collect()
}

/// Adds `entries` to `writer`'s own escrow totals inside a transaction.
pub(super) fn put_escrow(
    tx: &mut automerge::transaction::Transaction<'_>,
    writers: &automerge::ObjId,
    writer: &WriterId,
    entries: &[(String, EscrowField, i64)],
) -> Result<(), OrdersError> {
    let own = child_map(tx, writers, writer.as_str())?;
    let escrow = child_map(tx, &own, KEY_ESCROW)?;
    for (sku, field, delta) in entries {
        let entry = child_map(tx, &escrow, sku)?;
        let total = int_at(tx, &entry, field.as_str())
            .unwrap_or(0)
            .saturating_add(*delta);
        tx.put(&entry, field.as_str(), total)?;
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::orders::OrderFacts;
    use crate::domain::orders::Delivery;
    use proptest::prelude::*;

    fn w(id: &str) -> WriterId {
        WriterId::new(id).unwrap()
    }

    fn exchange(a: &mut OrdersDoc, b: &mut OrdersDoc) {
        let to_b = a.core().changes_since(&b.core().heads());
        let to_a = b.core().changes_since(&a.core().heads());
        b.core_mut().apply_changes(&to_b).unwrap();
        a.core_mut().apply_changes(&to_a).unwrap();
    }

    #[test]
    fn totals_sum_over_writers_and_remaining_subtracts() {
        let mut lane = OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap();
        let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
        let grant = |n| vec![("MILK".to_owned(), EscrowField::Granted, n)];
        lane.add_escrow(&grant(3), 1).unwrap().unwrap();
        lane.add_escrow(&grant(2), 2).unwrap().unwrap();
        exchange(&mut lane, &mut hq);
        hq.add_escrow(&[("MILK".to_owned(), EscrowField::Consumed, 1)], 3)
            .unwrap();
        hq.add_escrow(&[("MILK".to_owned(), EscrowField::Returned, 1)], 4)
            .unwrap();
        exchange(&mut lane, &mut hq);
        let totals = lane.escrow_of("MILK");
        assert_eq!(
            totals,
            EscrowTotals {
                granted: 5,
                consumed: 1,
                returned: 1
            }
        );
        assert_eq!(totals.remaining(), 3);
        assert_eq!(hq.escrow_of("MILK"), totals);
        assert_eq!(lane.escrow_of("BREAD"), EscrowTotals::default());
    }

    // ---- The no-oversell property under random interleavings --------------------------

    /// One step of the schedule.
    #[derive(Clone, Debug)]
    enum Step {
        /// The store's till sells `n` (only from its free units).
        StoreSells(i64),
        /// The store grants `n` to the online channel (only from its free units).
        StoreGrants(i64),
        /// The web shop promises `n` in an online order (only from HQ's view of the escrow).
        HqPromises(i64),
        /// HQ gives `n` unused units back.
        HqReturns(i64),
        /// The store receives `n` new units.
        Delivery(i64),
        /// The link toggles (partition starts or ends).
        Toggle,
        /// Messages flow if the link is up.
        Sync,
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1_i64..4).prop_map(Step::StoreSells),
            (1_i64..4).prop_map(Step::StoreGrants),
            (1_i64..4).prop_map(Step::HqPromises),
            (1_i64..3).prop_map(Step::HqReturns),
            (1_i64..3).prop_map(Step::Delivery),
            Just(Step::Toggle),
            Just(Step::Sync),
            Just(Step::Sync),
        ]
    }

    /// The store side: its stock and the online orders it has reserved units for.
    struct Store {
        doc: OrdersDoc,
        on_hand: i64,
        reserved: i64,
        seen_orders: std::collections::BTreeSet<String>,
    }

    impl Store {
        fn free(&self) -> i64 {
            self.on_hand - self.reserved - self.doc.escrow_of("MILK").remaining()
        }

        /// What the store does on receiving HQ's changes: reserve each new online order.
        fn reserve_new_orders(&mut self) {
            for id in self.doc.order_ids() {
                if self.seen_orders.insert(id.clone()) {
                    let facts = self.doc.facts(&id).unwrap();
                    self.reserved += facts.lines["MILK"];
                }
            }
        }
    }

    fn online_order(n: usize, qty: i64) -> OrderFacts {
        OrderFacts {
            order_id: format!("hq:web-{n}"),
            channel: "web".to_owned(),
            created_at_ms: 1,
            pickup_code_hash: [1; 32],
            fulfilment: w("s1.lane1"),
            lines: BTreeMap::from([("MILK".to_owned(), qty)]),
            hold_hours: None,
            delivery: Delivery::Collect,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

        #[test]
        fn no_unit_is_promised_twice(
            start in 0_i64..8,
            steps in prop::collection::vec(arb_step(), 1..40),
        ) {
            let mut store = Store {
                doc: OrdersDoc::genesis("s1", 0, w("s1.lane1")).unwrap(),
                on_hand: start,
                reserved: 0,
                seen_orders: Default::default(),
            };
            let mut hq = OrdersDoc::genesis("s1", 0, w("hq")).unwrap();
            let (mut linked, mut sold, mut promised, mut delivered) = (true, 0, 0, start);
            let mut orders = 0;
            for step in steps {
                match step {
                    Step::StoreSells(n) if store.free() >= n => {
                        store.on_hand -= n;
                        sold += n;
                    }
                    Step::StoreGrants(n) if store.free() >= n => {
                        store.doc
                            .add_escrow(&[("MILK".to_owned(), EscrowField::Granted, n)], 1)
                            .unwrap();
                    }
                    Step::HqPromises(n) if hq.escrow_of("MILK").remaining() >= n => {
                        orders += 1;
                        hq.create_order_consuming_escrow(&online_order(orders, n)).unwrap();
                        promised += n;
                    }
                    Step::HqReturns(n) if hq.escrow_of("MILK").remaining() >= n => {
                        hq.add_escrow(&[("MILK".to_owned(), EscrowField::Returned, n)], 1)
                            .unwrap();
                    }
                    Step::Delivery(n) => {
                        store.on_hand += n;
                        delivered += n;
                    }
                    Step::Toggle => linked = !linked,
                    Step::Sync if linked => {
                        exchange(&mut store.doc, &mut hq);
                        store.reserve_new_orders();
                    }
                    _ => {}
                }
                // At every moment: never more promised (sold at the till or to the web
                // shop) than ever existed, whatever each side knows of the other.
                prop_assert!(sold + promised <= delivered,
                    "sold {} + promised {} > delivered {}", sold, promised, delivered);
            }
            // Heal the partition: both converge, and what the store holds covers every
            // online order (stock never below zero where it started at or above zero).
            exchange(&mut store.doc, &mut hq);
            store.reserve_new_orders();
            prop_assert_eq!(store.doc.escrow_totals(), hq.escrow_totals());
            prop_assert_eq!(store.reserved, promised);
            prop_assert!(store.on_hand >= store.reserved);
            prop_assert!(store.free() >= 0);
        }
    }
}
