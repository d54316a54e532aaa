use super::*;
use crate::store::TaxConfig;
use crate::store::catalog::{self, Item};
use crate::store::sales::{
    PaymentMethod, PaymentRequest, ReturnLineRequest, ReturnRequest, SaleLineRequest, SaleRequest,
    record_return, record_sale,
};
use crate::store::testing::memory_db;

const CARD: &str = "CLUB-7";

fn tax() -> TaxConfig {
    TaxConfig {
        prices_include_tax: true,
        classes: vec![("standard".into(), 1900)],
    }
}

fn ctx(tax: &TaxConfig) -> WriteContext<'_> {
    WriteContext {
        terminal: "pos1",
        writer_id: "s1.n1",
        currency: "EUR",
        tax,
        now: "2026-11-23T10:00:00.000Z",
        pricing: None,
    }
}

fn setup() -> Connection {
    let conn = memory_db();
    let item = Item {
        sku: "SHIRT".into(),
        name: "Shirt".into(),
        price_minor: 1_000,
        currency: "EUR".into(),
        tax_class: "standard".into(),
        variable_measure: false,
        gtins: Vec::new(),
        epc_patterns: Vec::new(),
    };
    catalog::upsert(&conn, &item.validated(|_| true).unwrap(), "t").unwrap();
    let rules = LoyaltyRules {
        points_per_unit: 1,
        point_value_minor: 10,
    };
    save_rules(&conn, Some(&rules), "t").unwrap();
    conn
}

fn sale(quantity: i64, payments: Vec<(PaymentMethod, i64)>) -> SaleRequest {
    SaleRequest {
        lines: vec![SaleLineRequest {
            sku: Some("SHIRT".into()),
            gtin: None,
            quantity: Some(quantity),
            weight_grams: None,
            epc: None,
        }],
        payments: payments
            .into_iter()
            .map(|(method, amount_minor)| PaymentRequest {
                method,
                amount_minor,
                reference: None,
            })
            .collect(),
        member: Some(CARD.into()),
        coupons: Vec::new(),
    }
}

#[test]
fn a_sale_earns_on_what_was_not_paid_in_points_and_spends_only_the_allowance() {
    let conn = setup();
    let tax = tax();
    let receipt = record_sale(
        &conn,
        &ctx(&tax),
        &sale(2, vec![(PaymentMethod::Cash, 2_000)]),
    )
    .unwrap();
    let loyalty = receipt.loyalty.clone().unwrap();
    assert_eq!((loyalty.points_earned, loyalty.points_spent), (20, 0));
    assert_eq!(of_sale(&conn, &receipt.sale_id).unwrap(), Some(loyalty));
    // Earned points go to HQ's pool: nothing is spendable here until HQ grants.
    let points = vec![(PaymentMethod::Points, 500), (PaymentMethod::Cash, 500)];
    assert!(matches!(
        record_sale(&conn, &ctx(&tax), &sale(1, points.clone())),
        Err(StoreError::Conflict(_))
    ));
    replace_grants(&conn, &[(CARD.into(), 60)]).unwrap();
    let paid = record_sale(&conn, &ctx(&tax), &sale(1, points)).unwrap();
    let loyalty = paid.loyalty.unwrap();
    assert_eq!(
        (
            loyalty.points_spent,
            loyalty.points_earned,
            loyalty.spendable_points
        ),
        (50, 5, 10)
    );
    // Not whole points, points without a card, points beyond the total: refused.
    let odd = vec![(PaymentMethod::Points, 5), (PaymentMethod::Cash, 995)];
    assert!(record_sale(&conn, &ctx(&tax), &sale(1, odd)).is_err());
    let mut anonymous = sale(
        1,
        vec![(PaymentMethod::Points, 100), (PaymentMethod::Cash, 900)],
    );
    anonymous.member = None;
    assert!(record_sale(&conn, &ctx(&tax), &anonymous).is_err());
    let change = vec![(PaymentMethod::Points, 100), (PaymentMethod::Cash, 1_000)];
    assert!(record_sale(&conn, &ctx(&tax), &sale(1, change)).is_err());
    assert_eq!(allowance(&conn, CARD).unwrap(), 10);
}

#[test]
fn a_return_takes_back_its_share_and_owes_what_was_spent() {
    let conn = setup();
    let tax = tax();
    let receipt = record_sale(
        &conn,
        &ctx(&tax),
        &sale(2, vec![(PaymentMethod::Cash, 2_000)]),
    )
    .unwrap();
    replace_grants(&conn, &[(CARD.into(), 4)]).unwrap();
    let ret = |quantity| ReturnRequest {
        sale_id: receipt.sale_id.clone(),
        lines: vec![ReturnLineRequest {
            line_no: 1,
            quantity,
        }],
        reason: None,
    };
    let first = record_return(&conn, &ctx(&tax), &ret(1)).unwrap();
    let loyalty = first.loyalty.unwrap();
    // Half the sale: 10 of its 20 points; the lane holds 4, so 6 are owed.
    assert_eq!((loyalty.points_reversed, loyalty.points_owed), (10, 6));
    assert_eq!(allowance(&conn, CARD).unwrap(), 0);
    let second = record_return(&conn, &ctx(&tax), &ret(1)).unwrap();
    assert_eq!(second.loyalty.unwrap().points_reversed, 10);
    let kinds: Vec<String> = entries_since(&conn, 0)
        .unwrap()
        .into_iter()
        .map(|(_, _, kind, points)| format!("{kind}:{points}"))
        .collect();
    assert_eq!(kinds, ["earned:20", "reversed:4", "owed:6", "owed:10"]);
}

