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
    use clap::Parser;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

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

    /// Every numeric flag of the CLI, with the other arguments its command needs.
    const FLAGS: &[(&[&str], &str)] = &[
        (
            &["diag", "simulate", "rfid", "--pty-link", "x"],
            "--seconds",
        ),
        (&["diag", "simulate", "rfid", "--pty-link", "x"], "--rate"),
        (&["diag", "simulate", "rfid", "--pty-link", "x"], "--noise"),
        (&["diag", "simulate", "rfid", "--pty-link", "x"], "--tags"),
        (
            &["diag", "simulate", "rfid", "--pty-link", "x"],
            "--duplicates",
        ),
        (&["diag", "simulate", "rfid", "--pty-link", "x"], "--baud"),
        (&["diag", "simulate", "rfid", "--pty-link", "x"], "--seed"),
        (&["diag", "tail"], "--seconds"),
        (&["diag", "probe", "/dev/null"], "--listen-secs"),
        (&["bench"], "--seconds"),
        (&["bench"], "--items"),
        (&["bench"], "--clients"),
        (&["demo", "--single"], "--seconds"),
    ];

    /// What the commands do with their numbers; must not panic for anything clap let in.
    fn use_numbers(cli: &crate::cli::Cli) {
        use crate::cli::{Command, DiagAction};
        use crate::diag::ops::OpsCommand;
        let far = |d: Duration| Instant::now().checked_add(d).expect("deadline overflow");
        match &cli.command {
            Command::Diag {
                action: DiagAction::Simulate(a),
            } => {
                if let Some(s) = a.seconds {
                    far(Duration::from_secs_f64(s));
                }
                assert!((0.0..=1.0).contains(&a.noise) && a.rate.is_finite() && a.rate > 0.0);
                assert!(a.tags <= 100_000 && a.duplicates <= 1000 && a.baud > 0);
            }
            Command::Diag {
                action: DiagAction::Ops(OpsCommand::Tail(t)),
            } => {
                far(Duration::from_secs(t.seconds.unwrap_or(0)));
            }
            Command::Diag {
                action: DiagAction::Ops(OpsCommand::Probe(p)),
            } => {
                far(Duration::from_secs(p.listen_secs));
            }
            Command::Bench(b) => {
                far(Duration::from_secs(b.seconds));
                assert!(b.items <= 10_000_000 && b.clients.iter().all(|c| *c <= 10_000));
            }
            Command::Demo(d) => {
                far(Duration::from_secs(d.seconds.unwrap_or(0)));
            }
            _ => {}
        }
    }

    proptest! {
        // Whatever is typed after a numeric flag: a usage error or a usable number, no panic.
        #[test]
        fn no_number_a_user_types_panics(
            flag in 0..FLAGS.len(),
            value in prop_oneof![
                "-?[0-9]{0,25}(\\.[0-9]{0,5})?(e-?[0-9]{1,3})?",
                Just("nan".to_string()), Just("-inf".to_string()), Just("18446744073709551616".to_string()),
                ".{0,12}",
            ],
        ) {
            let (args, name) = FLAGS[flag];
            let mut argv = vec!["storenode"];
            argv.extend_from_slice(args);
            let arg = format!("{name}={value}");
            argv.push(&arg);
            if let Ok(cli) = crate::cli::Cli::try_parse_from(&argv) {
                use_numbers(&cli);
            }
        }
    }
}
