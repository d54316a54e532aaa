-- HQ on PostgreSQL: online coupon redemptions (see `schema.sql`).
CREATE TABLE hq_coupon_online (
    code      TEXT NOT NULL,
    reference TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (code, reference)
);
