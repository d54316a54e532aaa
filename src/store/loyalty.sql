-- The loyalty ledger at this lane (rule in domain::loyalty). Owned by `store::loyalty`.
-- HQ's last published rules (so the till earns and spends offline too).
CREATE TABLE loyalty_rules (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    rules      TEXT NOT NULL,   -- domain::loyalty::LoyaltyRules as JSON
    updated_at TEXT NOT NULL
) STRICT;
-- This lane's own entries, append-only, written with the sale or return they belong to (and
-- so under its idempotency key); sync adds them to the lane's totals in the orders document.
-- `member` is the card number, never personal data.
CREATE TABLE loyalty_entry (
    id        INTEGER PRIMARY KEY,
    member    TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('earned', 'spent', 'reversed', 'released', 'owed', 'wanted')),
    points    INTEGER NOT NULL CHECK (points > 0),
    sale_no   TEXT,    -- the sale, or the sale a return was against
    return_no TEXT,
    at        TEXT NOT NULL
) STRICT;
CREATE INDEX loyalty_entry_member ON loyalty_entry (member, kind);
CREATE INDEX loyalty_entry_sale ON loyalty_entry (sale_no) WHERE sale_no IS NOT NULL;
-- What HQ granted this lane per member, as the orders document says (sync rewrites it).
CREATE TABLE loyalty_grant (
    member  TEXT PRIMARY KEY,
    granted INTEGER NOT NULL
) STRICT;
