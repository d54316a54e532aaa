//! What the `hq` API commands print for people: amounts with the currency's decimals,
//! pricing rules in words, and lines that fit 80 columns.

use crate::domain::pricing::{Rule, Scope, Target, Window};

/// The width every line is cut to.
pub const WIDTH: usize = 80;

/// How amounts in minor units are written: the currency and its decimals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub currency: String,
    pub exponent: u8,
}

impl Money {
    pub fn of(currency: &str) -> Self {
        Self {
            currency: currency.to_owned(),
            exponent: crate::money::minor_unit_exponent(currency),
        }
    }

    /// `minor` with the currency's decimals: `119` → `1.19` (EUR), `500` → `500` (JPY).
    pub fn amount(&self, minor: i64) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let magnitude = minor.unsigned_abs();
        if self.exponent == 0 {
            return format!("{sign}{magnitude}");
        }
        let scale = 10u64.pow(u32::from(self.exponent));
        let width = usize::from(self.exponent);
        format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale)
    }

    /// The amount followed by the currency: `1.19 EUR`.
    pub fn with_code(&self, minor: i64) -> String {
        format!("{} {}", self.amount(minor), self.currency)
    }
}

/// Basis points as a percentage: `1000` → `10 %`, `1250` → `12.5 %`.
pub fn percent(bp: u32) -> String {
    let (whole, rest) = (bp / 100, bp % 100);
    if rest == 0 {
        format!("{whole} %")
    } else {
        let decimals = format!("{rest:02}");
        format!("{whole}.{} %", decimals.trim_end_matches('0'))
    }
}

/// What a rule does, in words.
pub fn rule(rule: &Rule, money: &Money) -> String {
    let from = |min: i64| {
        if min > 0 {
            format!(" from {}", money.amount(min))
        } else {
            String::new()
        }
    };
    match rule {
        Rule::PercentOff { target, percent_bp } => {
            format!("{} off {}", percent(*percent_bp), self::target(target))
        }
        Rule::AmountOff {
            target,
            amount_minor,
        } => format!(
            "{} off each unit (per kg if weighed) of {}",
            money.amount(*amount_minor),
            self::target(target)
        ),
        Rule::MultiBuy {
            target,
            group,
            percent_bp,
        } if *percent_bp == 10_000 && *group > 1 => {
            format!("{group} for {} on {}", group - 1, self::target(target))
        }
        Rule::MultiBuy {
            target,
            group,
            percent_bp,
        } => format!(
            "of every {group} of {}, the cheapest {} off",
            self::target(target),
            percent(*percent_bp)
        ),
        Rule::MixMatch {
            target,
            group,
            price_minor,
        } => format!(
            "any {group} of {} for {}",
            self::target(target),
            money.amount(*price_minor)
        ),
        Rule::BasketPercentOff {
            min_total_minor,
            percent_bp,
        } => format!(
            "{} off the basket{}",
            percent(*percent_bp),
            from(*min_total_minor)
        ),
        Rule::BasketAmountOff {
            min_total_minor,
            amount_minor,
        } => format!(
            "{} off the basket{}",
            money.amount(*amount_minor),
            from(*min_total_minor)
        ),
    }
}

/// The SKUs and categories a rule targets.
pub fn target(target: &Target) -> String {
    let mut parts = Vec::new();
    if !target.skus.is_empty() {
        parts.push(format!("SKU {}", joined(target.skus.iter())));
    }
    if !target.categories.is_empty() {
        parts.push(format!("category {}", joined(target.categories.iter())));
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(" and ")
    }
}

/// The stores a rule applies in.
pub fn scope(scope: &Scope) -> String {
    if scope.stores.is_empty() {
        "every store".to_owned()
    } else {
        format!("stores {}", joined(scope.stores.iter()))
    }
}

