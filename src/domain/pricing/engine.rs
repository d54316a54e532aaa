//! The pricing algorithm. The rules it follows are in the module doc of `pricing`.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use super::rules::{PriceList, PricingRules, Promotion, Rule, Target};
use super::time::LocalDateTime;
use crate::money::{self, Quantity};

/// One line of the basket as the till or the web shop sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketLine {
    pub sku: String,
    pub quantity: Quantity,
    /// The catalog's unit price (per kilogram for weighed items).
    pub list_price_minor: i64,
}

/// Where and when the basket is priced.
#[derive(Debug, Clone, Copy)]
pub struct PriceContext<'a> {
    pub store: &'a str,
    /// The store's local wall-clock time.
    pub at: LocalDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedBasket {
    pub lines: Vec<PricedLine>,
    /// Sum of the lines before promotions.
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    /// Each promotion that took something off, in the order applied.
    pub promotions: Vec<AppliedPromotion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub sku: String,
    /// After the price list, before promotions.
    pub unit_price_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_list: Option<String>,
    pub gross_minor: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<LineDiscount>,
    /// What the customer pays for this line: `gross_minor` minus the discounts.
    pub net_minor: i64,
}

// ToSchema: only a description of the shape (for the receipt in the API document), no I/O.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineDiscount {
    pub promotion_id: String,
    pub name: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedPromotion {
    pub promotion_id: String,
    pub name: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("lines[{line}]: quantity must be positive")]
    BadQuantity { line: usize },
    #[error("lines[{line}]: negative price")]
    NegativePrice { line: usize },
    #[error("basket amount overflows 64-bit minor units")]
    Overflow,
}

impl From<money::MoneyError> for PricingError {
    fn from(_: money::MoneyError) -> Self {
        Self::Overflow
    }
}

/// A line while promotions are applied.
struct Work {
    unit: i64,
    /// Units not yet taken by an item promotion; a weighed line is one unit.
    free: i64,
    weighed: bool,
    grams: i64,
    net: i64,
    /// Took a discount from an exclusive promotion: no basket promotion.
    exclusive: bool,
}

/// Prices `basket` with the rules active at `ctx`. Deterministic: same inputs, same result.
pub fn price_basket(
    rules: &PricingRules,
    ctx: PriceContext<'_>,
    basket: &[BasketLine],
) -> Result<PricedBasket, PricingError> {
    let lists = active_price_lists(rules, ctx);
    let mut lines = Vec::with_capacity(basket.len());
    let mut work = Vec::with_capacity(basket.len());
    for (i, line) in basket.iter().enumerate() {
        let (priced, w) = start_line(i, line, &lists)?;
        lines.push(priced);
        work.push(w);
    }
    let mut promos: Vec<&Promotion> = rules
        .promotions
        .iter()
        .filter(|p| p.active(ctx.store, ctx.at))
        .collect();
    promos.sort_by(|a, b| application_order(a, b));
    let mut applied = Vec::new();
    let mut basket_applied = false;
    for promo in promos {
        let cuts = if promo.rule.is_basket() {
            if basket_applied {
                break;
            }
            basket_cuts(&promo.rule, &work)?
        } else {
            item_cuts(&promo.rule, &mut work, basket, &rules.categories)?
        };
        let taken = record(promo, &cuts, &mut lines, &mut work);
        if taken > 0 {
            basket_applied |= promo.rule.is_basket();
            applied.push(AppliedPromotion {
                promotion_id: promo.id.clone(),
                name: promo.name.clone(),
                amount_minor: taken,
            });
        }
    }
    finish(lines, applied)
}

/// The order promotions apply in: item rules before basket rules, then highest priority,
/// then smallest id (the module doc's rule).
pub(super) fn application_order(a: &Promotion, b: &Promotion) -> std::cmp::Ordering {
    (a.rule.is_basket(), Reverse(a.priority), &a.id).cmp(&(
        b.rule.is_basket(),
        Reverse(b.priority),
        &b.id,
    ))
}

pub(super) fn active_price_lists<'r>(
    rules: &'r PricingRules,
    ctx: PriceContext<'_>,
) -> Vec<&'r PriceList> {
    let mut lists: Vec<&PriceList> = rules
        .price_lists
        .iter()
        .filter(|l| l.active(ctx.store, ctx.at))
        .collect();
    lists.sort_by(|a, b| (Reverse(a.priority), &a.id).cmp(&(Reverse(b.priority), &b.id)));
    lists
}

