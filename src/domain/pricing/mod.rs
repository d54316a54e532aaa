//! One pricing engine for both channels: the store's till and HQ's web-shop quote call
//! [`price_basket`] with the same [`PricingRules`], so the same basket costs the same.
//!
//! Pure: no clock, no time zone database, no I/O. The caller passes the store's local time.
//!
//! # Order of application
//! 1. **Unit price.** Of the price lists active for the store at its local time, the one with
//!    the highest `priority` (then the smallest `id`) that lists the SKU sets the unit price;
//!    otherwise the catalog price stands. The line's gross is `unit × pieces`, or
//!    `unit per kg × grams / 1000` rounded half away from zero (`money::line_amount`).
//! 2. **Item promotions** (`percent_off`, `amount_off`, `multi_buy`, `mix_match`), highest
//!    `priority` first, ties by `id`. Each unit takes **at most one item promotion**: the
//!    first one in this order that covers it claims it, later ones only see unclaimed units.
//!    - `percent_off` / `amount_off` claim every unclaimed unit of each matching line.
//!    - `multi_buy` and `mix_match` take pieces only (never weighed lines). The matching
//!      unclaimed units are lined up most expensive first (ties: earlier line), and cut into
//!      groups of `group` units; an incomplete last group is left unclaimed. `multi_buy`
//!      discounts the last (cheapest) unit of each group; `mix_match` sells each group for
//!      `price_minor`, applying only the groups worth more than that.
//! 3. **Basket promotions** (`basket_percent_off`, `basket_amount_off`) after every item
//!    promotion, in the same priority order; **at most one applies**: the first whose
//!    `min_total_minor` the basket reaches. The threshold counts the basket's total after item
//!    promotions; the discount comes off the lines not under an `exclusive` promotion.
//!
//! **Exclusivity:** a line that took a discount from an `exclusive` item promotion takes no
//! basket discount (and a unit never takes two item promotions, exclusive or not).
//!
//! # Rounding and limits
//! Integer minor units throughout. Each line's discount from a promotion is rounded once,
//! half away from zero (`money::div_round`, the store's rule since the start): `percent_off`
//! and `multi_buy` compute it per line. A saving that belongs to several lines (`mix_match`,
//! basket promotions) is split over them in proportion to their amounts by the largest
//! remainder method, so each line gets its exact share rounded down or up and the parts add
//! up to the saving exactly. No discount takes a line below zero, so no total is negative.
//! Tax is then computed per line on what the line costs after discounts (`store::sales`),
//! and a return refunds that paid amount pro rata: a returned "3 for 2" item refunds its share.

mod engine;
mod offers;
mod rules;
mod time;

pub use engine::{
    AppliedPromotion, BasketLine, LineDiscount, PriceContext, PricedBasket, PricedLine,
    PricingError, price_basket,
};
pub use offers::{ItemOffers, item_offers};
pub use rules::{
    MAX_ID_LEN, MAX_NAME_LEN, PriceList, PricingRules, Promotion, Rule, RuleError, Scope, Target,
    Window,
};
pub use time::{LocalDateTime, LocalTime, Weekday};

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_prop;
