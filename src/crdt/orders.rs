//! The orders document of one store: order facts plus writer-owned status events.
//!
//! Layout:
//! ```text
//! orders/{order_id}                      map, made by the creating writer
//!   channel, created_at, pickup_code_hash (hex), fulfilment (writer id), hold_hours?,
//!   delivery? ("ship"; absent: "collect")
//!   lines/{sku} = qty
//! writers/{w}/order_events/{order_id}    map, made by w
//!   {status} = at_ms                      first time w saw/recorded that status
//! writers/{hq}/base/...                   epochs ≥ 1: the state at HQ's cut, in the same
//!                                         layout per writer (see [`super::epoch_orders`])
//! ```
//! Order ids are `{creating writer}:{local id}`, so creation never conflicts and HQ can
//! check the creator owns the key. Events are a per-writer set keyed by status: a writer
//! records a status once (the earliest time it did), so no key is ever written by two
//! writers, and the state is [`fold_status`] over the union. No personal data goes here:
//! names, phones and e-mails live beside the document (keyed by order id) where they can be
//! erased; the document only holds a hash of the pickup code.

use super::doc::child_map;
use std::collections::BTreeMap;

use automerge::ObjType;
use automerge::transaction::Transactable;

use super::doc::{
    DocError, DocId, DocKind, KEY_ORDERS, KEY_WRITERS, LocalChange, SyncDoc, WriterId, int_at,
    int_entries, map_at, map_keys, order_id_belongs_to, str_at,
};
use crate::domain::orders::Delivery;
use crate::domain::orders::{OrderEvent, OrderState, OrderStatus, fold_status};

pub(super) const KEY_EVENTS: &str = "order_events";
/// Under `writers/{hq}`: the base HQ writes once when it opens an epoch (see
/// [`super::epoch_orders`]), with `cut`, `orders` and `writers` inside.
pub(super) const KEY_BASE: &str = "base";
pub(super) const KEY_BASE_CUT: &str = "cut";
pub(super) const KEY_BASE_ORDERS: &str = "orders";
pub(super) const KEY_BASE_WRITERS: &str = "writers";
const KEY_LINES: &str = "lines";
/// Longest order id accepted (bytes).
pub const MAX_ORDER_ID_LEN: usize = 128;

/// Errors of the orders document.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("order id {0:?} must be '{{writer}}:{{local id}}' with this writer's id")]
    ForeignOrderId(String),
    #[error("order {0} already exists")]
    Exists(String),
    #[error("order {0} is unknown")]
    Unknown(String),
    #[error("order {order} has an invalid line: {reason}")]
    InvalidLine { order: String, reason: String },
}

super::doc::doc_error!(OrdersError);

/// The business facts of an order (never personal data).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OrderFacts {
    pub order_id: String,
    /// e.g. "web", "app", "phone".
    pub channel: String,
    pub created_at_ms: i64,
    /// SHA-256 (or similar) of the pickup code, never the code itself.
    pub pickup_code_hash: [u8; 32],
    /// The writer that turns the order's status into stock movements (see
    /// [`crate::domain::orders::settle_movements`]).
    pub fulfilment: WriterId,
    /// sku → quantity (> 0).
    pub lines: BTreeMap<String, i64>,
    /// How long the store holds the units (`None`: the store's default).
    pub hold_hours: Option<u32>,
    pub delivery: Delivery,
}

/// The orders document of one store and epoch.
#[derive(Debug, Clone)]
pub struct OrdersDoc {
    core: SyncDoc,
}

impl OrdersDoc {
    pub fn genesis(store: &str, epoch: u32, writer: WriterId) -> Result<Self, OrdersError> {
        let id = DocId::new(store, DocKind::Orders)?;
        Ok(Self {
            core: SyncDoc::genesis(&id, epoch, writer)?,
        })
    }

    pub fn load(bytes: &[u8], writer: WriterId) -> Result<Self, OrdersError> {
        let core = SyncDoc::load(bytes, writer)?;
        core.expect_kind(DocKind::Orders)?;
        Ok(Self { core })
    }

    /// Wraps a loaded document, checking it is an orders document.
    pub fn from_core(core: SyncDoc) -> Result<Self, OrdersError> {
        core.expect_kind(DocKind::Orders)?;
        Ok(Self { core })
    }

