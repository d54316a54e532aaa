//! `storenode hq pricing set FILE` (`POST /v1/pricing`: price lists, ended price lists,
//! category members, stores' time zones) and `storenode hq quote` (`POST /v1/quote`: a
//! basket priced at a store as its till would, from a file or from flags).

use std::path::{Path, PathBuf};

use super::client::{Api, Connection, read_json};
use super::print::{self, Money};
use crate::hq::pricing::{PricingBody, Quote};

#[derive(clap::Args, Debug)]
pub struct PricingArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub action: PricingAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum PricingAction {
    /// Publish what a JSON file (`-`: standard input) holds: `price_lists`,
    /// `end_price_lists`, `categories` (name → SKUs, [] removes), `time_zones` (store or
    /// `*` → IANA zone, null removes); docs/omnichannel.md, story 9.
    Set {
        #[arg(value_name = "FILE.json")]
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("basket").required(true).args(["file", "store"])))]
pub struct QuoteArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// The request as JSON (`-`: standard input): `store`, `at`, `lines`, `coupons`,
    /// `customer`; instead of the flags.
    #[arg(value_name = "FILE.json", conflicts_with_all = ["store", "lines", "at", "coupons", "customer"])]
    pub file: Option<PathBuf>,
    /// The store whose price lists, promotions and time zone apply.
    #[arg(long, requires = "lines")]
    pub store: Option<String>,
    /// A line: SKU:QUANTITY in pieces, or SKU:GRAMSg for a weighed item (MILK-1L:4,
    /// APPLES:1250g); repeat for more lines.
    #[arg(long = "line", value_name = "SKU:QTY", value_parser = parse_line)]
    pub lines: Vec<Line>,
    /// The UTC instant to price at (RFC 3339, 2026-12-05T09:00:00Z); default now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// A coupon code to price with (a quote redeems nothing); repeat for more.
    #[arg(long = "coupon", value_name = "CODE")]
    pub coupons: Vec<String>,
    /// The customer reference, for a personal coupon.
    #[arg(long)]
    pub customer: Option<String>,
}

/// A basket line of the quote request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub quantity: Quantity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Pieces(i64),
    Grams(i64),
}

impl Quantity {
    fn shown(self) -> String {
        match self {
            Self::Pieces(n) => n.to_string(),
            Self::Grams(g) => format!("{g} g"),
        }
    }
}

/// `SKU:QTY` or `SKU:GRAMSg`; a positive whole number (the SKU may itself hold `:`).
fn parse_line(text: &str) -> Result<Line, String> {
    let bad = || format!("{text:?}: expected SKU:QUANTITY or SKU:GRAMSg, like MILK-1L:4");
    let (sku, amount) = text.rsplit_once(':').ok_or_else(bad)?;
    let sku = sku.trim();
    if sku.is_empty() {
        return Err(bad());
    }
    let (digits, grams) = match amount.trim().strip_suffix('g') {
        Some(digits) => (digits, true),
        None => (amount.trim(), false),
    };
    let n = crate::cli_numbers::integer::<i64>(digits, 1..=1_000_000_000)
        .map_err(|e| format!("{text:?}: {e}"))?;
    let quantity = if grams {
        Quantity::Grams(n)
    } else {
        Quantity::Pieces(n)
    };
    Ok(Line {
        sku: sku.to_owned(),
        quantity,
    })
}

pub async fn run_set(args: &PricingArgs, config_file: &Path) -> anyhow::Result<String> {
    let api = Api::connect(&args.conn, config_file)?;
    let PricingAction::Set { file } = &args.action;
    let body = read_json(file)?;
    let answer = api.post("/v1/pricing", &body).await?;
    if api.raw {
        return Ok(super::client::raw(&answer));
    }
    // HQ took the file, so it reads as its request type; what was published is the file's.
    Ok(match serde_json::from_value::<PricingBody>(body) {
        Ok(published) => published_summary(&published),
        Err(_) => "published\n".to_owned(),
    })
}

/// What `pricing set` published, by kind.
fn published_summary(body: &PricingBody) -> String {
    let mut parts = Vec::new();
    if !body.price_lists.is_empty() {
        let ids: Vec<&str> = body.price_lists.iter().map(|l| l.id.as_str()).collect();
        parts.push(format!("price lists: {}", ids.join(", ")));
    }
    if !body.end_price_lists.is_empty() {
        parts.push(format!(
            "price lists ended: {}",
            body.end_price_lists.join(", ")
        ));
    }
    if !body.categories.is_empty() {
        let cats: Vec<String> = body
            .categories
            .iter()
            .map(|(name, skus)| match skus.len() {
                0 => format!("{name} (removed)"),
                1 => format!("{name} (1 SKU)"),
                n => format!("{name} ({n} SKUs)"),
            })
            .collect();
        parts.push(format!("categories: {}", cats.join(", ")));
    }
    if !body.time_zones.is_empty() {
        let zones: Vec<String> = body
            .time_zones
            .iter()
            .map(|(store, zone)| format!("{store} {}", zone.as_deref().unwrap_or("(removed)")))
            .collect();
        parts.push(format!("time zones: {}", zones.join(", ")));
    }
    if parts.is_empty() {
        return "nothing to publish: the file names no price list, category or time zone\n"
            .to_owned();
    }
    let mut out = "published to every store:\n".to_owned();
    for part in parts {
        out.push_str(&print::wrap(&part, "  "));
    }
    out
}

