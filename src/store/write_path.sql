-- Fewer and smaller pages per sale (each page a sale dirties is a WAL frame now and a whole
-- SD-card page at the next checkpoint).
--
-- The ledger's SKU index goes: no query reads movements by SKU (the ledger check sums them
-- all at once), yet every sale line wrote a random leaf page of it. Owned by `store::ledger`.
DROP INDEX IF EXISTS stock_movement_by_sku;

-- A replayed write's first answer is kept deflated (a 3-line receipt: 744 bytes of JSON, 299
-- deflated), so a page holds two or three of them instead of one; `response` is then ''.
-- Owned by `store::idempotency`.
ALTER TABLE idempotency ADD COLUMN response_deflate BLOB;
