//! The rules for the names everything is keyed by: store ids, writer ids, and the ids that
//! travel as MQTT topic segments.

/// Longest store id (bytes).
pub const MAX_STORE_ID_LEN: usize = 64;
/// Longest id in a topic segment (bytes).
pub const MAX_SEGMENT_LEN: usize = 64;

/// 1 to `max_len` bytes of lower-case ASCII letters, digits, `.`, `-` and `_`: store and
/// writer ids (they name documents and automerge actors, so they are kept canonical).
pub fn is_name(s: &str, max_len: usize) -> bool {
    !s.is_empty()
        && s.len() <= max_len
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// A store id as documents and topics name it.
pub fn is_store_id(s: &str) -> bool {
    is_name(s, MAX_STORE_ID_LEN)
}

/// A character allowed in a topic segment.
pub fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// 1 to [`MAX_SEGMENT_LEN`] bytes of [`is_segment_char`]s.
pub fn is_segment_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SEGMENT_LEN && s.chars().all(is_segment_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_are_canonical_and_segments_are_topic_safe() {
        assert!(is_store_id("s001.north-1"));
        assert!(!is_store_id("S001") && !is_store_id("") && !is_store_id("a/b"));
        assert!(!is_store_id(&"a".repeat(65)));
        assert!(is_segment_id("Web-1001") && !is_segment_id("a b") && !is_segment_id(""));
    }
}
