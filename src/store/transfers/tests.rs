use super::*;
use crate::store::TaxConfig;
use crate::store::testing::memory_db;

fn ctx<'a>(tax: &'a TaxConfig, now: &'a str) -> WriteContext<'a> {
    WriteContext {
        terminal: "pos1",
        writer_id: "s1.lane1",
        currency: "EUR",
        tax,
        now,
        pricing: None,
    }
}

fn tax() -> TaxConfig {
    TaxConfig {
        prices_include_tax: true,
        classes: Vec::new(),
    }
}

fn seed(conn: &Connection) {
    conn.execute_batch(
        "INSERT INTO item (sku, name, price_minor, currency, tax_class, updated_at)
         VALUES ('MILK', 'Milk', 100, 'EUR', 'standard', 'x');",
    )
    .unwrap();
    ledger::record(
        conn,
        &Movement {
            sku: "MILK",
            kind: MovementKind::Receipt,
            on_hand_delta: 20,
            reserved_delta: 0,
            ref_type: "receipt",
            ref_id: "r1",
            terminal: "pos1",
        },
        "x",
    )
    .unwrap();
}

fn on_hand(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT on_hand FROM stock_level WHERE sku = 'MILK'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn line(sku: &str, quantity: i64) -> TransferLineRequest {
    TransferLineRequest {
        sku: Some(sku.into()),
        gtin: None,
        quantity,
    }
}

fn dispatch(conn: &Connection, id: &str, qty: i64) -> TransferView {
    let tax = tax();
    let request = NewTransfer {
        transfer_id: id.into(),
        to_store: "s2".into(),
        lines: vec![line("MILK", qty)],
    };
    create(conn, &ctx(&tax, "2026-01-01T00:00:00.000Z"), "s1", &request).unwrap()
}

#[test]
fn dispatch_and_cancel_move_the_units_out_and_back_once() {
    let conn = memory_db();
    seed(&conn);
    let view = dispatch(&conn, "t1", 5);
    assert_eq!(view.transfer_id, "s1.lane1:t1");
    assert_eq!(view.status, TransferStatus::InTransit);
    assert_eq!(on_hand(&conn), 15);
    let tax = tax();
    let c = ctx(&tax, "2026-01-01T01:00:00.000Z");
    let cancelled = cancel(&conn, &c, "t1").unwrap();
    assert_eq!(cancelled.status, TransferStatus::Cancelled);
    assert_eq!(on_hand(&conn), 20);
    assert!(matches!(
        cancel(&conn, &c, "t1"),
        Err(StoreError::Conflict(_))
    ));
    // A receipt at the other store, learned later, overrules the cancel: out again, once.
    let got = BTreeMap::from([("MILK".to_owned(), 5)]);
    let id = "s1.lane1:t1";
    assert!(
        apply_remote_status(&conn, id, TransferStatus::Received, Some(&got), "hq", "t").unwrap()
    );
    assert!(
        !apply_remote_status(&conn, id, TransferStatus::Received, Some(&got), "hq", "t").unwrap()
    );
    assert_eq!(on_hand(&conn), 15);
    assert!(ledger::verify(&conn).unwrap().is_empty());
    let unshared: Vec<_> = unshared_events(&conn)
        .unwrap()
        .into_iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        unshared,
        [TransferStatus::InTransit, TransferStatus::Cancelled]
    );
}

#[test]
fn bad_dispatches_are_refused() {
    let conn = memory_db();
    seed(&conn);
    dispatch(&conn, "t1", 5);
    let tax = tax();
    let c = ctx(&tax, "now");
    let same = NewTransfer {
        transfer_id: "t1".into(),
        to_store: "s2".into(),
        lines: vec![line("MILK", 1)],
    };
    assert!(matches!(
        create(&conn, &c, "s1", &same),
        Err(StoreError::Conflict(_))
    ));
    let to_self = NewTransfer {
        transfer_id: "t2".into(),
        to_store: "s1".into(),
        lines: vec![line("MILK", 1)],
    };
    assert!(matches!(
        create(&conn, &c, "s1", &to_self),
        Err(StoreError::Unprocessable { .. })
    ));
    let zero = NewTransfer {
        transfer_id: "t3".into(),
        to_store: "s2".into(),
        lines: vec![line("MILK", 0)],
    };
    assert!(matches!(
        create(&conn, &c, "s1", &zero),
        Err(StoreError::Unprocessable { .. })
    ));
    let unknown = NewTransfer {
        transfer_id: "t4".into(),
        to_store: "s2".into(),
        lines: vec![line("NOPE", 1)],
    };
    assert!(matches!(
        create(&conn, &c, "s1", &unknown),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(on_hand(&conn), 15, "only t1 moved stock");
}

#[test]
fn an_inbound_transfer_is_received_short_with_a_discrepancy() {
    let conn = memory_db();
    seed(&conn);
    let lines = BTreeMap::from([("MILK".to_owned(), 5), ("TEA".to_owned(), 2)]);
    let inbound = Inbound {
        transfer_id: "s9.lane1:t7",
        from_store: "s9",
        to_store: "s1",
        created_at: "2026-01-01T00:00:00.000Z",
        lines: &lines,
    };
    assert!(create_inbound(&conn, &inbound, TransferStatus::InTransit, "now").unwrap());
    assert!(!create_inbound(&conn, &inbound, TransferStatus::InTransit, "now").unwrap());
    assert_eq!(on_hand(&conn), 20, "nothing booked before receipt");
    let tax = tax();
    let c = ctx(&tax, "now");
    assert!(matches!(
        cancel(&conn, &c, "t7"),
        Err(StoreError::Conflict(_))
    ));
    // TEA is not in this store's catalog but is on the transfer: accepted by SKU.
    let request = ReceiveRequest {
        lines: vec![line("MILK", 4), line("TEA", 2)],
    };
    let view = receive(&conn, &c, "t7", &request).unwrap();
    assert_eq!(view.status, TransferStatus::Received);
    assert_eq!(view.lines[0].discrepancy, Some(-1));
    assert_eq!(view.lines[1].discrepancy, Some(0));
    assert_eq!(on_hand(&conn), 24);
    assert!(matches!(
        receive(&conn, &c, "t7", &request),
        Err(StoreError::Conflict(_))
    ));
    // A cancel relayed later changes nothing: received wins.
    assert_eq!(
        status(&conn, "s9.lane1:t7").unwrap(),
        Some(TransferStatus::Received)
    );
    assert!(ledger::verify(&conn).unwrap().is_empty());
    assert_eq!(
        list(&conn, Some(Direction::Inbound), None, 10)
            .unwrap()
            .len(),
        1
    );
    assert!(
        list(&conn, Some(Direction::Outbound), None, 10)
            .unwrap()
            .is_empty()
    );
}
