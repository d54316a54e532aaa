//! The documentation cannot drift: every `sh`, `bash` and `console` block of README.md and
//! docs/*.md runs against the real binary (`storenode demo --single` for a store, `storenode
//! demo --stay` for HQ), every relative link and `#anchor` between the files resolves, and
//! every repository path and test the text names exists.
//!
//! A block that cannot run here is marked on the line before its fence:
//! `<!-- docs-test: no-run (reason) -->`; a slow one `<!-- docs-test: slow (reason) -->`
//! (run with `DOCS_SLOW=1`); a console block whose output must match exactly
//! `<!-- docs-test: exact-output -->`. docs/testing.md describes the rules.

#[path = "docs_support/demo.rs"]
mod demo;
#[path = "docs_support/markdown.rs"]
mod markdown;
#[path = "docs_support/shell.rs"]
mod shell;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use markdown::{Block, Marker};

/// The address and token the docs use; the test rewrites the addresses to the demos' own.
const DOC_STORE: &str = "127.0.0.1:8080";
const DOC_HQ: &str = "127.0.0.1:8090";
const DEMO_TOKEN: &str = "demo-token-pos1-0123456789";
/// Per block; every runnable block takes a second or two.
const BLOCK_LIMIT_SECS: u32 = 30;
const SLOW_LIMIT_SECS: u32 = 3 * 3600;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md, relative to the repository root.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(root()).expect("under root").to_path_buf())
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn read(file: &Path) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn all_blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for file in doc_files() {
        match markdown::blocks(&file, &read(&file)) {
            Ok(blocks) => out.extend(blocks),
            Err(e) => panic!("{e}"),
        }
    }
    out
}