/// The request `args` stand for, and its lines' quantities (to print beside HQ's lines).
fn quote_request(args: &QuoteArgs) -> anyhow::Result<(serde_json::Value, Vec<Option<Quantity>>)> {
    if let Some(file) = &args.file {
        let body = read_json(file)?;
        let quantities = body["lines"]
            .as_array()
            .map(|lines| lines.iter().map(quantity_in).collect())
            .unwrap_or_default();
        return Ok((body, quantities));
    }
    let lines: Vec<serde_json::Value> = args
        .lines
        .iter()
        .map(|l| match l.quantity {
            Quantity::Pieces(n) => serde_json::json!({ "sku": l.sku, "quantity": n }),
            Quantity::Grams(g) => serde_json::json!({ "sku": l.sku, "weight_grams": g }),
        })
        .collect();
    let mut body = serde_json::json!({ "store": args.store, "lines": lines });
    if let Some(at) = &args.at {
        body["at"] = at.clone().into();
    }
    if !args.coupons.is_empty() {
        body["coupons"] = args.coupons.clone().into();
    }
    if let Some(customer) = &args.customer {
        body["customer"] = customer.clone().into();
    }
    let quantities = args.lines.iter().map(|l| Some(l.quantity)).collect();
    Ok((body, quantities))
}

/// A request line's quantity as HQ reads it: grams when given, else pieces (1 by default).
fn quantity_in(line: &serde_json::Value) -> Option<Quantity> {
    match (line["weight_grams"].as_i64(), line["quantity"].as_i64()) {
        (Some(g), _) => Some(Quantity::Grams(g)),
        (None, Some(n)) => Some(Quantity::Pieces(n)),
        (None, None) if line.is_object() => Some(Quantity::Pieces(1)),
        _ => None,
    }
}

pub async fn run_quote(args: &QuoteArgs, config_file: &Path) -> anyhow::Result<String> {
    let api = Api::connect(&args.conn, config_file)?;
    let (body, quantities) = quote_request(args)?;
    let answer = api.post("/v1/quote", &body).await?;
    Ok(api.show(&answer, "a quote", |q: &Quote| {
        quote_text(q, &quantities, &api.money)
    })?)
}

