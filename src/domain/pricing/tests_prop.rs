//! The engine against a deliberately simple reference: every piece is its own unit in a
//! vector, groups are walked one by one, shares handed out a cent at a time.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::tests::at;
use super::*;
use crate::money::Quantity;

pub(crate) const SKUS: [&str; 6] = ["a", "b", "c", "d", "e", "w"];

fn half_up(num: i64, den: i64) -> i64 {
    // Only non-negative amounts here: half away from zero is half up.
    (2 * num + den) / (2 * den)
}

struct Unit {
    line: usize,
    price: i64,
    claimed: bool,
}

fn reference(
    rules: &PricingRules,
    store: &str,
    now: LocalDateTime,
    basket: &[BasketLine],
) -> Vec<i64> {
    let n = basket.len();
    let mut gross = vec![0; n];
    let mut units = Vec::new();
    for (i, l) in basket.iter().enumerate() {
        let price = rules
            .price_lists
            .iter()
            .filter(|p| p.active(store, now) && p.prices.contains_key(&l.sku))
            .min_by_key(|p| (-p.priority, p.id.clone()))
            .map_or(l.list_price_minor, |p| p.prices[&l.sku]);
        match l.quantity {
            Quantity::Pieces(q) => {
                gross[i] = price * q;
                for _ in 0..q {
                    units.push(Unit {
                        line: i,
                        price,
                        claimed: false,
                    });
                }
            }
            Quantity::Grams(g) => {
                gross[i] = half_up(price * g, 1000);
                units.push(Unit {
                    line: i,
                    price: gross[i],
                    claimed: false,
                });
            }
        }
    }
    let weighed = |i: usize| matches!(basket[i].quantity, Quantity::Grams(_));
    let mut off = vec![0i64; n];
    let mut exclusive = vec![false; n];
    let mut promos: Vec<&Promotion> = rules
        .promotions
        .iter()
        .filter(|p| p.active(store, now))
        .collect();
    promos.sort_by_key(|p| (p.rule.is_basket(), -p.priority, p.id.clone()));
    let matches = |t: &Target, i: usize| {
        t.skus.contains(&basket[i].sku)
            || t.categories.iter().any(|c| {
                rules
                    .categories
                    .get(c)
                    .is_some_and(|m| m.contains(&basket[i].sku))
            })
    };
    for p in promos.iter().filter(|p| !p.rule.is_basket()) {
        let mut cut = vec![0i64; n];
        match &p.rule {
            Rule::PercentOff { target, percent_bp } => {
                for (i, slot) in cut.iter_mut().enumerate() {
                    let free: Vec<&mut Unit> = units
                        .iter_mut()
                        .filter(|u| u.line == i && !u.claimed)
                        .collect();
                    if free.is_empty() || !matches(target, i) {
                        continue;
                    }
                    let base: i64 = free.iter().map(|u| u.price).sum();
                    free.into_iter().for_each(|u| u.claimed = true);
                    *slot = half_up(base * i64::from(*percent_bp), 10_000);
                }
            }
            Rule::AmountOff {
                target,
                amount_minor,
            } => {
                for i in 0..n {
                    let free: Vec<&mut Unit> = units
                        .iter_mut()
                        .filter(|u| u.line == i && !u.claimed)
                        .collect();
                    if free.is_empty() || !matches(target, i) {
                        continue;
                    }
                    let base: i64 = free.iter().map(|u| u.price).sum();
                    let want = match basket[i].quantity {
                        Quantity::Grams(g) => half_up(amount_minor * g, 1000),
                        Quantity::Pieces(_) => amount_minor * free.len() as i64,
                    };
                    free.into_iter().for_each(|u| u.claimed = true);
                    cut[i] = want.min(base);
                }
            }
            Rule::MultiBuy {
                target,
                group,
                percent_bp,
            } => {
                let mut pick = pick_units(&mut units, |i| !weighed(i) && matches(target, i));
                let g = *group as usize;
                let full = pick.len() / g * g;
                let mut count = vec![0i64; n];
                for (k, u) in pick.iter_mut().take(full).enumerate() {
                    u.claimed = true;
                    if (k + 1) % g == 0 {
                        count[u.line] += 1;
                    }
                }
                let price_of = |i: usize| units_price(basket, rules, store, now, i);
                for i in 0..n {
                    if count[i] > 0 {
                        cut[i] = half_up(price_of(i) * count[i] * i64::from(*percent_bp), 10_000);
                    }
                }
            }
            Rule::MixMatch {
                target,
                group,
                price_minor,
            } => {
                let mut pick = pick_units(&mut units, |i| !weighed(i) && matches(target, i));
                let g = *group as usize;
                let mut covered = vec![0i64; n];
                let mut saving = 0;
                for chunk in pick.chunks_mut(g) {
                    let worth: i64 = chunk.iter().map(|u| u.price).sum();
                    if chunk.len() < g || worth <= *price_minor {
                        break;
                    }
                    saving += worth - price_minor;
                    for u in chunk.iter_mut() {
                        u.claimed = true;
                        covered[u.line] += u.price;
                    }
                }
                cut = share_out(saving, &covered);
            }
            _ => {}
        }
        for i in 0..n {
            let c = cut[i].min(gross[i] - off[i]);
            if c > 0 {
                off[i] += c;
                exclusive[i] |= p.exclusive;
            }
        }
    }
    let total: i64 = (0..n).map(|i| gross[i] - off[i]).sum();
    let open: Vec<i64> = (0..n)
        .map(|i| if exclusive[i] { 0 } else { gross[i] - off[i] })
        .collect();
    let base: i64 = open.iter().sum();
    for p in promos.iter().filter(|p| p.rule.is_basket()) {
        let (min, discount) = match p.rule {
            Rule::BasketPercentOff {
                min_total_minor,
                percent_bp,
            } => (
                min_total_minor,
                half_up(base * i64::from(percent_bp), 10_000),
            ),
            Rule::BasketAmountOff {
                min_total_minor,
                amount_minor,
            } => (min_total_minor, amount_minor.min(base)),
            _ => continue,
        };
        if total >= min && discount > 0 {
            for (i, c) in share_out(discount, &open).into_iter().enumerate() {
                off[i] += c;
            }
            break;
        }
    }
    (0..n).map(|i| gross[i] - off[i]).collect()
}