fn start_line(
    i: usize,
    line: &BasketLine,
    lists: &[&PriceList],
) -> Result<(PricedLine, Work), PricingError> {
    let listed = lists
        .iter()
        .find_map(|l| l.prices.get(&line.sku).map(|p| (*p, l.id.clone())));
    let (unit, price_list) = match listed {
        Some((p, id)) => (p, Some(id)),
        None => (line.list_price_minor, None),
    };
    if unit < 0 {
        return Err(PricingError::NegativePrice { line: i });
    }
    let (free, weighed, grams) = match line.quantity {
        Quantity::Pieces(n) if n > 0 => (n, false, 0),
        Quantity::Grams(g) if g > 0 => (1, true, g),
        _ => return Err(PricingError::BadQuantity { line: i }),
    };
    let gross = money::line_amount(unit, line.quantity)?;
    let priced = PricedLine {
        sku: line.sku.clone(),
        unit_price_minor: unit,
        price_list,
        gross_minor: gross,
        discounts: Vec::new(),
        net_minor: gross,
    };
    let work = Work {
        unit,
        free,
        weighed,
        grams,
        net: gross,
        exclusive: false,
    };
    Ok((priced, work))
}

/// Subtracts each cut from its line; returns what the promotion took in all.
fn record(
    promo: &Promotion,
    cuts: &[(usize, i64)],
    lines: &mut [PricedLine],
    work: &mut [Work],
) -> i64 {
    let mut taken = 0;
    for &(i, cut) in cuts {
        // Never below zero, whatever the rule computed.
        let cut = cut.min(work[i].net);
        if cut <= 0 {
            continue;
        }
        work[i].net -= cut;
        work[i].exclusive |= promo.exclusive;
        lines[i].net_minor = work[i].net;
        lines[i].discounts.push(LineDiscount {
            promotion_id: promo.id.clone(),
            name: promo.name.clone(),
            amount_minor: cut,
        });
        taken += cut;
    }
    taken
}

fn finish(
    lines: Vec<PricedLine>,
    promotions: Vec<AppliedPromotion>,
) -> Result<PricedBasket, PricingError> {
    let mut subtotal: i64 = 0;
    let mut total: i64 = 0;
    for l in &lines {
        subtotal = subtotal
            .checked_add(l.gross_minor)
            .ok_or(PricingError::Overflow)?;
        total = total
            .checked_add(l.net_minor)
            .ok_or(PricingError::Overflow)?;
    }
    Ok(PricedBasket {
        lines,
        subtotal_minor: subtotal,
        discount_minor: subtotal - total,
        total_minor: total,
        promotions,
    })
}

