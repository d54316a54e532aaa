//! Human renderings of the control socket's reports (the `--json` form prints them as is).

use std::fmt::Write;

use super::style::{Style, human_bytes, human_duration};
use crate::control::protocol::{
    BackupReport, ComponentView, DbCheckReport, StatusReport, SyncReport,
};
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
        human_duration(report.uptime_seconds)
    );
    let _ = writeln!(
        out,
        "  store     {} / {} (tenant {})",
        report.store_id, report.node_id, report.tenant
    );
    let _ = writeln!(out, "  api       http://{}", report.listen);
    let _ = writeln!(
        out,
        "  database  {} ({})",
        report.db_path.display(),
        human_bytes(report.db_bytes)
    );
    let sync = match (report.sync_configured, report.outbox) {
        (false, _) => style.dim("not configured"),
        (true, Some(n)) => format!("configured · outbox {n}"),
        (true, None) => "configured".to_string(),
    };
    let _ = writeln!(out, "  sync      {sync}");
    out.push_str(&components(&report.components, style));
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

pub fn components(components: &BTreeMap<String, ComponentView>, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.heading("components"));
    if components.is_empty() {
        let _ = writeln!(out, "  {}", style.dim("none reported"));
    }
    let width = components.keys().map(String::len).max().unwrap_or(0);
    for (name, c) in components {
        let critical = if c.critical { " (critical)" } else { "" };
        let _ = writeln!(
            out,
            "  {name:<width$}  {:<8}  {}{critical}  {}",
            style.state(&c.state),
            c.detail,
            style.dim(&format!("since {}", c.since))
        );
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
        human_bytes(report.bytes),
        style.state(&report.quick_check),
        report.elapsed_ms
    )
}

pub fn sync(report: &SyncReport, style: Style) -> String {
    if !report.configured {
        return "sync not configured (no [sync] section: this store runs standalone)\n".into();
    }
    let mut out = String::new();
    out.push_str(&components(&report.components, style));
    let _ = writeln!(out, "{}", style.heading("sync metrics"));
    if report.metrics.is_empty() {
        let _ = writeln!(out, "  {}", style.dim("none reported yet"));
    }
    for (name, value) in &report.metrics {
        let label = name.trim_start_matches("storenode_sync_");
        let _ = writeln!(out, "  {label:<28} {value}");
    }
    match &report.details {
        Some(details) => {
            let _ = writeln!(out, "{}", style.heading("documents"));
            let pretty = serde_json::to_string_pretty(details).unwrap_or_default();
            for line in pretty.lines() {
                let _ = writeln!(out, "  {line}");
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
    out
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
