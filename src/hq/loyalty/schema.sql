-- HQ's loyalty ledger (src/hq/loyalty/): the members it issued cards to, and its own
-- entries: the web shop's earns and spends, owed points it settled, and a record of each
-- grant to a lane (the grants themselves live in the stores' orders documents). Nothing
-- personal: a member's name and contacts are in hq_order_customer (store 'loyalty'), erased
-- by the privacy erasure. Owned by `hq::loyalty`.
CREATE TABLE hq_loyalty_member (
    member     TEXT PRIMARY KEY,   -- the card number
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE hq_loyalty_entry (
    id        INTEGER PRIMARY KEY,
    member    TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('earned', 'spent', 'settled', 'granted')),
    points    INTEGER NOT NULL CHECK (points > 0),
    -- The web order, payment or grant it belongs to: a retried request earns or spends once.
    reference TEXT NOT NULL,
    lane      TEXT,                -- for 'granted'
    at        TEXT NOT NULL,
    UNIQUE (kind, reference)
) STRICT;
CREATE INDEX hq_loyalty_entry_by_member ON hq_loyalty_entry(member);