/// Cuts of an item rule; claims the units it covers so no later item rule takes them.
fn item_cuts(
    rule: &Rule,
    work: &mut [Work],
    basket: &[BasketLine],
    categories: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Result<Vec<(usize, i64)>, PricingError> {
    let eligible = |target: &Target, pieces_only: bool, work: &[Work]| -> Vec<usize> {
        (0..work.len())
            .filter(|&i| work[i].free > 0 && !(pieces_only && work[i].weighed))
            .filter(|&i| target.matches(&basket[i].sku, categories))
            .collect()
    };
    match rule {
        Rule::PercentOff { target, percent_bp } => {
            let lines = eligible(target, false, work);
            lines
                .into_iter()
                .map(|i| {
                    let base = free_amount(&work[i])?;
                    work[i].free = 0;
                    Ok((i, percent_of(base, *percent_bp)?))
                })
                .collect()
        }
        Rule::AmountOff {
            target,
            amount_minor,
        } => {
            let lines = eligible(target, false, work);
            lines
                .into_iter()
                .map(|i| {
                    let w = &work[i];
                    let base = free_amount(w)?;
                    let off = if w.weighed {
                        money::div_round(i128::from(*amount_minor) * i128::from(w.grams), 1000)?
                    } else {
                        amount_minor
                            .checked_mul(w.free)
                            .ok_or(PricingError::Overflow)?
                    };
                    work[i].free = 0;
                    Ok((i, off.min(base)))
                })
                .collect()
        }
        Rule::MultiBuy {
            target,
            group,
            percent_bp,
        } => {
            let lines = by_unit_price(eligible(target, true, work), work);
            multi_buy(&lines, work, i64::from(*group), *percent_bp)
        }
        Rule::MixMatch {
            target,
            group,
            price_minor,
        } => {
            let lines = by_unit_price(eligible(target, true, work), work);
            mix_match(&lines, work, i64::from(*group), *price_minor)
        }
        Rule::BasketPercentOff { .. } | Rule::BasketAmountOff { .. } => Ok(Vec::new()),
    }
}

/// Amount of a line's unclaimed units (the whole line when weighed).
fn free_amount(w: &Work) -> Result<i64, PricingError> {
    if w.weighed {
        return Ok(w.net);
    }
    w.unit.checked_mul(w.free).ok_or(PricingError::Overflow)
}

fn percent_of(amount: i64, bp: u32) -> Result<i64, PricingError> {
    Ok(money::div_round(
        i128::from(amount) * i128::from(bp),
        10_000,
    )?)
}

/// Most expensive unit first; ties by line order.
fn by_unit_price(mut lines: Vec<usize>, work: &[Work]) -> Vec<usize> {
    lines.sort_by_key(|&i| (Reverse(work[i].unit), i));
    lines
}

fn free_units(lines: &[usize], work: &[Work]) -> i64 {
    lines
        .iter()
        .fold(0i64, |sum, &i| sum.saturating_add(work[i].free))
}

/// Units in price order form groups of `n`; the last (cheapest) unit of each full group gets
/// the discount. Units of full groups are claimed, the rest stay free.
fn multi_buy(
    lines: &[usize],
    work: &mut [Work],
    n: i64,
    bp: u32,
) -> Result<Vec<(usize, i64)>, PricingError> {
    let units = free_units(lines, work);
    let used = units / n * n;
    let mut pos = 0;
    let mut cuts = Vec::new();
    for &i in lines {
        let take = work[i].free.min(used - pos);
        if take <= 0 {
            break;
        }
        // Positions pos..pos+take; discounted are those with (position + 1) % n == 0.
        let discounted = (pos + take) / n - pos / n;
        let base = work[i]
            .unit
            .checked_mul(discounted)
            .ok_or(PricingError::Overflow)?;
        cuts.push((i, percent_of(base, bp)?));
        work[i].free -= take;
        pos += take;
    }
    Ok(cuts)
}

/// Units in price order form groups of `n` sold together for `price`. Only groups worth more
/// than `price` apply (in price order their worth only falls, so the first that is not ends
/// it). The saving is spread over the lines by what their units in those groups are worth.
fn mix_match(
    lines: &[usize],
    work: &mut [Work],
    n: i64,
    price: i64,
) -> Result<Vec<(usize, i64)>, PricingError> {
    let units = free_units(lines, work);
    let worth_of_first = |k: i64| -> i128 {
        let mut left = k;
        let mut sum = 0i128;
        for &i in lines {
            let take = work[i].free.min(left);
            sum += i128::from(work[i].unit) * i128::from(take);
            left -= take;
            if left == 0 {
                break;
            }
        }
        sum
    };
    let group_worth = |g: i64| worth_of_first((g + 1) * n) - worth_of_first(g * n);
    // Groups applied: the first g with group_worth(g) <= price, found by bisection.
    let (mut lo, mut hi) = (0, units / n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if group_worth(mid) > i128::from(price) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let groups = lo;
    if groups == 0 {
        return Ok(Vec::new());
    }
    let saving = worth_of_first(groups * n) - i128::from(price) * i128::from(groups);
    let mut left = groups * n;
    let mut covered = Vec::new();
    for &i in lines {
        let take = work[i].free.min(left);
        if take == 0 {
            break;
        }
        covered.push((i, i128::from(work[i].unit) * i128::from(take)));
        work[i].free -= take;
        left -= take;
    }
    spread(saving, &covered)
}

/// Cuts of the basket rule, if the basket reaches its threshold. The threshold counts every
/// line after item promotions; the discount is taken from lines not under an exclusive one.
fn basket_cuts(rule: &Rule, work: &[Work]) -> Result<Vec<(usize, i64)>, PricingError> {
    let total: i128 = work.iter().map(|w| i128::from(w.net)).sum();
    let open: Vec<(usize, i128)> = work
        .iter()
        .enumerate()
        .filter(|(_, w)| !w.exclusive && w.net > 0)
        .map(|(i, w)| (i, i128::from(w.net)))
        .collect();
    let base: i128 = open.iter().map(|(_, a)| a).sum();
    let (min, off) = match rule {
        Rule::BasketPercentOff {
            min_total_minor,
            percent_bp,
        } => (
            *min_total_minor,
            i128::from(money::div_round(base * i128::from(*percent_bp), 10_000)?),
        ),
        Rule::BasketAmountOff {
            min_total_minor,
            amount_minor,
        } => (*min_total_minor, i128::from(*amount_minor).min(base)),
        _ => return Ok(Vec::new()),
    };
    if total < i128::from(min) || base == 0 {
        return Ok(Vec::new());
    }
    spread(off, &open)
}

/// Splits `amount` (at most the sum of the weights) over lines in proportion to their
/// weights by the largest-remainder method: each line gets its exact share rounded down or
/// up, never more than its weight, and the parts add up to `amount` exactly. Ties go to the
/// earlier line.
pub(super) fn spread(
    amount: i128,
    weights: &[(usize, i128)],
) -> Result<Vec<(usize, i64)>, PricingError> {
    let whole: i128 = weights.iter().map(|(_, w)| w).sum();
    if whole <= 0 || amount <= 0 {
        return Ok(Vec::new());
    }
    let amount = amount.min(whole);
    let mut parts: Vec<(usize, i128, i128)> = weights
        .iter()
        .map(|&(i, w)| (i, amount * w / whole, amount * w % whole))
        .collect();
    let mut left = amount - parts.iter().map(|p| p.1).sum::<i128>();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&k| (Reverse(parts[k].2), parts[k].0));
    for k in order {
        if left == 0 {
            break;
        }
        parts[k].1 += 1;
        left -= 1;
    }
    parts
        .into_iter()
        .map(|(i, part, _)| Ok((i, i64::try_from(part).map_err(|_| PricingError::Overflow)?)))
        .collect()
}
