-- The non-SGTIN tags (GIAI, SSCC) an item accepts on its sale line, as EPC pure identity
-- URI prefixes (`gs1::epc::pattern`). Owned by `store::catalog`.
CREATE TABLE item_epc_pattern (
    sku     TEXT NOT NULL REFERENCES item(sku) ON DELETE CASCADE,
    pattern TEXT NOT NULL,
    PRIMARY KEY (sku, pattern)
) STRICT;
