//! `storenode hq promotions|pricing|quote|coupons|loyalty …`: HQ's pricing, coupon and
//! loyalty API for operators at HQ, over HTTP like `storenode privacy erase` (`--hq-url`,
//! `--ca-file` or the chain's CA of `--config`, `--token-file`; plain `http://` only to a
//! loopback address, see [`crate::http_client`]). Without `--hq-url` the commands talk to
//! the HQ that `--config` configures (its `listen` address and admin token), as
//! `storenode hq catalog import` does on the HQ box.
//!
//! Each command prints a summary for people (80 columns, amounts with the currency's
//! decimals), or with `--json` HQ's answer as it came. HQ's refusal is shown with its message
//! and exits 1; a usage error exits 2 (clap).
//!
//! - `client.rs`: the connection flags, the calls, HQ's errors;
//! - `print.rs`: amounts, rules, windows and columns as people read them;
//! - `promotions.rs`, `pricing.rs` (price lists and the quote), `coupons.rs`, `loyalty.rs`:
//!   one area each, turning flags into HQ's request and HQ's answer into text.

mod client;
mod coupons;
mod loyalty;
mod pricing;
mod print;
mod promotions;

use std::path::Path;

pub use client::{Connection, HqCliError, answer};

/// The API commands under `storenode hq`.
#[derive(clap::Subcommand, Debug)]
pub enum ApiCommand {
    /// Promotions published to every store: list, add (or replace) from a JSON file, end.
    Promotions(promotions::PromotionsArgs),
    /// Price lists, category members and stores' time zones (`POST /v1/pricing`).
    Pricing(pricing::PricingArgs),
    /// Price a basket at a store as its till would: lines, discounts, total.
    Quote(pricing::QuoteArgs),
    /// Coupons: issue, list, show, grant uses to a store's lane, revoke.
    Coupons(coupons::CouponsArgs),
    /// Loyalty: the earning and spending rules, members, balances and history.
    Loyalty(loyalty::LoyaltyArgs),
}

/// Runs `command` against HQ; returns what to print. `config_file`: `--config` (the chain's
/// CA, or the HQ to talk to without `--hq-url`).
pub async fn run(command: &ApiCommand, config_file: &Path) -> anyhow::Result<String> {
    match command {
        ApiCommand::Promotions(args) => promotions::run(args, config_file).await,
        ApiCommand::Pricing(args) => pricing::run_set(args, config_file).await,
        ApiCommand::Quote(args) => pricing::run_quote(args, config_file).await,
        ApiCommand::Coupons(args) => coupons::run(args, config_file).await,
        ApiCommand::Loyalty(args) => loyalty::run(args, config_file).await,
    }
}
