//! Reads the `epcis_event` log (and a sale's lines) into [`EventRow`]s. The only part of
//! the EPCIS module that touches the database; the mapping itself is pure.

use rusqlite::{Connection, params};

use super::event::{EventKind, EventRow, SaleLine};
use crate::store::StoreError;

/// Which rows: `seq > after`, `from <= at < to` (normalised UTC text), at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub after: i64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: u32,
}

/// Log rows in `seq` order. An unknown kind (written by a newer binary) is skipped with a
/// warning, not an error: the rest of the log stays readable.
pub fn rows(conn: &Connection, filter: &Filter) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, e.kind, e.source_id, e.at, e.sku,
                COALESCE(e.gtin14, (SELECT MIN(g.gtin14) FROM item_gtin g WHERE g.sku = e.sku)),
                e.quantity, e.epc, e.reader, e.antenna
           FROM epcis_event e
          WHERE e.seq > ?1 AND (?2 IS NULL OR e.at >= ?2) AND (?3 IS NULL OR e.at < ?3)
          ORDER BY e.seq LIMIT ?4",
    )?;
    let raw = stmt
        .query_map(
            params![filter.after, filter.from, filter.to, filter.limit],
            |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    EventRow {
                        seq: r.get(0)?,
                        kind: EventKind::Receipt,
                        source_id: r.get(2)?,
                        at: r.get(3)?,
                        sku: r.get(4)?,
                        gtin14: r.get(5)?,
                        quantity: r.get(6)?,
                        epc: r.get(7)?,
                        reader: r.get(8)?,
                        antenna: r.get(9)?,
                        lines: Vec::new(),
                    },
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(raw.len());
    for (kind, mut row) in raw {
        match EventKind::parse(&kind) {
            Ok(k) => row.kind = k,
            Err(e) => {
                tracing::warn!(seq = row.seq, error = %e, "EPCIS log row skipped");
                continue;
            }
        }
        if row.kind == EventKind::Sale {
            row.lines = sale_lines(conn, row.source_id)?;
        }
        out.push(row);
    }
    Ok(out)
}

/// One page of the export: up to `limit` events, the facts in its range that have no event
/// (items without GTIN), and the cursor of the next page if there are more events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub events: Vec<serde_json::Value>,
    pub facts_without_gtin: usize,
    /// `Some(seq)`: more events follow; ask again with `after = seq`.
    pub next_after: Option<i64>,
}

/// Fills a page with `filter.limit` *events* (rows that map to none are skipped and counted,
/// not left to make the page short), reading on until one event more than the page or the
/// end of the log: a page is short only when it is the last, and only a page with events
/// after it has a next cursor.
pub fn page(
    conn: &Connection,
    filter: &Filter,
    build: &dyn Fn(&EventRow) -> Option<serde_json::Value>,
) -> Result<Page, StoreError> {
    let want = filter.limit as usize;
    let chunk = filter.limit.saturating_add(1);
    let mut page = Page::default();
    // Rows without event since the last event taken: this page's only if no event follows.
    let mut pending = 0;
    let mut last_taken = None;
    let mut cursor = filter.after;
    loop {
        let got = rows(
            conn,
            &Filter {
                after: cursor,
                limit: chunk,
                ..filter.clone()
            },
        )?;
        let exhausted = got.len() < chunk as usize;
        for row in &got {
            cursor = row.seq;
            let Some(event) = build(row) else {
                pending += 1;
                continue;
            };
            if page.events.len() == want {
                page.next_after = last_taken;
                return Ok(page);
            }
            page.events.push(event);
            page.facts_without_gtin += std::mem::take(&mut pending);
            last_taken = Some(row.seq);
        }
        if exhausted || got.is_empty() {
            page.facts_without_gtin += pending;
            return Ok(page);
        }
    }
}

