//! Value parsers for the numbers of the command line: every number a user can type is
//! checked against the range the command can use, so a typo is a usage error (exit 2)
//! naming the flag, never a panic later (`Duration::from_secs_f64(-1.0)`, an `Instant`
//! overflow, an allocation of `usize::MAX` tags).

use std::ops::RangeInclusive;

/// The longest duration a command accepts: a year (longer runs are "until Ctrl-C").
pub const MAX_SECONDS: u64 = 366 * 24 * 3600;

/// Seconds as a positive decimal (`1.5`), at most [`MAX_SECONDS`].
pub fn seconds_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_SECONDS as f64 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0 (exclusive) to {MAX_SECONDS}"
        )),
    }
}

/// Whole seconds from 1 to [`MAX_SECONDS`].
pub fn seconds(text: &str) -> Result<u64, String> {
    integer(text, 1..=MAX_SECONDS)
}

/// A share from 0 to 1 (`0.05`).
pub fn fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{text:?} is not a share from 0 to 1, like 0.05")),
    }
}

/// An integer in `range`.
pub fn integer<T>(text: &str, range: RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match text.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_numbers_that_panicked_are_refused() {
        for bad in ["-1", "nan", "NaN", "inf", "-inf", "0", "1e300", ""] {
            assert!(seconds_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds_f64("1.5"), Ok(1.5));
        assert!(seconds("18446744073709551615").is_err());
        assert!(fraction("1.01").is_err() && fraction("nan").is_err());
        assert_eq!(integer::<u32>("7", 1..=9), Ok(7));
    }
}