fn units_price(
    basket: &[BasketLine],
    rules: &PricingRules,
    store: &str,
    now: LocalDateTime,
    i: usize,
) -> i64 {
    let sku = &basket[i].sku;
    rules
        .price_lists
        .iter()
        .filter(|p| p.active(store, now) && p.prices.contains_key(sku))
        .min_by_key(|p| (-p.priority, p.id.clone()))
        .map_or(basket[i].list_price_minor, |p| p.prices[sku])
}

/// Unclaimed units of eligible lines, most expensive first, then by line.
fn pick_units(units: &mut [Unit], eligible: impl Fn(usize) -> bool) -> Vec<&mut Unit> {
    let mut pick: Vec<&mut Unit> = units
        .iter_mut()
        .filter(|u| !u.claimed && eligible(u.line))
        .collect();
    pick.sort_by_key(|u| (-u.price, u.line));
    pick
}

/// Exact shares rounded down, then the missing cents one at a time to the largest remainder.
fn share_out(amount: i64, weights: &[i64]) -> Vec<i64> {
    let whole: i64 = weights.iter().sum();
    if whole == 0 || amount == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<i64> = weights.iter().map(|w| amount * w / whole).collect();
    let mut rems: Vec<i64> = weights.iter().map(|w| amount * w % whole).collect();
    while parts.iter().sum::<i64>() < amount {
        let best = (0..weights.len())
            .max_by_key(|&i| (rems[i], std::cmp::Reverse(i)))
            .unwrap();
        parts[best] += 1;
        rems[best] = -1;
    }
    parts
}

fn target() -> impl Strategy<Value = Target> {
    (
        proptest::sample::subsequence(SKUS.to_vec(), 1..4),
        proptest::sample::subsequence(vec!["c1", "c2"], 0..2),
    )
        .prop_map(|(s, c)| Target {
            skus: s.into_iter().map(str::to_owned).collect(),
            categories: c.into_iter().map(str::to_owned).collect(),
        })
}

fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        (target(), 1u32..=10_000)
            .prop_map(|(target, percent_bp)| Rule::PercentOff { target, percent_bp }),
        (target(), 1i64..800).prop_map(|(target, amount_minor)| Rule::AmountOff {
            target,
            amount_minor
        }),
        (target(), 2u32..5, 1u32..=10_000).prop_map(|(target, group, percent_bp)| Rule::MultiBuy {
            target,
            group,
            percent_bp
        }),
        (target(), 2u32..5, 0i64..3000).prop_map(|(target, group, price_minor)| Rule::MixMatch {
            target,
            group,
            price_minor
        }),
        (0i64..5000, 1u32..=10_000).prop_map(|(min_total_minor, percent_bp)| {
            Rule::BasketPercentOff {
                min_total_minor,
                percent_bp,
            }
        }),
        (0i64..5000, 1i64..5000).prop_map(|(min_total_minor, amount_minor)| {
            Rule::BasketAmountOff {
                min_total_minor,
                amount_minor,
            }
        }),
    ]
}

