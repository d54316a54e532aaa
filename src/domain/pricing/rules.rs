//! What HQ publishes: price lists, promotions and the category members they target.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::time::{LocalDateTime, LocalTime, Weekday};

/// Largest id (promotion, price list, category) and name we accept; they end up on receipts.
pub const MAX_ID_LEN: usize = 64;
pub const MAX_NAME_LEN: usize = 120;

/// The whole rule set a node prices with: HQ's last publication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingRules {
    #[serde(default)]
    pub price_lists: Vec<PriceList>,
    #[serde(default)]
    pub promotions: Vec<Promotion>,
    /// Category name → its SKUs. A SKU may be in several categories.
    #[serde(default)]
    pub categories: BTreeMap<String, BTreeSet<String>>,
    /// Store id → IANA time zone its windows are read in; `*` for every other store; UTC
    /// when neither is given.
    #[serde(default)]
    pub time_zones: BTreeMap<String, String>,
}

impl PricingRules {
    /// The time zone of `store`'s promotion windows.
    pub fn time_zone(&self, store: &str) -> &str {
        self.time_zones
            .get(store)
            .or_else(|| self.time_zones.get("*"))
            .map_or("UTC", String::as_str)
    }
}

/// Prices that replace the catalog price while active (e.g. a regional or a weekend list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceList {
    pub id: String,
    pub name: String,
    /// Higher wins when two active lists price the same SKU; then the smaller id.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub window: Window,
    /// SKU → unit price in minor units (per kilogram for weighed items).
    pub prices: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    pub id: String,
    /// Printed on the receipt.
    pub name: String,
    /// Higher goes first; ties by id. See the module doc for the order.
    #[serde(default)]
    pub priority: i32,
    /// Lines this promotion discounts take no basket promotion.
    #[serde(default)]
    pub exclusive: bool,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub window: Window,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// `percent_bp` (basis points: 2500 = 25 %) off each matching line.
    PercentOff { target: Target, percent_bp: u32 },
    /// `amount_minor` off each matching unit (per kilogram for weighed items), at most its price.
    AmountOff { target: Target, amount_minor: i64 },
    /// Of every `group` matching units, the cheapest gets `percent_bp` off:
    /// "3 for 2" is `group: 3, percent_bp: 10000`; "2nd at half price" `group: 2, 5000`.
    MultiBuy {
        target: Target,
        group: u32,
        percent_bp: u32,
    },
    /// Any `group` matching units (mixed SKUs) for `price_minor` together.
    MixMatch {
        target: Target,
        group: u32,
        price_minor: i64,
    },
    /// `percent_bp` off the basket when it reaches `min_total_minor`.
    BasketPercentOff {
        min_total_minor: i64,
        percent_bp: u32,
    },
    /// `amount_minor` off the basket when it reaches `min_total_minor`.
    BasketAmountOff {
        min_total_minor: i64,
        amount_minor: i64,
    },
}

impl Rule {
    /// Basket rules apply after every item rule.
    pub fn is_basket(&self) -> bool {
        matches!(
            self,
            Self::BasketPercentOff { .. } | Self::BasketAmountOff { .. }
        )
    }

    /// The items an item rule discounts; `None` for a basket rule.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Self::PercentOff { target, .. }
            | Self::AmountOff { target, .. }
            | Self::MultiBuy { target, .. }
            | Self::MixMatch { target, .. } => Some(target),
            Self::BasketPercentOff { .. } | Self::BasketAmountOff { .. } => None,
        }
    }
}

/// Items a rule applies to: listed SKUs and members of listed categories.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub skus: BTreeSet<String>,
    #[serde(default)]
    pub categories: BTreeSet<String>,
}

impl Target {
    pub fn matches(&self, sku: &str, categories: &BTreeMap<String, BTreeSet<String>>) -> bool {
        self.skus.contains(sku)
            || self.categories.iter().any(|c| {
                categories
                    .get(c)
                    .is_some_and(|members| members.contains(sku))
            })
    }
}

/// Stores a rule applies in; empty means every store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub stores: BTreeSet<String>,
}

impl Scope {
    pub fn includes(&self, store: &str) -> bool {
        self.stores.is_empty() || self.stores.contains(store)
    }
}

/// When a rule is active, in the store's local time. Every given part must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// First local minute it is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<LocalDateTime>,
    /// First local minute it is no longer active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<LocalDateTime>,
    /// Days of the week; empty means every day.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub weekdays: BTreeSet<Weekday>,
    /// Daily hours `[from, until)`, e.g. a happy hour. `until` before `from` spans midnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_from: Option<LocalTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_until: Option<LocalTime>,
}

impl Window {
    pub fn contains(&self, at: LocalDateTime) -> bool {
        if self.from.is_some_and(|f| at < f) || self.until.is_some_and(|u| at >= u) {
            return false;
        }
        if !self.weekdays.is_empty() && !self.weekdays.contains(&at.weekday()) {
            return false;
        }
        let now = at.time();
        match (self.daily_from, self.daily_until) {
            (Some(f), Some(u)) if f <= u => f <= now && now < u,
            (Some(f), Some(u)) => now >= f || now < u,
            (Some(f), None) => now >= f,
            (None, Some(u)) => now < u,
            (None, None) => true,
        }
    }
}

