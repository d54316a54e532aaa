//! Sales (lines, payments, totals with tax) and returns against them.

/// SQL for the row id of the sale numbered `?1`: a sale number is `{writer}-{id:06}` of its own
/// row id (see [`record_sale`]), so `WHERE id = sale_id_of!() AND sale_no = ?1` finds a sale by
/// its number with the row id, and `sale` needs no index on `sale_no` (one B-tree less per
/// sale). The trailing digits are the id; a number without them gives 0, which is no sale.
macro_rules! sale_id_of {
    () => {
        "CAST(substr(?1, length(rtrim(?1, '0123456789')) + 1) AS INTEGER)"
    };
}
pub(crate) use sale_id_of;

mod returns;
pub use returns::*;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::catalog::{self, Item};
use super::ledger::{self, Movement, MovementKind};
use crate::domain::pricing::{AppliedPromotion, LineDiscount};
use crate::money::{self, Quantity};
use crate::store::TaxConfig;

mod promotions;

const MAX_LINES: usize = 500;
const MAX_PAYMENTS: usize = 20;

/// Who is writing, when, and under which rules.
pub struct WriteContext<'a> {
    pub terminal: &'a str,
    pub writer_id: &'a str,
    pub currency: &'a str,
    pub tax: &'a TaxConfig,
    pub now: &'a str,
    /// HQ's pricing rules as last parsed (the store's [`crate::store::Store::pricing`]);
    /// `None` where nothing is priced, or to parse them afresh.
    pub pricing: Option<&'a crate::store::pricing::RulesCache>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    pub lines: Vec<SaleLineRequest>,
    pub payments: Vec<PaymentRequest>,
    /// The loyalty member's card (GSRN or the chain's code): the sale earns points, and
    /// `points` payments spend them ([`super::loyalty`]).
    #[serde(default)]
    pub member: Option<String>,
    /// Coupon codes, scanned or typed (`store::coupons`): each redeems one use held here.
    #[serde(default)]
    pub coupons: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleLineRequest {
    pub sku: Option<String>,
    pub gtin: Option<String>,
    /// Pieces (required unless the item is sold by weight); omitted or 1 for a weighed item.
    pub quantity: Option<i64>,
    /// For variable-measure items: the weight sold, in grams.
    pub weight_grams: Option<i64>,
    /// The item's RFID EPC (hex), when the till scanned the tag: marks it sold.
    pub epc: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentMethod {
    Cash,
    Card,
    Voucher,
    /// Loyalty points (`amount_minor` is what they pay; the sale names the `member`).
    Points,
    Other,
}

impl PaymentMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::Cash => "cash",
            Self::Card => "card",
            Self::Voucher => "voucher",
            Self::Points => "points",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub method: PaymentMethod,
    pub amount_minor: i64,
    pub reference: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct SaleReceipt {
    pub sale_id: String,
    pub at: String,
    pub terminal: String,
    pub currency: String,
    pub lines: Vec<ReceiptLine>,
    pub total_minor: i64,
    pub tax_minor: i64,
    pub paid_minor: i64,
    pub change_minor: i64,
    /// SKUs this sale took below zero on hand (allowed: the goods were on the counter).
    pub negative_stock: Vec<NegativeStock>,
    /// Each promotion that took something off, and how much in all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<AppliedPromotion>,
    /// The member's points earned and spent by this sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loyalty: Option<super::loyalty::SaleLoyalty>,
    /// The coupons redeemed (also among `promotions`, as `coupon.{code}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coupons: Vec<super::coupons::AppliedCoupon>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReceiptLine {
    pub line_no: u32,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit: String,
    pub unit_price_minor: i64,
    pub amount_minor: i64,
    pub tax_class: String,
    pub tax_rate_bp: u32,
    pub tax_minor: i64,
    /// What promotions took off this line; `amount_minor` is after them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<LineDiscount>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct NegativeStock {
    pub sku: String,
    pub on_hand: i64,
}

struct PricedLine {
    item: Item,
    gtin: Option<String>,
    quantity: i64,
    unit: &'static str,
    /// The catalog's, or a price list's.
    unit_price_minor: i64,
    amount_minor: i64,
    tax_rate_bp: u32,
    tax_minor: i64,
    epc: Option<String>,
    discounts: Vec<LineDiscount>,
}

/// Records a sale: prices and taxes each line, checks the payments, writes the sale and one
/// stock movement per line. Stock may go negative; the receipt says where.
pub fn record_sale(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    request: &SaleRequest,
) -> Result<SaleReceipt, StoreError> {
    if request.lines.is_empty() || request.lines.len() > MAX_LINES {
        return Err(StoreError::unprocessable(
            "lines",
            format!("a sale needs 1 to {MAX_LINES} lines"),
        ));
    }
    let mut priced = Vec::with_capacity(request.lines.len());
    for (i, line) in request.lines.iter().enumerate() {
        priced.push(price_line(conn, ctx, &format!("lines[{i}]"), line)?);
    }
    let coupons = super::coupons::present(conn, ctx, &request.coupons)?;
    promotions::apply(conn, ctx, &mut priced, &coupons.promotions())?;
    let (total, tax) = totals(ctx.tax, &priced)?;
    let (paid, change) = check_payments(&request.payments, total)?;

    let id: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM sale")?
        .query_row([], |r| r.get(0))?;
    // The number carries the row id: it is how a sale is found again (`sale_id_of!`).
    let sale_no = format!("{}-{id:06}", ctx.writer_id);
    conn.prepare_cached(
        "INSERT INTO sale (id, sale_no, terminal, at, currency, total_minor, tax_minor, paid_minor, change_minor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![id, sale_no, ctx.terminal, ctx.now, ctx.currency, total, tax, paid, change])?;

    let mut lines = Vec::with_capacity(priced.len());
    let mut negative_stock = Vec::new();
    for (index, line) in priced.into_iter().enumerate() {
        let line_no = index as u32 + 1;
        insert_line(conn, id, line_no, &line)?;
        super::pricing::insert_discounts(conn, id, line_no, &line.discounts)?;
        crate::store::devices::mark_sold(
            conn,
            &format!("lines[{index}].epc"),
            line.epc.as_deref(),
            &line.item,
            id,
            ctx.now,
        )?;
        let level = ledger::record(
            conn,
            &Movement {
                sku: &line.item.sku,
                kind: MovementKind::Sale,
                on_hand_delta: -line.quantity,
                reserved_delta: 0,
                ref_type: "sale",
                ref_id: &sale_no,
                terminal: ctx.terminal,
            },
            ctx.now,
        )?;
        crate::store::escrow::check_sale(conn, &line.item.sku, level)?;
        if level.on_hand < 0
            && !negative_stock
                .iter()
                .any(|n: &NegativeStock| n.sku == line.item.sku)
        {
            negative_stock.push(NegativeStock {
                sku: line.item.sku.clone(),
                on_hand: level.on_hand,
            });
        }
        lines.push(receipt_line(line_no, line));
    }
    for (seq, payment) in request.payments.iter().enumerate() {
        conn.prepare_cached(
            "INSERT INTO payment (sale_id, seq, method, amount_minor, reference) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![id, seq as i64 + 1, payment.method.as_str(), payment.amount_minor, payment.reference])?;
    }
    let points = super::loyalty::points_minor(&request.payments);
    let member = request.member.as_deref();
    let loyalty = super::loyalty::on_sale(conn, ctx, member, &sale_no, total, points, change)?;
    let promotions = by_promotion(&lines);
    super::coupons::redeem(conn, ctx, &coupons, id, &promotions)?;
    Ok(SaleReceipt {
        coupons: super::coupons::on_receipt(&promotions),
        sale_id: sale_no,
        at: ctx.now.to_string(),
        terminal: ctx.terminal.to_string(),
        currency: ctx.currency.to_string(),
        lines,
        total_minor: total,
        tax_minor: tax,
        paid_minor: paid,
        change_minor: change,
        negative_stock,
        promotions,
        loyalty,
    })
}

fn price_line(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    field: &str,
    line: &SaleLineRequest,
) -> Result<PricedLine, StoreError> {
    let item = catalog::resolve(conn, field, line.sku.as_deref(), line.gtin.as_deref())?;
    if item.currency != ctx.currency {
        return Err(StoreError::unprocessable(
            field,
            format!(
                "item {} is priced in {}, this store sells in {}",
                item.sku, item.currency, ctx.currency
            ),
        ));
    }
    let (quantity, unit) = line_quantity(field, &item, line)?;
    let measure = if item.variable_measure {
        Quantity::Grams(quantity)
    } else {
        Quantity::Pieces(quantity)
    };
    let overflow = |_| StoreError::unprocessable(field, "amount too large");
    let amount_minor = money::line_amount(item.price_minor, measure).map_err(overflow)?;
    let tax_rate_bp = ctx.tax.rate_bp(&item.tax_class).ok_or_else(|| {
        StoreError::Inconsistent(format!(
            "item {} has unknown tax class {}",
            item.sku, item.tax_class
        ))
    })?;
    let tax_minor = line_tax(ctx, amount_minor, tax_rate_bp).map_err(overflow)?;
    let epc = line
        .epc
        .as_deref()
        .map(|e| check_epc(field, e))
        .transpose()?;
    Ok(PricedLine {
        gtin: line.gtin.clone(),
        unit_price_minor: item.price_minor,
        item,
        quantity,
        unit,
        amount_minor,
        tax_rate_bp,
        tax_minor,
        epc,
        discounts: Vec::new(),
    })
}

/// Tax of a line amount, rounded once (`money`'s rule).
fn line_tax(
    ctx: &WriteContext<'_>,
    amount_minor: i64,
    rate_bp: u32,
) -> Result<i64, money::MoneyError> {
    if ctx.tax.prices_include_tax {
        money::tax_included(amount_minor, rate_bp)
    } else {
        money::tax_added(amount_minor, rate_bp)
    }
}

fn line_quantity(
    field: &str,
    item: &Item,
    line: &SaleLineRequest,
) -> Result<(i64, &'static str), StoreError> {
    if item.variable_measure {
        if line.quantity.is_some_and(|q| q != 1) {
            return Err(StoreError::unprocessable(
                format!("{field}.quantity"),
                format!(
                    "item {} is sold by weight: give weight_grams, not a quantity",
                    item.sku
                ),
            ));
        }
        let grams = line.weight_grams.ok_or_else(|| {
            StoreError::unprocessable(
                format!("{field}.weight_grams"),
                format!(
                    "item {} is sold by weight: weight_grams is required",
                    item.sku
                ),
            )
        })?;
        positive(&format!("{field}.weight_grams"), grams)?;
        Ok((grams, "gram"))
    } else {
        if line.weight_grams.is_some() {
            return Err(StoreError::unprocessable(
                format!("{field}.weight_grams"),
                format!("item {} is not sold by weight", item.sku),
            ));
        }
        // No default: a line without a count is a client bug, not a sale of one.
        let quantity = line.quantity.ok_or_else(|| {
            StoreError::unprocessable(
                format!("{field}.quantity"),
                "give quantity (pieces) or weight_grams (items sold by weight)",
            )
        })?;
        positive(&format!("{field}.quantity"), quantity)?;
        Ok((quantity, "piece"))
    }
}

pub fn positive(field: &str, value: i64) -> Result<i64, StoreError> {
    if value <= 0 {
        return Err(StoreError::unprocessable(
            field,
            format!("must be positive, got {value}"),
        ));
    }
    Ok(value)
}

fn check_epc(field: &str, epc: &str) -> Result<String, StoreError> {
    let valid = (8..=124).contains(&epc.len())
        && epc.len().is_multiple_of(4)
        && epc.chars().all(|c| c.is_ascii_hexdigit());
    if valid {
        Ok(epc.to_ascii_uppercase())
    } else {
        Err(StoreError::unprocessable(
            format!("{field}.epc"),
            "must be the tag's EPC in hex (whole 16-bit words)",
        ))
    }
}

/// Total to pay and tax in it. With tax-exclusive prices the tax is added on top.
fn totals(tax: &TaxConfig, lines: &[PricedLine]) -> Result<(i64, i64), StoreError> {
    let overflow = || StoreError::unprocessable("lines", "sale total too large");
    let mut amount: i64 = 0;
    let mut tax_sum: i64 = 0;
    for line in lines {
        amount = amount.checked_add(line.amount_minor).ok_or_else(overflow)?;
        tax_sum = tax_sum.checked_add(line.tax_minor).ok_or_else(overflow)?;
    }
    let total = if tax.prices_include_tax {
        amount
    } else {
        amount.checked_add(tax_sum).ok_or_else(overflow)?
    };
    Ok((total, tax_sum))
}

/// Payments must cover the total; only cash can be overpaid (the change is handed back).
fn check_payments(payments: &[PaymentRequest], total: i64) -> Result<(i64, i64), StoreError> {
    if payments.len() > MAX_PAYMENTS {
        return Err(StoreError::unprocessable(
            "payments",
            format!("at most {MAX_PAYMENTS} payments"),
        ));
    }
    let mut paid: i64 = 0;
    for (i, p) in payments.iter().enumerate() {
        positive(&format!("payments[{i}].amount_minor"), p.amount_minor)?;
        paid = paid
            .checked_add(p.amount_minor)
            .ok_or_else(|| StoreError::unprocessable("payments", "payment total too large"))?;
    }
    if paid < total {
        return Err(StoreError::unprocessable(
            "payments",
            format!("payments cover {paid} of {total} minor units"),
        ));
    }
    let change = paid - total;
    if change > 0 && !payments.iter().any(|p| p.method == PaymentMethod::Cash) {
        return Err(StoreError::unprocessable(
            "payments",
            format!("overpaid by {change} minor units, and only cash can be given change"),
        ));
    }
    Ok((paid, change))
}

fn insert_line(
    conn: &Connection,
    sale_id: i64,
    line_no: u32,
    line: &PricedLine,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO sale_line (sale_id, line_no, sku, gtin14, name, quantity, unit, unit_price_minor,
            amount_minor, tax_class, tax_rate_bp, tax_minor, epc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        sale_id,
        line_no,
        line.item.sku,
        line.gtin,
        line.item.name,
        line.quantity,
        line.unit,
        line.unit_price_minor,
        line.amount_minor,
        line.item.tax_class,
        line.tax_rate_bp,
        line.tax_minor,
        line.epc
    ])?;
    Ok(())
}

fn receipt_line(line_no: u32, line: PricedLine) -> ReceiptLine {
    ReceiptLine {
        line_no,
        sku: line.item.sku,
        name: line.item.name,
        quantity: line.quantity,
        unit: line.unit.to_string(),
        unit_price_minor: line.unit_price_minor,
        amount_minor: line.amount_minor,
        tax_class: line.item.tax_class,
        tax_rate_bp: line.tax_rate_bp,
        tax_minor: line.tax_minor,
        discounts: line.discounts,
    }
}

/// A stored sale with its lines, as the API shows it.
pub fn get_sale(conn: &Connection, sale_no: &str) -> Result<Option<SaleReceipt>, StoreError> {
    let head = conn
        .prepare_cached(concat!(
            "SELECT id, terminal, at, currency, total_minor, tax_minor, paid_minor, change_minor
                   FROM sale WHERE id = ",
            sale_id_of!(),
            " AND sale_no = ?1"
        ))?
        .query_row([sale_no], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .optional()?;
    let Some((id, terminal, at, currency, total_minor, tax_minor, paid_minor, change_minor)) = head
    else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT line_no, sku, name, quantity, unit, unit_price_minor, amount_minor, tax_class, tax_rate_bp, tax_minor
         FROM sale_line WHERE sale_id = ?1 ORDER BY line_no",
    )?;
    let lines = stmt
        .query_map([id], |r| {
            Ok(ReceiptLine {
                line_no: r.get(0)?,
                sku: r.get(1)?,
                name: r.get(2)?,
                quantity: r.get(3)?,
                unit: r.get(4)?,
                unit_price_minor: r.get(5)?,
                amount_minor: r.get(6)?,
                tax_class: r.get(7)?,
                tax_rate_bp: r.get(8)?,
                tax_minor: r.get(9)?,
                discounts: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let lines = with_discounts(conn, id, lines)?;
    let promotions = by_promotion(&lines);
    Ok(Some(SaleReceipt {
        coupons: super::coupons::on_receipt(&promotions),
        sale_id: sale_no.to_string(),
        at,
        terminal,
        currency,
        lines,
        total_minor,
        tax_minor,
        paid_minor,
        change_minor,
        negative_stock: Vec::new(),
        promotions,
        loyalty: super::loyalty::of_sale(conn, sale_no)?,
    }))
}

fn with_discounts(
    conn: &Connection,
    sale_id: i64,
    mut lines: Vec<ReceiptLine>,
) -> Result<Vec<ReceiptLine>, StoreError> {
    for line in &mut lines {
        line.discounts = super::pricing::line_discounts(conn, sale_id, line.line_no)?;
    }
    Ok(lines)
}

/// What each promotion took off the sale, in the order the lines first name them.
fn by_promotion(lines: &[ReceiptLine]) -> Vec<AppliedPromotion> {
    let mut promotions: Vec<AppliedPromotion> = Vec::new();
    for line in lines {
        for d in &line.discounts {
            match promotions
                .iter_mut()
                .find(|p| p.promotion_id == d.promotion_id)
            {
                Some(p) => p.amount_minor += d.amount_minor,
                None => promotions.push(AppliedPromotion {
                    promotion_id: d.promotion_id.clone(),
                    name: d.name.clone(),
                    amount_minor: d.amount_minor,
                }),
            }
        }
    }
    promotions
}

#[cfg(test)]
mod tests;
