//! Colour for humans, plain text for pipes: ANSI colours only when stdout is a terminal and
//! `NO_COLOR` is unset.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    pub fn detect() -> Self {
        Self {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    pub fn plain() -> Self {
        Self { colour: false }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn bad(self, text: &str) -> String {
        self.paint("31;1", text)
    }

    pub fn heading(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    /// A component or check state in its colour: ok green, degraded yellow, other red.
    pub fn state(self, state: &str) -> String {
        match state {
            "ok" => self.good(state),
            "degraded" | "warning" => self.warn(state),
            _ => self.bad(state),
        }
    }
}

/// Terminal width every `diag` line fits in.
pub const WIDTH: usize = 80;

/// A short age: `45 s`, `12 min`, `3 h`, `2 d`.
pub fn human_age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86_400 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86_400),
    }
}

/// `14:02 (3 h)` for an RFC 3339 UTC time today, `Dec 04 14:02 (2 d)` for an older one;
/// the text as given when it does not parse.
pub fn human_since(rfc3339: &str, now: time::OffsetDateTime) -> String {
    let Ok(at) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return rfc3339.to_string();
    };
    human_at(at, now)
}

/// See [`human_since`]; from epoch milliseconds.
pub fn human_since_ms(epoch_ms: i64, now: time::OffsetDateTime) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000) {
        Ok(at) => human_at(at, now),
        Err(_) => epoch_ms.to_string(),
    }
}

fn human_at(at: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    let age = (now - at).whole_seconds().max(0).unsigned_abs();
    let clock = if age < 86_400 {
        format!("{:02}:{:02}", at.hour(), at.minute())
    } else {
        format!(
            "{} {:02} {:02}:{:02}",
            &at.month().to_string()[..3],
            at.day(),
            at.hour(),
            at.minute()
        )
    };
    format!("{clock} ({})", human_age(age))
}

/// `text` broken at spaces into lines of at most [`WIDTH`]: the first after `first`
/// (already laid out, `first_width` columns wide: colour codes take none), the rest
/// indented by `indent` spaces. A word longer than a line (a path) stays whole.
pub fn wrap(first: &str, first_width: usize, text: &str, indent: usize) -> String {
    let mut out = first.to_string();
    let mut column = first_width;
    let mut at_line_start = true;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if !at_line_start && column + 1 + len > WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            column = indent;
            at_line_start = true;
        }
        if !at_line_start {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
        at_line_start = false;
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_fit_80_columns() {
        let text = "writes refused: /var/lib/storenode/store.db belongs to root (uid 0), the node runs as storenode (uid 998); fix: chown 998 /var/lib/storenode/store.db* (no restart needed)";
        let first = "  store      down     ";
        let out = wrap(first, first.len(), text, 13);
        for line in out.lines() {
            assert!(line.chars().count() <= WIDTH, "{line:?}");
        }
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words.join(" "), format!("store down {text}"));
    }

    #[test]
    fn times_read_like_a_person_would_say_them() {
        let now = time::macros::datetime!(2026-12-06 17:05 UTC);
        assert_eq!(human_since("2026-12-06T14:02:11.000Z", now), "14:02 (3 h)");
        assert_eq!(
            human_since("2026-12-04T14:02:00Z", now),
            "Dec 04 14:02 (2 d)"
        );
        assert_eq!(human_since("garbage", now), "garbage");
        assert_eq!(human_since_ms(1_796_569_320_000, now), "15:02 (2 h)");
    }

    #[test]
    fn plain_style_adds_nothing() {
        assert_eq!(Style::plain().bad("down"), "down");
        assert_eq!(Style { colour: true }.good("ok"), "\x1b[32mok\x1b[0m");
    }

    #[test]
    fn sizes_and_durations_read_well() {}
}