    pub fn core(&self) -> &SyncDoc {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut SyncDoc {
        &mut self.core
    }

    /// The document back, without a copy (HQ reads figures from a document it keeps).
    pub fn into_core(self) -> SyncDoc {
        self.core
    }

    /// Creates an order (one change) and records `Placed` by this writer at its creation time.
    pub fn create_order(&mut self, facts: &OrderFacts) -> Result<Option<LocalChange>, OrdersError> {
        self.create(facts, false)
    }

    /// Creates an online order and consumes its units from the online escrow in the same
    /// change (see [`super::escrow`]): whoever sees the order sees the consumption.
    pub fn create_order_consuming_escrow(
        &mut self,
        facts: &OrderFacts,
    ) -> Result<Option<LocalChange>, OrdersError> {
        self.create(facts, true)
    }

    /// The root `writers` map.
    pub(super) fn writers_map(&self) -> Result<automerge::ObjId, OrdersError> {
        self.genesis_map(KEY_WRITERS)
    }

    fn create(
        &mut self,
        facts: &OrderFacts,
        consume_escrow: bool,
    ) -> Result<Option<LocalChange>, OrdersError> {
        let writer = self.core.writer().clone();
        if facts.order_id.len() > MAX_ORDER_ID_LEN || !order_id_belongs_to(&facts.order_id, &writer)
        {
            return Err(OrdersError::ForeignOrderId(facts.order_id.clone()));
        }
        validate_lines(facts)?;
        if self.facts(&facts.order_id).is_some() {
            return Err(OrdersError::Exists(facts.order_id.clone()));
        }
        let orders = self.genesis_map(KEY_ORDERS)?;
        let writers = self.genesis_map(KEY_WRITERS)?;
        self.core.commit(facts.created_at_ms, "order", |tx| {
            put_facts(tx, &orders, facts)?;
            if consume_escrow {
                let consumed: Vec<_> = facts
                    .lines
                    .iter()
                    .map(|(sku, qty)| (sku.clone(), super::escrow::EscrowField::Consumed, *qty))
                    .collect();
                super::escrow::put_escrow(tx, &writers, &writer, &consumed)?;
            }
            put_event(
                tx,
                &writers,
                &writer,
                &facts.order_id,
                OrderStatus::Placed,
                facts.created_at_ms,
            )
        })
    }

    /// Records that this writer set `order_id` to `status` at `at_ms`. Recording a status
    /// this writer already recorded keeps the earlier time (and makes no change).
    pub fn record_status(
        &mut self,
        order_id: &str,
        status: OrderStatus,
        at_ms: i64,
    ) -> Result<Option<LocalChange>, OrdersError> {
        if self.facts(order_id).is_none() {
            return Err(OrdersError::Unknown(order_id.to_owned()));
        }
        let writers = self.genesis_map(KEY_WRITERS)?;
        let writer = self.core.writer().clone();
        self.core.commit(at_ms, "order-status", |tx| {
            put_event(tx, &writers, &writer, order_id, status, at_ms)
        })
    }

    /// The facts of an order, if present and well formed: written by its creator in this
    /// epoch, or carried in HQ's base (see [`super::epoch_orders`]).
    pub fn facts(&self, order_id: &str) -> Option<OrderFacts> {
        let doc = self.core.automerge();
        let live = self
            .core
            .root_map(KEY_ORDERS)
            .and_then(|orders| map_at(doc, &orders, order_id));
        let order = live.or_else(|| map_at(doc, &self.base_child(KEY_BASE_ORDERS)?, order_id))?;
        read_facts(doc, &order, order_id)
    }

    /// All order ids (this epoch's and the base's), sorted.
    pub fn order_ids(&self) -> Vec<String> {
        let doc = self.core.automerge();
        let mut ids: Vec<String> = [
            self.core.root_map(KEY_ORDERS),
            self.base_child(KEY_BASE_ORDERS),
        ]
        .into_iter()
        .flatten()
        .flat_map(|map| map_keys(doc, &map, None))
        .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Every writer's events for `order_id` (this epoch's and, under the same writer ids,
    /// those HQ's base says each writer had recorded before the cut).
    pub fn events(&self, order_id: &str) -> Vec<OrderEvent> {
        let doc = self.core.automerge();
        let mut events = Vec::new();
        for (writer, own) in self.writer_maps() {
            let Some(per_order) =
                map_at(doc, &own, KEY_EVENTS).and_then(|e| map_at(doc, &e, order_id))
            else {
                continue;
            };
            for (status, at_ms) in int_entries(doc, &per_order, None) {
                if let Some(status) = OrderStatus::parse(&status) {
                    events.push(OrderEvent {
                        status,
                        at_ms,
                        writer: writer.as_str().to_owned(),
                    });
                }
            }
        }
        events
    }

    /// Every writer's maps: its own `writers/{w}` and, in an epoch after the first, the
    /// copy of it HQ's base holds (`writers/{hq}/base/writers/{w}`). Readers sum or merge
    /// both under the writer's own id, so the usual trust rules apply to base entries.
    pub(super) fn writer_maps(&self) -> Vec<(WriterId, automerge::ObjId)> {
        let doc = self.core.automerge();
        [
            self.core.root_map(KEY_WRITERS),
            self.base_child(KEY_BASE_WRITERS),
        ]
        .into_iter()
        .flatten()
        .flat_map(|parent| {
            map_keys(doc, &parent, None)
                .into_iter()
                .filter_map(move |key| {
                    let writer = WriterId::new(&key).ok()?;
                    Some((writer, map_at(doc, &parent, &key)?))
                })
                .collect::<Vec<_>>()
        })
        .collect()
    }

    /// `writers/{hq}/base/{key}`: part of the base HQ wrote when it opened this epoch.
    pub(super) fn base_child(&self, key: &str) -> Option<automerge::ObjId> {
        let doc = self.core.automerge();
        let base = map_at(doc, &self.core.writer_map(&WriterId::hq())?, KEY_BASE)?;
        map_at(doc, &base, key)
    }

    /// Whether HQ's base of this epoch is present (always absent in epoch 0).
    pub fn has_base(&self) -> bool {
        self.base_child(KEY_BASE_CUT).is_some()
    }

    /// The folded state of `order_id`.
    pub fn state(&self, order_id: &str) -> Option<OrderState> {
        fold_status(&self.events(order_id))
    }

    fn genesis_map(&self, key: &str) -> Result<automerge::ObjId, OrdersError> {
        self.core
            .root_map(key)
            .ok_or_else(|| DocError::NotOurDocument(format!("no {key} map")).into())
    }
}

/// The facts stored in the map `order`, if well formed.
fn read_facts(
    doc: &automerge::Automerge,
    order: &automerge::ObjId,
    order_id: &str,
) -> Option<OrderFacts> {
    let hash: [u8; 32] = hex::decode(str_at(doc, order, "pickup_code_hash")?)
        .ok()?
        .try_into()
        .ok()?;
    let lines = map_at(doc, order, KEY_LINES)
        .map(|l| int_entries(doc, &l, None).into_iter().collect())
        .unwrap_or_default();
    Some(OrderFacts {
        order_id: order_id.to_owned(),
        channel: str_at(doc, order, "channel")?,
        created_at_ms: int_at(doc, order, "created_at")?,
        pickup_code_hash: hash,
        fulfilment: WriterId::new(&str_at(doc, order, "fulfilment")?).ok()?,
        lines,
        hold_hours: int_at(doc, order, "hold_hours").and_then(|h| u32::try_from(h).ok()),
        delivery: match str_at(doc, order, "delivery") {
            Some(d) => Delivery::parse(&d)?,
            None => Delivery::Collect,
        },
    })
}

/// Writes `facts` as the map `parent[order_id]` (the order's creator, or HQ's base).
pub(super) fn put_facts(
    tx: &mut automerge::transaction::Transaction<'_>,
    parent: &automerge::ObjId,
    facts: &OrderFacts,
) -> Result<(), OrdersError> {
    let order = tx.put_object(parent, facts.order_id.as_str(), ObjType::Map)?;
    tx.put(&order, "channel", facts.channel.as_str())?;
    tx.put(&order, "created_at", facts.created_at_ms)?;
    tx.put(
        &order,
        "pickup_code_hash",
        hex::encode(facts.pickup_code_hash),
    )?;
    tx.put(&order, "fulfilment", facts.fulfilment.as_str())?;
    if let Some(hours) = facts.hold_hours {
        tx.put(&order, "hold_hours", i64::from(hours))?;
    }
    if facts.delivery != Delivery::Collect {
        tx.put(&order, "delivery", facts.delivery.as_str())?;
    }
    let lines = tx.put_object(&order, KEY_LINES, ObjType::Map)?;
    for (sku, qty) in &facts.lines {
        tx.put(&lines, sku.as_str(), *qty)?;
    }
    Ok(())
}

fn validate_lines(facts: &OrderFacts) -> Result<(), OrdersError> {
    let invalid = |reason: &str| OrdersError::InvalidLine {
        order: facts.order_id.clone(),
        reason: reason.to_owned(),
    };
    if facts.lines.is_empty() {
        return Err(invalid("no lines"));
    }
    for (sku, qty) in &facts.lines {
        if sku.is_empty() || sku.len() > super::stock::MAX_SKU_LEN {
            return Err(invalid("bad sku"));
        }
        if *qty <= 0 {
            return Err(invalid("quantity must be positive"));
        }
    }
    Ok(())
}

pub(super) fn put_event(
    tx: &mut automerge::transaction::Transaction<'_>,
    writers: &automerge::ObjId,
    writer: &WriterId,
    order_id: &str,
    status: OrderStatus,
    at_ms: i64,
) -> Result<(), OrdersError> {
    let own = child_map(tx, writers, writer.as_str())?;
    let events = child_map(tx, &own, KEY_EVENTS)?;
    let per_order = child_map(tx, &events, order_id)?;
    let earlier = int_at(tx, &per_order, status.as_str()).is_some_and(|t| t <= at_ms);
    if !earlier {
        tx.put(&per_order, status.as_str(), at_ms)?;
    }
    Ok(())
}
/// Which coupon and loyalty totals of an orders document a write can have changed, from
/// the paths its operations write ([`super::doc::touched_paths`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotalsTouched {
    /// A write above one coupon's or member's entries (a writer's map, a whole section,
    /// the base's writers): any total may have changed.
    pub all: bool,
    pub members: std::collections::BTreeSet<String>,
    pub coupons: std::collections::BTreeSet<String>,
}

impl TotalsTouched {
    /// Classifies the written paths by the layout [`OrdersDoc::coupon_totals`] and
    /// [`OrdersDoc::loyalty_ledgers`] read: `writers/{w}/coupons/{code}/..`,
    /// `writers/{w}/loyalty/{member}/..`, and the same under HQ's `base/writers`. Paths
    /// elsewhere (orders, events, escrow, transfers) change no total.
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a Vec<String>>) -> Self {
        let mut out = Self::default();
        for path in paths {
            match path.split_first() {
                None => out.all = true,
                Some((root_key, rest)) if root_key == KEY_WRITERS => out.in_writers(rest),
                Some(_) => {}
            }
        }
        out
    }

