//! The JSON replies of the read routes, typed so the OpenAPI document describes them.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::customer::Customer;
use crate::store::catalog::Item;
use crate::store::escrow::EscrowView;
use crate::store::ledger::SkuStock;
use crate::store::orders::OrderSummary;
use crate::store::transfers::TransferView;

/// `GET /v1/items/{key}`.
#[derive(Serialize, ToSchema)]
pub struct ItemReply {
    pub item: Item,
    pub stock: ItemStock,
    /// The price now and the promotions on this item; absent until HQ published pricing
    /// rules (then the item's catalog price is what a sale charges).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<crate::store::pricing::ItemPricing>,
}

#[derive(Serialize, ToSchema)]
pub struct ItemStock {
    pub on_hand: i64,
    pub reserved: i64,
    /// On hand minus reserved.
    pub available: i64,
}

/// `GET /v1/stock`: a page ordered by SKU.
#[derive(Serialize, ToSchema)]
pub struct StockPage {
    pub items: Vec<SkuStock>,
    /// Give as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// `GET /v1/stock/{sku}`.
#[derive(Serialize, ToSchema)]
pub struct StockOne {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    /// Units held for the online channel.
    pub online_escrow: i64,
    /// Units the store may sell or grant.
    pub store_free: i64,
}

/// `GET /v1/orders`.
#[derive(Serialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<OrderSummary>,
}

/// `GET /v1/escrow`.
#[derive(Serialize, ToSchema)]
pub struct EscrowList {
    pub escrow: Vec<EscrowView>,
}

/// `GET /v1/transfers`.
#[derive(Serialize, ToSchema)]
pub struct TransferList {
    pub transfers: Vec<TransferView>,
}

/// `GET /v1/orders/{order_id}/customer`.
#[derive(Serialize, ToSchema)]
pub struct CustomerReply {
    pub order_id: String,
    pub customer: Customer,
}

/// `PUT /v1/orders/{order_id}/customer`: no personal data (the answer is kept for replays).
#[derive(Serialize, ToSchema)]
pub struct CustomerStored {
    pub order_id: String,
    /// Always `stored`.
    #[schema(pattern = "^stored$")]
    pub customer: &'static str,
}

/// `DELETE /v1/orders/{order_id}/customer`.
#[derive(Serialize, ToSchema)]
pub struct CustomerErased {
    pub order_id: String,
    pub erased_at: String,
}
