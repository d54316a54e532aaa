//! No number a user types on the command line panics: every numeric flag of every command,
//! fed what a user might type, is a usage error or a number the command can use.

use clap::Parser;
use proptest::prelude::*;
use std::time::{Duration, Instant};

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
fn use_numbers(cli: &super::Cli) {
    use super::{Command, DiagAction};
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
        if let Ok(cli) = super::Cli::try_parse_from(&argv) {
            use_numbers(&cli);
        }
    }
}
