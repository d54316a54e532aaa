-- HQ on PostgreSQL: the loyalty ledger (see `schema.sql`).
CREATE TABLE hq_loyalty_member (
    member     TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE hq_loyalty_entry (
    id        BIGSERIAL PRIMARY KEY,
    member    TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('earned', 'spent', 'settled', 'granted')),
    points    BIGINT NOT NULL CHECK (points > 0),
    reference TEXT NOT NULL,
    lane      TEXT,
    at        TEXT NOT NULL,
    UNIQUE (kind, reference)
);
CREATE INDEX hq_loyalty_entry_by_member ON hq_loyalty_entry(member);
