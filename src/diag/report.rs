//! Human renderings of the control socket's reports (the `--json` form prints them as is).

use std::fmt::Write;

use super::style::{Style, WIDTH, human_since, human_since_ms, wrap};
use crate::control::protocol::{
    BackupReport, ComponentView, DbCheckReport, StatusReport, SyncReport,
};
use crate::human;
use std::collections::BTreeMap;

/// Metrics shown by `diag status` (the rest are in `--json` and `/metrics`).
const STATUS_METRICS: &[(&str, &str)] = &[
    ("storenode_sales_total", "sales"),
    ("storenode_returns_total", "returns"),
    ("storenode_stock_writes_total", "stock writes"),
    ("storenode_order_writes_total", "order writes"),
    ("storenode_write_errors_total", "write errors"),
    (
        "storenode_writes_refused_disk_total",
        "writes refused (disk)",
    ),
    ("storenode_auth_failures_total", "auth failures"),
];

pub fn status(report: &StatusReport, style: Style) -> String {
    status_at(report, style, time::OffsetDateTime::now_utc())
}

fn status_at(report: &StatusReport, style: Style, now: time::OffsetDateTime) -> String {
    let mut out = String::new();
    let ready = if report.ready {
        style.good("ready")
    } else {
        style.bad("NOT READY")
    };
    let _ = writeln!(
        out,
        "{} {} · {} · up {}",
        style.heading("storenode"),
        report.version,
        ready,
        human::duration(report.uptime_seconds)
    );
    for (name, c) in &report.components {
        if c.critical && c.state == "down" {
            out.push_str(&wrap(
                &format!("  {}  ", style.bad("why")),
                7,
                &format!("{name}: {}", c.detail),
                7,
            ));
        }
    }
    let line = |out: &mut String, label: &str, text: &str| {
        out.push_str(&wrap(&format!("  {label:<9} "), 12, text, 12));
    };
    line(
        &mut out,
        "store",
        &format!(
            "{} / {} (tenant {})",
            report.store_id, report.node_id, report.tenant
        ),
    );
    line(&mut out, "api", &format!("http://{}", report.listen));
    line(
        &mut out,
        "database",
        &format!(
            "{} ({})",
            report.db_path.display(),
            human::bytes(report.db_bytes)
        ),
    );
    for (label, text) in vital_lines(&report.metrics) {
        line(&mut out, label, &text);
    }
    let sync = match (report.sync_configured, report.outbox) {
        (false, _) => style.dim("not configured"),
        (true, Some(n)) => format!("configured · outbox {n}"),
        (true, None) => "configured".to_string(),
    };
    line(&mut out, "sync", &sync);
    out.push_str(&components_at(&report.components, style, now));
    let _ = writeln!(out, "{}", style.heading("metrics"));
    for (name, label) in STATUS_METRICS {
        if let Some(value) = report.metrics.get(*name) {
            let _ = writeln!(out, "  {label:<22} {value}");
        }
    }
    if let Some(count) = report.metrics.get("storenode_write_duration_seconds_count")
        && *count > 0.0
        && let Some(sum) = report.metrics.get("storenode_write_duration_seconds_sum")
    {
        let _ = writeln!(
            out,
            "  {:<22} {:.2} ms",
            "mean write latency",
            sum / count * 1000.0
        );
    }
    out
}

/// Free disk, certificate and clock, from the metrics the node reports.
fn vital_lines(metrics: &BTreeMap<String, f64>) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    if let Some(free) = metrics.get("storenode_disk_free_bytes") {
        lines.push(("disk", format!("{} free", human::bytes(*free as u64))));
    }
    if let Some(days) = metrics.get("storenode_certificate_days_left") {
        let days = *days as i64;
        let text = if days < 0 {
            format!("client certificate EXPIRED {} days ago", -days)
        } else {
            format!("client certificate expires in {days} days")
        };
        lines.push(("cert", text));
    }
    let synchronized = metrics.get("storenode_clock_synchronized");
    let offset = metrics.get("storenode_clock_offset_milliseconds");
    if synchronized.is_some() || offset.is_some() {
        let mut text = match synchronized {
            Some(s) if *s > 0.0 => "NTP synchronized".to_string(),
            Some(_) => "NOT synchronized (NTP)".to_string(),
            None => "NTP state unknown".to_string(),
        };
        if let Some(ms) = offset {
            text.push_str(&format!(", offset {ms} ms"));
        }
        lines.push(("clock", text));
    }
    lines
}

pub fn components(components: &BTreeMap<String, ComponentView>, style: Style) -> String {
    components_at(components, style, time::OffsetDateTime::now_utc())
}

