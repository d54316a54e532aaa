//! The two channels agree: for random rules and baskets, what the store's till charges (rules
//! received through the catalog document, kept in SQLite, applied in `record_sale`) equals
//! HQ's quote (`quote` on HQ's own catalog document).

use proptest::prelude::*;

use super::{QuoteLine, QuoteRequest, quote};
use crate::crdt::catalog::{CatalogDoc, CatalogItem};
use crate::crdt::doc::WriterId;
use crate::crdt::pricing::PricingEdit;
use crate::domain::pricing::tests_prop::{SKUS, categories, price_lists, promotions};
use crate::store::TaxConfig;
use crate::store::catalog::{self, Item};
use crate::store::sales::{
    PaymentMethod, PaymentRequest, SaleLineRequest, SaleRequest, WriteContext, record_sale,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_store_charges_what_hq_quotes(
        promotions in promotions(),
        price_lists in price_lists(),
        categories in categories(),
        prices in proptest::collection::vec(0i64..2000, SKUS.len()),
        lines in proptest::collection::vec((0usize..SKUS.len(), 1i64..6, 1i64..3000), 1..7),
        store in proptest::sample::select(vec!["s1", "s2"]),
        saturday in any::<bool>(),
    ) {
        let items: Vec<CatalogItem> = SKUS.iter().zip(&prices).map(|(sku, price)| CatalogItem {
            sku: (*sku).to_owned(),
            name: sku.to_uppercase(),
            price_minor: *price,
            currency: "EUR".into(),
            tax_class: "standard".into(),
            gtins: Vec::new(),
            epc_patterns: Vec::new(),
            variable_measure: *sku == "w",
        }).collect();
        let mut edits: Vec<PricingEdit> = promotions.into_iter().map(PricingEdit::PutPromotion).collect();
        edits.extend(price_lists.into_iter().map(PricingEdit::PutPriceList));
        edits.extend(categories.into_iter().map(|(name, skus)| PricingEdit::PutCategory {
            name,
            skus: skus.into_iter().collect(),
        }));
        let mut hq = CatalogDoc::genesis(1, WriterId::hq()).unwrap();
        hq.publish(&items, &[], 1).unwrap();
        hq.edit_pricing(&edits, 2).unwrap();

        // The store receives the document and keeps items and rules as `sync::local` does.
        let mut doc = CatalogDoc::genesis(1, WriterId::new(&format!("{store}.n1")).unwrap()).unwrap();
        let changes = hq.core().changes_since(&doc.core().heads());
        doc.core_mut().apply_changes(&changes).unwrap();
        let conn = crate::store::testing::memory_db();
        for i in doc.items() {
            let item = Item {
                sku: i.sku,
                name: i.name,
                price_minor: i.price_minor,
                currency: i.currency,
                tax_class: i.tax_class,
                variable_measure: i.variable_measure,
                gtins: i.gtins,
                epc_patterns: i.epc_patterns,
            };
            catalog::upsert(&conn, &item, "t").unwrap();
        }
        crate::store::pricing::save_rules(&conn, &doc.pricing_rules(), "t").unwrap();

        let now = if saturday { "2026-12-05T10:00:00.000Z" } else { "2026-12-04T09:59:00.000Z" };
        let weighed = |k: usize| SKUS[k] == "w";
        let request = SaleRequest {
            coupons: Vec::new(),
            lines: lines.iter().map(|&(k, q, g)| SaleLineRequest {
                sku: Some(SKUS[k].to_owned()),
                gtin: None,
                quantity: (!weighed(k)).then_some(q),
                weight_grams: weighed(k).then_some(g),
                epc: None,
            }).collect(),
            payments: vec![PaymentRequest { method: PaymentMethod::Cash, amount_minor: 1_000_000_000, reference: None }],
            member: None,
        };
        let tax = TaxConfig { prices_include_tax: true, classes: vec![("standard".into(), 1900)] };
        let writer = format!("{store}.n1");
        // The till's cached rules, as `POST /v1/sales` prices.
        let cache = crate::store::pricing::RulesCache::default();
        let ctx = WriteContext { terminal: "pos1", writer_id: &writer, currency: "EUR", tax: &tax, now, pricing: Some(&cache) };
        let sale = record_sale(&conn, &ctx, &request).unwrap();

        let asked = QuoteRequest {
            coupons: Vec::new(),
            customer: None,
            store: store.to_owned(),
            at: Some(now.to_owned()),
            lines: lines.iter().map(|&(k, q, g)| QuoteLine {
                sku: SKUS[k].to_owned(),
                quantity: (!weighed(k)).then_some(q),
                weight_grams: weighed(k).then_some(g),
            }).collect(),
        };
        let quoted = quote(hq.core(), &asked, "2000-01-01T00:00:00Z").unwrap();
        prop_assert_eq!(sale.total_minor, quoted.basket.total_minor);
        for (line, q) in sale.lines.iter().zip(&quoted.basket.lines) {
            prop_assert_eq!(line.amount_minor, q.net_minor);
            prop_assert_eq!(&line.discounts, &q.discounts);
        }
    }
}