/// When a rule is active (store's local time); `always` for an empty window.
pub fn window(window: &Window) -> String {
    let mut parts = Vec::new();
    match (&window.from, &window.until) {
        (Some(f), Some(u)) => parts.push(format!("{f} to {u}")),
        (Some(f), None) => parts.push(format!("from {f}")),
        (None, Some(u)) => parts.push(format!("until {u}")),
        (None, None) => {}
    }
    if !window.weekdays.is_empty() {
        let days: Vec<String> = window
            .weekdays
            .iter()
            .map(|d| {
                serde_json::to_value(d)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        parts.push(days.join(","));
    }
    match (&window.daily_from, &window.daily_until) {
        (Some(f), Some(u)) => parts.push(format!("{f}-{u}")),
        (Some(f), None) => parts.push(format!("daily from {f}")),
        (None, Some(u)) => parts.push(format!("daily until {u}")),
        (None, None) => {}
    }
    if parts.is_empty() {
        "always".to_owned()
    } else {
        parts.join(", ")
    }
}

fn joined<'a>(items: impl Iterator<Item = &'a String>) -> String {
    items.map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// `text` cut to `width` characters, the cut marked with `…`.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` as lines of at most [`WIDTH`] characters, each starting with `indent`, broken
/// between words (a word longer than a line is cut).
pub fn wrap(text: &str, indent: &str) -> String {
    let room = WIDTH.saturating_sub(indent.chars().count()).max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && needed > room {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
        .iter()
        .map(|l| format!("{indent}{}\n", fit(l, room)))
        .collect()
}

/// A table: a header and rows, each column as wide as its widest cell; the first column
/// left-aligned (and cut so the line fits [`WIDTH`]), the others right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let rest: usize = widths.iter().skip(1).map(|w| w + 2).sum();
    widths[0] = widths[0].min(WIDTH.saturating_sub(rest).max(4));
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths[i];
            if i == 0 {
                out.push_str(&format!("{:<w$}", fit(cell, w)));
            } else {
                out.push_str(&format!("  {cell:>w$}"));
            }
        }
        format!("{}\n", fit(out.trim_end(), WIDTH))
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// Labels and values as two columns, without a header.
pub fn pairs(rows: &[Vec<String>]) -> String {
    table(&["", ""], rows)
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_use_the_currencys_decimals() {
        let eur = Money::of("EUR");
        assert_eq!(eur.amount(119), "1.19");
        assert_eq!(eur.amount(-5), "-0.05");
        assert_eq!(eur.amount(0), "0.00");
        assert_eq!(eur.with_code(35_700), "357.00 EUR");
        assert_eq!(Money::of("JPY").amount(500), "500");
        assert_eq!(Money::of("KWD").amount(1_234), "1.234");
        assert_eq!(eur.amount(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn rules_read_as_words() {
        let eur = Money::of("EUR");
        let dairy = Target {
            categories: ["dairy".to_owned()].into(),
            ..Target::default()
        };
        let three_for_two = Rule::MultiBuy {
            target: dairy.clone(),
            group: 3,
            percent_bp: 10_000,
        };
        assert_eq!(rule(&three_for_two, &eur), "3 for 2 on category dairy");
        let half = Rule::MultiBuy {
            target: dairy,
            group: 2,
            percent_bp: 5_000,
        };
        assert_eq!(
            rule(&half, &eur),
            "of every 2 of category dairy, the cheapest 50 % off"
        );
        let basket = Rule::BasketAmountOff {
            min_total_minor: 2_000,
            amount_minor: 500,
        };
        assert_eq!(rule(&basket, &eur), "5.00 off the basket from 20.00");
        let tenth = Rule::BasketPercentOff {
            min_total_minor: 0,
            percent_bp: 1_250,
        };
        assert_eq!(rule(&tenth, &eur), "12.5 % off the basket");
    }

    #[test]
    fn lines_fit_80_columns() {
        let long = "word ".repeat(60);
        let text = wrap(&long, "  ");
        assert!(text.lines().count() > 1);
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        let rows = vec![vec!["x".repeat(200), "1.00".to_owned()]];
        let t = table(&["SKU", "NET"], &rows);
        assert!(t.lines().all(|l| l.chars().count() <= WIDTH), "{t}");
        assert!(t.contains('…'), "{t}");
    }
}