#[test]
fn links_and_anchors_between_the_docs_resolve() {
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = read(&file);
        let dir = file.parent().unwrap_or(Path::new(""));
        for (line, target) in markdown::links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let target_file = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            let place = format!("{}:{line}: ({target})", file.display());
            if !root().join(&target_file).exists() {
                broken.push(format!("{place}: no such file"));
            } else if !anchor.is_empty() {
                let is_md = target_file.extension().is_some_and(|e| e == "md");
                if !is_md || !markdown::anchors(&read(&target_file)).contains(anchor) {
                    broken.push(format!("{place}: no heading with that anchor"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn repository_paths_named_in_the_docs_exist() {
    let mut missing = Vec::new();
    for file in doc_files() {
        for (line, path) in markdown::repo_paths(&read(&file)) {
            if !root().join(&path).exists() {
                missing.push(format!("{}:{line}: {path}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name paths that do not exist (name a folder where files move):\n{}",
        missing.join("\n")
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn tests_named_in_the_docs_exist() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    let code: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    let mut missing = Vec::new();
    for file in doc_files() {
        for (line, name) in markdown::test_names(&read(&file)) {
            if !code.contains(&format!("fn {name}(")) {
                missing.push(format!("{}:{line}: {name}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name tests that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn transcripts_are_marked_as_console() {
    let untagged: Vec<String> = all_blocks()
        .iter()
        .filter(|b| b.lang.is_empty() && b.body.starts_with("$ "))
        .map(Block::place)
        .collect();
    assert!(
        untagged.is_empty(),
        "tag these transcripts ```console so the docs test runs them:\n{}",
        untagged.join("\n")
    );
}

/// Where the blocks run: the repository, the binary on PATH, /tmp/ inside the test's own
/// directory, and `diag` pointed at the demo store's control socket.
struct Bench {
    dir: tempfile::TempDir,
    path: String,
    store: demo::Demo,
    chain: Option<demo::Demo>,
}

impl Bench {
    fn start(needs_hq: bool) -> Self {
        let binary = env!("CARGO_BIN_EXE_storenode");
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        std::os::unix::fs::symlink(binary, bin.join("storenode")).expect("symlink storenode");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp dir");
        let data = dir.path().join("store");
        std::fs::create_dir_all(&data).expect("store dir");
        std::fs::write(
            dir.path().join("diag.toml"),
            format!("[node]\ndata_dir = \"{}\"\n", data.display()),
        )
        .expect("write diag.toml");
        // The chain demo sells and converges while the store's blocks run.
        let chain_child = needs_hq.then(|| std::thread::spawn(move || demo::chain(binary)));
        let store = demo::single(binary, &data);
        let chain = chain_child.map(|c| c.join().expect("chain demo thread"));
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Bench {
            dir,
            path,
            store,
            chain,
        }
    }

    fn uses_hq(block: &Block) -> bool {
        block.body.contains("$H") || block.body.contains(DOC_HQ)
    }

    /// The block's text with the demos' addresses and the test's /tmp/.
    fn localise(&self, text: &str, store: &str, hq: &str) -> String {
        let tmp = format!("{}/", self.dir.path().join("tmp").display());
        text.replace(DOC_STORE, store)
            .replace(DOC_HQ, hq)
            .replace("/tmp/", &tmp)
    }

    /// Runs `script` with bash under a time limit: whether it succeeded, and what it printed.
    fn bash(&self, script: &str, slow: bool, hq_token: &str) -> (bool, String) {
        let limit = if slow {
            SLOW_LIMIT_SECS
        } else {
            BLOCK_LIMIT_SECS
        };
        let mut command = Command::new("timeout");
        command
            .arg(format!("{limit}s"))
            .args(["bash", "-c", script])
            .current_dir(root())
            .env("PATH", &self.path)
            .env("STORENODE_CONFIG", self.dir.path().join("diag.toml"))
            .env("STORENODE_HQ_TOKEN", hq_token)
            .env("NO_COLOR", "1");
        if slow {
            // As a fresh checkout has it: the docs' ./target/... paths.
            command.env_remove("CARGO_TARGET_DIR");
        }
        let out = command.output().expect("run bash");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        match out.status.code() {
            Some(124) => text.push_str(&format!("\n(stopped after {limit} s)")),
            Some(0) => {}
            code => text.push_str(&format!("\n(exit status {code:?})")),
        }
        (out.status.success(), text)
    }

    /// Runs one block; a description of each failure.
    fn run(&self, block: &Block, slow: bool) -> Vec<String> {
        let (store, hq, token) = match (&self.chain, Self::uses_hq(block)) {
            (Some(chain), true) => {
                let (hq, token) = chain.hq.clone().expect("the chain demo has HQ");
                (chain.store.clone(), hq, token)
            }
            _ => (self.store.store.clone(), DOC_HQ.to_owned(), String::new()),
        };
        let vars = format!(
            "T='Authorization: Bearer {DEMO_TOKEN}'; N=http://{store}\n\
             HQ=\"Authorization: Bearer $STORENODE_HQ_TOKEN\"; H=http://{hq}\n"
        );
        let body = self.localise(&block.body, &store, &hq);
        if block.lang != "console" {
            let (ok, out) = self.bash(&shell::script(&body, &vars), slow, &token);
            return if ok {
                Vec::new()
            } else {
                vec![format!("{}: the block failed:\n{out}", block.place())]
            };
        }
        let mut failures = Vec::new();
        for t in shell::transcripts(&body) {
            let script = format!("{}{vars}\n{} 2>&1\n", shell::PRELUDE, t.command);
            let (ok, out) = self.bash(&script, slow, &token);
            if ok == t.shows_failure() {
                let shown = if ok { "fails" } else { "succeeds" };
                failures.push(format!(
                    "{}: `{}`: the doc shows it {shown}, here it did not:\n{out}",
                    block.place(),
                    t.command
                ));
            } else if block.marker == Marker::ExactOutput && trimmed(&out) != trimmed(&t.output) {
                failures.push(format!(
                    "{}: `{}` printed\n{out}\nthe doc shows\n{}",
                    block.place(),
                    t.command,
                    t.output
                ));
            }
        }
        failures
    }
}

fn trimmed(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim().to_owned()
}

#[test]
fn every_command_block_runs_against_the_demo() {
    let slow_too = std::env::var("DOCS_SLOW").is_ok_and(|v| v == "1");
    let blocks: Vec<Block> = all_blocks().into_iter().filter(Block::is_shell).collect();
    let runs = |b: &Block| match &b.marker {
        Marker::Run | Marker::ExactOutput => true,
        Marker::Slow(_) => slow_too,
        Marker::NoRun(_) => false,
    };
    let needs_hq = blocks.iter().any(|b| runs(b) && Bench::uses_hq(b));
    let bench = Bench::start(needs_hq);

    let mut failures = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut skipped = Vec::new();
    for block in &blocks {
        let kind = match &block.marker {
            Marker::NoRun(reason) => {
                skipped.push(format!("  no-run {}: {reason}", block.place()));
                "no-run"
            }
            Marker::Slow(reason) if !slow_too => {
                skipped.push(format!("  slow   {}: {reason}", block.place()));
                "slow, skipped (DOCS_SLOW=1 runs them)"
            }
            Marker::Slow(_) => {
                failures.extend(bench.run(block, true));
                "slow, run"
            }
            Marker::Run | Marker::ExactOutput => {
                failures.extend(bench.run(block, false));
                "run"
            }
        };
        *counts.entry(kind).or_default() += 1;
    }
    println!("docs blocks: {counts:?}");
    println!("{}", skipped.join("\n"));
    assert!(
        counts.get("run").copied().unwrap_or(0) >= 10,
        "too few blocks ran: {counts:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
