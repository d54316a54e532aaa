//! `storenode hq promotions|pricing|quote|coupons|loyalty`: the real binary as HQ (SQLite,
//! its embedded broker, no store) and every command run through the real binary, each
//! effect checked through HQ's own API: a promotion added from the command line is
//! published and changes the quote, a coupon issued shows its uses and prices a basket, a
//! member added has a balance. HQ's refusals exit 1 with HQ's message, usage errors exit 2.

mod common;
mod sync_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::node::{CATALOG_CSV, binary, free_port};
use serde_json::{Value, json};
use sync_util::{BrokerAccess, HQ_TOKEN, HqNode, StoreNode, wait_for};

/// A Saturday morning in Berlin (09:00 UTC is 10:00 local).
const SATURDAY: &str = "2026-12-05T09:00:00Z";

/// The command line against one HQ: its URL and a token file.
struct Operator {
    dir: tempfile::TempDir,
    url: String,
    token_file: PathBuf,
}

impl Operator {
    fn new(hq: &HqNode) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("hq-token");
        std::fs::write(&token_file, format!("{HQ_TOKEN}\n")).expect("write token");
        Self {
            url: hq.base.clone(),
            token_file,
            dir,
        }
    }

    fn file(&self, name: &str, body: &Value) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, body.to_string()).expect("write file");
        path
    }

    /// `storenode hq ARGS --hq-url … --token-file …` (a --config that does not exist:
    /// nothing from this machine's configuration).
    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(binary());
        command
            .arg("--config")
            .arg(self.dir.path().join("none.toml"))
            .arg("hq")
            .args(args)
            .arg("--hq-url")
            .arg(&self.url)
            .arg("--token-file")
            .arg(&self.token_file)
            .env_remove("STORENODE_CONFIG");
        command.output().expect("run storenode")
    }

    /// Runs `args`, which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "storenode hq {args:?} failed ({:?}):\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        // The summary fits a terminal; --json is HQ's answer as it came.
        if !args.contains(&"--json") {
            for line in stdout.lines() {
                assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
            }
        }
        stdout
    }

    /// Runs `args`, which must exit with `code`; its standard error.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        stderr
    }
}

/// HQ with its embedded broker (no Mosquitto); the broker's access for a store.
fn start_hq() -> (HqNode, BrokerAccess) {
    let port = free_port();
    let access = BrokerAccess::Plain { port };
    let hq = HqNode::start(
        &access,
        &format!("embedded_broker = \"127.0.0.1:{port}\"\n"),
    );
    (hq, access)
}

/// `storenode --config HQ's hq ARGS`: the HQ box's own commands (no --hq-url).
fn on_hq_box(hq: &HqNode, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--config")
        .arg(&hq.config)
        .arg("hq")
        .args(args)
        .env_remove("STORENODE_CONFIG")
        .output()
        .expect("run storenode")
}

