-- Read models of the stores' orders documents (src/hq/state/figures.rs): per coupon and
-- lane, and per member and lane, the totals the store's orders document holds, rewritten in
-- the transaction that writes the document. A coupon's pool and holders and a member's
-- balance are read from here, not by loading every store's orders document. Filled from the
-- documents at the first start after this migration (`hq_figures_filled`). Owned by
-- `hq::state`.
CREATE TABLE hq_coupon_holder (
    code     TEXT NOT NULL,
    store    TEXT NOT NULL,
    lane     TEXT NOT NULL,
    granted  INTEGER NOT NULL,
    redeemed INTEGER NOT NULL,
    released INTEGER NOT NULL,
    wanted   INTEGER NOT NULL,
    served   INTEGER NOT NULL,
    PRIMARY KEY (code, store, lane)
) STRICT;
CREATE INDEX hq_coupon_holder_by_store ON hq_coupon_holder(store);
CREATE TABLE hq_loyalty_lane (
    member   TEXT NOT NULL,
    store    TEXT NOT NULL,
    lane     TEXT NOT NULL,
    earned   INTEGER NOT NULL,
    refunded INTEGER NOT NULL,
    spent    INTEGER NOT NULL,
    reversed INTEGER NOT NULL,
    released INTEGER NOT NULL,
    owed     INTEGER NOT NULL,
    wanted   INTEGER NOT NULL,
    granted  INTEGER NOT NULL,
    served   INTEGER NOT NULL,
    PRIMARY KEY (member, store, lane)
) STRICT;
CREATE INDEX hq_loyalty_lane_by_store ON hq_loyalty_lane(store);
-- One row once the tables were filled from the documents stored before them.
CREATE TABLE hq_figures_filled (
    done_at TEXT NOT NULL
) STRICT;
