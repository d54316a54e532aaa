//! `storenode hq coupons issue | list | show CODE | grant CODE | revoke CODE`: HQ's coupon
//! API (`POST /v1/coupons`, `GET /v1/coupons[/{code}]`, `POST /v1/coupons/{code}/grant`,
//! `POST /v1/coupons/{code}/revoke`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::client::{Answer, Api, Connection, read_json, segment};
use super::print::{self, Money};
use crate::domain::coupons::{Channel, Coupon, MAX_USES};
use crate::domain::pricing::{Rule, Target};

#[derive(clap::Args, Debug)]
pub struct CouponsArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub action: CouponsAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum CouponsAction {
    /// Issue a coupon (published to every store), optionally granting uses to stores.
    Issue(IssueArgs),
    /// Every coupon issued: uses, HQ's pool, redemptions HQ knows of.
    List,
    /// One coupon: its definition, HQ's pool and each lane's uses.
    Show { code: String },
    /// Move uses from HQ's pool to a store's lane (while the store is online).
    Grant {
        code: String,
        /// `STORE` (the lane HQ knows, online first) or `STORE.LANE`.
        #[arg(long)]
        holder: String,
        /// How many uses.
        #[arg(long, value_parser = uses)]
        uses: i64,
    },
    /// Withdraw a coupon: refused wherever the revocation has arrived.
    Revoke { code: String },
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("discount").required(true)
    .args(["discount_file", "percent", "amount_off_minor"])))]
pub struct IssueArgs {
    /// 4 to 32 of A-Z 0-9 - (upper-cased by HQ).
    #[arg(long)]
    pub code: String,
    /// Printed on the receipt.
    #[arg(long)]
    pub name: String,
    /// Redemptions allowed in all.
    #[arg(long, default_value_t = 1, value_parser = uses)]
    pub uses: i64,
    /// A personal coupon's customer reference; without it anyone with the code may use it.
    #[arg(long)]
    pub customer: Option<String>,
    /// How it reaches the customer (HQ's records; any channel may redeem).
    #[arg(long, value_enum)]
    pub channel: Option<ChannelArg>,
    /// First instant it is no longer valid (RFC 3339, 2027-01-01T00:00:00Z); default never.
    #[arg(long, value_name = "RFC3339")]
    pub expires: Option<String>,
    /// Uses to hand to a store now, so it redeems offline: STORE=N (its lane HQ knows,
    /// online first) or STORE.LANE=N; repeat for more stores. The rest stay in HQ's pool.
    #[arg(long = "grant", value_name = "HOLDER=N", value_parser = parse_grant)]
    pub grants: Vec<(String, i64)>,
    /// The discount as one of the pricing engine's rules in JSON (`{"kind":
    /// "multi_buy", ...}`), instead of --percent or --amount-off-minor.
    #[arg(long, value_name = "FILE.json")]
    pub discount_file: Option<PathBuf>,
    /// Percent off (10, 12.5) the --sku/--category items, or the basket without them.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub percent: Option<u32>,
    /// Amount off in minor units (500 = 5.00 EUR): off each unit of the --sku/--category
    /// items, or off the basket without them.
    #[arg(long, value_name = "MINOR", value_parser = amount)]
    pub amount_off_minor: Option<i64>,
    /// A SKU the discount applies to; repeat for more.
    #[arg(long = "sku", value_name = "SKU", conflicts_with = "discount_file")]
    pub skus: Vec<String>,
    /// A category the discount applies to; repeat for more.
    #[arg(
        long = "category",
        value_name = "CATEGORY",
        conflicts_with = "discount_file"
    )]
    pub categories: Vec<String>,
    /// A basket discount applies from this basket total (minor units); default 0.
    #[arg(long, value_name = "MINOR", value_parser = amount,
        conflicts_with_all = ["discount_file", "skus", "categories"])]
    pub min_total_minor: Option<i64>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelArg {
    Web,
    App,
    Sms,
}

impl From<ChannelArg> for Channel {
    fn from(c: ChannelArg) -> Self {
        match c {
            ChannelArg::Web => Self::Web,
            ChannelArg::App => Self::App,
            ChannelArg::Sms => Self::Sms,
        }
    }
}

fn uses(text: &str) -> Result<i64, String> {
    crate::cli_numbers::integer(text, 1..=MAX_USES)
}

