-- The web shop's and the app's coupon redemptions (src/hq/coupons/online.rs): each takes one
-- use from HQ's pool, under the lock HQ's grants take, once per reference (the web order or
-- payment), so a retried request redeems once. Owned by `hq::coupons`.
CREATE TABLE hq_coupon_online (
    code      TEXT NOT NULL,
    reference TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (code, reference)
) STRICT;