fn sale_lines(conn: &Connection, sale_id: i64) -> Result<Vec<SaleLine>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT COALESCE(l.gtin14, (SELECT MIN(g.gtin14) FROM item_gtin g WHERE g.sku = l.sku)),
                l.quantity, l.unit, l.epc
           FROM sale_line l WHERE l.sale_id = ?1 ORDER BY l.line_no",
    )?;
    let lines = stmt
        .query_map([sale_id], |r| {
            Ok(SaleLine {
                gtin14: r.get(0)?,
                quantity: r.get(1)?,
                unit: r.get(2)?,
                epc: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines)
}

/// The highest `seq` HQ has acknowledged (0 when none).
pub fn acked(conn: &Connection) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM epcis_ack", [], |r| {
            r.get(0)
        })?,
    )
}

/// Records HQ's acknowledgement; never moves the mark backwards (a stale retained ack).
pub fn set_acked(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO epcis_ack (id, seq) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        [seq],
    )?;
    Ok(())
}

/// The highest `seq` in the log (0 when empty).
pub fn last_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM epcis_event", [], |r| {
            r.get(0)
        })?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::memory_db;

    fn exec(conn: &Connection, sql: &str) {
        conn.execute_batch(sql).unwrap();
    }

    fn seed(conn: &Connection) {
        exec(
            conn,
            "INSERT INTO item VALUES ('MUG','Mug',500,'EUR','std',0,'t');
             INSERT INTO item_gtin VALUES ('04012345000108','MUG');
             INSERT INTO stock_movement (sku, kind, on_hand_delta, ref_type, ref_id, terminal, at)
               VALUES ('MUG','receipt',10,'receipt','DN-1','pos1','2026-01-01T10:00:00.000Z');
             INSERT INTO stock_level VALUES ('MUG',10,0,'t');
             INSERT INTO stock_movement (sku, kind, on_hand_delta, ref_type, ref_id, terminal, at)
               VALUES ('MUG','count',-3,'count','C-1','pos1','2026-01-01T11:00:00.000Z');
             UPDATE stock_level SET on_hand = 7;
             INSERT INTO stock_movement (sku, kind, on_hand_delta, ref_type, ref_id, terminal, at)
               VALUES ('MUG','adjustment',-1,'adjustment','A-1','pos1','2026-01-01T11:30:00.000Z');
             INSERT INTO sale VALUES (1,'s.n-000001','pos1','2026-01-01T12:00:00.000Z','EUR',1000,0,1000,0);
             INSERT INTO sale_line VALUES (1,1,'MUG',NULL,'Mug',1,'piece',500,500,'std',0,0,NULL);
             INSERT INTO sale_line VALUES (1,2,'MUG','04012345000108','Mug',1,'piece',500,500,'std',0,0,'3074257BF7194E4000001A85');",
        );
    }

    #[test]
    fn triggers_log_receipts_counts_and_sales_but_not_adjustments() {
        let conn = memory_db();
        seed(&conn);
        let all = rows(
            &conn,
            &Filter {
                limit: 100,
                ..Filter::default()
            },
        )
        .unwrap();
        let kinds: Vec<_> = all.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Receipt, EventKind::Count, EventKind::Sale]
        );
        assert_eq!(all[0].quantity, Some(10));
        // The count's quantity is what was counted: 10 on hand − 3.
        assert_eq!(all[1].quantity, Some(7));
        assert_eq!(all[1].gtin14.as_deref(), Some("04012345000108"));
        assert_eq!(all[2].lines.len(), 2);
        // A line sold by SKU gets the catalog's GTIN.
        assert_eq!(all[2].lines[0].gtin14.as_deref(), Some("04012345000108"));
    }

    #[test]
    fn time_window_and_cursor_filter() {
        let conn = memory_db();
        seed(&conn);
        let f = Filter {
            after: 0,
            from: Some("2026-01-01T10:30:00.000Z".into()),
            to: Some("2026-01-01T12:00:00.000Z".into()),
            limit: 100,
        };
        let got = rows(&conn, &f).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, EventKind::Count);
        let after = rows(
            &conn,
            &Filter {
                after: got[0].seq,
                limit: 100,
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].kind, EventKind::Sale);
    }

    #[test]
    fn tag_enters_are_logged_except_sold_items_and_leaves() {
        let conn = memory_db();
        exec(
            &conn,
            "INSERT INTO epc_item (epc, scheme, state) VALUES ('AA', 'unknown', 'in_store'), ('BB', 'unknown', 'sold');
             INSERT INTO tag_event (reader, antenna, at, kind, epc, reads, exit_alert) VALUES
               ('r0', 1, '2026-01-01T10:00:00.000Z', 'enter', 'AA', 1, 0),
               ('r0', 1, '2026-01-01T10:00:01.000Z', 'leave', 'AA', 1, 0),
               ('r0', 1, '2026-01-01T10:00:02.000Z', 'enter', 'BB', 1, 0),
               ('door', 2, '2026-01-01T10:00:03.000Z', 'enter', 'AA', 1, 1);",
        );
        let got = rows(
            &conn,
            &Filter {
                limit: 10,
                ..Filter::default()
            },
        )
        .unwrap();
        let kinds: Vec<_> = got.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [EventKind::TagRead, EventKind::ExitAlert]);
        assert_eq!(got[1].reader.as_deref(), Some("door"));
        assert_eq!(got[1].antenna, Some(2));
    }

    /// A log of `n` receipts, every third of an item without GTIN (no event).
    fn receipts(conn: &Connection, n: usize) {
        exec(
            conn,
            "INSERT INTO item VALUES ('MUG','Mug',500,'EUR','std',0,'t');
             INSERT INTO item_gtin VALUES ('04012345000108','MUG');
             INSERT INTO item VALUES ('BAG','Bag',10,'EUR','std',0,'t');
             INSERT INTO stock_level VALUES ('MUG',0,0,'t'), ('BAG',0,0,'t');",
        );
        for i in 0..n {
            let sku = if i % 3 == 2 { "BAG" } else { "MUG" };
            conn.execute(
                "INSERT INTO stock_movement (sku, kind, on_hand_delta, ref_type, ref_id, terminal, at)
                 VALUES (?1,'receipt',1,'receipt',?2,'pos1','2026-01-01T10:00:00.000Z')",
                params![sku, format!("DN-{i}")],
            )
            .unwrap();
        }
    }

    fn build(row: &EventRow) -> Option<serde_json::Value> {
        row.gtin14.as_ref().map(|_| serde_json::json!(row.seq))
    }

    #[test]
    fn pages_are_full_until_the_last_and_only_a_page_with_more_links_on() {
        let conn = memory_db();
        // 27 facts, 18 with an event: pages of 9 are 9 and 9 events, the second without a
        // next cursor (before: a page of 9 rows held 6 events and every page linked on).
        receipts(&conn, 27);
        let mut after = 0;
        let mut pages = Vec::new();
        for _ in 0..10 {
            let p = page(
                &conn,
                &Filter {
                    after,
                    limit: 9,
                    ..Filter::default()
                },
                &build,
            )
            .unwrap();
            pages.push((p.events.len(), p.facts_without_gtin, p.next_after.is_some()));
            match p.next_after {
                Some(next) => after = next,
                None => break,
            }
        }
        assert_eq!(pages, [(9, 4, true), (9, 5, false)]);
        // A limit that divides the events exactly: the last full page has no next link.
        let all = page(
            &conn,
            &Filter {
                limit: 18,
                ..Filter::default()
            },
            &build,
        )
        .unwrap();
        assert_eq!(
            (all.events.len(), all.facts_without_gtin, all.next_after),
            (18, 9, None)
        );
        let short = page(
            &conn,
            &Filter {
                limit: 1000,
                ..Filter::default()
            },
            &build,
        )
        .unwrap();
        assert_eq!((short.events.len(), short.next_after), (18, None));
    }

    #[test]
    fn ack_mark_never_moves_back() {
        let conn = memory_db();
        assert_eq!(acked(&conn).unwrap(), 0);
        set_acked(&conn, 5).unwrap();
        set_acked(&conn, 3).unwrap();
        assert_eq!(acked(&conn).unwrap(), 5);
    }
}
