-- The naive ledger's schema (run by `ledgerd bench --compare-pgbench` in a scratch database),
-- followed by: INSERT INTO naive_accounts (id) SELECT generate_series(1, :accounts); ANALYZE;
-- Accounts keep running totals; each transfer has an idempotency key and two entries.
DROP TABLE IF EXISTS naive_entries, naive_transfers, naive_accounts;
CREATE TABLE naive_accounts (
    id bigint PRIMARY KEY,
    debits bigint NOT NULL DEFAULT 0,
    credits bigint NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 0
);
CREATE TABLE naive_transfers (
    id bigserial PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    debit_account bigint NOT NULL REFERENCES naive_accounts,
    credit_account bigint NOT NULL REFERENCES naive_accounts,
    amount bigint NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE naive_entries (
    transfer_id bigint NOT NULL REFERENCES naive_transfers,
    account_id bigint NOT NULL REFERENCES naive_accounts,
    side char(1) NOT NULL CHECK (side IN ('D', 'C')),
    amount bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transfer_id, side)
);
CREATE INDEX naive_entries_account ON naive_entries (account_id, created_at);
