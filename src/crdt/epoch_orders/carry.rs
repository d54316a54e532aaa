//! Carrying a writer's orders over into the next epoch: what it did after its cut, and the
//! succession check.

#[allow(unused_imports)] // the parent's imports, shared by its parts
use super::*;

/// What one writer did in its own map and orders after its cut change.
#[derive(Debug, Default)]
pub(super) struct PostCut {
    created: Vec<OrderFacts>,
    /// order id → status → at_ms
    events: BTreeMap<String, BTreeMap<String, i64>>,
    /// (sku, field, now − at cut), non-zero only.
    escrow: Vec<(String, EscrowField, i64)>,
    /// (member, field, now − at cut), non-zero only.
    loyalty: Vec<(String, String, i64)>,
    /// code → key → now − at cut, non-zero only.
    coupons: BTreeMap<String, BTreeMap<String, i64>>,
    transfers: Vec<TransferFacts>,
    transfer_events: BTreeMap<String, BTreeMap<String, i64>>,
    transfer_received: BTreeMap<String, BTreeMap<String, i64>>,
}

/// A writer moves its orders document over from `old` (E) into `new` (E+1, holding HQ's
/// base): one change with its post-cut work and the `carried_from` marker. `Ok(None)` if it
/// already carried over.
pub fn carry_over_orders(
    old: &OrdersDoc,
    new: &mut OrdersDoc,
    at_ms: i64,
) -> Result<Option<LocalChange>, OrdersEpochError> {
    check_succession(old, new)?;
    let writer = new.core().writer().clone();
    if new.carried_from(&writer).is_some() {
        return Ok(None);
    }
    let cut = match new.base_cut().get(&writer) {
        Some(hash) if !old.core().has_change(hash) => {
            return Err(OrdersEpochError::OwnCutChangeMissing {
                writer: writer.to_string(),
                hash: hash.to_string(),
            });
        }
        Some(hash) => Some(vec![*hash]),
        None => None,
    };
    let post = post_cut(old, new, &writer, cut.as_deref());
    let writers = new
        .core()
        .root_map(KEY_WRITERS)
        .ok_or_else(|| OrdersError::Unknown("writers map".to_owned()))?;
    let orders = new
        .core()
        .root_map(KEY_ORDERS)
        .ok_or_else(|| OrdersError::Unknown("orders map".to_owned()))?;
    let from = i64::from(old.core().epoch());
    new.core_mut()
        .commit::<OrdersEpochError, _>(at_ms, "orders-carry-over", |tx| {
            for facts in &post.created {
                put_facts(tx, &orders, facts)?;
            }
            let own = child_map(tx, &writers, writer.as_str())?;
            write_sections(tx, &own, KEY_EVENTS, &post.events)?;
            crate::crdt::escrow::put_escrow(tx, &writers, &writer, &post.escrow)?;
            crate::crdt::loyalty::put_loyalty(tx, &writers, &writer, &post.loyalty)?;
            write_sections(tx, &own, KEY_COUPONS, &post.coupons)?;
            if !post.transfers.is_empty() {
                let all = child_map(tx, &own, KEY_TRANSFERS)?;
                for facts in &post.transfers {
                    put_transfer_facts(tx, &all, facts)?;
                }
            }
            write_sections(tx, &own, KEY_TR_EVENTS, &post.transfer_events)?;
            write_sections(tx, &own, KEY_RECEIVED, &post.transfer_received)?;
            tx.put(&own, KEY_CARRIED_FROM, from)?;
            Ok(())
        })
}

pub(super) fn write_sections(
    tx: &mut Transaction<'_>,
    own: &ObjId,
    section: &str,
    entries: &BTreeMap<String, BTreeMap<String, i64>>,
) -> Result<(), OrdersEpochError> {
    if entries.is_empty() {
        return Ok(());
    }
    let section = child_map(tx, own, section)?;
    for (id, values) in entries {
        let entry = child_map(tx, &section, id)?;
        for (key, value) in values {
            tx.put(&entry, key.as_str(), *value)?;
        }
    }
    Ok(())
}