/// A rule set HQ refuses to publish; the text names the rule and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct RuleError {
    pub what: String,
    pub reason: String,
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> RuleError {
    RuleError {
        what: what.into(),
        reason: reason.into(),
    }
}

fn check_id(what: &str, id: &str) -> Result<(), RuleError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            what,
            format!("id {id:?} must be 1 to {MAX_ID_LEN} of A-Z a-z 0-9 - _ ."),
        ))
    }
}

fn check_name(what: &str, name: &str) -> Result<(), RuleError> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid(
            format!("{what}.name"),
            format!("must be 1 to {MAX_NAME_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_percent(what: &str, bp: u32) -> Result<(), RuleError> {
    if bp == 0 || bp > 10_000 {
        return Err(invalid(
            format!("{what}.percent_bp"),
            format!("must be 1 to 10000 basis points, got {bp}"),
        ));
    }
    Ok(())
}

fn check_amount(what: String, amount: i64, allow_zero: bool) -> Result<(), RuleError> {
    if amount < 0 || (amount == 0 && !allow_zero) {
        return Err(invalid(what, format!("must be positive, got {amount}")));
    }
    Ok(())
}

fn check_target(what: &str, target: &Target) -> Result<(), RuleError> {
    if target.skus.is_empty() && target.categories.is_empty() {
        return Err(invalid(
            format!("{what}.target"),
            "names no SKU and no category",
        ));
    }
    Ok(())
}

fn check_window(what: &str, window: &Window) -> Result<(), RuleError> {
    if let (Some(f), Some(u)) = (window.from, window.until)
        && u <= f
    {
        return Err(invalid(format!("{what}.window"), "until is not after from"));
    }
    Ok(())
}

impl Promotion {
    pub fn validate(&self) -> Result<(), RuleError> {
        check_id("promotion", &self.id)?;
        let what = format!("promotion {}", self.id);
        check_name(&what, &self.name)?;
        check_window(&what, &self.window)?;
        match &self.rule {
            Rule::PercentOff { target, percent_bp } => {
                check_target(&what, target)?;
                check_percent(&what, *percent_bp)
            }
            Rule::AmountOff {
                target,
                amount_minor,
            } => {
                check_target(&what, target)?;
                check_amount(format!("{what}.amount_minor"), *amount_minor, false)
            }
            Rule::MultiBuy {
                target,
                group,
                percent_bp,
            } => {
                check_target(&what, target)?;
                check_group(&what, *group)?;
                check_percent(&what, *percent_bp)
            }
            Rule::MixMatch {
                target,
                group,
                price_minor,
            } => {
                check_target(&what, target)?;
                check_group(&what, *group)?;
                check_amount(format!("{what}.price_minor"), *price_minor, true)
            }
            Rule::BasketPercentOff {
                min_total_minor,
                percent_bp,
            } => {
                check_amount(format!("{what}.min_total_minor"), *min_total_minor, true)?;
                check_percent(&what, *percent_bp)
            }
            Rule::BasketAmountOff {
                min_total_minor,
                amount_minor,
            } => {
                check_amount(format!("{what}.min_total_minor"), *min_total_minor, true)?;
                check_amount(format!("{what}.amount_minor"), *amount_minor, false)
            }
        }
    }

    pub fn active(&self, store: &str, at: LocalDateTime) -> bool {
        self.scope.includes(store) && self.window.contains(at)
    }
}

fn check_group(what: &str, group: u32) -> Result<(), RuleError> {
    if !(2..=100).contains(&group) {
        return Err(invalid(
            format!("{what}.group"),
            format!("must be 2 to 100 units, got {group}"),
        ));
    }
    Ok(())
}

impl PriceList {
    pub fn validate(&self) -> Result<(), RuleError> {
        check_id("price list", &self.id)?;
        let what = format!("price list {}", self.id);
        check_name(&what, &self.name)?;
        check_window(&what, &self.window)?;
        for (sku, price) in &self.prices {
            check_amount(format!("{what}.prices.{sku}"), *price, true)?;
        }
        Ok(())
    }

    pub fn active(&self, store: &str, at: LocalDateTime) -> bool {
        self.scope.includes(store) && self.window.contains(at)
    }
}

impl PricingRules {
    /// Checks every rule and that ids are unique.
    pub fn validate(&self) -> Result<(), RuleError> {
        let mut ids = BTreeSet::new();
        for p in &self.promotions {
            p.validate()?;
            if !ids.insert(p.id.as_str()) {
                return Err(invalid(format!("promotion {}", p.id), "id is used twice"));
            }
        }
        let mut ids = BTreeSet::new();
        for l in &self.price_lists {
            l.validate()?;
            if !ids.insert(l.id.as_str()) {
                return Err(invalid(format!("price list {}", l.id), "id is used twice"));
            }
        }
        for name in self.categories.keys() {
            check_id("category", name)?;
        }
        Ok(())
    }
}