    /// `rest`: the path below a `writers` map (`{w}/..`).
    fn in_writers(&mut self, rest: &[String]) {
        match rest.split_first() {
            None => self.all = true,
            Some((_, own)) => self.in_own(own),
        }
    }

    /// `own`: the path below one writer's map.
    fn in_own(&mut self, own: &[String]) {
        use super::coupons::KEY_COUPONS;
        use super::loyalty::KEY_LOYALTY;
        match own {
            [] => self.all = true,
            [section] if [KEY_LOYALTY, KEY_COUPONS, KEY_BASE].contains(&section.as_str()) => {
                self.all = true;
            }
            [section, member, ..] if section == KEY_LOYALTY => {
                self.members.insert(member.clone());
            }
            [section, code, ..] if section == KEY_COUPONS => {
                self.coupons.insert(code.clone());
            }
            [base, writers, rest @ ..] if base == KEY_BASE && writers == KEY_BASE_WRITERS => {
                self.in_writers(rest);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn w(id: &str) -> WriterId {
        WriterId::new(id).unwrap()
    }

    fn facts(order_id: &str) -> OrderFacts {
        OrderFacts {
            order_id: order_id.to_owned(),
            channel: "web".to_owned(),
            created_at_ms: 100,
            pickup_code_hash: [7; 32],
            fulfilment: w("s001.lane1"),
            lines: BTreeMap::from([("sku1".to_owned(), 2)]),
            hold_hours: Some(24),
            delivery: Delivery::Collect,
        }
    }

    fn exchange(a: &mut OrdersDoc, b: &mut OrdersDoc) {
        let to_b = a.core().changes_since(&b.core().heads());
        let to_a = b.core().changes_since(&a.core().heads());
        b.core_mut().apply_changes(&to_b).unwrap();
        a.core_mut().apply_changes(&to_a).unwrap();
    }

    #[test]
    fn hq_order_with_concurrent_pick_and_cancel_folds_the_same_everywhere() {
        let mut hq = OrdersDoc::genesis("s001", 1, w("hq")).unwrap();
        let mut lane = OrdersDoc::genesis("s001", 1, w("s001.lane1")).unwrap();
        hq.create_order(&facts("hq:1")).unwrap().unwrap();
        exchange(&mut hq, &mut lane);
        assert_eq!(lane.facts("hq:1"), Some(facts("hq:1")));
        lane.record_status("hq:1", OrderStatus::Ready, 200).unwrap();
        hq.record_status("hq:1", OrderStatus::Cancelled, 150)
            .unwrap();
        exchange(&mut hq, &mut lane);
        let state = lane.state("hq:1").unwrap();
        assert_eq!(state.status, OrderStatus::Cancelled);
        assert_eq!(hq.state("hq:1"), Some(state));
        assert_eq!(lane.events("hq:1").len(), 3);
        assert_eq!(lane.order_ids(), vec!["hq:1".to_owned()]);
    }

    #[test]
    fn creation_rules_are_enforced() {
        let mut lane = OrdersDoc::genesis("s001", 1, w("s001.lane1")).unwrap();
        assert!(matches!(
            lane.create_order(&facts("hq:1")),
            Err(OrdersError::ForeignOrderId(_))
        ));
        lane.create_order(&facts("s001.lane1:1")).unwrap();
        assert!(matches!(
            lane.create_order(&facts("s001.lane1:1")),
            Err(OrdersError::Exists(_))
        ));
        let mut empty = facts("s001.lane1:2");
        empty.lines.clear();
        assert!(matches!(
            lane.create_order(&empty),
            Err(OrdersError::InvalidLine { .. })
        ));
        assert!(matches!(
            lane.record_status("s001.lane1:9", OrderStatus::Ready, 1),
            Err(OrdersError::Unknown(_))
        ));
    }

    #[test]
    fn repeated_status_keeps_the_earliest_time_and_makes_no_change() {
        let mut lane = OrdersDoc::genesis("s001", 1, w("s001.lane1")).unwrap();
        lane.create_order(&facts("s001.lane1:1")).unwrap();
        assert!(
            lane.record_status("s001.lane1:1", OrderStatus::Ready, 50)
                .unwrap()
                .is_some()
        );
        assert!(
            lane.record_status("s001.lane1:1", OrderStatus::Ready, 90)
                .unwrap()
                .is_none()
        );
        let ready: Vec<_> = lane
            .events("s001.lane1:1")
            .into_iter()
            .filter(|e| e.status == OrderStatus::Ready)
            .collect();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].at_ms, 50);
    }

    #[test]
    fn hq_check_accepts_own_orders_and_events_only() {
        let hq = OrdersDoc::genesis("s001", 1, w("hq")).unwrap();
        let allowed: BTreeSet<WriterId> = [w("hq"), w("s001.lane1"), w("s001.lane2")].into();
        let mut lane1 = OrdersDoc::genesis("s001", 1, w("s001.lane1")).unwrap();
        let created = lane1.create_order(&facts("s001.lane1:1")).unwrap().unwrap();
        assert!(hq.core().check_change(&created.bytes, &allowed).is_ok());
        let mut lane2 = OrdersDoc::genesis("s001", 1, w("s001.lane2")).unwrap();
        lane2.core_mut().apply_changes(&[&created.bytes]).unwrap();
        let event = lane2
            .record_status("s001.lane1:1", OrderStatus::Picking, 5)
            .unwrap()
            .unwrap();
        assert!(hq.core().check_change(&event.bytes, &allowed).is_ok());
        // lane2 creating an order under lane1's id prefix is refused.
        let forged = lane2
            .core_mut()
            .commit::<OrdersError, _>(1, "forge", |tx| {
                let orders = map_at(tx, &automerge::ROOT, KEY_ORDERS).unwrap();
                tx.put_object(&orders, "s001.lane1:2", ObjType::Map)?;
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert!(hq.core().check_change(&forged.bytes, &allowed).is_err());
    }
}
