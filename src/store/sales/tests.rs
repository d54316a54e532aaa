use super::*;
use crate::store::TaxConfig;
use crate::store::catalog::{self, Item};
use crate::store::ledger;
use crate::store::testing::memory_db;

fn tax() -> TaxConfig {
    TaxConfig {
        prices_include_tax: true,
        classes: vec![("standard".into(), 1900), ("reduced".into(), 700)],
    }
}

fn ctx<'a>(tax: &'a TaxConfig) -> WriteContext<'a> {
    WriteContext {
        terminal: "pos1",
        writer_id: "s1.n1",
        currency: "EUR",
        tax,
        now: "2026-11-23T10:00:00.000Z",
        pricing: None,
    }
}

fn setup() -> rusqlite::Connection {
    let conn = memory_db();
    let items = [
        ("MILK", 119, "reduced", false, "4006381333931"),
        ("SHIRT", 1299, "standard", false, "5901234123457"),
        ("APPLE", 299, "reduced", true, "96385074"),
    ];
    for (sku, price, class, weighed, gtin) in items {
        let item = Item {
            sku: sku.into(),
            name: sku.into(),
            price_minor: price,
            currency: "EUR".into(),
            tax_class: class.into(),
            variable_measure: weighed,
            gtins: vec![gtin.into()],
            epc_patterns: Vec::new(),
        };
        catalog::upsert(&conn, &item.validated(|_| true).unwrap(), "t").unwrap();
    }
    conn
}

fn line(sku: &str, quantity: Option<i64>, weight: Option<i64>) -> SaleLineRequest {
    SaleLineRequest {
        sku: Some(sku.into()),
        gtin: None,
        quantity,
        weight_grams: weight,
        epc: None,
    }
}

fn cash(amount: i64) -> Vec<PaymentRequest> {
    vec![PaymentRequest {
        method: PaymentMethod::Cash,
        amount_minor: amount,
        reference: None,
    }]
}

#[test]
fn sale_prices_taxes_and_moves_stock() {
    let conn = setup();
    let tax = tax();
    let request = SaleRequest {
        coupons: Vec::new(),
        lines: vec![
            line("MILK", Some(2), None),
            line("SHIRT", Some(1), None),
            line("APPLE", None, Some(1086)),
        ],
        payments: cash(2000),
        member: None,
    };
    let receipt = record_sale(&conn, &ctx(&tax), &request).unwrap();
    // 2 × 1.19 + 12.99 + 2.99 × 1.086 kg (3.24714 → 3.25) = 18.62
    assert_eq!(receipt.total_minor, 238 + 1299 + 325);
    // 7 % in 2.38 → 0.16; 19 % in 12.99 → 2.07; 7 % in 3.25 → 0.21
    assert_eq!(receipt.tax_minor, 16 + 207 + 21);
    assert_eq!(receipt.change_minor, 2000 - 1862);
    assert_eq!(receipt.sale_id, "s1.n1-000001");
    assert_eq!(ledger::level(&conn, "APPLE").unwrap().on_hand, -1086);
    assert_eq!(
        receipt.negative_stock.len(),
        3,
        "nothing was received, so all went negative"
    );
}

#[test]
fn sale_by_gtin_any_length() {
    let conn = setup();
    let tax = tax();
    let request = SaleRequest {
        coupons: Vec::new(),
        lines: vec![SaleLineRequest {
            sku: None,
            gtin: Some("00000096385074".into()),
            quantity: None,
            weight_grams: Some(500),
            epc: None,
        }],
        payments: cash(150),
        member: None,
    };
    assert_eq!(
        record_sale(&conn, &ctx(&tax), &request).unwrap().lines[0].sku,
        "APPLE"
    );
}

