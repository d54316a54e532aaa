//! Test support for the status folds of orders and transfers: a fold must not care in which
//! order, or how often, the events of a document arrive.

/// `events` shuffled deterministically from `seed` (Fisher-Yates with an LCG, so a failing
/// proptest case replays), then the events whose bit is set in `dup_mask` appended again.
pub fn shuffled_with_duplicates<T: Clone>(events: &[T], seed: u64, dup_mask: u16) -> Vec<T> {
    let mut shuffled = events.to_vec();
    let mut state = seed;
    for i in (1..shuffled.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = usize::try_from(state >> 33).unwrap_or(0) % (i + 1);
        shuffled.swap(i, j);
    }
    for (i, event) in events.iter().enumerate() {
        if dup_mask & (1 << (i % 16)) != 0 {
            shuffled.push(event.clone());
        }
    }
    shuffled
}
