//! HQ's memory with a day of history per store (`--day N`): the real `storenode hq` binary
//! is given N changes per store (each a 3-line sale, one automerge change, as `sim.rs`
//! makes them; N = 4,320 is a store committing every 10 s through a 12-hour day), and its
//! RSS is read from `/proc` before, after the day, and after HQ cut every store's epoch
//! (`POST /v1/epochs/{store}`, what the daily timer does). With `--documents-in-memory` below
//! the number of stores, the LRU's bound shows in the same figures.

use std::path::Path;
use std::time::{Duration, Instant};

use super::infra::{self, Broker, HqProcess};
use super::sim::Sim;
use super::{BenchResult, mib, verify_figures};

/// What one memory run is.
pub struct Run {
    pub name: &'static str,
    pub stores: usize,
    pub per_store: usize,
    pub per_message: usize,
    pub documents_in_memory: Option<usize>,
}

/// What it measured.
pub struct Row {
    name: &'static str,
    stores: usize,
    per_store: usize,
    documents_in_memory: Option<usize>,
    /// (VmRSS, VmHWM) after the warm-up, after the day, after the epoch cut.
    before: (u64, u64),
    after_day: (u64, u64),
    after_cut: (u64, u64),
    day_secs: f64,
    /// HQ's CPU over the day, per change.
    cpu_ms_per_change: f64,
    /// Each store's epoch cut as `POST /v1/epochs/{store}` took, sorted; HQ's CPU for all.
    cut_ms: Vec<f64>,
    cut_cpu: Duration,
    db_bytes: u64,
}

pub async fn run(run: &Run, bin: &Path, database: Option<&str>) -> BenchResult<Row> {
    eprintln!(
        "== {}: {} stores x {} changes",
        run.name, run.stores, run.per_store
    );
    let broker = Broker::start()?;
    let hq = tokio::task::block_in_place(|| {
        HqProcess::start(bin, broker.addr, database, run.documents_in_memory)
    })?;
    let db_bytes = || -> BenchResult<u64> {
        match database {
            Some(url) => infra::pg_size(url),
            None => Ok(hq.sqlite_bytes()),
        }
    };
    let sim = Sim::start(run.stores, broker.addr).await?;
    // Every store's first change: HQ knows every store before the day starts.
    sim.run(run.stores as f64 * 4.0, Duration::from_millis(250), None)
        .await?;
    sim.drain(Duration::from_secs(120)).await?;
    let before = hq.rss();
    let size_before = db_bytes()?;
    let cpu_before = infra::cpu_of(hq.pid());
    let started = Instant::now();
    sim.day(run.per_store, run.per_message).await?;
    sim.drain(Duration::from_secs(3600)).await?;
    let day_secs = started.elapsed().as_secs_f64();
    let day_cpu = infra::cpu_of(hq.pid()).saturating_sub(cpu_before);
    let after_day = hq.rss();
    verify_figures(&sim, std::slice::from_ref(&hq)).await?;
    let client = reqwest::Client::new();
    let mut cut_ms = Vec::new();
    let cpu_before_cut = infra::cpu_of(hq.pid());
    for (store, _) in sim.committed_by_store() {
        let cut_started = Instant::now();
        let reply = client
            .post(format!("{}/v1/epochs/{store}", hq.base))
            .bearer_auth(infra::TOKEN)
            .send()
            .await?;
        if !reply.status().is_success() {
            return Err(format!("epoch cut of {store}: {}", reply.status()).into());
        }
        cut_ms.push(cut_started.elapsed().as_secs_f64() * 1000.0);
    }
    let cut_cpu = infra::cpu_of(hq.pid()).saturating_sub(cpu_before_cut);
    cut_ms.sort_by(f64::total_cmp);
    let after_cut = hq.rss();
    let size_after = db_bytes()?;
    eprintln!(
        "  day in {day_secs:.0} s; RSS {:.0} -> {:.0} MiB (peak {:.0}), after the cut {:.0} MiB",
        mib(before.0),
        mib(after_day.0),
        mib(after_day.1),
        mib(after_cut.0)
    );
    sim.stop();
    tokio::task::block_in_place(|| hq.stop());
    drop(broker);
    Ok(Row {
        name: run.name,
        stores: run.stores,
        per_store: run.per_store,
        documents_in_memory: run.documents_in_memory,
        before,
        after_day,
        after_cut,
        day_secs,
        cpu_ms_per_change: day_cpu.as_secs_f64() * 1000.0
            / (run.stores * run.per_store).max(1) as f64,
        cut_ms,
        cut_cpu,
        db_bytes: size_after.saturating_sub(size_before),
    })
}

pub fn print(rows: &[Row]) {
    println!();
    println!(
        "| configuration | stores x changes | documents_in_memory | RSS before | RSS after the day (peak) | RSS after the epoch cut | MiB per store-day in memory | day fed in | HQ CPU ms per change | epoch cut per store: p50 / p99 / HQ CPU | DB grew by |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let per_store = r.after_day.0.saturating_sub(r.before.0) as f64 / r.stores.max(1) as f64;
        println!(
            "| {} | {} x {} | {} | {:.0} MiB | {:.0} MiB ({:.0}) | {:.0} MiB | {:.2} | {:.0} s | {:.3} | {:.0} / {:.0} / {:.0} ms | {:.0} MiB |",
            r.name,
            r.stores,
            r.per_store,
            r.documents_in_memory
                .map_or_else(|| "default".to_owned(), |n| n.to_string()),
            mib(r.before.0),
            mib(r.after_day.0),
            mib(r.after_day.1),
            mib(r.after_cut.0),
            mib(per_store as u64),
            r.day_secs,
            r.cpu_ms_per_change,
            quantile(&r.cut_ms, 0.5),
            quantile(&r.cut_ms, 0.99),
            r.cut_cpu.as_secs_f64() * 1000.0 / r.cut_ms.len().max(1) as f64,
            mib(r.db_bytes),
        );
    }
}

/// The `q` quantile of sorted `values` (nearest rank); 0 for none.
fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
