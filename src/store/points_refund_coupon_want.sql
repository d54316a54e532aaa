-- A return of a sale paid in points gives the points back (`refunded`, store::loyalty), and a
-- lane asks HQ for a use of a coupon it does not hold (`want`, store::coupons). SQLite cannot
-- change a CHECK, so both tables are rebuilt with their ids: the sync marks into them
-- (`loyalty_entry_mark`, `coupon_redemption_mark`) stay valid.
CREATE TABLE loyalty_entry_v2 (
    id        INTEGER PRIMARY KEY,
    member    TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('earned', 'spent', 'reversed', 'released', 'owed',
                                            'wanted', 'refunded')),
    points    INTEGER NOT NULL CHECK (points > 0),
    sale_no   TEXT,    -- the sale, or the sale a return was against
    return_no TEXT,
    at        TEXT NOT NULL
) STRICT;
INSERT INTO loyalty_entry_v2 (id, member, kind, points, sale_no, return_no, at)
    SELECT id, member, kind, points, sale_no, return_no, at FROM loyalty_entry;
DROP TABLE loyalty_entry;
ALTER TABLE loyalty_entry_v2 RENAME TO loyalty_entry;
CREATE INDEX loyalty_entry_member ON loyalty_entry (member, kind);
CREATE INDEX loyalty_entry_sale ON loyalty_entry (sale_no) WHERE sale_no IS NOT NULL;

CREATE TABLE coupon_redemption_v2 (
    id           INTEGER PRIMARY KEY,
    code         TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'redeem' CHECK (kind IN ('redeem', 'release', 'want')),
    sale_id      INTEGER,           -- NULL for a release or a want
    uses         INTEGER NOT NULL CHECK (uses > 0),
    amount_minor INTEGER NOT NULL,
    terminal     TEXT NOT NULL,
    at           TEXT NOT NULL
) STRICT;
INSERT INTO coupon_redemption_v2 (id, code, kind, sale_id, uses, amount_minor, terminal, at)
    SELECT id, code, kind, sale_id, uses, amount_minor, terminal, at FROM coupon_redemption;
DROP TABLE coupon_redemption;
ALTER TABLE coupon_redemption_v2 RENAME TO coupon_redemption;
CREATE INDEX coupon_redemption_by_sale ON coupon_redemption(sale_id);
-- Uses this lane asked HQ for, and the asks HQ answered (a lane keeps one ask open per coupon).
ALTER TABLE coupon_level ADD COLUMN wanted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE coupon_level ADD COLUMN served INTEGER NOT NULL DEFAULT 0;
