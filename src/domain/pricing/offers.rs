//! What one item costs now and which promotions may take something off it: what the till's
//! item lookup shows. A basket's price is still [`super::price_basket`]'s alone; this only
//! names the candidates (a "3 for 2" applies to a basket of three, not to the lookup).

use super::engine::{PriceContext, active_price_lists, application_order};
use super::rules::{PricingRules, Promotion};

#[derive(Debug, PartialEq, Eq)]
pub struct ItemOffers<'r> {
    /// The unit price a sale starts from now: an active price list's, else the catalog's.
    pub unit_price_minor: i64,
    /// The price list that set it.
    pub price_list: Option<&'r str>,
    /// Item promotions active now that target the item, in the order a sale applies them.
    pub promotions: Vec<&'r Promotion>,
}

/// The offers on `sku` (catalog price `list_price_minor`) at `ctx`'s store and local time.
pub fn item_offers<'r>(
    rules: &'r PricingRules,
    ctx: PriceContext<'_>,
    sku: &str,
    list_price_minor: i64,
) -> ItemOffers<'r> {
    let listed = active_price_lists(rules, ctx)
        .into_iter()
        .find_map(|l| l.prices.get(sku).map(|p| (*p, l.id.as_str())));
    let (unit_price_minor, price_list) = match listed {
        Some((price, id)) => (price, Some(id)),
        None => (list_price_minor, None),
    };
    let mut promotions: Vec<&Promotion> = rules
        .promotions
        .iter()
        .filter(|p| p.active(ctx.store, ctx.at))
        .filter(|p| {
            p.rule
                .target()
                .is_some_and(|t| t.matches(sku, &rules.categories))
        })
        .collect();
    promotions.sort_by(|a, b| application_order(a, b));
    ItemOffers {
        unit_price_minor,
        price_list,
        promotions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pricing::{LocalDateTime, PriceList, Rule, Scope, Target, Window};

    fn promotion(id: &str, priority: i32, rule: Rule) -> Promotion {
        Promotion {
            id: id.into(),
            name: id.into(),
            priority,
            exclusive: false,
            scope: Scope::default(),
            window: Window::default(),
            rule,
        }
    }

    fn skus(list: &[&str]) -> Target {
        Target {
            skus: list.iter().map(|s| s.to_string()).collect(),
            categories: Default::default(),
        }
    }

    #[test]
    fn names_the_price_list_and_the_promotions_that_target_the_item() {
        let mut rules = PricingRules::default();
        rules
            .categories
            .insert("dairy".into(), ["MILK".to_owned()].into());
        rules.price_lists.push(PriceList {
            id: "weekend".into(),
            name: "Weekend".into(),
            priority: 0,
            scope: Scope::default(),
            window: Window::default(),
            prices: [("MILK".to_owned(), 99)].into(),
        });
        let dairy = Target {
            skus: Default::default(),
            categories: ["dairy".to_owned()].into(),
        };
        rules.promotions = vec![
            promotion(
                "a-dairy",
                0,
                Rule::PercentOff {
                    target: dairy,
                    percent_bp: 1000,
                },
            ),
            promotion(
                "b-milk",
                5,
                Rule::MultiBuy {
                    target: skus(&["MILK"]),
                    group: 3,
                    percent_bp: 10_000,
                },
            ),
            promotion(
                "c-bread",
                9,
                Rule::AmountOff {
                    target: skus(&["BREAD"]),
                    amount_minor: 10,
                },
            ),
            promotion(
                "d-basket",
                9,
                Rule::BasketAmountOff {
                    min_total_minor: 100,
                    amount_minor: 10,
                },
            ),
        ];
        let mut later = promotion(
            "e-later",
            0,
            Rule::PercentOff {
                target: skus(&["MILK"]),
                percent_bp: 500,
            },
        );
        later.window.from = Some(LocalDateTime::parse("2027-01-01T00:00").unwrap());
        rules.promotions.push(later);
        let ctx = PriceContext {
            store: "s1",
            at: LocalDateTime::parse("2026-12-07T10:00").unwrap(),
        };
        let offers = item_offers(&rules, ctx, "MILK", 119);
        assert_eq!(offers.unit_price_minor, 99);
        assert_eq!(offers.price_list, Some("weekend"));
        let ids: Vec<&str> = offers.promotions.iter().map(|p| p.id.as_str()).collect();
        // Priority first (as a sale applies them); other items', basket and future ones not.
        assert_eq!(ids, ["b-milk", "a-dairy"]);

        let plain = item_offers(&rules, ctx, "SALT", 49);
        assert_eq!((plain.unit_price_minor, plain.price_list), (49, None));
        assert!(plain.promotions.is_empty());
    }
}
