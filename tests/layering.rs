//! The floors of `src/`: a module imports only modules on lower floors (and the few
//! same-floor edges listed below), so the layout cannot rot silently. Reads every file under
//! `src/`, finds its `crate::` paths (outside comments) and fails on any edge against the
//! table. docs/architecture.md explains the floors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest floor first. A module may import any module on a lower floor.
const FLOORS: &[(&str, &[&str])] = &[
    // Leaves: import no other module of the crate.
    (
        "leaves",
        &[
            "money",
            "gs1",
            "clock",
            "human",
            "settings",
            "metrics",
            "events",
            "ownership",
            "cli_numbers",
            "http_shared",
            "memory",
        ],
    ),
    // Pure business rules and the in-memory readiness registry: no SQLite, no automerge, no I/O.
    ("domain", &["domain", "health"]),
    // Storage: SQLite, the CRDT document schemas, TLS material.
    ("storage", &["store", "crdt", "tls"]),
    // What talks to the outside: serial devices, EPCIS, MQTT sync, HTTP to HQ, the box's probes.
    (
        "edges",
        &["devices", "epcis", "sync", "http_client", "probes"],
    ),
    // The configuration file: the assembly of every module's own section.
    ("config", &["config"]),
    // Services: the store's HTTP API, HQ, the technician's control socket.
    ("services", &["api", "hq", "control"]),
    // A store node wired together.
    ("daemon", &["daemon"]),
    // Commands.
    (
        "commands",
        &["demo", "diag", "bench", "provision", "import", "telemetry"],
    ),
    ("entry", &["cli", "main"]),
];

/// Same-floor edges that are allowed, each with its reason. Never both directions.
const SAME_FLOOR: &[(&str, &str, &str)] = &[
    (
        "sync",
        "epcis",
        "the sync service carries the store's EPCIS batches over its MQTT connection",
    ),
    (
        "control",
        "api",
        "the technician's socket reports on the API's state (AppState)",
    ),
];

fn floor_of() -> BTreeMap<&'static str, usize> {
    FLOORS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, modules))| modules.iter().map(move |m| (*m, i)))
        .collect()
}

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

/// The top-level module a file under `src/` belongs to.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

/// The source without comments, strings and char literals, so doc links and messages that
/// mention a path are not taken for imports.
fn strip_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev_is_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && !prev_is_ident && matches!(next, Some('"' | '#')) {
            i = skip_raw_string(&chars, i + 1);
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Past the end of a raw string whose `#`s (if any) start at `i`; `i` itself if it is not one.
fn skip_raw_string(chars: &[char], mut i: usize) -> usize {
    let start = i;
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if chars.get(i) != Some(&'"') {
        return start;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// The top-level modules a source text names through `crate::` (also in `use crate::{a, b}`).
fn crate_imports(text: &str) -> BTreeSet<String> {
    let code = strip_comments(text);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        // `storenode_crate::` or `$crate::` are not ours.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            for part in top_level_items(group) {
                let head = part.trim().split("::").next().unwrap_or("").trim();
                if !head.is_empty() && head != "self" {
                    found.insert(head.to_owned());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The comma-separated items of a `{...}` group (given after its `{`), nested groups whole.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..at]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// (from, to, file) for every cross-module import under `src/`.
fn edges() -> Vec<(String, String, PathBuf)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let from = top_module(&src, &file);
        let text = std::fs::read_to_string(&file).expect("readable source");
        for to in crate_imports(&text) {
            if to != from {
                out.push((
                    from.clone(),
                    to,
                    file.strip_prefix(&src).expect("under src").into(),
                ));
            }
        }
    }
    out
}

#[test]
fn every_import_goes_down_a_floor() {
    let floors = floor_of();
    let allowed: BTreeSet<(&str, &str)> = SAME_FLOOR.iter().map(|(a, b, _)| (*a, *b)).collect();
    let mut wrong = Vec::new();
    for (from, to, file) in edges() {
        let (Some(&f), Some(&t)) = (floors.get(from.as_str()), floors.get(to.as_str())) else {
            wrong.push(format!(
                "{}: `{from}` -> `{to}`: a module missing from FLOORS in tests/layering.rs",
                file.display()
            ));
            continue;
        };
        let same_floor_ok = f == t && allowed.contains(&(from.as_str(), to.as_str()));
        if t > f || (t == f && !same_floor_ok) {
            wrong.push(format!(
                "{}: `{from}` (floor {}, {}) imports `{to}` (floor {}, {}): imports go down only",
                file.display(),
                f,
                FLOORS[f].0,
                t,
                FLOORS[t].0
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_top_level_module_has_a_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let floors = floor_of();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("entry").path();
        let name = top_module(&src, &path);
        let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
        if is_module && name != "lib" && !floors.contains_key(name.as_str()) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "modules without a floor: {missing:?}");
}

#[test]
fn same_floor_edges_are_on_one_floor_and_one_way() {
    let floors = floor_of();
    for (a, b, why) in SAME_FLOOR {
        assert_eq!(floors.get(a), floors.get(b), "{a} -> {b} ({why})");
        assert!(
            !SAME_FLOOR.iter().any(|(x, y, _)| x == b && y == a),
            "{a} <-> {b} both ways"
        );
    }
}

#[test]
fn the_reader_finds_imports_and_ignores_comments() {
    let text = r##"use crate::store::Store;
// crate::hq in a comment
/* crate::api */
use crate::{money::Money, gs1::{Gtin, Epc}};
let s = "crate::demo \" crate::bench";
let r = r#"crate::diag " crate::sync"#;
let q = '"'; let lifetime: &'static str = "";
fn f() { crate::clock::now_utc(); $crate::x; }"##;
    let found = crate_imports(text);
    let expected: BTreeSet<String> = ["store", "money", "gs1", "clock"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, expected);
}
