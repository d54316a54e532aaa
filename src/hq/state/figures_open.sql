-- The rows of a store HQ looks at after every change of its orders document
-- (src/hq/loyalty/ledger.rs `settle_loyalty`, src/hq/coupons/mod.rs `answer_coupon_asks`):
-- a member's lanes with wants not all answered or owed points, a coupon's lanes with open
-- asks. Partial indexes: found without reading every member's or coupon's rows of the store.
-- The queries repeat these conditions word for word (SQLite uses a partial index only
-- then). Owned by `hq::state::figures`.
CREATE INDEX hq_loyalty_lane_open ON hq_loyalty_lane(store, member)
    WHERE wanted > served OR owed > 0;
CREATE INDEX hq_coupon_holder_open ON hq_coupon_holder(store, code)
    WHERE wanted > served;