/// One component per entry: name, state, since when, then its detail wrapped to 80 columns.
fn components_at(
    components: &BTreeMap<String, ComponentView>,
    style: Style,
    now: time::OffsetDateTime,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.heading("components"));
    if components.is_empty() {
        let _ = writeln!(out, "  {}", style.dim("none reported"));
    }
    let width = components
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .min(24);
    for (name, c) in components {
        let critical = if c.critical { ", critical" } else { "" };
        let pad = " ".repeat(8usize.saturating_sub(c.state.len()));
        let first = format!("  {name:<width$}  {}{pad}  ", style.state(&c.state));
        let text = format!(
            "{} (since {}{critical})",
            c.detail,
            human_since(&c.since, now)
        );
        out.push_str(&wrap(&first, width + 14, &text, width + 4));
    }
    out
}

pub fn db_check(report: &DbCheckReport, style: Style) -> String {
    let mut out = String::new();
    let integrity = if report.integrity == ["ok"] {
        style.good("ok")
    } else {
        style.bad(&report.integrity.join("; "))
    };
    let _ = writeln!(out, "integrity check  {integrity}");
    let ledger = if report.ledger_mismatches.is_empty() {
        style.good("ok (every stock level equals the sum of its movements)")
    } else {
        style.bad(&format!(
            "{} SKU(s) differ from their ledger: {}",
            report.ledger_mismatches.len(),
            report.ledger_mismatches.join(", ")
        ))
    };
    let _ = writeln!(out, "ledger check     {ledger}");
    let verdict = if report.ok {
        style.good("database is sound")
    } else {
        style.bad("database has problems: take a backup, then call support")
    };
    let _ = writeln!(out, "{verdict} ({} ms)", report.elapsed_ms);
    out
}

pub fn backup(report: &BackupReport, style: Style) -> String {
    format!(
        "backup written to {} ({}), quick_check {} ({} ms)\n",
        report.path.display(),
        human::bytes(report.bytes),
        style.state(&report.quick_check),
        report.elapsed_ms
    )
}

pub fn sync(report: &SyncReport, style: Style) -> String {
    sync_at(report, style, time::OffsetDateTime::now_utc())
}

fn sync_at(report: &SyncReport, style: Style, now: time::OffsetDateTime) -> String {
    if !report.configured {
        return "sync not configured (no [sync] section: this store runs standalone)\n".into();
    }
    let mut out = String::new();
    if let Some(link) = report.components.get("sync") {
        let word = if link.state == "ok" {
            style.good("online")
        } else {
            style.warn("offline")
        };
        let _ = writeln!(
            out,
            "{} {word} since {}",
            style.heading("sync"),
            human_since(&link.since, now)
        );
        out.push_str(&wrap("  ", 2, &link.detail, 2));
    }
    let line = |out: &mut String, label: &str, text: &str| {
        out.push_str(&wrap(&format!("  {label:<14} "), 17, text, 17));
    };
    match &report.details {
        Some(details) => {
            for (label, text) in detail_lines(details, now) {
                line(&mut out, label, &text);
            }
        }
        None => {
            let _ = writeln!(
                out,
                "  {}",
                style.dim("heads and lag: not reported by this build's sync module")
            );
        }
    }
    let _ = writeln!(out, "{}", style.heading("sync metrics"));
    if report.metrics.is_empty() {
        let _ = writeln!(out, "  {}", style.dim("none reported yet"));
    }
    for (name, value) in &report.metrics {
        let label = name.trim_start_matches("storenode_sync_");
        let label: String = label.chars().take(WIDTH - 20).collect();
        let _ = writeln!(out, "  {label:<40} {value}");
    }
    out
}