#[test]
fn bad_sales_are_refused_with_the_field() {
    let conn = setup();
    let tax = tax();
    let cases: Vec<(SaleRequest, &str)> = vec![
        (
            SaleRequest {
                coupons: Vec::new(),
                lines: vec![],
                payments: cash(1),
                member: None,
            },
            "lines",
        ),
        (
            SaleRequest {
                coupons: Vec::new(),
                lines: vec![line("MILK", Some(0), None)],
                payments: cash(1),
                member: None,
            },
            "lines[0].quantity",
        ),
        (
            SaleRequest {
                coupons: Vec::new(),
                lines: vec![line("MILK", Some(-2), None)],
                payments: cash(1),
                member: None,
            },
            "lines[0].quantity",
        ),
        (
            SaleRequest {
                coupons: Vec::new(),
                lines: vec![line("APPLE", Some(2), None)],
                payments: cash(1),
                member: None,
            },
            "lines[0].quantity",
        ),
        (
            SaleRequest {
                coupons: Vec::new(),
                lines: vec![line("APPLE", None, None)],
                payments: cash(1),
                member: None,
            },
            "lines[0].weight_grams",
        ),
        (
            SaleRequest {
                coupons: Vec::new(),
                lines: vec![line("MILK", Some(1), Some(5))],
                payments: cash(1),
                member: None,
            },
            "lines[0].weight_grams",
        ),
        (
            SaleRequest {
                coupons: Vec::new(),
                lines: vec![line("MILK", Some(1), None)],
                payments: cash(100),
                member: None,
            },
            "payments",
        ),
    ];
    for (request, field) in cases {
        match record_sale(&conn, &ctx(&tax), &request) {
            Err(StoreError::Unprocessable { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected 422, got {other:?}"),
        }
    }
    let card_overpaid = SaleRequest {
        coupons: Vec::new(),
        lines: vec![line("MILK", Some(1), None)],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Card,
            amount_minor: 200,
            reference: None,
        }],
        member: None,
    };
    assert!(matches!(
        record_sale(&conn, &ctx(&tax), &card_overpaid),
        Err(StoreError::Unprocessable { .. })
    ));
    let unknown = SaleRequest {
        coupons: Vec::new(),
        lines: vec![line("NOPE", Some(1), None)],
        payments: cash(1),
        member: None,
    };
    assert!(matches!(
        record_sale(&conn, &ctx(&tax), &unknown),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn returns_never_exceed_what_was_sold_and_refund_exactly() {
    let conn = setup();
    let tax = tax();
    let sale = record_sale(
        &conn,
        &ctx(&tax),
        &SaleRequest {
            coupons: Vec::new(),
            lines: vec![line("SHIRT", Some(3), None)],
            payments: cash(3897),
            member: None,
        },
    )
    .unwrap();
    let ret = |qty| ReturnRequest {
        sale_id: sale.sale_id.clone(),
        lines: vec![ReturnLineRequest {
            line_no: 1,
            quantity: qty,
        }],
        reason: None,
    };
    let first = record_return(&conn, &ctx(&tax), &ret(1)).unwrap();
    assert_eq!(first.refund_minor, 1299);
    assert_eq!(first.lines[0].stock_after, -2);
    let too_many = record_return(&conn, &ctx(&tax), &ret(3)).unwrap_err();
    assert!(too_many.to_string().contains("only 2 of 3"), "{too_many}");
    let rest = record_return(&conn, &ctx(&tax), &ret(2)).unwrap();
    assert_eq!(first.refund_minor + rest.refund_minor, sale.total_minor);
    assert_eq!(first.tax_minor + rest.tax_minor, sale.tax_minor);
    assert!(record_return(&conn, &ctx(&tax), &ret(1)).is_err());
    let missing = ReturnRequest {
        sale_id: "nope".into(),
        lines: vec![ReturnLineRequest {
            line_no: 1,
            quantity: 1,
        }],
        reason: None,
    };
    assert!(matches!(
        record_return(&conn, &ctx(&tax), &missing),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn tax_exclusive_prices_add_tax() {
    let conn = setup();
    let tax = TaxConfig {
        prices_include_tax: false,
        ..tax()
    };
    let receipt = record_sale(
        &conn,
        &ctx(&tax),
        &SaleRequest {
            coupons: Vec::new(),
            lines: vec![line("SHIRT", Some(1), None)],
            payments: cash(2000),
            member: None,
        },
    )
    .unwrap();
    assert_eq!(receipt.tax_minor, 247);
    assert_eq!(receipt.total_minor, 1299 + 247);
}

/// Regression: a sale line with a GIAI or SSCC tag was refused on every item (nothing could
/// link such a tag to an item). An item now names the ones it accepts (`epc_patterns`).
#[test]
fn a_giai_tag_sells_only_on_an_item_whose_patterns_name_it_and_only_once() {
    let conn = setup();
    let bike = Item {
        sku: "BIKE-RENTAL".into(),
        name: "Bike rental".into(),
        price_minor: 1500,
        currency: "EUR".into(),
        tax_class: "standard".into(),
        variable_measure: false,
        gtins: Vec::new(),
        epc_patterns: vec!["urn:epc:id:giai:0614141.12".into()],
    };
    catalog::upsert(&conn, &bike.validated(|_| true).unwrap(), "t").unwrap();
    let tag = hex::encode_upper(crate::gs1::epc::encode_giai96(1, "0614141", "12345").unwrap());
    let other = hex::encode_upper(crate::gs1::epc::encode_giai96(1, "0614141", "99").unwrap());
    let tax = tax();
    let sell = |sku: &str, epc: &str| {
        let request = SaleRequest {
            coupons: Vec::new(),
            lines: vec![SaleLineRequest {
                epc: Some(epc.into()),
                ..line(sku, Some(1), None)
            }],
            payments: cash(1500),
            member: None,
        };
        record_sale(&conn, &ctx(&tax), &request)
    };
    assert!(matches!(
        sell("SHIRT", &tag),
        Err(StoreError::Unprocessable { .. })
    ));
    assert!(matches!(
        sell("BIKE-RENTAL", &other),
        Err(StoreError::Unprocessable { .. })
    ));
    sell("BIKE-RENTAL", &tag).unwrap();
    assert!(matches!(
        sell("BIKE-RENTAL", &tag),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn an_item_refuses_an_epc_pattern_that_is_not_one() {
    let mut item = catalog::get(&setup(), "SHIRT").unwrap().unwrap();
    item.epc_patterns = vec!["urn:epc:id:sgtin:0614141.812345.".into()];
    let refused = item.validated(|_| true).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unprocessable { field, .. } if field == "epc_patterns[0]"),
        "{refused:?}"
    );
}

#[test]
fn a_sale_is_found_by_its_number_through_its_row_id_and_only_by_its_own_number() {
    let conn = setup();
    let tax = tax();
    let ctx = ctx(&tax);
    let request = SaleRequest {
        lines: vec![line("MILK", Some(2), None)],
        payments: cash(1000),
        member: None,
        coupons: Vec::new(),
    };
    let first = record_sale(&conn, &ctx, &request).unwrap();
    let second = record_sale(&conn, &ctx, &request).unwrap();
    assert_eq!(first.sale_id, "s1.n1-000001");
    assert_eq!(
        get_sale(&conn, &second.sale_id).unwrap().unwrap().sale_id,
        "s1.n1-000002"
    );
    // The same id under another writer's prefix, no digits, a number past any id: no sale.
    for other in [
        "s2.n1-000001",
        "s1.n1-",
        "nonsense",
        "s1.n1-99999999999999999999999",
    ] {
        assert!(get_sale(&conn, other).unwrap().is_none(), "{other}");
    }
    let plan: String = conn
        .query_row(
            concat!(
                "EXPLAIN QUERY PLAN SELECT id FROM sale WHERE id = ",
                crate::store::sales::sale_id_of!(),
                " AND sale_no = ?1"
            ),
            ["s1.n1-000001"],
            |r| r.get(3),
        )
        .unwrap();
    assert!(
        plan.contains("INTEGER PRIMARY KEY"),
        "a row-id look-up, not a scan: {plan}"
    );
}
