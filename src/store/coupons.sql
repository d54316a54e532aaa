-- Coupons at this node (the rule is domain::coupons). Owned by `store::coupons`.
-- HQ's definitions, from the catalog document (so the till decides offline too).
CREATE TABLE coupon (
    code       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,   -- domain::coupons::Coupon as JSON
    updated_at TEXT NOT NULL
) STRICT;
-- What this lane holds of each coupon: its totals in the orders document, plus its
-- redemptions not recorded there yet; `store_redeemed` counts every lane of the store.
CREATE TABLE coupon_level (
    code           TEXT PRIMARY KEY,
    granted        INTEGER NOT NULL DEFAULT 0,
    redeemed       INTEGER NOT NULL DEFAULT 0,
    released       INTEGER NOT NULL DEFAULT 0,
    store_redeemed INTEGER NOT NULL DEFAULT 0
) STRICT;
-- Redemptions (and uses given back to HQ) made at this node, append-only; sync records them
-- in the orders document.
CREATE TABLE coupon_redemption (
    id           INTEGER PRIMARY KEY,
    code         TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'redeem' CHECK (kind IN ('redeem', 'release')),
    sale_id      INTEGER,           -- NULL for a release
    uses         INTEGER NOT NULL CHECK (uses > 0),
    amount_minor INTEGER NOT NULL,
    terminal     TEXT NOT NULL,
    at           TEXT NOT NULL
) STRICT;
CREATE INDEX coupon_redemption_by_sale ON coupon_redemption(sale_id);
