//! Returns against a sale: never more than was sold, refunded pro rata to what was paid; the
//! share the sale paid in loyalty points goes back to the member as points, the rest as money.

#[allow(unused_imports)] // the parent's imports, shared by its parts
use super::*;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    pub sale_id: String,
    pub lines: Vec<ReturnLineRequest>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineRequest {
    pub line_no: u32,
    /// Pieces, or grams for a weighed line.
    pub quantity: i64,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReturnReceipt {
    pub return_id: String,
    pub sale_id: String,
    pub at: String,
    pub lines: Vec<ReturnedLine>,
    /// What the returned goods were paid with, in all (money and points).
    pub refund_minor: i64,
    /// What the till hands back in money: `refund_minor` less what points paid
    /// (`loyalty.points_refunded_minor`, given back as points).
    #[serde(default)]
    pub refund_money_minor: i64,
    pub tax_minor: i64,
    /// The loyalty points this return took back and gave back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loyalty: Option<crate::store::loyalty::ReturnLoyalty>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReturnedLine {
    pub line_no: u32,
    pub sku: String,
    pub quantity: i64,
    pub refund_minor: i64,
    pub tax_minor: i64,
    pub stock_after: i64,
}

pub(super) struct SoldLine {
    sku: String,
    quantity: i64,
    amount_minor: i64,
    tax_minor: i64,
    returned_quantity: i64,
    refunded_minor: i64,
    refunded_tax_minor: i64,
}

/// Returns goods against a sale: never more than was sold (across all its returns), refunds
/// pro rata (the last return of a line gets exactly what is left, so rounding never drifts),
/// and puts the goods back into stock.
pub fn record_return(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    request: &ReturnRequest,
) -> Result<ReturnReceipt, StoreError> {
    if request.lines.is_empty() || request.lines.len() > MAX_LINES {
        return Err(StoreError::unprocessable(
            "lines",
            format!("a return needs 1 to {MAX_LINES} lines"),
        ));
    }
    let sale_id: i64 = conn
        .prepare_cached(concat!(
            "SELECT id FROM sale WHERE id = ",
            crate::store::sales::sale_id_of!(),
            " AND sale_no = ?1"
        ))?
        .query_row([&request.sale_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("sale {:?}", request.sale_id)))?;
    let id: i64 = conn.query_row(
        "SELECT COALESCE(MAX(id), 0) + 1 FROM sale_return",
        [],
        |r| r.get(0),
    )?;
    let return_no = format!("{}-R{id:06}", ctx.writer_id);
    conn.prepare_cached(
        "INSERT INTO sale_return (id, return_no, sale_id, terminal, at, refund_minor, tax_minor, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6)",
    )?
    .execute(params![id, return_no, sale_id, ctx.terminal, ctx.now, request.reason])?;

    let mut lines = Vec::with_capacity(request.lines.len());
    let (mut refund_total, mut tax_total) = (0i64, 0i64);
    for (i, line) in request.lines.iter().enumerate() {
        let field = format!("lines[{i}]");
        positive(&format!("{field}.quantity"), line.quantity)?;
        let sold = sold_line(conn, sale_id, line.line_no)?.ok_or_else(|| {
            StoreError::not_found(format!(
                "{field}.line_no {} of sale {}",
                line.line_no, request.sale_id
            ))
        })?;
        let left = sold.quantity - sold.returned_quantity;
        if line.quantity > left {
            return Err(StoreError::unprocessable(
                format!("{field}.quantity"),
                format!(
                    "{} returned, but only {left} of {} sold are left to return",
                    line.quantity, sold.quantity
                ),
            ));
        }
        let finishes_line = line.quantity == left;
        let (refund, tax) = if finishes_line {
            (
                sold.amount_minor - sold.refunded_minor,
                sold.tax_minor - sold.refunded_tax_minor,
            )
        } else {
            let r = money::pro_rata(sold.amount_minor, line.quantity, sold.quantity);
            let t = money::pro_rata(sold.tax_minor, line.quantity, sold.quantity);
            (
                r.map_err(|_| StoreError::unprocessable(&field, "amount too large"))?,
                t.map_err(|_| StoreError::unprocessable(&field, "amount too large"))?,
            )
        };
        conn.prepare_cached(
            "INSERT INTO return_line (return_id, sale_id, line_no, quantity, refund_minor, tax_minor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![id, sale_id, line.line_no, line.quantity, refund, tax])
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::unprocessable(format!("{field}.line_no"), format!("line {} is listed twice", line.line_no))
            }
            other => other.into(),
        })?;
        let level = ledger::record(
            conn,
            &Movement {
                sku: &sold.sku,
                kind: MovementKind::Return,
                on_hand_delta: line.quantity,
                reserved_delta: 0,
                ref_type: "return",
                ref_id: &return_no,
                terminal: ctx.terminal,
            },
            ctx.now,
        )?;
        crate::store::devices::mark_returned(conn, sale_id, line.line_no)?;
        refund_total += refund;
        tax_total += tax;
        lines.push(ReturnedLine {
            line_no: line.line_no,
            sku: sold.sku,
            quantity: line.quantity,
            refund_minor: refund,
            tax_minor: tax,
            stock_after: level.on_hand,
        });
    }
    conn.prepare_cached("UPDATE sale_return SET refund_minor = ?1, tax_minor = ?2 WHERE id = ?3")?
        .execute(params![refund_total, tax_total, id])?;
    let loyalty =
        crate::store::loyalty::on_return(conn, ctx, &request.sale_id, &return_no, refund_total)?;
    let in_points = loyalty.as_ref().map_or(0, |l| l.points_refunded_minor);
    Ok(ReturnReceipt {
        return_id: return_no,
        sale_id: request.sale_id.clone(),
        at: ctx.now.to_string(),
        lines,
        refund_minor: refund_total,
        refund_money_minor: refund_total - in_points,
        tax_minor: tax_total,
        loyalty,
    })
}

pub(super) fn sold_line(
    conn: &Connection,
    sale_id: i64,
    line_no: u32,
) -> Result<Option<SoldLine>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT l.sku, l.quantity, l.amount_minor, l.tax_minor,
                    COALESCE(sum(r.quantity), 0), COALESCE(sum(r.refund_minor), 0), COALESCE(sum(r.tax_minor), 0)
             FROM sale_line l LEFT JOIN return_line r ON r.sale_id = l.sale_id AND r.line_no = l.line_no
             WHERE l.sale_id = ?1 AND l.line_no = ?2 GROUP BY l.sale_id, l.line_no",
        )?
        .query_row(params![sale_id, line_no], |r| {
            Ok(SoldLine {
                sku: r.get(0)?,
                quantity: r.get(1)?,
                amount_minor: r.get(2)?,
                tax_minor: r.get(3)?,
                returned_quantity: r.get(4)?,
                refunded_minor: r.get(5)?,
                refunded_tax_minor: r.get(6)?,
            })
        })
        .optional()?)
}