/// The sync module's report as labelled lines: human times, short heads, no raw JSON.
fn detail_lines(
    details: &serde_json::Value,
    now: time::OffsetDateTime,
) -> Vec<(&'static str, String)> {
    let get = |key: &str| details.get(key);
    let number = |key: &str| get(key).and_then(serde_json::Value::as_i64);
    let mut lines = Vec::new();
    if let Some(docs) = get("documents").and_then(|d| d.as_str()) {
        let text = match number("documents_load_ms") {
            Some(ms) => format!("{docs} in {ms} ms"),
            None => docs.to_string(),
        };
        lines.push(("documents", text));
    }
    if let Some(online) = get("hq_online").and_then(serde_json::Value::as_bool) {
        lines.push(("HQ", if online { "online" } else { "offline" }.to_string()));
    }
    if let Some(n) = number("outbox_pending") {
        lines.push(("outbox", format!("{n} change(s) waiting for HQ")));
    }
    if let Some(n) = number("lag_changes_behind_hq") {
        lines.push(("HQ lacks", format!("{n} of our change(s)")));
    }
    match number("last_hq_ack_ms") {
        Some(ms) => lines.push(("last HQ ack", human_since_ms(ms, now))),
        None if get("last_hq_ack_ms").is_some() => lines.push(("last HQ ack", "never".into())),
        None => {}
    }
    if let Some(epoch) = number("epoch") {
        lines.push(("epoch", epoch.to_string()));
    }
    for (key, label) in [
        ("stock_heads", "our heads"),
        ("hq_stock_heads", "HQ's heads"),
    ] {
        if let Some(heads) = get(key).and_then(serde_json::Value::as_array) {
            let short: Vec<String> = heads
                .iter()
                .filter_map(|h| h.as_str())
                .map(|h| h.chars().take(8).collect())
                .collect();
            let text = if short.is_empty() {
                "none".to_string()
            } else {
                short.join(" ")
            };
            lines.push((label, text));
        }
    }
    if let (Some(i), Some(o)) = (number("bytes_in"), number("bytes_out")) {
        lines.push((
            "traffic",
            format!(
                "{} in, {} out",
                human::bytes(i.unsigned_abs()),
                human::bytes(o.unsigned_abs())
            ),
        ));
    }
    if let (Some(r), Some(d)) = (number("rejected"), number("denied")) {
        lines.push(("refused", format!("{r} rejected, {d} denied by the broker")));
    }
    for peer in get("reoffers")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let n = |key: &str| {
            peer.get(key)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        let name = peer.get("peer").and_then(|p| p.as_str()).unwrap_or("?");
        lines.push((
            "re-offering",
            format!(
                "{name} lacks {}, {} re-offer(s), next in {} s",
                n("lacking"),
                n("reoffers"),
                n("next_in_ms").div_ceil(1000)
            ),
        ));
    }
    if let Some(retired) = get("retired_lanes").and_then(serde_json::Value::as_array)
        && !retired.is_empty()
    {
        let names: Vec<&str> = retired.iter().filter_map(|r| r.as_str()).collect();
        lines.push(("retired lanes", names.join(" ")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfigured_sync_says_so() {
        let report = SyncReport {
            configured: false,
            components: BTreeMap::new(),
            metrics: BTreeMap::new(),
            details: None,
        };
        assert!(sync(&report, Style::plain()).starts_with("sync not configured"));
    }

    #[test]
    fn sync_says_offline_since_in_human_time_within_80_columns() {
        let now = time::macros::datetime!(2026-12-06 17:05 UTC);
        let link = ComponentView {
            state: "degraded".into(),
            detail: "offline, sales continue; 12 change(s) queued".into(),
            since: "2026-12-06T14:02:11.000Z".into(),
            critical: false,
        };
        let report = SyncReport {
            configured: true,
            components: BTreeMap::from([("sync".to_string(), link)]),
            metrics: BTreeMap::from([(
                "storenode_sync_outbox_pending_changes_with_a_rather_long_metric_name".into(),
                12.0,
            )]),
            details: Some(serde_json::json!({
                "connected": false, "hq_online": false, "epoch": 0,
                "stock_heads": ["0123456789abcdef0123456789abcdef"], "hq_stock_heads": [],
                "outbox_pending": 12, "lag_changes_behind_hq": 3,
                "last_hq_ack_ms": 1_796_569_320_000_i64, "bytes_in": 2048, "bytes_out": 4096,
                "rejected": 0, "denied": 0, "documents": "loaded", "documents_load_ms": 40
            })),
        };
        let text = sync_at(&report, Style::plain(), now);
        assert!(text.starts_with("sync offline since 14:02 (3 h)"), "{text}");
        assert!(text.contains("last HQ ack    15:02 (2 h)"), "{text}");
        assert!(text.contains("01234567\n"), "{text}");
        assert!(
            !text.contains('{') && !text.contains("1796569320000"),
            "{text}"
        );
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{line:?}");
        }
    }

    #[test]
    fn failed_check_is_spelled_out() {
        let report = DbCheckReport {
            integrity: vec!["ok".into()],
            ledger_mismatches: vec!["MILK".into()],
            ok: false,
            elapsed_ms: 3,
        };
        let text = db_check(&report, Style::plain());
        assert!(
            text.contains("1 SKU(s) differ from their ledger: MILK"),
            "{text}"
        );
        assert!(text.contains("database has problems"), "{text}");
    }
}
