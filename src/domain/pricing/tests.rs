use std::collections::{BTreeMap, BTreeSet};

use super::engine::spread;
use super::*;
use crate::money::Quantity;

pub(super) fn at(text: &str) -> LocalDateTime {
    LocalDateTime::parse(text).unwrap()
}

fn ctx(store: &str) -> PriceContext<'_> {
    // A Saturday.
    PriceContext {
        store,
        at: at("2026-12-05T10:00"),
    }
}

fn line(sku: &str, pieces: i64, price: i64) -> BasketLine {
    BasketLine {
        sku: sku.to_owned(),
        quantity: Quantity::Pieces(pieces),
        list_price_minor: price,
    }
}

fn skus(list: &[&str]) -> Target {
    Target {
        skus: list.iter().map(|s| s.to_string()).collect(),
        categories: BTreeSet::new(),
    }
}

fn promo(id: &str, rule: Rule) -> Promotion {
    Promotion {
        id: id.to_owned(),
        name: format!("Promo {id}"),
        priority: 0,
        exclusive: false,
        scope: Scope::default(),
        window: Window::default(),
        rule,
    }
}

fn rules(promotions: Vec<Promotion>) -> PricingRules {
    PricingRules {
        promotions,
        ..PricingRules::default()
    }
}

fn nets(b: &PricedBasket) -> Vec<i64> {
    b.lines.iter().map(|l| l.net_minor).collect()
}

#[test]
fn three_for_two_gives_the_cheapest_of_each_group_free() {
    let r = rules(vec![promo(
        "3for2",
        Rule::MultiBuy {
            target: skus(&["a", "b"]),
            group: 3,
            percent_bp: 10_000,
        },
    )]);
    // Units by price: a a b b b b b (7): groups {a,a,b} {b,b,b}, one b left unclaimed.
    let b = price_basket(&r, ctx("s1"), &[line("b", 5, 100), line("a", 2, 300)]).unwrap();
    assert_eq!(nets(&b), vec![300, 600]);
    assert_eq!(b.total_minor, 900);
    assert_eq!(b.discount_minor, 200);
    assert_eq!(b.promotions.len(), 1);
    assert_eq!(b.promotions[0].promotion_id, "3for2");
    assert_eq!(b.promotions[0].amount_minor, 200);
    assert_eq!(b.lines[0].discounts[0].amount_minor, 200);
}

#[test]
fn second_at_half_price_rounds_once_per_line() {
    let r = rules(vec![promo(
        "half",
        Rule::MultiBuy {
            target: skus(&["a"]),
            group: 2,
            percent_bp: 5_000,
        },
    )]);
    // Three 0.99 units: one discounted, 49.5 → 50.
    let b = price_basket(&r, ctx("s1"), &[line("a", 3, 99)]).unwrap();
    assert_eq!(b.total_minor, 297 - 50);
}

#[test]
fn mix_and_match_spreads_the_saving_exactly() {
    let r = rules(vec![promo(
        "any3",
        Rule::MixMatch {
            target: skus(&["a", "b", "c"]),
            group: 3,
            price_minor: 500,
        },
    )]);
    // Units 250 200 200 | 150 (incomplete group): saving 650 - 500 = 150 over 250:400.
    let basket = [line("a", 1, 250), line("b", 2, 200), line("c", 1, 150)];
    let b = price_basket(&r, ctx("s1"), &basket).unwrap();
    assert_eq!(b.discount_minor, 150);
    assert_eq!(nets(&b), vec![250 - 58, 400 - 92, 150]);
    // A group worth less than the deal price is not a deal.
    let cheap = [line("c", 3, 150)];
    let b = price_basket(&r, ctx("s1"), &cheap).unwrap();
    assert_eq!(b.discount_minor, 0);
    assert!(b.promotions.is_empty());
}

#[test]
fn category_percent_and_weighed_amount_off() {
    let mut r = rules(vec![
        promo(
            "fruit",
            Rule::PercentOff {
                target: Target {
                    skus: BTreeSet::new(),
                    categories: ["fruit".to_owned()].into(),
                },
                percent_bp: 1_000,
            },
        ),
        promo(
            "cheese",
            Rule::AmountOff {
                target: skus(&["cheese"]),
                amount_minor: 200,
            },
        ),
    ]);
    r.categories
        .insert("fruit".into(), ["apple".to_owned()].into());
    let basket = [
        line("apple", 3, 45),
        BasketLine {
            sku: "cheese".into(),
            quantity: Quantity::Grams(350),
            list_price_minor: 2_000,
        },
        line("bread", 1, 300),
    ];
    let b = price_basket(&r, ctx("s1"), &basket).unwrap();
    // 10 % of 135 is 13.5, rounded to 14; cheese 700 - 200 × 0.35 = 630.
    assert_eq!(nets(&b), vec![121, 630, 300]);
}

