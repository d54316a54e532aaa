//! automerge alone, HQ's pattern (issue 20): what applying one small remote change costs as
//! the document's history grows. Not a test: it prints a table.
//!
//! ```sh
//! cargo run --release --example bench_automerge_apply                       # 10,000..1,000,000
//! cargo run --release --example bench_automerge_apply -- 10000,100000      # shorter
//! ```
//!
//! A writer's document holds one map of 10,000 keys (SKUs), each a plain integer register;
//! its history is commits of 100 puts (as a store lane's stock totals), all applied by a
//! second document (HQ's copy) in batches. Then 200 changes of 3 puts are made by the
//! writer and applied by the copy one at a time, each timed (`Automerge::apply_changes`
//! only: no decoding of the bytes, no checks, no database).

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc};

const KEYS: usize = 10_000;
const PUTS_PER_COMMIT: usize = 100;
const TIMED: usize = 200;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let checkpoints: Vec<usize> = match std::env::args().nth(1) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![10_000, 100_000, 1_000_000],
    };
    let mut writer = Automerge::new().with_actor(ActorId::from(b"writer".as_slice()));
    let mut tx = writer.transaction();
    let map = tx.put_object(ROOT, "stock", ObjType::Map)?;
    tx.commit();
    let mut copy = Automerge::new().with_actor(ActorId::from(b"copy".as_slice()));
    copy.apply_changes(writer.get_changes(&[]))?;
    let mut written = 0usize;
    let mut next_key = 0usize;
    println!("| puts of history | apply one 3-put change: p50 | p99 | ops in the document |");
    println!("|---|---|---|---|");
    let mut first: Option<Duration> = None;
    for checkpoint in checkpoints {
        let mut heads = copy.get_heads();
        while written < checkpoint {
            let mut tx = writer.transaction();
            for i in 0..PUTS_PER_COMMIT {
                next_key = (next_key + 7 + i) % KEYS;
                tx.put(
                    &map,
                    format!("SKU-{next_key:05}"),
                    i64::try_from(written + i)?,
                )?;
            }
            tx.commit();
            written += PUTS_PER_COMMIT;
            if written.is_multiple_of(20_000) || written >= checkpoint {
                let changes = writer.get_changes(&heads);
                copy.apply_changes(changes)?;
                heads = copy.get_heads();
            }
        }
        let mut times = Vec::with_capacity(TIMED);
        for i in 0..TIMED {
            let mut tx = writer.transaction();
            for j in 0..3 {
                let key = (i * 31 + j * 997) % KEYS;
                tx.put(&map, format!("SKU-{key:05}"), -1_i64)?;
            }
            let (hash, _) = tx.commit();
            written += 3;
            let change = writer
                .get_change_by_hash(&hash.ok_or("a change")?)
                .ok_or("the change just made")?;
            let started = Instant::now();
            copy.apply_changes([change])?;
            times.push(started.elapsed());
        }
        if copy.get_heads() != writer.get_heads() {
            return Err("the copy did not converge".into());
        }
        times.sort();
        let p50 = times[TIMED / 2];
        let first = *first.get_or_insert(p50);
        println!(
            "| {checkpoint} | {:.3} ms ({:.1}x) | {:.3} ms | {} |",
            p50.as_secs_f64() * 1e3,
            p50.as_secs_f64() / first.as_secs_f64().max(1e-12),
            times[TIMED * 99 / 100].as_secs_f64() * 1e3,
            copy.stats().num_ops,
        );
    }
    Ok(())
}
