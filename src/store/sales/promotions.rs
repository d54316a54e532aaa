//! A sale's lines priced by HQ's last published rules (price lists and promotions), with the
//! pure engine `domain::pricing` — the same call HQ's `POST /v1/quote` makes.
//!
//! Each line's `amount_minor` becomes what the customer pays for it, and its tax is computed
//! on that; so a return, which refunds `amount_minor` pro rata, refunds the paid share.

use std::borrow::Cow;
use std::sync::Arc;

use rusqlite::Connection;

use super::{PricedLine, WriteContext, line_tax};
use crate::domain::pricing::{
    self, BasketLine, PriceContext, PricingError, PricingRules, Promotion,
};
use crate::money::Quantity;
use crate::store::{StoreError, pricing as stored};

/// Applies the rules to `lines` in place (prices, discounts, amounts, tax).
pub(super) fn apply(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    lines: &mut [PricedLine],
    coupons: &[Promotion],
) -> Result<(), StoreError> {
    let published = match ctx.pricing {
        Some(cache) => cache.rules(conn)?,
        None => stored::load_rules(conn)?.map(Arc::new),
    };
    let rules: Cow<'_, PricingRules> = match (published.as_deref(), coupons) {
        (None, []) => return Ok(()),
        (Some(rules), []) => Cow::Borrowed(rules),
        (rules, coupons) => {
            let mut rules = rules.cloned().unwrap_or_default();
            // A coupon's discount is priced as one more promotion, ahead of the published ones.
            rules.promotions.extend_from_slice(coupons);
            Cow::Owned(rules)
        }
    };
    if rules.promotions.is_empty() && rules.price_lists.is_empty() {
        return Ok(());
    }
    let store = stored::store_of(ctx.writer_id);
    let at = stored::local_time(&rules, store, ctx.now)
        .map_err(|e| StoreError::Inconsistent(format!("pricing: {e}")))?;
    let basket: Vec<BasketLine> = lines
        .iter()
        .map(|l| BasketLine {
            sku: l.item.sku.clone(),
            quantity: if l.item.variable_measure {
                Quantity::Grams(l.quantity)
            } else {
                Quantity::Pieces(l.quantity)
            },
            list_price_minor: l.item.price_minor,
        })
        .collect();
    let priced = pricing::price_basket(&rules, PriceContext { store, at }, &basket).map_err(
        |e| match e {
            PricingError::Overflow => StoreError::unprocessable("lines", "sale total too large"),
            other => StoreError::unprocessable("lines", other.to_string()),
        },
    )?;
    for (line, p) in lines.iter_mut().zip(priced.lines) {
        line.unit_price_minor = p.unit_price_minor;
        line.amount_minor = p.net_minor;
        line.tax_minor = line_tax(ctx, p.net_minor, line.tax_rate_bp)
            .map_err(|_| StoreError::unprocessable("lines", "amount too large"))?;
        line.discounts = p.discounts;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::domain::pricing::{PricingRules, Promotion, Rule, Scope, Target, Window};
    use crate::store::catalog::{self, Item};
    use crate::store::testing::memory_db;

    fn setup(rules: &PricingRules) -> Connection {
        let conn = memory_db();
        for (sku, price) in [("MILK", 119), ("SHIRT", 1299)] {
            let item = Item {
                sku: sku.into(),
                name: sku.into(),
                price_minor: price,
                currency: "EUR".into(),
                tax_class: "reduced".into(),
                variable_measure: false,
                gtins: Vec::new(),
                epc_patterns: Vec::new(),
            };
            catalog::upsert(&conn, &item, "t").unwrap();
        }
        crate::store::pricing::save_rules(&conn, rules, "t").unwrap();
        conn
    }

    fn three_for_two(until: &str) -> PricingRules {
        let mut rules = PricingRules::default();
        rules.time_zones.insert("*".into(), "Europe/Berlin".into());
        rules.promotions.push(Promotion {
            id: "milk-3for2".into(),
            name: "Milk 3 for 2".into(),
            priority: 0,
            exclusive: false,
            scope: Scope::default(),
            window: Window {
                until: Some(crate::domain::pricing::LocalDateTime::parse(until).unwrap()),
                ..Window::default()
            },
            rule: Rule::MultiBuy {
                target: Target {
                    skus: ["MILK".to_owned()].into(),
                    categories: Default::default(),
                },
                group: 3,
                percent_bp: 10_000,
            },
        });
        rules
    }

    fn sale(conn: &Connection, now: &str) -> SaleReceipt {
        let tax = TaxConfig {
            prices_include_tax: true,
            classes: vec![("reduced".into(), 700)],
        };
        let ctx = WriteContext {
            terminal: "pos1",
            writer_id: "s1.n1",
            currency: "EUR",
            tax: &tax,
            now,
            pricing: None,
        };
        let line = |sku: &str, quantity| SaleLineRequest {
            sku: Some(sku.into()),
            gtin: None,
            quantity: Some(quantity),
            weight_grams: None,
            epc: None,
        };
        let request = SaleRequest {
            coupons: Vec::new(),
            lines: vec![line("MILK", 3), line("SHIRT", 1)],
            payments: vec![PaymentRequest {
                method: PaymentMethod::Cash,
                amount_minor: 2000,
                reference: None,
            }],
            member: None,
        };
        record_sale(conn, &ctx, &request).unwrap()
    }

    #[test]
    fn receipt_names_the_promotion_and_a_return_refunds_the_paid_share() {
        let conn = setup(&three_for_two("2026-11-23T11:01"));
        // 10:00 UTC is 11:00 in Berlin: still inside the window.
        let receipt = sale(&conn, "2026-11-23T10:00:00.000Z");
        let milk = &receipt.lines[0];
        assert_eq!((milk.unit_price_minor, milk.amount_minor), (119, 238));
        assert_eq!(milk.discounts[0].promotion_id, "milk-3for2");
        assert_eq!(milk.discounts[0].amount_minor, 119);
        // 7 % contained in 2.38: 15.57 → 16, on what was paid.
        assert_eq!(milk.tax_minor, 16);
        assert_eq!(receipt.total_minor, 238 + 1299);
        assert_eq!(receipt.promotions.len(), 1);
        assert_eq!(receipt.promotions[0].amount_minor, 119);
        let mut stored = get_sale(&conn, &receipt.sale_id).unwrap().unwrap();
        stored.negative_stock = receipt.negative_stock.clone();
        assert_eq!(stored, receipt);

        let tax = TaxConfig {
            prices_include_tax: true,
            classes: vec![("reduced".into(), 700)],
        };
        let ctx = WriteContext {
            terminal: "pos1",
            writer_id: "s1.n1",
            currency: "EUR",
            tax: &tax,
            now: "2026-11-23T10:05:00.000Z",
            pricing: None,
        };
        let give_back = |quantity| ReturnRequest {
            sale_id: receipt.sale_id.clone(),
            lines: vec![ReturnLineRequest {
                line_no: 1,
                quantity,
            }],
            reason: None,
        };
        let first = record_return(&conn, &ctx, &give_back(1)).unwrap();
        let rest = record_return(&conn, &ctx, &give_back(2)).unwrap();
        // One of three bottles paid 2.38 together: 0.79, and the rest exactly what is left.
        assert_eq!(first.refund_minor, 79);
        assert_eq!(first.refund_minor + rest.refund_minor, 238);
    }

    #[test]
    fn an_ended_window_prices_at_the_catalog() {
        let conn = setup(&three_for_two("2026-11-23T11:00"));
        let receipt = sale(&conn, "2026-11-23T10:00:00.000Z");
        assert_eq!(receipt.total_minor, 3 * 119 + 1299);
        assert!(receipt.promotions.is_empty());
        assert!(receipt.lines[0].discounts.is_empty());
    }
}