#[test]
fn lookup_asks_for_points_and_shows_what_is_spendable() {
    let conn = setup();
    let tax = tax();
    let request = LookupRequest {
        card: " club-7 ".into(),
    };
    let view = lookup(&conn, &ctx(&tax), &request).unwrap();
    assert_eq!((view.member.as_str(), view.spendable_points), (CARD, 0));
    replace_grants(&conn, &[(CARD.into(), 30)]).unwrap();
    let view = lookup(&conn, &ctx(&tax), &request).unwrap();
    assert_eq!(view.spendable_minor, Some(300));
    let bad = LookupRequest { card: "x".into() };
    assert!(matches!(
        lookup(&conn, &ctx(&tax), &bad),
        Err(StoreError::Unprocessable { .. })
    ));
    assert_eq!(entries_since(&conn, 0).unwrap().len(), 2, "two wants");
}

#[test]
fn release_gives_what_the_lane_holds_back_once() {
    let conn = setup();
    let tax = tax();
    replace_grants(&conn, &[(CARD.into(), 30)]).unwrap();
    let request = LookupRequest { card: CARD.into() };
    assert_eq!(
        release(&conn, &ctx(&tax), &request)
            .unwrap()
            .spendable_points,
        0
    );
    assert_eq!(
        release(&conn, &ctx(&tax), &request)
            .unwrap()
            .spendable_points,
        0
    );
    let kinds: Vec<String> = entries_since(&conn, 0)
        .unwrap()
        .into_iter()
        .map(|(_, _, kind, points)| format!("{kind}:{points}"))
        .collect();
    assert_eq!(
        kinds,
        ["released:30"],
        "nothing more to release the second time"
    );
}

fn return_of(sale_id: &str, quantity: i64) -> ReturnRequest {
    ReturnRequest {
        sale_id: sale_id.to_owned(),
        lines: vec![ReturnLineRequest {
            line_no: 1,
            quantity,
        }],
        reason: None,
    }
}

#[test]
fn a_return_of_a_sale_paid_in_points_gives_the_points_back_not_money() {
    let conn = setup();
    let tax = tax();
    replace_grants(&conn, &[(CARD.into(), 100)]).unwrap();
    // A shirt (10.00) paid with 100 points of 10 cents.
    let receipt = record_sale(
        &conn,
        &ctx(&tax),
        &sale(1, vec![(PaymentMethod::Points, 1_000)]),
    )
    .unwrap();
    assert_eq!(allowance(&conn, CARD).unwrap(), 0);
    let back = record_return(&conn, &ctx(&tax), &return_of(&receipt.sale_id, 1)).unwrap();
    assert_eq!((back.refund_minor, back.refund_money_minor), (1_000, 0));
    let loyalty = back.loyalty.unwrap();
    assert_eq!(
        (
            loyalty.points_refunded,
            loyalty.points_refunded_minor,
            loyalty.points_reversed
        ),
        (100, 1_000, 0)
    );
    // Spendable here again at once, and recorded for the orders document.
    assert_eq!(allowance(&conn, CARD).unwrap(), 100);
    let kinds: Vec<String> = entries_since(&conn, 0)
        .unwrap()
        .into_iter()
        .map(|(_, _, kind, points)| format!("{kind}:{points}"))
        .collect();
    assert_eq!(kinds, ["spent:100", "refunded:100"]);
}

#[test]
fn partial_returns_split_money_and_points_and_sum_to_what_was_paid() {
    let conn = setup();
    let tax = tax();
    replace_grants(&conn, &[(CARD.into(), 300)]).unwrap();
    // Three shirts (30.00): 200 points (20.00) and 10.00 in cash, earning 10 points.
    let receipt = record_sale(
        &conn,
        &ctx(&tax),
        &sale(
            3,
            vec![(PaymentMethod::Points, 2_000), (PaymentMethod::Cash, 1_000)],
        ),
    )
    .unwrap();
    assert_eq!(allowance(&conn, CARD).unwrap(), 100);
    let (mut points, mut money) = (0, 0);
    for expected in [(66, 340), (67, 330), (67, 330)] {
        let back = record_return(&conn, &ctx(&tax), &return_of(&receipt.sale_id, 1)).unwrap();
        let loyalty = back.loyalty.unwrap();
        assert_eq!((loyalty.points_refunded, back.refund_money_minor), expected);
        assert_eq!(
            loyalty.points_refunded_minor + back.refund_money_minor,
            back.refund_minor
        );
        points += loyalty.points_refunded;
        money += back.refund_money_minor;
    }
    assert_eq!((points, money), (200, 1_000), "exactly what was paid");
    // The 200 points are back, less the 9 of the 10 earned that the returns took back.
    assert_eq!(allowance(&conn, CARD).unwrap(), 100 + 200 - 9);
}

#[test]
fn a_retried_return_gives_points_back_once() {
    let conn = setup();
    let tax = tax();
    replace_grants(&conn, &[(CARD.into(), 100)]).unwrap();
    let receipt = record_sale(
        &conn,
        &ctx(&tax),
        &sale(1, vec![(PaymentMethod::Points, 1_000)]),
    )
    .unwrap();
    let request = return_of(&receipt.sale_id, 1);
    let hash = crate::store::idempotency::request_hash("POST", "/v1/returns", b"r");
    let packer = crate::store::idempotency::AnswerPacker::default();
    let run = || {
        crate::store::idempotency::run(&conn, &packer, "pos1", "ret-1", &hash, "t", |conn| {
            let back = record_return(conn, &ctx(&tax), &request)?;
            Ok((201, serde_json::to_string(&back).unwrap()))
        })
        .unwrap()
    };
    let first = run();
    let again = run();
    assert!(again.replayed);
    assert_eq!(first.body, again.body);
    assert_eq!(allowance(&conn, CARD).unwrap(), 100, "refunded once");
}
