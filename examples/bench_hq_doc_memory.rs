//! What one store's stock document holds in HQ's memory after a day (issue 20): the heap a
//! `SyncDoc` keeps, counted by this example's own allocator, as HQ builds it (changes applied
//! in batches as they arrive) and as HQ loads it (from a save). Not a test: it prints a table.
//!
//! ```sh
//! cargo run --release --example bench_hq_doc_memory                 # 4,320 changes
//! cargo run --release --example bench_hq_doc_memory -- 4320 100     # changes, per batch
//! ```
//!
//! The changes are the ones `bench_hq_scale --day` sends: a 3-line sale over 1,000 SKUs plus
//! the `BENCH-SEQ` counter line, one automerge change each, made by one lane's `StockDoc`.
//! For where the bytes are inside automerge, run it under heaptrack with `STOP_HERE=1`
//! (the document is leaked at the end, so `heaptrack_print --print-leaks` attributes it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use storenode::crdt::doc::{DocId, DocKind, SyncDoc, WriterId};
use storenode::crdt::stock::{Movement, StockDoc};

/// The system allocator, counting the bytes live (what a heap profile would show).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const SKUS: u64 = 1_000;

fn live() -> (usize, usize) {
    (LIVE.load(Ordering::Relaxed), BLOCKS.load(Ordering::Relaxed))
}

/// The heap `build` leaves behind, in bytes and blocks, with what it built.
fn measured<T>(build: impl FnOnce() -> BenchResult<T>) -> BenchResult<(T, usize, usize)> {
    let (bytes, blocks) = live();
    let value = build()?;
    let (bytes_after, blocks_after) = live();
    Ok((
        value,
        bytes_after.saturating_sub(bytes),
        blocks_after.saturating_sub(blocks),
    ))
}

/// One lane's day: `n` changes as `bench_hq_scale`'s simulated store makes them.
fn day(n: usize) -> BenchResult<Vec<Vec<u8>>> {
    let mut doc = StockDoc::genesis("s00001", 0, WriterId::new("s00001.lane1")?)?;
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15 ^ 2;
    let mut changes = Vec::with_capacity(n);
    let start_ms: i64 = 1_796_000_000_000;
    for i in 0..n {
        let mut lines: Vec<Movement> = (0..3)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                Movement {
                    sku: format!("SKU-{:04}", rng % SKUS),
                    delta: -1,
                }
            })
            .collect();
        lines.push(Movement {
            sku: "BENCH-SEQ".to_owned(),
            delta: 1,
        });
        let at_ms = start_ms + i64::try_from(i)? * 10_000;
        let change = doc
            .apply_movements(&lines, at_ms)?
            .ok_or("the counter line always changes the document")?;
        changes.push(change.bytes);
    }
    Ok(changes)
}

fn kib(bytes: usize) -> f64 {
    bytes as f64 / 1024.0
}

fn main() -> BenchResult<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(4_320), |a| a.parse())?;
    let per_batch: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let changes = day(n)?;
    let change_bytes: usize = changes.iter().map(Vec::len).sum();
    let id = DocId::new("s00001", DocKind::Stock)?;
    let hq = WriterId::hq();

    let (genesis, genesis_bytes, _) = measured(|| Ok(SyncDoc::genesis(&id, 0, hq.clone())?))?;
    let (applied, applied_bytes, applied_blocks) = measured(|| {
        let mut doc = SyncDoc::genesis(&id, 0, hq.clone())?;
        for batch in changes.chunks(per_batch.max(1)) {
            doc.apply_changes(batch)?;
        }
        Ok(doc)
    })?;
    let save = applied.save();
    let (loaded, loaded_bytes, loaded_blocks) = measured(|| Ok(SyncDoc::load(&save, hq.clone())?))?;
    if loaded.heads() != applied.heads() {
        return Err("the loaded document differs from the applied one".into());
    }
    println!(
        "{n} changes ({per_batch} a batch), {change_bytes} bytes of changes, save {} bytes",
        save.len()
    );
    println!();
    println!("| document | heap KiB | blocks | bytes per change |");
    println!("|---|---|---|---|");
    let row = |name: &str, bytes: usize, blocks: usize| {
        println!(
            "| {name} | {:.0} | {blocks} | {:.0} |",
            kib(bytes),
            bytes as f64 / n.max(1) as f64
        );
    };
    row("genesis", genesis_bytes, 0);
    row(
        "changes applied in batches (HQ ingest)",
        applied_bytes,
        applied_blocks,
    );
    row(
        "loaded from its save (HQ reload)",
        loaded_bytes,
        loaded_blocks,
    );
    drop(genesis);
    if std::env::var_os("STOP_HERE").is_some() {
        // For heaptrack: what is still allocated at exit is the two documents.
        std::mem::forget(applied);
        std::mem::forget(loaded);
        std::process::exit(0);
    }
    Ok(())
}
