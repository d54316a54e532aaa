//! The wall clock, read in one place: UTC always.

/// Now, in UTC, as RFC 3339 with milliseconds: sortable as text.
pub fn now_utc() -> String {
    utc_text(time::OffsetDateTime::now_utc())
}

/// `now - age` in the format of [`now_utc`], to compare with stored `at` columns.
pub fn utc_ago(age: std::time::Duration) -> String {
    let age = time::Duration::try_from(age).unwrap_or(time::Duration::MAX);
    let now = time::OffsetDateTime::now_utc();
    utc_text(now.checked_sub(age).unwrap_or(now))
}

fn utc_text(now: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Wall-clock milliseconds for change timestamps (informational only: nothing orders by it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
