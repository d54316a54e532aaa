//! The demos the documented commands run against: `storenode demo --single` (one store, its
//! API open) and `storenode demo --stay` (HQ, an embedded broker and two stores).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a demo may take to be ready; the chain demo sells and converges first.
const READY_LIMIT: Duration = Duration::from_secs(45);

pub struct Demo {
    child: Child,
    /// The store's API (`host:port`).
    pub store: String,
    /// HQ's API and token (the chain demo only).
    pub hq: Option<(String, String)>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// The lines the demo prints, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens any more: a demo writing to a closed pipe
        // would fail.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for the line for which `done` returns true; every line goes to `seen`.
fn wait_for(
    rx: &mpsc::Receiver<String>,
    what: &str,
    seen: &mut Vec<String>,
    mut done: impl FnMut(&str) -> bool,
) {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let finished = done(&line);
                seen.push(line);
                if finished {
                    return;
                }
            }
            Err(_) => panic!(
                "{what} not ready within {READY_LIMIT:?}:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// `storenode demo --single` on a free port, its database in `data_dir`.
pub fn single(binary: &str, data_dir: &Path) -> Demo {
    let store = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(binary)
        .args(["demo", "--single", "--listen", &store, "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start storenode demo --single");
    let rx = lines_of(&mut child);
    let mut seen = Vec::new();
    wait_for(&rx, "storenode demo --single", &mut seen, |l| {
        l.contains("demo store is open at")
    });
    Demo {
        child,
        store,
        hq: None,
    }
}

/// The address after `http://` in a line of the chain demo's banner.
fn address(line: &str) -> Option<String> {
    let rest = line.split("http://").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

/// `storenode demo --stay`, once it has told its story (HQ and both stores converged).
pub fn chain(binary: &str) -> Demo {
    let mut child = Command::new(binary)
        .args(["demo", "--stay"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start storenode demo --stay");
    let rx = lines_of(&mut child);
    let mut seen = Vec::new();
    let (mut hq, mut store) = (None, None);
    wait_for(&rx, "storenode demo --stay", &mut seen, |line| {
        let trimmed = line.trim_start();
        if trimmed.starts_with("HQ ") {
            let token = line.split("token ").nth(1).map(|t| t.trim_end_matches(')'));
            hq = address(line).zip(token.map(str::to_owned));
        } else if trimmed.starts_with("store-1 ") {
            store = address(line);
        }
        line.starts_with("CONVERGED")
    });
    let (Some(hq), Some(store)) = (hq, store) else {
        panic!(
            "the chain demo named no HQ or store-1:\n{}",
            seen.join("\n")
        );
    };
    Demo {
        child,
        store,
        hq: Some(hq),
    }
}