/// The priced basket: a line per SKU, the promotions and coupons applied, the totals.
fn quote_text(quote: &Quote, quantities: &[Option<Quantity>], money: &Money) -> String {
    let basket = &quote.basket;
    let mut out = print::fit(
        &format!(
            "quote at {}, local time {} ({})",
            quote.store, quote.local_time, money.currency
        ),
        print::WIDTH,
    );
    out.push('\n');
    let rows: Vec<Vec<String>> = basket
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let discount: i64 = line.discounts.iter().map(|d| d.amount_minor).sum();
            let quantity = quantities
                .get(i)
                .copied()
                .flatten()
                .map_or_else(|| "?".to_owned(), Quantity::shown);
            let unit = match &line.price_list {
                Some(_) => format!("{}*", money.amount(line.unit_price_minor)),
                None => money.amount(line.unit_price_minor),
            };
            vec![
                line.sku.clone(),
                quantity,
                unit,
                money.amount(line.gross_minor),
                money.amount(-discount),
                money.amount(line.net_minor),
            ]
        })
        .collect();
    out.push_str(&print::table(
        &["SKU", "QTY", "UNIT", "GROSS", "DISCOUNT", "NET"],
        &rows,
    ));
    let lists: Vec<String> = basket
        .lines
        .iter()
        .filter_map(|l| Some(format!("{} {}", l.sku, l.price_list.as_deref()?)))
        .collect();
    if !lists.is_empty() {
        out.push_str(&print::wrap(
            &format!("* from a price list: {}", lists.join(", ")),
            "",
        ));
    }
    if !basket.promotions.is_empty() {
        out.push_str("promotions and coupons applied:\n");
        let rows: Vec<Vec<String>> = basket
            .promotions
            .iter()
            .map(|p| {
                vec![
                    format!("  {} ({})", p.name, p.promotion_id),
                    money.amount(-p.amount_minor),
                ]
            })
            .collect();
        out.push_str(&print::pairs(&rows));
    }
    let totals = vec![
        vec![
            "subtotal".to_owned(),
            money.with_code(basket.subtotal_minor),
        ],
        vec![
            "discount".to_owned(),
            money.with_code(-basket.discount_minor),
        ],
        vec!["total".to_owned(), money.with_code(basket.total_minor)],
    ];
    out.push_str(&print::pairs(&totals));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        quote: QuoteArgs,
    }

    fn args(argv: &[&str]) -> Result<QuoteArgs, clap::Error> {
        let mut all = vec!["quote"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).map(|c| c.quote)
    }

    #[test]
    fn flags_become_hqs_request() {
        let a = args(&[
            "--store",
            "store-1",
            "--line",
            "MILK-1L:4",
            "--line",
            "APPLES:1250g",
            "--coupon",
            "sms-five",
            "--at",
            "2026-12-05T09:00:00Z",
        ])
        .unwrap();
        let (body, quantities) = quote_request(&a).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "store": "store-1", "at": "2026-12-05T09:00:00Z", "coupons": ["sms-five"],
                "lines": [{ "sku": "MILK-1L", "quantity": 4 }, { "sku": "APPLES", "weight_grams": 1250 }],
            })
        );
        assert_eq!(
            quantities,
            vec![Some(Quantity::Pieces(4)), Some(Quantity::Grams(1250))]
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for argv in [
            &["--store", "s1"][..],
            &["--line", "MILK:1"],
            &["--store", "s1", "--line", "MILK"],
            &["--store", "s1", "--line", "MILK:0"],
            &["--store", "s1", "--line", "MILK:-1"],
            &["--store", "s1", "--line", ":3"],
            &["basket.json", "--store", "s1"],
            &[],
        ] {
            let err = args(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
        }
        assert!(args(&["basket.json"]).is_ok());
    }

    #[test]
    fn a_file_lines_quantities_are_read_as_hq_reads_them() {
        let lines = serde_json::json!([{ "sku": "A" }, { "sku": "B", "quantity": 3 },
            { "sku": "C", "weight_grams": 500 }]);
        let q: Vec<_> = lines.as_array().unwrap().iter().map(quantity_in).collect();
        assert_eq!(
            q,
            vec![
                Some(Quantity::Pieces(1)),
                Some(Quantity::Pieces(3)),
                Some(Quantity::Grams(500))
            ]
        );
    }

    #[test]
    fn the_quote_prints_lines_discounts_and_total() {
        let quote: Quote = serde_json::from_value(serde_json::json!({
            "store": "store-1", "local_time": "2026-12-05T10:00",
            "lines": [{ "sku": "MILK-1L", "unit_price_minor": 119, "gross_minor": 476,
                "discounts": [{ "promotion_id": "milk-3for2", "name": "Milk 3 for 2", "amount_minor": 119 }],
                "net_minor": 357 },
              { "sku": "BREAD-500", "unit_price_minor": 199, "price_list": "weekend", "gross_minor": 199, "net_minor": 199 }],
            "subtotal_minor": 675, "discount_minor": 119, "total_minor": 556,
            "promotions": [{ "promotion_id": "milk-3for2", "name": "Milk 3 for 2", "amount_minor": 119 }]
        }))
        .unwrap();
        let text = quote_text(
            &quote,
            &[Some(Quantity::Pieces(4)), Some(Quantity::Pieces(1))],
            &Money::of("EUR"),
        );
        let expected = "\
quote at store-1, local time 2026-12-05T10:00 (EUR)
SKU        QTY   UNIT  GROSS  DISCOUNT   NET
MILK-1L      4   1.19   4.76     -1.19  3.57
BREAD-500    1  1.99*   1.99      0.00  1.99
* from a price list: BREAD-500 weekend
promotions and coupons applied:
  Milk 3 for 2 (milk-3for2)  -1.19
subtotal   6.75 EUR
discount  -1.19 EUR
total      5.56 EUR
";
        assert_eq!(text, expected);
    }

    #[test]
    fn the_summary_names_what_was_published() {
        let body: PricingBody = serde_json::from_value(serde_json::json!({
            "time_zones": { "*": "Europe/Berlin" }, "categories": { "dairy": ["MILK-1L"] },
            "price_lists": [{ "id": "weekend", "name": "Weekend", "prices": { "BREAD-500": 199 } }]
        }))
        .unwrap();
        assert_eq!(
            published_summary(&body),
            "published to every store:\n  price lists: weekend\n  categories: dairy (1 SKU)\n  \
             time zones: * Europe/Berlin\n"
        );
    }
}