#[test]
fn a_unit_takes_one_item_promotion_in_priority_order() {
    let mut high = promo(
        "z-high",
        Rule::PercentOff {
            target: skus(&["a"]),
            percent_bp: 1_000,
        },
    );
    high.priority = 5;
    let low = promo(
        "a-low",
        Rule::PercentOff {
            target: skus(&["a"]),
            percent_bp: 5_000,
        },
    );
    let b = price_basket(&rules(vec![low, high]), ctx("s1"), &[line("a", 1, 1000)]).unwrap();
    assert_eq!(b.total_minor, 900);
    assert_eq!(b.promotions[0].promotion_id, "z-high");
}

#[test]
fn one_basket_promotion_skipping_exclusive_lines() {
    let mut excl = promo(
        "excl",
        Rule::PercentOff {
            target: skus(&["a"]),
            percent_bp: 5_000,
        },
    );
    excl.exclusive = true;
    let ten = promo(
        "b10",
        Rule::BasketPercentOff {
            min_total_minor: 2_000,
            percent_bp: 1_000,
        },
    );
    let five = promo(
        "b5",
        Rule::BasketAmountOff {
            min_total_minor: 0,
            amount_minor: 500,
        },
    );
    let basket = [line("a", 1, 1000), line("b", 1, 3000)];
    let b = price_basket(&rules(vec![excl, ten, five]), ctx("s1"), &basket).unwrap();
    // Threshold on 500 + 3000; 10 % of the open line only; b5 (after b10 by id) not applied.
    assert_eq!(nets(&b), vec![500, 2700]);
    let ids: Vec<_> = b
        .promotions
        .iter()
        .map(|p| p.promotion_id.as_str())
        .collect();
    assert_eq!(ids, vec!["excl", "b10"]);
}

#[test]
fn scope_window_and_price_lists() {
    let mut p = promo(
        "happy",
        Rule::PercentOff {
            target: skus(&["a"]),
            percent_bp: 2_000,
        },
    );
    p.scope.stores.insert("s1".into());
    p.window.weekdays = [Weekday::Sat, Weekday::Sun].into();
    p.window.daily_from = Some(LocalTime::parse("22:00").unwrap());
    p.window.daily_until = Some(LocalTime::parse("11:00").unwrap());
    let list = |id: &str, priority, price| PriceList {
        id: id.to_owned(),
        name: id.to_owned(),
        priority,
        scope: Scope::default(),
        window: Window {
            until: Some(at("2026-12-06T00:00")),
            ..Window::default()
        },
        prices: BTreeMap::from([("a".to_owned(), price)]),
    };
    let r = PricingRules {
        price_lists: vec![list("x", 0, 800), list("y", 1, 900)],
        promotions: vec![p],
        ..PricingRules::default()
    };
    let basket = [line("a", 1, 1000)];
    let b = price_basket(&r, ctx("s1"), &basket).unwrap();
    assert_eq!(b.lines[0].price_list.as_deref(), Some("y"));
    assert_eq!(b.total_minor, 720);
    assert_eq!(
        price_basket(&r, ctx("s2"), &basket).unwrap().total_minor,
        900
    );
    let later = PriceContext {
        store: "s1",
        at: at("2026-12-06T11:00"),
    };
    let b = price_basket(&r, later, &basket).unwrap();
    assert_eq!((b.total_minor, b.lines[0].price_list.clone()), (1000, None));
}

#[test]
fn spread_is_exact_and_bounded() {
    let parts = spread(100, &[(0, 100), (1, 100), (2, 100)]).unwrap();
    assert_eq!(parts, vec![(0, 34), (1, 33), (2, 33)]);
    let parts = spread(10, &[(4, 3), (7, 5)]).unwrap();
    assert_eq!(parts, vec![(4, 3), (7, 5)]);
    assert!(spread(5, &[(0, 0)]).unwrap().is_empty());
}

#[test]
fn bad_lines_and_rules_are_named() {
    let r = PricingRules::default();
    assert_eq!(
        price_basket(&r, ctx("s1"), &[line("a", 0, 1)]),
        Err(PricingError::BadQuantity { line: 0 })
    );
    assert_eq!(
        price_basket(&r, ctx("s1"), &[line("a", 2, i64::MAX)]),
        Err(PricingError::Overflow)
    );
    let mut p = promo(
        "bad",
        Rule::MultiBuy {
            target: skus(&["a"]),
            group: 1,
            percent_bp: 10_000,
        },
    );
    assert!(p.validate().unwrap_err().to_string().contains("group"));
    p.rule = Rule::PercentOff {
        target: Target::default(),
        percent_bp: 10,
    };
    assert!(p.validate().unwrap_err().to_string().contains("target"));
    let twice = rules(vec![promo("x", p.rule.clone()), promo("x", p.rule.clone())]);
    assert!(twice.validate().is_err());
    let json = r#"{"id":"x","name":"X","rule":{"kind":"percent_off","target":{"skus":["a"]},"percent_bp":500},"window":{"from":"2026-12-01T00:00","weekdays":["sat"]}}"#;
    let parsed: Promotion = serde_json::from_str(json).unwrap();
    assert!(parsed.validate().is_ok());
    assert_eq!(
        serde_json::from_str::<Promotion>(&serde_json::to_string(&parsed).unwrap()).unwrap(),
        parsed
    );
}
