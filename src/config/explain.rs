//! `storenode config check`: the effective configuration in words, secrets redacted.

use std::fmt::Write;

use super::Config;

pub fn render(config: &Config) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "configuration {} is valid", config.file.display());
    let node = &config.node;
    let _ = writeln!(
        out,
        "  node      tenant {} · store {} · node {} (writer {})",
        node.tenant,
        node.store_id,
        node.node_id,
        node.writer_id()
    );
    let _ = writeln!(
        out,
        "  time zone {} (EPCIS eventTimeZoneOffset; times are stored in UTC)",
        node.time_zone.iana_name().unwrap_or("UTC")
    );
    let _ = writeln!(out, "  data      {}", node.data_dir.display());
    let _ = writeln!(
        out,
        "  database  {} (group commit up to {} writes per fsync)",
        config.database.path.display(),
        config.database.max_batch
    );
    let _ = writeln!(
        out,
        "  api       http://{} · body limit {} bytes · timeout {} ms",
        config.api.listen, config.api.max_body_bytes, config.api.request_timeout_ms
    );
    if config.api.terminals.is_empty() {
        let _ = writeln!(
            out,
            "  terminals none: every /v1 call will be refused (401)"
        );
    }
    for terminal in &config.api.terminals {
        let _ = writeln!(
            out,
            "  terminal  {} (token {})",
            terminal.id, terminal.token
        );
    }
    let tax = &config.tax;
    let classes: Vec<String> = tax
        .classes
        .iter()
        .map(|(name, bp)| format!("{name} {}.{:02} %", bp / 100, bp % 100))
        .collect();
    let _ = writeln!(
        out,
        "  tax       prices {} tax · {}",
        if tax.prices_include_tax {
            "include"
        } else {
            "exclude"
        },
        classes.join(", ")
    );
    let _ = writeln!(
        out,
        "  log       level {} · format {:?}",
        config.log.level, config.log.format
    );
    out
}
