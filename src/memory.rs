//! Giving memory back to the system after large one-off work.
//!
//! glibc's malloc keeps what a program frees in its heaps (one per thread that allocated,
//! up to eight per core) and returns it to the kernel only when the top of a heap is free.
//! After a one-off peak (a 50,000-item catalog applied and projected, the sync documents
//! loaded at start) the freed pages stay resident and count in the node's RSS for good,
//! though nothing uses them. `malloc_trim` walks every heap and gives free pages back.
//! It costs a pass over the heaps (milliseconds), so it is called after such work only,
//! never per sale. Other C libraries (musl) return memory on their own; there it does
//! nothing. [`tune_allocator`] sets glibc up at start so that less is kept in the first
//! place (fewer heaps, large blocks in their own mappings).

/// Settles glibc's malloc for a long-running node on a small box; call once at start,
/// before the runtime's threads exist. Returns whether every setting was taken.
///
/// - **Arenas**: glibc gives threads that allocate at the same time heaps of their own, up
///   to eight per core; a freed block stays in the heap that allocated it, so the node's
///   threads (tokio's workers and blocking pool, the writer, the catalog thread) each keep
///   a heap's worth of free fragments resident. [`MALLOC_ARENAS`] bounds them.
/// - **mmap threshold**: by default it rises to the size of the largest block freed (up
///   to 32 MiB), and the trim threshold to twice that; after the catalog's or a stock
///   document's buffers (MiBs) were freed once, every later large block came from the heap
///   and stayed resident. Fixed thresholds keep large blocks in mmaps of their own, given
///   back on free, and the heap trimmed past [`TRIM_THRESHOLD`].
pub fn tune_allocator() -> bool {
    tune()
}

/// Two heaps: the writer's and everyone else's contend little on a 1–4 core box.
const MALLOC_ARENAS: i32 = 2;
/// Blocks from 128 KiB up get an mmap of their own (glibc's starting value, kept fixed).
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Free space above this at the top of a heap goes back at once.
const TRIM_THRESHOLD: i32 = 256 * 1024;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune() -> bool {
    [
        (libc::M_ARENA_MAX, MALLOC_ARENAS),
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ]
    .into_iter()
    // SAFETY: mallopt takes two integers and changes glibc's own allocator parameters
    // under its lock; no pointer is involved.
    .all(|(param, value)| unsafe { libc::mallopt(param, value) } == 1)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune() -> bool {
    false
}

/// Returns the free pages of every malloc heap to the kernel. Returns whether any was.
pub fn release_freed() -> bool {
    trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointer and only walks glibc's own heap structures
    // under their locks; it is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

/// Free heap above which [`trim_if_slack`] gives it back: below it a trim frees little.
pub const SLACK_TRIM_BYTES: u64 = 4 * 1024 * 1024;

/// How often the node looks at its free heap (a walk of glibc's free lists, microseconds).
pub const SLACK_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Gives the heaps' free pages back when they hold more than [`SLACK_TRIM_BYTES`] free.
/// Ordinary work leaves freed blocks scattered between live ones (a connected store's
/// sales, each with its stock change and MQTT message): glibc returns only the free top of
/// a heap, so after 100,000 movements published on line 20 MiB of such holes stayed
/// resident. Returns the free bytes it found when it trimmed.
pub fn trim_if_slack() -> Option<u64> {
    let free = free_in_heaps()?;
    (free > SLACK_TRIM_BYTES && trim()).then_some(free)
}

/// Gives free heap back to the system when a lot of it accumulated
/// ([`trim_if_slack`]): the box's RSS follows what the node uses, not what it
/// once used.
pub async fn return_free_heap(shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(SLACK_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        give_back_slack().await;
    }
}

/// One look of [`return_free_heap`]: trims the heap on the blocking pool when much of it
/// is free ([`trim_if_slack`]).
pub async fn give_back_slack() {
    let trimmed = tokio::task::spawn_blocking(trim_if_slack).await;
    if let Ok(Some(free)) = trimmed {
        tracing::debug!(
            free_kib = free / 1024,
            rss_kib = resident_kib(),
            "free heap given back"
        );
    }
}

/// Bytes free inside glibc's heaps, every arena (`mallinfo2`); `None` elsewhere.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn free_in_heaps() -> Option<u64> {
    // SAFETY: mallinfo2 takes no pointer and returns a plain struct; it reads glibc's own
    // arenas under their locks.
    let info = unsafe { libc::mallinfo2() };
    u64::try_from(info.fordblks).ok()
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn free_in_heaps() -> Option<u64> {
    None
}

/// Resident memory of this process in KiB (`VmRSS` of /proc/self/status), for logs and
/// tests; `None` where /proc is not there.
pub fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_settings_and_still_allocates() {
        assert!(tune_allocator());
        // Above the mmap threshold and below it: both still work once set.
        let big = vec![7u8; 4 * MMAP_THRESHOLD as usize];
        let small = vec![7u8; 1024];
        assert_eq!(
            big.iter().chain(&small).map(|b| u64::from(*b)).sum::<u64>(),
            7 * (big.len() + small.len()) as u64
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn scattered_free_blocks_are_seen_and_trimmed() {
        // Every other block freed: holes between live blocks, which glibc keeps.
        let mut blocks: Vec<Option<Vec<u8>>> =
            (0..8_000).map(|i| Some(vec![i as u8; 2_000])).collect();
        for block in blocks.iter_mut().step_by(2) {
            block.take();
        }
        let free = free_in_heaps().unwrap_or(0);
        assert!(free > SLACK_TRIM_BYTES, "{free} bytes free");
        assert!(trim_if_slack().is_some_and(|found| found > SLACK_TRIM_BYTES));
        assert_eq!(blocks.iter().flatten().count(), 4_000);
    }

    #[test]
    fn freed_memory_goes_back() {
        // Many small blocks (below the mmap threshold, so they live in a heap), freed:
        // without the trim their pages would stay resident.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 4_000]).collect();
        let with = resident_kib();
        drop(blocks);
        release_freed();
        let after = resident_kib();
        if let (Some(with), Some(after)) = (with, after) {
            assert!(
                after < with,
                "RSS {after} KiB after the trim, {with} KiB before"
            );
        }
    }
}