fn amount(text: &str) -> Result<i64, String> {
    crate::cli_numbers::integer(text, 0..=1_000_000_000_000)
}

/// `HOLDER=N`.
fn parse_grant(text: &str) -> Result<(String, i64), String> {
    let (holder, n) = text
        .rsplit_once('=')
        .filter(|(h, _)| !h.trim().is_empty())
        .ok_or_else(|| format!("{text:?}: expected STORE=USES or STORE.LANE=USES, like s1=2"))?;
    Ok((holder.trim().to_owned(), uses(n)?))
}

/// A percentage with at most two decimals, above 0 and at most 100, as basis points.
fn parse_percent(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a percentage above 0 and at most 100, like 10 or 12.5");
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty() || fraction.len() > 2 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u32 = crate::cli_numbers::integer(whole, 0..=100).map_err(|_| bad())?;
    let hundredths: u32 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    let bp = whole * 100 + hundredths;
    if bp == 0 || bp > 10_000 {
        return Err(bad());
    }
    Ok(bp)
}

/// The discount the flags describe (the group makes one of --percent, --amount-off-minor
/// given when there is no --discount-file).
fn discount_of(args: &IssueArgs) -> Option<Rule> {
    let target = Target {
        skus: args.skus.iter().cloned().collect(),
        categories: args.categories.iter().cloned().collect(),
    };
    let basket = target.skus.is_empty() && target.categories.is_empty();
    let min_total_minor = args.min_total_minor.unwrap_or(0);
    Some(match (args.percent, args.amount_off_minor, basket) {
        (Some(percent_bp), _, true) => Rule::BasketPercentOff {
            min_total_minor,
            percent_bp,
        },
        (Some(percent_bp), _, false) => Rule::PercentOff { target, percent_bp },
        (None, Some(amount_minor), true) => Rule::BasketAmountOff {
            min_total_minor,
            amount_minor,
        },
        (None, Some(amount_minor), false) => Rule::AmountOff {
            target,
            amount_minor,
        },
        (None, None, _) => return None,
    })
}

/// `POST /v1/coupons`'s body for `args` with `discount`.
fn issue_request(
    args: &IssueArgs,
    discount: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let mut grants = BTreeMap::new();
    for (holder, n) in &args.grants {
        if grants.insert(holder.clone(), *n).is_some() {
            return Err(format!("--grant {holder} is given twice"));
        }
    }
    let mut body = serde_json::json!({
        "code": args.code, "name": args.name, "discount": discount, "uses": args.uses,
    });
    if let Some(customer) = &args.customer {
        body["customer"] = customer.clone().into();
    }
    if let Some(channel) = args.channel {
        body["channel"] = serde_json::to_value(Channel::from(channel)).unwrap_or_default();
    }
    if let Some(expires) = &args.expires {
        body["expires_at"] = expires.clone().into();
    }
    if !grants.is_empty() {
        body["grants"] = serde_json::to_value(grants).unwrap_or_default();
    }
    Ok(body)
}

/// `GET /v1/coupons/{code}` (HQ's `CouponView`).
#[derive(Debug, Deserialize)]
struct View {
    coupon: Coupon,
    pool: i64,
    redeemed: i64,
    #[serde(default)]
    holders: Vec<Holder>,
}

#[derive(Debug, Deserialize)]
struct Holder {
    lane: String,
    granted: i64,
    redeemed: i64,
    released: i64,
    held: i64,
}

#[derive(Debug, Deserialize)]
struct List {
    coupons: Vec<View>,
}

pub async fn run(args: &CouponsArgs, config_file: &Path) -> anyhow::Result<String> {
    let api = Api::connect(&args.conn, config_file)?;
    let one = |answer: Answer| -> anyhow::Result<String> {
        Ok(api.show(&answer, "a coupon", |v: &View| view(v, &api.money))?)
    };
    match &args.action {
        CouponsAction::Issue(issue) => {
            let discount = match &issue.discount_file {
                Some(file) => read_json(file)?,
                None => serde_json::to_value(discount_of(issue))?,
            };
            let body = issue_request(issue, discount).map_err(anyhow::Error::msg)?;
            one(api.post("/v1/coupons", &body).await?)
        }
        CouponsAction::List => {
            let answer = api.get("/v1/coupons").await?;
            Ok(api.show(&answer, "a list of coupons", |l: &List| list(&l.coupons))?)
        }
        CouponsAction::Show { code } => {
            one(api.get(&format!("/v1/coupons/{}", segment(code))).await?)
        }
        CouponsAction::Grant { code, holder, uses } => {
            let body = serde_json::json!({ "holder": holder, "uses": uses });
            let path = format!("/v1/coupons/{}/grant", segment(code));
            one(api.post(&path, &body).await?)
        }
        CouponsAction::Revoke { code } => {
            let path = format!("/v1/coupons/{}/revoke", segment(code));
            one(api.post_empty(&path).await?)
        }
    }
}

