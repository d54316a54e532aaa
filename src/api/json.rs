//! Request bodies: parsed from bytes so the same bytes can be fingerprinted for idempotency,
//! with errors naming the offending field.

use super::error::ApiError;
use crate::domain::customer::Customer;
pub use crate::http_shared::json::parse;
use crate::store::escrow::GrantRequest;
use crate::store::inventory::{AdjustmentRequest, CountRequest, ReceiptRequest};
use crate::store::orders::{CancelRequest, CollectRequest, NewOrder, PickRequest, ShipRequest};
use crate::store::sales::{ReturnRequest, SaleRequest};
use crate::store::transfers::{NewTransfer, ReceiveRequest};

/// Every JSON request body the API accepts, one per write route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    Sale,
    Return,
    Receipt,
    Count,
    Adjustment,
    Order,
    Pick,
    Collect,
    Cancel,
    Ship,
    Grant,
    Transfer,
    TransferReceive,
    Customer,
}

impl RequestBody {
    pub const ALL: [RequestBody; 14] = [
        Self::Sale,
        Self::Return,
        Self::Receipt,
        Self::Count,
        Self::Adjustment,
        Self::Order,
        Self::Pick,
        Self::Collect,
        Self::Cancel,
        Self::Ship,
        Self::Grant,
        Self::Transfer,
        Self::TransferReceive,
        Self::Customer,
    ];
}

/// Parses `body` as `kind` exactly as the route does, then drops the value. Pure (no store,
/// no I/O): the entry point of the API fuzz target and the hostile-input tests.
pub fn check_request(kind: RequestBody, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        RequestBody::Sale => parse::<SaleRequest>(body).map(drop),
        RequestBody::Return => parse::<ReturnRequest>(body).map(drop),
        RequestBody::Receipt => parse::<ReceiptRequest>(body).map(drop),
        RequestBody::Count => parse::<CountRequest>(body).map(drop),
        RequestBody::Adjustment => parse::<AdjustmentRequest>(body).map(drop),
        RequestBody::Order => parse::<NewOrder>(body).map(drop),
        RequestBody::Pick => parse::<PickRequest>(body).map(drop),
        RequestBody::Collect => parse::<CollectRequest>(body).map(drop),
        RequestBody::Cancel => parse::<CancelRequest>(body).map(drop),
        RequestBody::Ship => parse::<ShipRequest>(body).map(drop),
        RequestBody::Grant => parse::<GrantRequest>(body).map(drop),
        RequestBody::Transfer => parse::<NewTransfer>(body).map(drop),
        RequestBody::TransferReceive => parse::<ReceiveRequest>(body).map(drop),
        RequestBody::Customer => parse::<Customer>(body).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sales::SaleRequest;

    #[test]
    fn wrong_type_names_the_field() {
        let err =
            parse::<SaleRequest>(br#"{"lines":[{"sku":"A","quantity":"two"}],"payments":[]}"#)
                .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("lines[0].quantity"));
    }

    #[test]
    fn unknown_field_is_refused() {
        let err = parse::<SaleRequest>(br#"{"lines":[],"payments":[],"discount":5}"#).unwrap_err();
        assert!(err.message.contains("discount"), "{}", err.message);
    }

    #[test]
    fn integral_floats_are_integers_others_are_refused() {
        let sale = parse::<SaleRequest>(
            br#"{"lines":[{"sku":"A","quantity":3.0}],"payments":[{"method":"cash","amount_minor":-0.0}]}"#,
        )
        .unwrap();
        assert_eq!(sale.lines[0].quantity, Some(3));
        assert_eq!(sale.payments[0].amount_minor, 0);
        for bad in ["1.5", "1e30", "-1e19"] {
            let body = format!(r#"{{"lines":[{{"sku":"A","quantity":{bad}}}],"payments":[]}}"#);
            let err = parse::<SaleRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("lines[0].quantity"), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse::<SaleRequest>(deep.as_bytes()).is_err());
    }
}
