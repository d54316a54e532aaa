//! Turns a documented shell block into a script the docs test runs: each command keeps its
//! text, `curl` checks the HTTP status (the one the doc shows with `# → NNN`, else any status
//! below 400), and a console transcript becomes its `$` commands with the output shown.

/// One command of a `sh` block: its lines (with continuations) and the status it documents.
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    pub text: String,
    pub expect: Option<u16>,
}

/// The HTTP status a `# → 201 {...}` comment documents.
fn documented_status(comment: &str) -> Option<u16> {
    let rest = comment
        .trim_start_matches('#')
        .trim()
        .strip_prefix('→')?
        .trim();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() == 3 {
        digits.parse().ok()
    } else {
        None
    }
}

/// Scans `line` as the shell does (quotes, escapes, `#` comments), starting inside `quote` if
/// a quote is open; returns the quote open at its end, whether a backslash continues it, and
/// the comment it ends with, if any.
fn scan(line: &str, mut quote: Option<char>) -> (Option<char>, bool, Option<&str>) {
    let bytes: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    let mut continued = false;
    while i < bytes.len() {
        let (at, c) = bytes[i];
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (Some('"'), '"') => quote = None,
            (Some('"'), '\\') => i += 1,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') if i + 1 == bytes.len() => continued = true,
            (None, '\\') => i += 1,
            (None, '#') if at == 0 || line[..at].ends_with([' ', '\t', ';']) => {
                return (None, false, Some(&line[at..]));
            }
            (None, _) => {}
        }
        i += 1;
    }
    (quote, continued, None)
}

/// The commands of a `sh` block. Comment lines are kept out; a `# → NNN` comment at the end
/// of a command, or on the comment lines right after it, sets its expected status.
pub fn commands(body: &str) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::new();
    let mut current: Option<String> = None;
    let mut quote = None;
    let mut last_closed = false;
    for line in body.lines() {
        if current.is_none() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() {
                last_closed = false;
                continue;
            }
            if trimmed.starts_with('#') {
                if let (true, Some(status), Some(last)) =
                    (last_closed, documented_status(trimmed), out.last_mut())
                {
                    last.expect.get_or_insert(status);
                }
                continue;
            }
        }
        let text = current.get_or_insert_with(String::new);
        text.push_str(line);
        text.push('\n');
        let (after, continued, comment) = scan(line, quote);
        quote = after;
        if quote.is_none() && !continued {
            let text = current.take().unwrap_or_default();
            out.push(Command {
                text,
                expect: comment.and_then(documented_status),
            });
            last_closed = true;
        }
    }
    if let Some(text) = current {
        out.push(Command { text, expect: None });
    }
    out
}

/// A `$ command` of a console transcript and the output shown under it.
#[derive(Debug, PartialEq, Eq)]
pub struct Transcript {
    pub command: String,
    pub output: String,
}

impl Transcript {
    /// The doc shows this command failing (its output has an `error:` line).
    pub fn shows_failure(&self) -> bool {
        self.output.lines().any(|l| l.starts_with("error:"))
    }
}

pub fn transcripts(body: &str) -> Vec<Transcript> {
    let mut out: Vec<Transcript> = Vec::new();
    for line in body.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            out.push(Transcript {
                command: command.to_owned(),
                output: String::new(),
            });
        } else if let Some(last) = out.last_mut() {
            last.output.push_str(line);
            last.output.push('\n');
        }
    }
    out
}

/// What every script starts with: stop at the first failure, and `curl` as a function that
/// prints the body and fails on an HTTP status the doc does not show.
pub const PRELUDE: &str = r#"set -e -o pipefail
DOCS_EXPECT=
curl() {
  local body code want
  body="$(mktemp)"
  if ! code="$(command curl -sS -o "$body" -w '%{http_code}' "$@")"; then
    echo "docs-test: curl could not complete: curl $*" >&2
    rm -f "$body"
    return 1
  fi
  cat "$body"
  echo
  rm -f "$body"
  want="$DOCS_EXPECT"
  DOCS_EXPECT=
  if [ -n "$want" ] && [ "$code" != "$want" ]; then
    echo "docs-test: HTTP $code where the doc shows $want: curl $*" >&2
    return 1
  fi
  if [ -z "$want" ] && [ "$code" -ge 400 ]; then
    echo "docs-test: HTTP $code: curl $*" >&2
    return 1
  fi
}
"#;

/// The script of a `sh` block: the prelude, `vars`, then each command, preceded by the status
/// it documents.
pub fn script(body: &str, vars: &str) -> String {
    let mut out = format!("{PRELUDE}{vars}\n");
    for command in commands(body) {
        if let Some(status) = command.expect {
            out.push_str(&format!("DOCS_EXPECT={status}\n"));
        }
        out.push_str(&command.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_span_quotes_and_continuations_and_take_the_documented_status() {
        let body = "T=x; N=y\n\n# Sell\ncurl -s $N/v1/sales -d '{\n  \"a\": 1 }'\n\
                    # → 201 {\"sale_id\":\"s\"}\n#        \"lines\":[]}\n\
                    curl -s $N/a \\\n  -d '{}'   # → 404 {\"error\":\"not_found\"}\n\
                    curl -s \"$N/b?x=1#y\"\n";
        let commands = commands(body);
        assert_eq!(commands.len(), 4, "{commands:?}");
        assert_eq!(commands[0].expect, None);
        assert_eq!(commands[1].expect, Some(201));
        assert!(commands[1].text.contains("\"a\": 1 }'"));
        assert_eq!(commands[2].expect, Some(404));
        assert_eq!(commands[3].expect, None);
    }

    #[test]
    fn a_comment_after_a_blank_line_belongs_to_no_command() {
        let commands = commands("curl a\n\n# → 404 not this one\ncurl b\n");
        assert_eq!(commands[0].expect, None);
    }

    #[test]
    fn transcripts_pair_commands_with_output() {
        let t = transcripts("$ storenode diag sync\nsync not configured\n$ false\nerror: no\n");
        assert_eq!(t.len(), 2);
        assert!(!t[0].shows_failure());
        assert!(t[1].shows_failure());
    }
}
