//! `storenode hq loyalty rules show|set` and `loyalty member add|show|history CARD`: HQ's
//! loyalty API (`GET|PUT /v1/loyalty/rules`, `POST /v1/loyalty/members`,
//! `GET /v1/loyalty/members/{card}[/history]`). The web shop's earn and spend stay with the
//! web shop (they are once-per-order calls, not an operator's).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::client::{Api, Connection, raw, segment};
use super::print::{self, Money};
use crate::domain::loyalty::LoyaltyRules;

#[derive(clap::Args, Debug)]
pub struct LoyaltyArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub action: LoyaltyAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum LoyaltyAction {
    /// The earning and spending rules every store uses.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Members: register one, a balance, HQ's entries.
    Member {
        #[command(subcommand)]
        action: MemberAction,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum RulesAction {
    /// The rules HQ publishes.
    Show,
    /// Publish the rules to every store.
    Set {
        /// Points earned per whole currency unit paid other than in points (0 to 10000).
        #[arg(long, value_parser = |t: &str| crate::cli_numbers::integer::<i64>(t, 0..=10_000))]
        points_per_unit: i64,
        /// What one point pays, in minor units (1 to 1000000).
        #[arg(long, value_parser = |t: &str| crate::cli_numbers::integer::<i64>(t, 1..=1_000_000))]
        point_value_minor: i64,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum MemberAction {
    /// Register a member; name, phone and e-mail (all three, or none) go to the
    /// customer-data store, never into a document.
    Add {
        /// The card: an 18-digit GSRN or the chain's own code (CLUB-1001).
        card: String,
        #[arg(long, requires_all = ["phone", "email"])]
        name: Option<String>,
        #[arg(long, requires_all = ["name", "email"])]
        phone: Option<String>,
        #[arg(long, requires_all = ["name", "phone"])]
        email: Option<String>,
        /// Postal address (optional, with the other three).
        #[arg(long, requires = "name")]
        address: Option<String>,
    },
    /// A member's balance: HQ's pool, what lanes hold, owed points, each lane's totals.
    Show { card: String },
    /// HQ's own entries for a member (web earns and spends, grants, settlements), oldest
    /// first, and each lane's totals.
    History { card: String },
}

/// `POST /v1/loyalty/members`'s body.
fn member_request(
    card: &str,
    name: Option<&str>,
    phone: Option<&str>,
    email: Option<&str>,
    address: Option<&str>,
) -> serde_json::Value {
    let mut body = serde_json::json!({ "card": card });
    if let (Some(name), Some(phone), Some(email)) = (name, phone, email) {
        body["customer"] = serde_json::json!({ "name": name, "phone": phone, "email": email });
        if let Some(address) = address {
            body["customer"]["address"] = address.into();
        }
    }
    body
}

/// One lane's totals for a member (HQ's `LaneTotals`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Lane {
    earned: i64,
    spent: i64,
    reversed: i64,
    released: i64,
    owed: i64,
    granted: i64,
}

/// `GET /v1/loyalty/members/{card}` (HQ's `MemberBalance`).
#[derive(Debug, Deserialize)]
struct Balance {
    member: String,
    registered: bool,
    balance: i64,
    pool: i64,
    spendable_online: i64,
    owed: i64,
    earned: i64,
    #[serde(default)]
    lanes: BTreeMap<String, Lane>,
}

/// `GET /v1/loyalty/members/{card}/history`.
#[derive(Debug, Deserialize)]
struct History {
    member: String,
    entries: Vec<Entry>,
    #[serde(default)]
    lanes: BTreeMap<String, Lane>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    kind: String,
    points: i64,
    reference: String,
    #[serde(default)]
    lane: Option<String>,
    at: String,
}

pub async fn run(args: &LoyaltyArgs, config_file: &Path) -> anyhow::Result<String> {
    let api = Api::connect(&args.conn, config_file)?;
    let money = &api.money;
    match &args.action {
        LoyaltyAction::Rules {
            action: RulesAction::Show,
        } => {
            let answer = api.get("/v1/loyalty/rules").await?;
            Ok(api.show(&answer, "loyalty rules", |r| {
                print::wrap(&rules(r, money), "")
            })?)
        }
        LoyaltyAction::Rules {
            action:
                RulesAction::Set {
                    points_per_unit,
                    point_value_minor,
                },
        } => {
            let body = serde_json::json!({
                "points_per_unit": points_per_unit, "point_value_minor": point_value_minor,
            });
            let answer = api.put("/v1/loyalty/rules", &body).await?;
            Ok(api.show(&answer, "loyalty rules", |r| {
                format!(
                    "published to every store:\n{}",
                    print::wrap(&rules(r, money), "  ")
                )
            })?)
        }
        LoyaltyAction::Member { action } => member(&api, action).await,
    }
}

async fn member(api: &Api, action: &MemberAction) -> anyhow::Result<String> {
    match action {
        MemberAction::Add {
            card,
            name,
            phone,
            email,
            address,
        } => {
            let body = member_request(
                card,
                name.as_deref(),
                phone.as_deref(),
                email.as_deref(),
                address.as_deref(),
            );
            let answer = api.post("/v1/loyalty/members", &body).await?;
            if api.raw {
                return Ok(raw(&answer));
            }
            let id = answer.json["member"].as_str().unwrap_or(card);
            let kept = if body.get("customer").is_some() {
                " (contact data in the customer-data store)"
            } else {
                ""
            };
            Ok(format!("registered member {id}{kept}\n"))
        }
        MemberAction::Show { card } => {
            let answer = api
                .get(&format!("/v1/loyalty/members/{}", segment(card)))
                .await?;
            Ok(api.show(&answer, "a member's balance", balance)?)
        }
        MemberAction::History { card } => {
            let answer = api
                .get(&format!("/v1/loyalty/members/{}/history", segment(card)))
                .await?;
            Ok(api.show(&answer, "a member's history", history)?)
        }
    }
}

fn rules(r: &LoyaltyRules, money: &Money) -> String {
    format!(
        "{} points per whole {} paid (other than in points); a point pays {} {}",
        r.points_per_unit,
        money.currency,
        money.amount(r.point_value_minor),
        money.currency
    )
}

fn balance(b: &Balance) -> String {
    let registered = if b.registered {
        "registered at HQ"
    } else {
        "not registered at HQ (a card handed out at a till)"
    };
    let mut out = print::fit(&format!("member {}  {registered}", b.member), print::WIDTH);
    out.push('\n');
    let figures = vec![
        vec!["balance (points)".to_owned(), b.balance.to_string()],
        vec!["  held at HQ (pool)".to_owned(), b.pool.to_string()],
        vec![
            "  spendable online".to_owned(),
            b.spendable_online.to_string(),
        ],
        vec!["owed by returns".to_owned(), b.owed.to_string()],
        vec!["earned in all".to_owned(), b.earned.to_string()],
    ];
    out.push_str(&print::pairs(&figures));
    out.push_str(&lanes(&b.lanes));
    out
}

fn history(h: &History) -> String {
    let mut out = format!("member {}: HQ's entries (UTC)\n", h.member);
    if h.entries.is_empty() {
        out.push_str("  none\n");
    }
    for e in &h.entries {
        // A grant's reference names its lane already.
        let place = match &e.lane {
            Some(lane) if !e.reference.contains(lane.as_str()) => {
                format!("{}  {lane}", e.reference)
            }
            _ => e.reference.clone(),
        };
        let at =
            e.at.get(..19)
                .map_or_else(|| e.at.clone(), |s| s.replace('T', " "));
        let head = format!("  {at}  {:<8} {:>8}", e.kind, e.points);
        if head.chars().count() + 2 + place.chars().count() <= print::WIDTH {
            out.push_str(&format!("{head}  {place}\n"));
        } else {
            out.push_str(&format!("{head}\n{}", print::wrap(&place, "      ")));
        }
    }
    out.push_str(&lanes(&h.lanes));
    out
}

/// Each lane's totals for the member; nothing when no lane has any.
fn lanes(lanes: &BTreeMap<String, Lane>) -> String {
    if lanes.is_empty() {
        return "no lane has points of this member\n".to_owned();
    }
    let rows: Vec<Vec<String>> = lanes
        .iter()
        .map(|(lane, t)| {
            vec![
                lane.clone(),
                t.granted.to_string(),
                t.earned.to_string(),
                t.spent.to_string(),
                t.reversed.to_string(),
                t.released.to_string(),
                t.owed.to_string(),
            ]
        })
        .collect();
    print::table(
        &[
            "LANE", "GRANTED", "EARNED", "SPENT", "REVERSED", "RELEASED", "OWED",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        action: LoyaltyAction,
    }

    fn parse(argv: &[&str]) -> Result<LoyaltyAction, clap::Error> {
        let mut all = vec!["loyalty"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).map(|c| c.action)
    }

    #[test]
    fn a_member_is_registered_with_all_contact_data_or_none() {
        assert_eq!(
            member_request("CLUB-1001", None, None, None, None),
            serde_json::json!({ "card": "CLUB-1001" })
        );
        assert_eq!(
            member_request(
                "CLUB-1001",
                Some("Ada"),
                Some("+49 30 1"),
                Some("a@x.org"),
                None
            ),
            serde_json::json!({ "card": "CLUB-1001",
                "customer": { "name": "Ada", "phone": "+49 30 1", "email": "a@x.org" } })
        );
        assert!(parse(&["member", "add", "C1", "--name", "Ada"]).is_err());
        assert!(parse(&["member", "add", "C1", "--address", "Street 1"]).is_err());
        assert!(
            parse(&[
                "member", "add", "C1", "--name", "A", "--phone", "1", "--email", "e"
            ])
            .is_ok()
        );
    }

    #[test]
    fn rules_are_checked_as_hq_checks_them() {
        for argv in [
            &[
                "rules",
                "set",
                "--points-per-unit",
                "-1",
                "--point-value-minor",
                "1",
            ][..],
            &[
                "rules",
                "set",
                "--points-per-unit",
                "10",
                "--point-value-minor",
                "0",
            ],
            &["rules", "set", "--points-per-unit", "10"],
        ] {
            assert_eq!(parse(argv).unwrap_err().exit_code(), 2, "{argv:?}");
        }
        let r = LoyaltyRules {
            points_per_unit: 10,
            point_value_minor: 1,
        };
        assert_eq!(
            rules(&r, &Money::of("EUR")),
            "10 points per whole EUR paid (other than in points); a point pays 0.01 EUR"
        );
    }

    #[test]
    fn a_balance_shows_pool_lanes_and_owed() {
        let b: Balance = serde_json::from_value(serde_json::json!({
            "member": "CLUB-1001", "registered": true, "balance": 250, "pool": 0,
            "spendable_online": 0, "owed": 0, "earned": 250,
            "lanes": { "store-1.lane1": { "earned": 0, "spent": 119, "reversed": 0, "released": 0,
                "owed": 0, "wanted": 1, "granted": 250, "served": 1 } },
            "hq": { "earned": 250, "spent": 0, "settled": 0 }
        }))
        .unwrap();
        let expected = "\
member CLUB-1001  registered at HQ
balance (points)     250
  held at HQ (pool)    0
  spendable online     0
owed by returns        0
earned in all        250
LANE           GRANTED  EARNED  SPENT  REVERSED  RELEASED  OWED
store-1.lane1      250       0    119         0         0     0
";
        assert_eq!(balance(&b), expected);
    }

    #[test]
    fn the_history_lists_hqs_entries() {
        let h: History = serde_json::from_value(serde_json::json!({
            "member": "CLUB-1001",
            "entries": [{ "kind": "earned", "points": 250, "reference": "web:web-77", "lane": null,
                "at": "2026-12-05T09:00:00.000Z" },
              { "kind": "granted", "points": 250, "reference": "want:1", "lane": "store-1.lane1",
                "at": "2026-12-05T09:01:00.000Z" }],
            "lanes": {}
        }))
        .unwrap();
        let text = history(&h);
        assert!(
            text.contains("  2026-12-05 09:00:00  earned        250  web:web-77\n"),
            "{text}"
        );
        assert!(text.contains("want:1  store-1.lane1"), "{text}");
        let long = History {
            member: "C".into(),
            entries: vec![Entry {
                kind: "granted".into(),
                points: 250,
                reference: format!("grant:s1.lane1:{}", "9".repeat(60)),
                lane: Some("s1.lane1".into()),
                at: "2026-12-05T09:01:00.000Z".into(),
            }],
            lanes: BTreeMap::new(),
        };
        let text = history(&long);
        assert!(
            text.contains("  2026-12-05 09:01:00  granted       250\n      grant:s1.lane1:99"),
            "{text}"
        );
        assert!(text.lines().all(|l| l.chars().count() <= print::WIDTH));
        assert!(text.lines().all(|l| l.chars().count() <= print::WIDTH));
    }
}
