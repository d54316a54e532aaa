//! Goods receipts, stock counts and adjustments: the back-office stock writes.

use serde::{Deserialize, Serialize};

use rusqlite::Connection;

use super::StoreError;
use super::catalog;
use super::ledger::{self, Movement, MovementKind};
use super::sales::{WriteContext, positive};

const MAX_LINES: usize = 2000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    /// The supplier's delivery note or the transfer's reference.
    pub reference: Option<String>,
    pub lines: Vec<QuantityLine>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityLine {
    pub sku: Option<String>,
    pub gtin: Option<String>,
    pub quantity: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    pub lines: Vec<CountLine>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountLine {
    pub sku: Option<String>,
    pub gtin: Option<String>,
    /// What was physically counted; the ledger gets the difference.
    pub counted: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    pub sku: Option<String>,
    pub gtin: Option<String>,
    /// Signed change: negative for damage or shrinkage.
    pub delta: i64,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct StockChange {
    pub sku: String,
    pub delta: i64,
    pub on_hand: i64,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct StockWriteResult {
    pub reference: String,
    pub at: String,
    pub changes: Vec<StockChange>,
}

fn check_lines(count: usize) -> Result<(), StoreError> {
    if count == 0 || count > MAX_LINES {
        return Err(StoreError::unprocessable(
            "lines",
            format!("give 1 to {MAX_LINES} lines"),
        ));
    }
    Ok(())
}

fn next_reference(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    prefix: &str,
) -> Result<String, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT COALESCE(MAX(id), 0) + 1 FROM stock_movement",
        [],
        |r| r.get(0),
    )?;
    Ok(format!("{}-{prefix}{n:06}", ctx.writer_id))
}

pub fn record_receipt(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    request: &ReceiptRequest,
) -> Result<StockWriteResult, StoreError> {
    check_lines(request.lines.len())?;
    let reference = match &request.reference {
        Some(r) if !r.trim().is_empty() => r.trim().to_string(),
        _ => next_reference(conn, ctx, "GR")?,
    };
    let mut changes = Vec::with_capacity(request.lines.len());
    for (i, line) in request.lines.iter().enumerate() {
        let field = format!("lines[{i}]");
        let item = catalog::resolve(conn, &field, line.sku.as_deref(), line.gtin.as_deref())?;
        positive(&format!("{field}.quantity"), line.quantity)?;
        let level = movement(
            conn,
            ctx,
            &item.sku,
            MovementKind::Receipt,
            line.quantity,
            "receipt",
            &reference,
        )?;
        changes.push(StockChange {
            sku: item.sku,
            delta: line.quantity,
            on_hand: level,
        });
    }
    Ok(StockWriteResult {
        reference,
        at: ctx.now.to_string(),
        changes,
    })
}

/// A count records `counted − on hand now` as the movement, so sales made while the shelf was
/// being counted elsewhere are not erased by a later overwrite.
pub fn record_count(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    request: &CountRequest,
) -> Result<StockWriteResult, StoreError> {
    check_lines(request.lines.len())?;
    let reference = next_reference(conn, ctx, "CNT")?;
    let mut changes = Vec::with_capacity(request.lines.len());
    for (i, line) in request.lines.iter().enumerate() {
        let field = format!("lines[{i}]");
        let item = catalog::resolve(conn, &field, line.sku.as_deref(), line.gtin.as_deref())?;
        if line.counted < 0 {
            return Err(StoreError::unprocessable(
                format!("{field}.counted"),
                format!("must not be negative, got {}", line.counted),
            ));
        }
        let current = ledger::level(conn, &item.sku)?.on_hand;
        let delta = line.counted - current;
        // Recorded even when nothing changed: a count is an observation (audit trail, and
        // the EPCIS cycle-counting event); a zero delta moves no stock and no sync entry.
        let on_hand = movement(
            conn,
            ctx,
            &item.sku,
            MovementKind::Count,
            delta,
            "count",
            &reference,
        )?;
        changes.push(StockChange {
            sku: item.sku,
            delta,
            on_hand,
        });
    }
    Ok(StockWriteResult {
        reference,
        at: ctx.now.to_string(),
        changes,
    })
}

pub fn record_adjustment(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    request: &AdjustmentRequest,
) -> Result<StockWriteResult, StoreError> {
    let item = catalog::resolve(
        conn,
        "item",
        request.sku.as_deref(),
        request.gtin.as_deref(),
    )?;
    if request.delta == 0 {
        return Err(StoreError::unprocessable("delta", "must not be zero"));
    }
    let reason = request.reason.trim();
    if reason.is_empty() || reason.len() > 200 {
        return Err(StoreError::unprocessable(
            "reason",
            "say why, in 1 to 200 characters",
        ));
    }
    let reference = next_reference(conn, ctx, "ADJ")?;
    let on_hand = movement(
        conn,
        ctx,
        &item.sku,
        MovementKind::Adjustment,
        request.delta,
        reason,
        &reference,
    )?;
    Ok(StockWriteResult {
        reference,
        at: ctx.now.to_string(),
        changes: vec![StockChange {
            sku: item.sku,
            delta: request.delta,
            on_hand,
        }],
    })
}

fn movement(
    conn: &Connection,
    ctx: &WriteContext<'_>,
    sku: &str,
    kind: MovementKind,
    delta: i64,
    ref_type: &str,
    reference: &str,
) -> Result<i64, StoreError> {
    let level = ledger::record(
        conn,
        &Movement {
            sku,
            kind,
            on_hand_delta: delta,
            reserved_delta: 0,
            ref_type,
            ref_id: reference,
            terminal: ctx.terminal,
        },
        ctx.now,
    )?;
    Ok(level.on_hand)
}
