//! The parts of a Markdown file the docs test needs: fenced code blocks with their
//! `<!-- docs-test: ... -->` marker, the headings' GitHub anchors, the relative links, and the
//! repository paths the text names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What the line before a fence says about running its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// No marker: the block runs.
    Run,
    /// `<!-- docs-test: exact-output -->`: a console block whose output must match.
    ExactOutput,
    /// `<!-- docs-test: no-run (reason) -->`: cannot run on a build machine.
    NoRun(String),
    /// `<!-- docs-test: slow (reason) -->`: runs only with `DOCS_SLOW=1`.
    Slow(String),
}

#[derive(Debug, Clone)]
pub struct Block {
    pub file: PathBuf,
    /// 1-based line of the opening fence.
    pub line: usize,
    pub lang: String,
    pub marker: Marker,
    pub body: String,
}

impl Block {
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// A block the docs test runs (its language is a shell or a console transcript).
    pub fn is_shell(&self) -> bool {
        matches!(self.lang.as_str(), "sh" | "bash" | "console")
    }
}

/// A marker line, or an error naming what is wrong with it; `None` if the line is no marker.
fn parse_marker(line: &str) -> Option<Result<Marker, String>> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim()
        .strip_prefix("docs-test:")?
        .trim();
    let reason = |kind: &str| {
        let rest = inner[kind.len()..].trim();
        match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            Some(reason) if !reason.trim().is_empty() => Ok(reason.trim().to_owned()),
            _ => Err(format!("`{kind}` needs a reason in parentheses: {line}")),
        }
    };
    Some(if inner == "exact-output" {
        Ok(Marker::ExactOutput)
    } else if inner.starts_with("no-run") {
        reason("no-run").map(Marker::NoRun)
    } else if inner.starts_with("slow") {
        reason("slow").map(Marker::Slow)
    } else {
        Err(format!("unknown docs-test marker: {line}"))
    })
}

/// Every fenced block of `text`; errors for markers that are malformed or stand before no fence.
pub fn blocks(file: &Path, text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(marker) = parse_marker(line) {
            marker?;
            let next = lines.get(i + 1).copied().unwrap_or("");
            if !next.starts_with("```") {
                return Err(format!(
                    "{}:{}: a docs-test marker must stand on the line before a fence",
                    file.display(),
                    i + 1
                ));
            }
        }
        if let Some(lang) = line.strip_prefix("```") {
            let marker = match i.checked_sub(1).and_then(|p| parse_marker(lines[p])) {
                Some(marker) => marker?,
                None => Marker::Run,
            };
            let start = i;
            let mut body = String::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                body.push_str(lines[i]);
                body.push('\n');
                i += 1;
            }
            if i == lines.len() {
                return Err(format!(
                    "{}:{}: fence not closed",
                    file.display(),
                    start + 1
                ));
            }
            out.push(Block {
                file: file.to_path_buf(),
                line: start + 1,
                lang: lang.trim().to_owned(),
                marker,
                body,
            });
        }
        i += 1;
    }
    Ok(out)
}

/// The lines of `text` outside fenced blocks (prose, tables, headings), with their numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((n + 1, line));
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of every heading, numbered as GitHub numbers repeated ones (`x`, `x-1`, ...).
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// `(line, target)` of every inline link `[text](target)` in the prose.
pub fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n, after[..end].to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// Top-level folders of the repository whose paths the docs name in their text.
const REPO_DIRS: &[&str] = &[
    "src/",
    "tests/",
    "config/",
    "cross/",
    "systemd/",
    "hardware/",
    "examples/",
    "fuzz/",
    ".ci/",
    "docs/",
];

/// `(line, path)` of every repository path named anywhere in `text` (prose and code), such as
/// `src/crdt/doc.rs` or `tests/sync_orders.rs:`; placeholders (`{x}`, `<x>`, `*`) are skipped.
pub fn repo_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut start = 0;
        while start < line.len() {
            let rest = &line[start..];
            let Some(dir) = REPO_DIRS.iter().find(|d| rest.starts_with(*d)) else {
                start += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            };
            let before = line[..start].chars().next_back();
            let bounded = before.is_none_or(|c| " `(*[\"'|,;".contains(c));
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "_./-{}<>*".contains(c)))
                .unwrap_or(rest.len());
            let token = rest[..len].trim_end_matches(['.', ',', ':']);
            if bounded && token.len() > dir.len() && !token.contains(['{', '<', '*']) {
                out.push((n + 1, token.to_owned()));
            }
            start += len.max(1);
        }
    }
    out
}

/// `(line, name)` of every test the text names: a backticked snake_case identifier of five
/// words or more (`a_lane_restored_from_a_backup_that_sells_offline_syncs_again`), metric names
/// (`storenode_...`) aside.
pub fn test_names(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, part) in line.split('`').enumerate() {
            let is_name = i % 2 == 1
                && part.split('_').count() >= 5
                && part.split('_').all(|w| {
                    !w.is_empty()
                        && w.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                })
                && !part.starts_with("storenode_");
            if is_name {
                out.push((n + 1, part.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_github() {
        assert_eq!(
            slug("Technician: `storenode diag`"),
            "technician-storenode-diag"
        );
        assert_eq!(
            slug("`diag tail [--device ID] [--seconds N]`"),
            "diag-tail---device-id---seconds-n"
        );
        assert_eq!(slug("7. GS1 EPCIS 2.0 events"), "7-gs1-epcis-20-events");
        assert_eq!(slug("HQ's API"), "hqs-api");
    }

    #[test]
    fn test_names_are_long_snake_case_identifiers() {
        let text = "`no_unit_is_promised_twice` (proptest), `storenode_pickup_lockouts_total`, `rssi_enter_dbm`";
        assert_eq!(
            test_names(text),
            vec![(1, "no_unit_is_promised_twice".to_owned())]
        );
    }
}
