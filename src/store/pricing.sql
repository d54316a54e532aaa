-- Pricing: HQ's last published price lists and promotions (so the till prices offline too),
-- and what each promotion took off each sale line. Owned by `store::pricing`.
CREATE TABLE pricing_rules (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    rules      TEXT NOT NULL,   -- domain::pricing::PricingRules as JSON
    updated_at TEXT NOT NULL
) STRICT;

-- sale_line.amount_minor is what the customer paid (after these); returns refund from it.
CREATE TABLE sale_line_discount (
    sale_id      INTEGER NOT NULL,
    line_no      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    promotion_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (sale_id, line_no, seq),
    FOREIGN KEY (sale_id, line_no) REFERENCES sale_line(sale_id, line_no)
) STRICT;
