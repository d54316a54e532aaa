//! `storenode demo` (the real binary) runs HQ with the embedded broker and two stores, cuts
//! one off, sells on both sides, reconnects and prints the converged stock: the output must
//! show every node and HQ agreeing, and the process must end by itself.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::node::binary;

const LIMIT: Duration = Duration::from_secs(90);

/// Runs the binary with `args`, killing it after [`LIMIT`]; returns (success, stdout).
fn run_bounded(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn storenode demo");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = reader.join().unwrap_or_default();
    assert!(
        status.is_some(),
        "demo did not end within {LIMIT:?}:\n{text}"
    );
    (status.is_some_and(|s| s.success()), text)
}

#[test]
fn demo_partitions_a_store_and_prints_converged_stock() {
    let (ok, out) = run_bounded(&["demo"]);
    assert!(ok, "demo failed:\n{out}");
    assert!(out.contains("store-2 is cut off"), "{out}");
    assert!(out.contains("\nCONVERGED:"), "{out}");
    let header = out
        .lines()
        .find(|l| l.starts_with("SKU "))
        .unwrap_or_else(|| panic!("no stock table:\n{out}"));
    assert!(
        header.contains("store-1 @HQ") && header.contains("store-2 @HQ"),
        "{header}"
    );
    // Each row: SKU, then (node, HQ) per store; the two must agree.
    let rows: Vec<Vec<i64>> = out
        .lines()
        .skip_while(|l| !l.starts_with("SKU "))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|n| n.parse().expect("number"))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 10, "one row per sample SKU:\n{out}");
    for row in &rows {
        assert_eq!(row.len(), 4, "{out}");
        assert_eq!(row[0], row[1], "store-1 node vs HQ:\n{out}");
        assert_eq!(row[2], row[3], "store-2 node vs HQ:\n{out}");
    }
    // MILK-1L: 48 opening; store-1 sold 2 online + 3 during the partition, store-2 sold 4
    // while offline. Both totals prove the offline sales arrived exactly once.
    assert_eq!(rows[0], vec![43, 43, 44, 44], "{out}");
}

#[test]
fn single_store_demo_is_still_available() {
    let (ok, out) = run_bounded(&[
        "demo",
        "--single",
        "--seconds",
        "1",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("storenode demo store is open at"), "{out}");
    assert!(out.contains("curl -s"), "{out}");
}