/// Valid, revoked, or until when.
fn state(coupon: &Coupon) -> String {
    match (&coupon.expires_at, coupon.revoked) {
        (_, true) => "revoked".to_owned(),
        (Some(at), false) => format!("until {}", at.get(..10).unwrap_or(at)),
        (None, false) => "valid".to_owned(),
    }
}

/// One coupon: what it is, then where its uses are.
fn view(v: &View, money: &Money) -> String {
    let c = &v.coupon;
    let mut out = print::fit(&format!("{}  {}", c.code, c.name), print::WIDTH);
    out.push('\n');
    out.push_str(&print::wrap(
        &format!("discount: {}", print::rule(&c.discount, money)),
        "  ",
    ));
    let mut facts = vec![match &c.customer {
        Some(customer) => format!("personal (customer {customer})"),
        None => "bearer (anyone with the code)".to_owned(),
    }];
    if let Some(channel) = c.channel {
        let name = serde_json::to_value(channel).unwrap_or_default();
        facts.push(format!("channel {}", name.as_str().unwrap_or("?")));
    }
    facts.push(match (&c.expires_at, c.revoked) {
        (_, true) => "REVOKED".to_owned(),
        (Some(at), false) => format!("valid until {at}"),
        (None, false) => "never expires".to_owned(),
    });
    out.push_str(&print::wrap(&facts.join("; "), "  "));
    out.push_str(&print::wrap(
        &format!(
            "uses: {} in all, {} in HQ's pool, {} redeemed (that HQ knows of)",
            c.uses, v.pool, v.redeemed
        ),
        "  ",
    ));
    if v.holders.is_empty() {
        out.push_str("  no uses granted to a store\n");
        return out;
    }
    let rows: Vec<Vec<String>> = v
        .holders
        .iter()
        .map(|h| {
            vec![
                format!("  {}", h.lane),
                h.granted.to_string(),
                h.redeemed.to_string(),
                h.released.to_string(),
                h.held.to_string(),
            ]
        })
        .collect();
    out.push_str(&print::table(
        &["  LANE", "GRANTED", "REDEEMED", "RELEASED", "HELD"],
        &rows,
    ));
    out
}

