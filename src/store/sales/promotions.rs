//! A sale's lines priced by HQ's last published rules (price lists and promotions), with the
//! pure engine `domain::pricing` — the same call HQ's `POST /v1/quote` makes.
//!
//! Each line's `amount_minor` becomes what the customer pays for it, and its tax is computed
//! on that; so a return, which refunds `amount_minor` pro rata, refunds the paid share.

use rusqlite::Connection;

use super::{PricedLine, WriteContext, line_tax};
use crate::domain::pricing::{self, BasketLine, PriceContext, PricingError};
use crate::money::Quantity;
use crate::store::{StoreError, pricing as stored};

/// The store a writer id `{store}.{node}` belongs to.
pub(super) fn store_of(writer_id: &str) -> &str {
    writer_id
        .split_once('.')
        .map_or(writer_id, |(store, _)| store)
}

/// Applies the rules to `lines` in place (prices, discounts, amounts, tax).
pub(super) fn apply(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    lines: &mut [PricedLine],
) -> Result<(), StoreError> {
    let Some(rules) = stored::load_rules(conn)? else {
        return Ok(());
    };
    if rules.promotions.is_empty() && rules.price_lists.is_empty() {
        return Ok(());
    }
    let store = store_of(ctx.writer_id);
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
