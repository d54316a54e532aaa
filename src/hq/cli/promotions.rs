//! `storenode hq promotions list | add FILE | end ID`: `GET /v1/promotions`,
//! `POST /v1/promotions` (a promotion: create or replace by id), `POST /v1/promotions/{id}/end`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::client::{Api, Connection, raw, read_json, segment};
use super::print::{self, Money};
use crate::domain::pricing::Promotion;

#[derive(clap::Args, Debug)]
pub struct PromotionsArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub action: PromotionsAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum PromotionsAction {
    /// The promotions HQ publishes.
    List,
    /// Publish a promotion from a JSON file (`-`: standard input), or each of a JSON array;
    /// one with an id HQ has replaces it. The fields: docs/omnichannel.md, story 9.
    Add {
        #[arg(value_name = "FILE.json")]
        file: PathBuf,
    },
    /// Withdraw a promotion from every store.
    End { id: String },
}

/// `GET /v1/promotions`.
#[derive(Debug, Deserialize)]
struct Promotions {
    promotions: Vec<Promotion>,
}

pub async fn run(args: &PromotionsArgs, config_file: &Path) -> anyhow::Result<String> {
    let api = Api::connect(&args.conn, config_file)?;
    match &args.action {
        PromotionsAction::List => {
            let answer = api.get("/v1/promotions").await?;
            Ok(api.show(&answer, "a list of promotions", |p: &Promotions| {
                list(&p.promotions, &api.money)
            })?)
        }
        PromotionsAction::Add { file } => {
            let mut out = String::new();
            for promotion in promotions_of(read_json(file)?) {
                let answer = api.post("/v1/promotions", &promotion).await?;
                out.push_str(&if api.raw {
                    raw(&answer)
                } else {
                    let id = answer.json["promotion"].as_str().unwrap_or("?");
                    format!("published promotion {id}\n")
                });
            }
            Ok(out)
        }
        PromotionsAction::End { id } => {
            let path = format!("/v1/promotions/{}/end", segment(id));
            let answer = api.post_empty(&path).await?;
            Ok(if api.raw {
                raw(&answer)
            } else {
                format!("ended promotion {id}: withdrawn from every store\n")
            })
        }
    }
}

/// The promotions a file holds: one object, or each element of an array.
fn promotions_of(file: serde_json::Value) -> Vec<serde_json::Value> {
    match file {
        serde_json::Value::Array(all) => all,
        one => vec![one],
    }
}

/// Each promotion: id and name, then what it does, where and when.
fn list(promotions: &[Promotion], money: &Money) -> String {
    if promotions.is_empty() {
        return "no promotions published\n".to_owned();
    }
    let mut out = String::new();
    for p in promotions {
        out.push_str(&print::fit(&format!("{}  {}", p.id, p.name), print::WIDTH));
        out.push('\n');
        let mut when = format!(
            "{}; {}; priority {}",
            print::scope(&p.scope),
            print::window(&p.window),
            p.priority
        );
        if p.exclusive {
            when.push_str(", exclusive");
        }
        out.push_str(&print::wrap(&print::rule(&p.rule, money), "    "));
        out.push_str(&print::wrap(&when, "    "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_holds_one_promotion_or_several() {
        let one = serde_json::json!({ "id": "p1" });
        assert_eq!(promotions_of(one.clone()), vec![one.clone()]);
        let two = serde_json::json!([{ "id": "p1" }, { "id": "p2" }]);
        assert_eq!(promotions_of(two).len(), 2);
    }

    #[test]
    fn the_list_names_rule_scope_and_window() {
        let p: Promotion = serde_json::from_value(serde_json::json!({
            "id": "milk-3for2", "name": "Milk 3 for 2", "priority": 1,
            "scope": { "stores": ["store-1"] },
            "window": { "from": "2026-12-01T00:00", "until": "2027-01-01T00:00" },
            "rule": { "kind": "multi_buy", "target": { "categories": ["dairy"] }, "group": 3, "percent_bp": 10000 }
        }))
        .unwrap();
        let text = list(&[p], &Money::of("EUR"));
        assert_eq!(
            text,
            "milk-3for2  Milk 3 for 2\n    3 for 2 on category dairy\n    \
             stores store-1; 2026-12-01T00:00 to 2027-01-01T00:00; priority 1\n"
        );
        assert_eq!(list(&[], &Money::of("EUR")), "no promotions published\n");
    }
}