/// Every coupon, one line each.
fn list(coupons: &[View]) -> String {
    if coupons.is_empty() {
        return "no coupons issued\n".to_owned();
    }
    let rows: Vec<Vec<String>> = coupons
        .iter()
        .map(|v| {
            vec![
                format!("{}  {}", v.coupon.code, v.coupon.name),
                v.coupon.uses.to_string(),
                v.pool.to_string(),
                v.redeemed.to_string(),
                state(&v.coupon),
            ]
        })
        .collect();
    print::table(&["CODE  NAME", "USES", "POOL", "REDEEMED", "STATE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        action: CouponsAction,
    }

    fn issue(argv: &[&str]) -> Result<IssueArgs, clap::Error> {
        let mut all = vec!["coupons", "issue"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all)?.action {
            CouponsAction::Issue(args) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    fn request(argv: &[&str]) -> serde_json::Value {
        let args = issue(argv).unwrap();
        let discount = serde_json::to_value(discount_of(&args)).unwrap();
        issue_request(&args, discount).unwrap()
    }

    #[test]
    fn flags_become_hqs_request() {
        assert_eq!(
            request(&[
                "--code",
                "SMS-FIVE",
                "--name",
                "5 EUR off from 20 EUR",
                "--amount-off-minor",
                "500",
                "--min-total-minor",
                "2000",
                "--channel",
                "sms",
                "--expires",
                "2099-01-01T00:00:00Z",
                "--grant",
                "store-1=1",
            ]),
            serde_json::json!({
                "code": "SMS-FIVE", "name": "5 EUR off from 20 EUR", "uses": 1, "channel": "sms",
                "expires_at": "2099-01-01T00:00:00Z", "grants": { "store-1": 1 },
                "discount": { "kind": "basket_amount_off", "min_total_minor": 2000, "amount_minor": 500 },
            })
        );
        assert_eq!(
            request(&[
                "--code",
                "DAIRY",
                "--name",
                "Dairy",
                "--uses",
                "10",
                "--percent",
                "12.5",
                "--category",
                "dairy",
                "--sku",
                "EGGS-6",
                "--customer",
                "c-42",
            ]),
            serde_json::json!({
                "code": "DAIRY", "name": "Dairy", "uses": 10, "customer": "c-42",
                "discount": { "kind": "percent_off", "percent_bp": 1250,
                    "target": { "skus": ["EGGS-6"], "categories": ["dairy"] } },
            })
        );
        assert_eq!(
            request(&["--code", "APP-TEN", "--name", "x", "--percent", "10"])["discount"],
            serde_json::json!({ "kind": "basket_percent_off", "min_total_minor": 0, "percent_bp": 1000 })
        );
        let twice = issue(&[
            "--code",
            "C1",
            "--name",
            "x",
            "--percent",
            "5",
            "--grant",
            "s1=1",
            "--grant",
            "s1=2",
        ])
        .unwrap();
        assert!(issue_request(&twice, serde_json::Value::Null).is_err());
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        const BASE: [&str; 6] = ["--code", "C1", "--name", "x", "--percent", "5"];
        let on_base = |extra: &[&'static str]| [&BASE[..], extra].concat();
        let refused: Vec<Vec<&str>> = vec![
            vec!["--code", "C1", "--name", "x"],
            on_base(&["--amount-off-minor", "1"]),
            vec!["--code", "C1", "--name", "x", "--percent", "0"],
            vec!["--code", "C1", "--name", "x", "--percent", "100.5"],
            vec!["--code", "C1", "--name", "x", "--percent", "1.234"],
            on_base(&["--uses", "0"]),
            on_base(&["--grant", "s1"]),
            on_base(&["--grant", "=3"]),
            on_base(&["--channel", "fax"]),
            on_base(&["--sku", "A", "--min-total-minor", "1"]),
            vec![
                "--code",
                "C1",
                "--name",
                "x",
                "--discount-file",
                "d.json",
                "--sku",
                "A",
            ],
            vec!["--name", "x", "--percent", "5"],
        ];
        for argv in &refused {
            let err = issue(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
        }
    }

    fn sample() -> View {
        serde_json::from_value(serde_json::json!({
            "coupon": { "code": "SMS-FIVE", "name": "5 EUR off from 20 EUR", "uses": 1,
                "channel": "sms", "expires_at": "2099-01-01T00:00:00.000Z", "revoked": false,
                "discount": { "kind": "basket_amount_off", "min_total_minor": 2000, "amount_minor": 500 } },
            "pool": 0, "redeemed": 0,
            "holders": [{ "lane": "store-1.lane1", "granted": 1, "redeemed": 0, "released": 0, "held": 1 }]
        }))
        .unwrap()
    }

    #[test]
    fn a_coupon_shows_its_discount_and_where_its_uses_are() {
        let expected = "\
SMS-FIVE  5 EUR off from 20 EUR
  discount: 5.00 off the basket from 20.00
  bearer (anyone with the code); channel sms; valid until
  2099-01-01T00:00:00.000Z
  uses: 1 in all, 0 in HQ's pool, 0 redeemed (that HQ knows of)
  LANE           GRANTED  REDEEMED  RELEASED  HELD
  store-1.lane1        1         0         0     1
";
        assert_eq!(view(&sample(), &Money::of("EUR")), expected);
    }

    #[test]
    fn the_list_has_a_line_per_coupon() {
        let expected = "\
CODE  NAME                       USES  POOL  REDEEMED             STATE
SMS-FIVE  5 EUR off from 20 EUR     1     0         0  until 2099-01-01
";
        assert_eq!(list(&[sample()]), expected);
        assert_eq!(list(&[]), "no coupons issued\n");
    }
}
