-- The online channel's escrow as this node sees it (see sync::escrow). Owned by `store::escrow`.
-- Grants made at this node, append-only; sync records them in the orders document.
CREATE TABLE escrow_grant (
    id       INTEGER PRIMARY KEY,
    sku      TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    terminal TEXT NOT NULL,
    at       TEXT NOT NULL
) STRICT;
-- Totals per SKU over every writer (this node's grants at once, the rest as sync learns them).
CREATE TABLE escrow_level (
    sku      TEXT PRIMARY KEY,
    granted  INTEGER NOT NULL DEFAULT 0,
    consumed INTEGER NOT NULL DEFAULT 0,
    returned INTEGER NOT NULL DEFAULT 0
) STRICT;
