//! A till redeeming coupons: what it holds, why it refuses, what a return refunds.

use std::collections::BTreeMap;

use super::*;
use crate::domain::coupons::Coupon;
use crate::domain::pricing::{Rule, Target};
use crate::store::TaxConfig;
use crate::store::catalog::{self, Item};
use crate::store::sales::{
    PaymentMethod, PaymentRequest, ReturnLineRequest, ReturnRequest, SaleLineRequest, SaleRequest,
    record_return, record_sale,
};
use crate::store::testing::memory_db;

const NOW: &str = "2026-11-23T10:00:00.000Z";

fn tax() -> TaxConfig {
    TaxConfig {
        prices_include_tax: true,
        classes: vec![("reduced".into(), 700)],
    }
}

fn ctx(tax: &TaxConfig) -> WriteContext<'_> {
    WriteContext {
        terminal: "pos1",
        writer_id: "s1.n1",
        currency: "EUR",
        tax,
        now: NOW,
        pricing: None,
    }
}

fn coupon(code: &str, discount: Rule, expires_at: Option<&str>) -> Coupon {
    Coupon {
        code: code.into(),
        name: format!("coupon {code}"),
        discount,
        uses: 2,
        customer: None,
        channel: None,
        expires_at: expires_at.map(str::to_owned),
        revoked: false,
    }
}

/// MILK at 1.19; coupons known to this node, `held` uses of each granted to this lane.
fn setup(held: i64) -> Connection {
    let conn = memory_db();
    let item = Item {
        sku: "MILK".into(),
        name: "Milk".into(),
        price_minor: 119,
        currency: "EUR".into(),
        tax_class: "reduced".into(),
        variable_measure: false,
        gtins: Vec::new(),
        epc_patterns: Vec::new(),
    };
    catalog::upsert(&conn, &item, NOW).unwrap();
    let off = |amount_minor| Rule::BasketAmountOff {
        min_total_minor: 0,
        amount_minor,
    };
    let defs = BTreeMap::from([
        ("SAVE-1".to_owned(), coupon("SAVE-1", off(100), None)),
        (
            "OLD-1".to_owned(),
            coupon("OLD-1", off(100), Some("2026-11-01T00:00:00.000Z")),
        ),
        (
            "SHIRT-1".to_owned(),
            coupon(
                "SHIRT-1",
                Rule::PercentOff {
                    target: Target {
                        skus: ["SHIRT".to_owned()].into(),
                        categories: Default::default(),
                    },
                    percent_bp: 5000,
                },
                None,
            ),
        ),
    ]);
    save_definitions(&conn, &defs, NOW).unwrap();
    let mine = CouponTotals {
        granted: held,
        ..Default::default()
    };
    let levels = defs.keys().map(|c| (c.clone(), (mine, 0))).collect();
    replace_levels(&conn, &levels, &[]).unwrap();
    conn
}

fn sale(
    conn: &Connection,
    coupons: &[&str],
) -> Result<crate::store::sales::SaleReceipt, StoreError> {
    let tax = tax();
    let request = SaleRequest {
        lines: vec![SaleLineRequest {
            sku: Some("MILK".into()),
            gtin: None,
            quantity: Some(3),
            weight_grams: None,
            epc: None,
        }],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount_minor: 1000,
            reference: None,
        }],
        coupons: coupons.iter().map(|c| (*c).to_owned()).collect(),
        member: None,
    };
    record_sale(conn, &ctx(&tax), &request)
}

#[test]
fn a_held_use_is_redeemed_once_and_named_on_the_receipt() {
    let conn = setup(1);
    let receipt = sale(&conn, &[" save-1"]).unwrap();
    assert_eq!(receipt.total_minor, 3 * 119 - 100);
    assert_eq!(
        receipt.coupons,
        vec![AppliedCoupon {
            code: "SAVE-1".into(),
            name: "coupon SAVE-1".into(),
            amount_minor: 100,
        }]
    );
    let (mine, store) = level(&conn, "SAVE-1").unwrap();
    assert_eq!((mine.held(), store), (0, 1));
    assert_eq!(redemptions_since(&conn, 0).unwrap().len(), 1);
    let stored = crate::store::sales::get_sale(&conn, &receipt.sale_id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.coupons, receipt.coupons);

    // The one use is gone: the next sale is refused (2 uses issued, the other elsewhere).
    let again = sale(&conn, &["SAVE-1"]).unwrap_err();
    assert!(
        matches!(&again, StoreError::Conflict(m) if m.contains("another store or HQ")),
        "{again}"
    );

    // A return of the whole sale refunds what the customer paid, not the list price.
    let tax = tax();
    let back = record_return(
        &conn,
        &ctx(&tax),
        &ReturnRequest {
            sale_id: receipt.sale_id.clone(),
            lines: vec![ReturnLineRequest {
                line_no: 1,
                quantity: 3,
            }],
            reason: None,
        },
    )
    .unwrap();
    assert_eq!(back.refund_minor, 3 * 119 - 100);
}