fn quote(hq: &HqNode, store: &str, lines: Value, coupons: &[&str]) -> Value {
    let (status, body) = hq.post_json(
        "/v1/quote",
        json!({ "store": store, "at": SATURDAY, "lines": lines, "coupons": coupons }),
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn promotions_pricing_and_the_quote_from_the_command_line() {
    let (hq, _) = start_hq();
    let op = Operator::new(&hq);
    // The catalog the quote prices from, with the command that was already there.
    let catalog = write(op.dir.path(), "items.csv", CATALOG_CSV);
    let out = on_hq_box(
        &hq,
        &["catalog", "import", catalog.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{out:?}");

    // Price lists, categories and time zones.
    let pricing = op.file(
        "pricing.json",
        &json!({ "time_zones": { "*": "Europe/Berlin" }, "categories": { "dairy": ["MILK"] },
            "price_lists": [{ "id": "weekend", "name": "Weekend", "priority": 1,
                "window": { "weekdays": ["sat", "sun"] }, "prices": { "SHIRT": 999 } }] }),
    );
    let text = op.ok(&["pricing", "set", pricing.to_str().expect("utf-8")]);
    assert!(text.contains("price lists: weekend"), "{text}");
    assert!(text.contains("time zones: * Europe/Berlin"), "{text}");
    let shirt = quote(&hq, "store-1", json!([{ "sku": "SHIRT" }]), &[]);
    assert_eq!(shirt["total_minor"], 999, "{shirt}");
    assert_eq!(shirt["local_time"], "2026-12-05T10:00", "{shirt}");

    // Promotions: none, one added from a file, listed, then it changes the quote.
    assert_eq!(op.ok(&["promotions", "list"]), "no promotions published\n");
    let promotion = op.file(
        "promotion.json",
        &json!({ "id": "milk-3for2", "name": "Milk 3 for 2", "priority": 1,
            "scope": { "stores": ["store-1"] },
            "rule": { "kind": "multi_buy", "target": { "categories": ["dairy"] }, "group": 3,
                "percent_bp": 10000 } }),
    );
    let text = op.ok(&["promotions", "add", promotion.to_str().expect("utf-8")]);
    assert_eq!(text, "published promotion milk-3for2\n");
    let (status, listed) = hq.get_json("/v1/promotions");
    assert_eq!(
        (status, listed["promotions"][0]["id"].as_str()),
        (200, Some("milk-3for2")),
        "{listed}"
    );
    let text = op.ok(&["promotions", "list"]);
    assert!(text.contains("milk-3for2  Milk 3 for 2"), "{text}");
    assert!(text.contains("3 for 2 on category dairy"), "{text}");
    let raw: Value = serde_json::from_str(&op.ok(&["promotions", "list", "--json"]))
        .expect("--json prints HQ's answer");
    assert_eq!(raw, listed);
    let milk = quote(
        &hq,
        "store-1",
        json!([{ "sku": "MILK", "quantity": 3 }]),
        &[],
    );
    assert_eq!(milk["total_minor"], 238, "{milk}");

    // The quote from flags and from a file: the lines, the promotion, the total.
    let text = op.ok(&[
        "quote",
        "--store",
        "store-1",
        "--line",
        "MILK:3",
        "--line",
        "SHIRT:1",
        "--line",
        "APPLE:1500g",
        "--at",
        SATURDAY,
    ]);
    assert!(
        text.contains("quote at store-1, local time 2026-12-05T10:00"),
        "{text}"
    );
    assert!(text.contains("SHIRT "), "{text}");
    assert!(text.contains("9.99*"), "the price list's price: {text}");
    assert!(text.contains("1500 g"), "{text}");
    assert!(text.contains("Milk 3 for 2 (milk-3for2)  -1.19"), "{text}");
    // 3 × 1.19 − 1.19 + 9.99 + 2.99 × 1.5 (4.485 → 4.49)
    assert!(text.contains("total     16.86 EUR"), "{text}");
    let request = op.file(
        "basket.json",
        &json!({ "store": "store-2", "at": SATURDAY, "lines": [{ "sku": "MILK", "quantity": 3 }] }),
    );
    let text = op.ok(&["quote", request.to_str().expect("utf-8")]);
    assert!(
        text.contains("total     3.57 EUR"),
        "other stores have no promotion: {text}"
    );
    let text = op.ok(&[
        "quote",
        request.to_str().expect("utf-8"),
        "--currency",
        "JPY",
    ]);
    assert!(text.contains("total     357 JPY"), "{text}");

    // Ending it: gone from HQ's list and from the quote; ending it again is HQ's 404.
    assert!(
        op.ok(&["promotions", "end", "milk-3for2"])
            .contains("ended promotion milk-3for2")
    );
    let (_, listed) = hq.get_json("/v1/promotions");
    assert_eq!(listed["promotions"], json!([]), "{listed}");
    let milk = quote(
        &hq,
        "store-1",
        json!([{ "sku": "MILK", "quantity": 3 }]),
        &[],
    );
    assert_eq!(milk["total_minor"], 357, "{milk}");
    let err = op.fails(&["promotions", "end", "milk-3for2"], 1);
    assert!(
        err.contains("HQ answered 404: no promotion \"milk-3for2\""),
        "{err}"
    );
    // HQ's refusal of a bad file names the field.
    let bad = op.file(
        "bad.json",
        &json!({ "time_zones": { "*": "Mars/Olympus" } }),
    );
    let err = op.fails(&["pricing", "set", bad.to_str().expect("utf-8")], 1);
    assert!(
        err.contains("HQ answered 422") && err.contains("Mars/Olympus"),
        "{err}"
    );
    let err = op.fails(&["quote", "--store", "store-1", "--line", "NOPE:1"], 1);
    assert!(err.contains("\"NOPE\" is not in the catalog"), "{err}");

    // Usage errors exit 2 before HQ is asked.
    op.fails(&["quote", "--store", "store-1"], 2);
    op.fails(&["quote", "--store", "store-1", "--line", "MILK:0"], 2);
    op.fails(&["promotions", "add"], 2);
    // Without --hq-url: the HQ of --config, as `hq catalog import` does on the HQ box.
    let out = on_hq_box(&hq, &["promotions", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    // Plain HTTP only to loopback: the token never crosses a network in clear.
    let out = Command::new(binary())
        .args([
            "hq",
            "promotions",
            "list",
            "--hq-url",
            "http://10.0.0.5:8090",
            "--token-file",
        ])
        .arg(&op.token_file)
        .output()
        .expect("run storenode");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain http://"));
}

#[test]
fn coupons_and_loyalty_from_the_command_line() {
    let (hq, broker) = start_hq();
    let op = Operator::new(&hq);
    // A store whose lane HQ knows (it has synced), so coupon uses can be granted to it.
    let store = StoreNode::start("s1", "lane1", &broker);
    store.receive("r1", "MILK", 5);
    wait_for("HQ hears of s1", Duration::from_secs(60), || {
        (hq.on_hand("s1", "MILK") == Some(5)).then_some(())
    });
    // Grants go into the store's orders document, which travels apart from its stock: HQ
    // refuses a grant (`not a store's lane HQ knows of`) until it holds that document. A
    // change of it (a unit granted to the online channel) shows when HQ has it.
    store.grant_online("g1", "MILK", 1);
    wait_for(
        "HQ holds s1's orders document",
        Duration::from_secs(60),
        || {
            let (status, escrow) = hq.get_json("/v1/escrow/s1");
            (status == 200 && escrow["escrow"][0]["granted"] == 1).then_some(())
        },
    );
    assert_eq!(
        hq.publish_catalog(json!([{ "sku": "MILK", "name": "Whole milk 1 l",
        "price_minor": 119, "currency": "EUR", "tax_class": "reduced",
        "variable_measure": false, "gtins": [] }])),
        200
    );

    // Issue with flags, one use granted to a lane now; shown; HQ has it.
    let text = op.ok(&[
        "coupons",
        "issue",
        "--code",
        "sms-five",
        "--name",
        "5 EUR off from 20 EUR",
        "--amount-off-minor",
        "500",
        "--min-total-minor",
        "2000",
        "--uses",
        "3",
        "--channel",
        "sms",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--grant",
        "s1=1",
    ]);
    assert!(
        text.starts_with("SMS-FIVE  5 EUR off from 20 EUR\n"),
        "{text}"
    );
    assert!(
        text.contains("discount: 5.00 off the basket from 20.00"),
        "{text}"
    );
    assert!(text.contains("uses: 3 in all, 2 in HQ's pool"), "{text}");
    let (status, shown) = hq.get_json("/v1/coupons/SMS-FIVE");
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["coupon"]["channel"], "sms", "{shown}");
    assert_eq!(shown["holders"][0]["lane"], "s1.lane1", "{shown}");
    assert_eq!(shown["holders"][0]["held"], 1, "{shown}");

    // The store got the coupon and the use HQ granted it.
    wait_for("s1 holds a use", Duration::from_secs(60), || {
        let (status, held) = store.get_json("/v1/coupons/SMS-FIVE");
        (status == 200 && held["held"] == 1).then_some(())
    });

    // Grant another use, show, list; the quote prices with it.
    op.ok(&[
        "coupons", "grant", "SMS-FIVE", "--holder", "s1.lane1", "--uses", "1",
    ]);
    let text = op.ok(&["coupons", "show", "sms-five"]);
    assert!(
        text.contains("s1.lane1        2         0         0     2"),
        "{text}"
    );
    let (_, shown) = hq.get_json("/v1/coupons/SMS-FIVE");
    assert_eq!(shown["pool"], 1, "{shown}");
    let text = op.ok(&["coupons", "list"]);
    assert!(text.contains("SMS-FIVE  5 EUR off from 20 EUR"), "{text}");
    assert!(text.contains("until 2099-01-01"), "{text}");
    let priced = quote(
        &hq,
        "store-1",
        json!([{ "sku": "MILK", "quantity": 20 }]),
        &["sms-five"],
    );
    assert_eq!(priced["total_minor"], 1880, "{priced}");
    let text = op.ok(&[
        "quote", "--store", "store-1", "--line", "MILK:20", "--coupon", "sms-five",
    ]);
    assert!(text.contains("total     18.80 EUR"), "{text}");

    // A discount from a file; a percentage on a category.
    let file = op.file(
        "discount.json",
        &json!({ "kind": "mix_match", "target": { "skus": ["MILK"] }, "group": 2, "price_minor": 200 }),
    );
    let text = op.ok(&[
        "coupons",
        "issue",
        "--code",
        "APP-MIX",
        "--name",
        "2 milk for 2.00",
        "--discount-file",
        file.to_str().expect("utf-8"),
    ]);
    assert!(text.contains("any 2 of SKU MILK for 2.00"), "{text}");
    assert!(text.contains("no uses granted to a store"), "{text}");

    // Refusals: HQ's message, exit 1.
    let err = op.fails(&["coupons", "show", "NOPE-1"], 1);
    assert!(err.contains("HQ answered 404: no such coupon"), "{err}");
    let err = op.fails(
        &[
            "coupons", "grant", "SMS-FIVE", "--holder", "s1", "--uses", "5",
        ],
        1,
    );
    assert!(
        err.contains("HQ answered 409") && err.contains("only 1 uses are left"),
        "{err}"
    );
    let err = op.fails(
        &[
            "coupons",
            "issue",
            "--code",
            "SMS-FIVE",
            "--name",
            "again",
            "--percent",
            "5",
        ],
        1,
    );
    assert!(
        err.contains("HQ answered 409") && err.contains("codes are never reused"),
        "{err}"
    );
    op.fails(
        &["coupons", "issue", "--code", "X-1", "--name", "no discount"],
        2,
    );

    // Revoke: HQ's view says so.
    let text = op.ok(&["coupons", "revoke", "SMS-FIVE"]);
    assert!(text.contains("REVOKED"), "{text}");
    let (_, shown) = hq.get_json("/v1/coupons/SMS-FIVE");
    assert_eq!(shown["coupon"]["revoked"], true, "{shown}");

    // Loyalty: no rules yet (HQ's 409), then set and shown.
    let err = op.fails(&["loyalty", "rules", "show"], 1);
    assert!(
        err.contains("HQ answered 409: HQ publishes no loyalty rules yet"),
        "{err}"
    );
    let text = op.ok(&[
        "loyalty",
        "rules",
        "set",
        "--points-per-unit",
        "10",
        "--point-value-minor",
        "1",
    ]);
    assert_eq!(
        text,
        "published to every store:\n  \
         10 points per whole EUR paid (other than in points); a point pays 0.01 EUR\n"
    );
    let (status, rules) = hq.get_json("/v1/loyalty/rules");
    assert_eq!(
        (status, rules),
        (
            200,
            json!({ "points_per_unit": 10, "point_value_minor": 1 })
        )
    );
    assert!(
        op.ok(&["loyalty", "rules", "show"])
            .contains("a point pays 0.01 EUR")
    );

    // A member with contact data; the web shop earns; balance and history show it.
    let text = op.ok(&[
        "loyalty",
        "member",
        "add",
        "club-1001",
        "--name",
        "Ada Example",
        "--phone",
        "+49 30 1234567",
        "--email",
        "ada@example.com",
    ]);
    assert!(text.starts_with("registered member CLUB-1001"), "{text}");
    assert!(!text.contains("Ada"), "no personal data printed: {text}");
    let (status, member) = hq.get_json("/v1/loyalty/members/CLUB-1001");
    assert_eq!(
        (status, &member["registered"]),
        (200, &json!(true)),
        "{member}"
    );
    let (status, earned) = hq.post_json(
        "/v1/loyalty/members/CLUB-1001/earn",
        json!({ "order_id": "web-77", "paid_minor": 2500 }),
    );
    assert_eq!((status, &earned["balance"]), (200, &json!(250)), "{earned}");
    let text = op.ok(&["loyalty", "member", "show", "CLUB-1001"]);
    assert!(
        text.starts_with("member CLUB-1001  registered at HQ\n"),
        "{text}"
    );
    assert!(text.contains("balance (points)     250"), "{text}");
    let text = op.ok(&["loyalty", "member", "history", "CLUB-1001"]);
    assert!(text.contains("earned        250  web:web-77"), "{text}");
    let raw: Value =
        serde_json::from_str(&op.ok(&["loyalty", "member", "show", "CLUB-1001", "--json"]))
            .expect("--json");
    assert_eq!(raw["balance"], 250, "{raw}");
    let err = op.fails(&["loyalty", "member", "add", "CLUB-1001"], 1);
    assert!(
        err.contains("HQ answered 409: member CLUB-1001 exists already"),
        "{err}"
    );
    op.fails(&["loyalty", "member", "add", "CLUB-2", "--name", "Bob"], 2);
}