fn scope_and_window() -> impl Strategy<Value = (Scope, Window)> {
    (0u8..3, 0u8..3).prop_map(|(s, w)| {
        let stores = match s {
            0 => BTreeSet::new(),
            1 => ["s1".to_owned()].into(),
            _ => ["s2".to_owned()].into(),
        };
        let window = match w {
            0 => Window::default(),
            1 => Window {
                until: Some(at("2026-12-05T10:00")),
                ..Window::default()
            },
            _ => Window {
                weekdays: [Weekday::Sat].into(),
                ..Window::default()
            },
        };
        (Scope { stores }, window)
    })
}

pub(crate) fn promotions() -> impl Strategy<Value = Vec<Promotion>> {
    proptest::collection::vec((rule(), -2i32..3, any::<bool>(), scope_and_window()), 0..8).prop_map(
        |v| {
            v.into_iter()
                .enumerate()
                .map(
                    |(k, (rule, priority, exclusive, (scope, window)))| Promotion {
                        id: format!("p{k}"),
                        name: format!("P{k}"),
                        priority,
                        exclusive,
                        scope,
                        window,
                        rule,
                    },
                )
                .collect()
        },
    )
}

pub(crate) fn price_lists() -> impl Strategy<Value = Vec<PriceList>> {
    let one = (
        -1i32..2,
        scope_and_window(),
        proptest::collection::btree_map(proptest::sample::select(SKUS.to_vec()), 0i64..2000, 0..4),
    );
    proptest::collection::vec(one, 0..3).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(k, (priority, (scope, window), prices))| PriceList {
                id: format!("l{k}"),
                name: format!("L{k}"),
                priority,
                scope,
                window,
                prices: prices.into_iter().map(|(s, p)| (s.to_owned(), p)).collect(),
            })
            .collect()
    })
}

fn basket() -> impl Strategy<Value = Vec<BasketLine>> {
    let line = (
        proptest::sample::select(SKUS.to_vec()),
        1i64..6,
        0i64..2000,
        1i64..3000,
    );
    proptest::collection::vec(line, 1..7).prop_map(|v| {
        v.into_iter()
            .map(|(sku, pieces, price, grams)| BasketLine {
                sku: sku.to_owned(),
                // "w" is the weighed item.
                quantity: if sku == "w" {
                    Quantity::Grams(grams)
                } else {
                    Quantity::Pieces(pieces)
                },
                list_price_minor: price,
            })
            .collect()
    })
}

pub(crate) fn categories() -> impl Strategy<Value = BTreeMap<String, BTreeSet<String>>> {
    (
        proptest::sample::subsequence(SKUS.to_vec(), 0..4),
        proptest::sample::subsequence(SKUS.to_vec(), 0..4),
    )
        .prop_map(|(a, b)| {
            BTreeMap::from([
                ("c1".to_owned(), a.into_iter().map(str::to_owned).collect()),
                ("c2".to_owned(), b.into_iter().map(str::to_owned).collect()),
            ])
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn engine_equals_reference_and_never_goes_below_zero(
        promotions in promotions(),
        price_lists in price_lists(),
        categories in categories(),
        basket in basket(),
        store in proptest::sample::select(vec!["s1", "s2"]),
        saturday in any::<bool>(),
    ) {
        let rules = PricingRules { price_lists, promotions, categories, time_zones: BTreeMap::new() };
        prop_assert!(rules.validate().is_ok());
        let now = at(if saturday { "2026-12-05T10:00" } else { "2026-12-04T09:59" });
        let priced = price_basket(&rules, PriceContext { store, at: now }, &basket).unwrap();
        let expected = reference(&rules, store, now, &basket);
        let got: Vec<i64> = priced.lines.iter().map(|l| l.net_minor).collect();
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(priced.total_minor, expected.iter().sum::<i64>());
        prop_assert!(priced.total_minor >= 0);
        prop_assert!(priced.lines.iter().all(|l| l.net_minor >= 0 && l.net_minor <= l.gross_minor));
        let by_promotion: i64 = priced.promotions.iter().map(|p| p.amount_minor).sum();
        prop_assert_eq!(by_promotion, priced.discount_minor);
        for l in &priced.lines {
            prop_assert_eq!(l.gross_minor - l.discounts.iter().map(|d| d.amount_minor).sum::<i64>(), l.net_minor);
        }
    }
}
