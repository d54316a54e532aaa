//! Giving memory back to the system after large one-off work.
//!
//! glibc's malloc keeps what a program frees in its heaps (one per thread that allocated,
//! up to eight per core) and returns it to the kernel only when the top of a heap is free.
//! After a one-off peak (a 50,000-item catalog applied and projected, the sync documents
//! loaded at start) the freed pages stay resident and count in the node's RSS for good,
//! though nothing uses them. `malloc_trim` walks every heap and gives free pages back.
//! It costs a pass over the heaps (milliseconds), so it is called after such work only,
//! never per sale. Other C libraries (musl) return memory on their own; there it does
//! nothing.

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