#[test]
fn refusals_say_why() {
    let conn = setup(0);
    let held_elsewhere = sale(&conn, &["SAVE-1"]).unwrap_err();
    assert!(matches!(held_elsewhere, StoreError::Conflict(_)));
    let unknown = sale(&conn, &["NOPE-1"]).unwrap_err();
    assert!(
        matches!(&unknown, StoreError::Unprocessable { reason, .. } if reason.contains("unknown"))
    );

    let conn = setup(1);
    let expired = sale(&conn, &["OLD-1"]).unwrap_err();
    assert!(
        matches!(&expired, StoreError::Unprocessable { reason, .. } if reason.contains("expired"))
    );
    let nothing_off = sale(&conn, &["SHIRT-1"]).unwrap_err();
    assert!(
        matches!(&nothing_off, StoreError::Unprocessable { reason, .. } if reason.contains("nothing off"))
    );
    let twice = sale(&conn, &["SAVE-1", "save-1"]).unwrap_err();
    assert!(matches!(&twice, StoreError::Unprocessable { reason, .. } if reason.contains("twice")));
    // Nothing was spent by the refusals.
    assert_eq!(level(&conn, "SAVE-1").unwrap().0.held(), 1);
    assert_eq!(level(&conn, "SHIRT-1").unwrap().0.held(), 1);

    // Used up: every use issued is redeemed at this store.
    let conn = setup(2);
    sale(&conn, &["SAVE-1"]).unwrap();
    sale(&conn, &["SAVE-1"]).unwrap();
    let used_up = sale(&conn, &["SAVE-1"]).unwrap_err();
    assert!(
        matches!(&used_up, StoreError::Conflict(m) if m.contains("used up")),
        "{used_up}"
    );
}

#[test]
fn a_lane_gives_back_only_what_it_holds() {
    let conn = setup(2);
    let tax = tax();
    let give = |uses| release(&conn, &ctx(&tax), "save-1", &ReleaseRequest { uses });
    assert!(matches!(give(3), Err(StoreError::Conflict(_))));
    assert_eq!(give(1).unwrap().held, 1);
    let recorded = redemptions_since(&conn, 0).unwrap();
    assert_eq!(recorded[0].2, UseKind::Release);
    // The one use left is still redeemable; then none.
    sale(&conn, &["SAVE-1"]).unwrap();
    assert!(matches!(
        sale(&conn, &["SAVE-1"]),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        release(&conn, &ctx(&tax), "NOPE-1", &ReleaseRequest { uses: 1 }),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn a_refusal_for_a_use_held_elsewhere_asks_hq_once_until_answered() {
    let conn = setup(0);
    let refused = sale(&conn, &["SAVE-1"]).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains(crate::domain::coupons::NOT_HELD_HERE)
    );
    let codes = vec!["save-1".to_owned(), "OLD-1".to_owned(), "NOPE-1".to_owned()];
    // Only the coupon held elsewhere is asked for (an expired or unknown one is not).
    assert_eq!(ask_hq(&conn, "pos1", NOW, &codes).unwrap(), ["SAVE-1"]);
    assert!(view(&conn, "SAVE-1").unwrap().unwrap().asked_hq);
    // Retried before HQ answered: the ask stays one.
    assert_eq!(ask_hq(&conn, "pos1", NOW, &codes).unwrap(), ["SAVE-1"]);
    let asks: Vec<(String, UseKind, i64)> = redemptions_since(&conn, 0)
        .unwrap()
        .into_iter()
        .map(|(_, code, kind, uses)| (code, kind, uses))
        .collect();
    assert_eq!(asks, [("SAVE-1".to_owned(), UseKind::Want, 1)]);
    // HQ answered with a use (the document says so): the same sale goes through.
    let answered = CouponTotals {
        granted: 1,
        wanted: 1,
        served: 1,
        ..Default::default()
    };
    let levels = BTreeMap::from([("SAVE-1".to_owned(), (answered, 0))]);
    replace_levels(&conn, &levels, &[]).unwrap();
    assert!(!view(&conn, "SAVE-1").unwrap().unwrap().asked_hq);
    assert_eq!(sale(&conn, &["SAVE-1"]).unwrap().coupons.len(), 1);
    // Held here again: nothing to ask.
    let levels = BTreeMap::from([(
        "SAVE-1".to_owned(),
        (
            CouponTotals {
                granted: 2,
                ..answered
            },
            1,
        ),
    )]);
    replace_levels(&conn, &levels, &[]).unwrap();
    assert!(ask_hq(&conn, "pos1", NOW, &codes).unwrap().is_empty());
}