/// `writer`'s work in `old` after its cut change (`cut`: `None` if it had none in the cut).
/// Only its own map and own order ids are read: only it writes there, so reading them at
/// its cut change gives exactly their state at the cut.
pub(super) fn post_cut(
    old: &OrdersDoc,
    new: &OrdersDoc,
    writer: &WriterId,
    cut: Option<&[ChangeHash]>,
) -> PostCut {
    let doc = old.core().automerge();
    let mut post = PostCut::default();
    let at_cut_orders: BTreeSet<String> = match (old.core().root_map(KEY_ORDERS), cut) {
        (Some(orders), Some(heads)) => map_keys(doc, &orders, Some(heads)).into_iter().collect(),
        _ => BTreeSet::new(),
    };
    let live_orders = old
        .core()
        .root_map(KEY_ORDERS)
        .map(|orders| map_keys(doc, &orders, None))
        .unwrap_or_default();
    for id in live_orders {
        if order_id_belongs_to(&id, writer)
            && !at_cut_orders.contains(&id)
            && new.facts(&id).is_none()
        {
            post.created.extend(old.facts(&id));
        }
    }
    let created: BTreeSet<&str> = post.created.iter().map(|f| f.order_id.as_str()).collect();
    let known = |id: &str| created.contains(id) || new.facts(id).is_some();
    post.events = section_delta(old, writer, KEY_EVENTS, cut)
        .into_iter()
        .filter(|(id, _)| known(id))
        .collect();
    let now = old.own_escrow_at(writer, None);
    let before = cut
        .map(|h| old.own_escrow_at(writer, Some(h)))
        .unwrap_or_default();
    for (sku, fields) in &now {
        for (field, value) in fields {
            let was = before
                .get(sku)
                .and_then(|f| f.get(field))
                .copied()
                .unwrap_or(0);
            let delta = value.saturating_sub(was);
            if let (Some(field), true) = (EscrowField::parse(field), delta != 0) {
                post.escrow.push((sku.clone(), field, delta));
            }
        }
    }
    post.loyalty = old.loyalty_post_cut(writer, cut);
    let coupons_at_cut = cut
        .map(|h| old.own_coupons_at(writer, Some(h)))
        .unwrap_or_default();
    for (code, keys) in old.own_coupons_at(writer, None) {
        let delta: BTreeMap<String, i64> = keys
            .into_iter()
            .map(|(key, value)| {
                let was = coupons_at_cut.get(&code).and_then(|k| k.get(&key)).copied();
                (key, value.saturating_sub(was.unwrap_or(0)))
            })
            .filter(|(_, d)| *d != 0)
            .collect();
        if !delta.is_empty() {
            post.coupons.insert(code, delta);
        }
    }
    let live_transfers = own_section_ids(old, writer, KEY_TRANSFERS, None);
    let cut_transfers: BTreeSet<String> = cut
        .map(|h| own_section_ids(old, writer, KEY_TRANSFERS, Some(h)))
        .unwrap_or_default()
        .into_iter()
        .collect();
    for id in live_transfers {
        if !cut_transfers.contains(&id) && new.tr_facts_by(writer, &id).is_none() {
            post.transfers.extend(old.tr_facts_by(writer, &id));
        }
    }
    post.transfer_events = section_delta(old, writer, KEY_TR_EVENTS, cut);
    post.transfer_received = section_delta(old, writer, KEY_RECEIVED, cut);
    post
}

/// Ids in `writers/{writer}/{section}` of `old` (own entries only) as of `heads`.
pub(super) fn own_section_ids(
    old: &OrdersDoc,
    writer: &WriterId,
    section: &str,
    heads: Option<&[ChangeHash]>,
) -> Vec<String> {
    let doc = old.core().automerge();
    old.core()
        .root_map(KEY_WRITERS)
        .and_then(|w| map_at_heads(doc, &w, writer.as_str(), heads))
        .and_then(|own| map_at_heads(doc, &own, section, heads))
        .map(|s| map_keys(doc, &s, heads))
        .unwrap_or_default()
}

/// Entries `id → key → value` of the writer's own `section` now that were not there (or
/// differed) at the cut.
pub(super) fn section_delta(
    old: &OrdersDoc,
    writer: &WriterId,
    section: &str,
    cut: Option<&[ChangeHash]>,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    let doc = old.core().automerge();
    let entries = |heads: Option<&[ChangeHash]>| -> BTreeMap<String, BTreeMap<String, i64>> {
        let Some(map) = old
            .core()
            .root_map(KEY_WRITERS)
            .and_then(|w| map_at_heads(doc, &w, writer.as_str(), heads))
            .and_then(|own| map_at_heads(doc, &own, section, heads))
        else {
            return BTreeMap::new();
        };
        map_keys(doc, &map, heads)
            .into_iter()
            .filter_map(|id| {
                let per = map_at_heads(doc, &map, &id, heads)?;
                Some((id, int_entries(doc, &per, heads).into_iter().collect()))
            })
            .collect()
    };
    let now = entries(None);
    let before = cut.map(|h| entries(Some(h))).unwrap_or_default();
    now.into_iter()
        .filter_map(|(id, values)| {
            let was = before.get(&id);
            let fresh: BTreeMap<String, i64> = values
                .into_iter()
                .filter(|(k, v)| was.and_then(|w| w.get(k)) != Some(v))
                .collect();
            (!fresh.is_empty()).then_some((id, fresh))
        })
        .collect()
}

pub(super) fn check_succession(old: &OrdersDoc, new: &OrdersDoc) -> Result<(), OrdersEpochError> {
    let (old_id, new_id) = (old.core().id(), new.core().id());
    if old_id != new_id {
        return Err(OrdersEpochError::OtherStore {
            old: old_id.store.clone(),
            new: new_id.store.clone(),
        });
    }
    let (old_epoch, new_epoch) = (old.core().epoch(), new.core().epoch());
    if old_epoch.checked_add(1) != Some(new_epoch) {
        return Err(OrdersEpochError::NotNextEpoch {
            old: old_epoch,
            new: new_epoch,
        });
    }
    Ok(())
}
