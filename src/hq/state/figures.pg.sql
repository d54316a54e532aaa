-- HQ on PostgreSQL (see figures.sql). Read models of the stores' orders documents (src/hq/state/figures.rs): per coupon and
-- lane, and per member and lane, the totals the store's orders document holds, rewritten in
-- the transaction that writes the document. A coupon's pool and holders and a member's
-- balance are read from here, not by loading every store's orders document. Filled from the
-- documents at the first start after this migration (`hq_figures_filled`). Owned by
-- `hq::state`.
CREATE TABLE hq_coupon_holder (
    code     TEXT NOT NULL,
    store    TEXT NOT NULL,
    lane     TEXT NOT NULL,
    granted  BIGINT NOT NULL,
    redeemed BIGINT NOT NULL,
    released BIGINT NOT NULL,
    wanted   BIGINT NOT NULL,
    served   BIGINT NOT NULL,
    PRIMARY KEY (code, store, lane)
);
CREATE INDEX hq_coupon_holder_by_store ON hq_coupon_holder(store);
CREATE TABLE hq_loyalty_lane (
    member   TEXT NOT NULL,
    store    TEXT NOT NULL,
    lane     TEXT NOT NULL,
    earned   BIGINT NOT NULL,
    refunded BIGINT NOT NULL,
    spent    BIGINT NOT NULL,
    reversed BIGINT NOT NULL,
    released BIGINT NOT NULL,
    owed     BIGINT NOT NULL,
    wanted   BIGINT NOT NULL,
    granted  BIGINT NOT NULL,
    served   BIGINT NOT NULL,
    PRIMARY KEY (member, store, lane)
);
CREATE INDEX hq_loyalty_lane_by_store ON hq_loyalty_lane(store);
-- One row once the tables were filled from the documents stored before them.
CREATE TABLE hq_figures_filled (
    done_at TEXT NOT NULL
);
