-- Double-entry ledger: accounts, postings (journal headers) and entries.
--
-- Sign convention: an account's balance is the sum of its entries' amounts;
-- the lines of a posting sum to zero per currency.  Money arriving from a
-- PSP is booked as a negative amount on the gateway's clearing account and a
-- positive amount on the merchant's account.
--
-- Balances are kept in pay.account_balances.  A non-negative account (a
-- wallet) has one row, locked and checked by every posting that touches it.
-- Any other account is split into `slots` rows (8 unless opened otherwise)
-- and a posting adds to the slot chosen by its backend, so that the payments
-- of one merchant do not all queue on one hot row; its balance is the sum of
-- its slots.
--
-- Entries refer to accounts and postings without foreign keys: a foreign-key
-- check locks the parent row (KEY SHARE), which for a merchant's account is
-- the very hot row the slots avoid.  Accounts can never be deleted instead,
-- and entries are only written by pay.post.

CREATE TABLE pay.accounts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code         text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_.:@-]{1,128}$'),
    currency     char(3) NOT NULL,      -- in pay.currencies: accounts_currency
    non_negative boolean NOT NULL DEFAULT false,
    slots        smallint NOT NULL CHECK (slots BETWEEN 1 AND 64),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT non_negative OR slots = 1)
);
COMMENT ON TABLE pay.accounts IS 'ledger accounts; a non_negative account can never go below zero';

CREATE TABLE pay.account_balances (
    account_id   bigint NOT NULL,       -- in pay.accounts: account_balances_account
    slot         smallint NOT NULL,
    balance      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, slot),
    -- what open holds reserve (a wallet's only: its one row); a posting may
    -- not take balance below it (src/ledger_post.c)
    held         bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
COMMENT ON TABLE pay.account_balances IS 'running balances; slotted for accounts without a floor, so concurrent postings update different rows';
COMMENT ON COLUMN pay.account_balances.held IS 'the sum of the account''s open holds (pay.holds without a release); its available balance is balance - held';

CREATE TABLE pay.postings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ref          text NOT NULL UNIQUE,          -- 1 to 200 characters: postings_check
    order_id     bigint,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX postings_order ON pay.postings (order_id) WHERE order_id IS NOT NULL;
COMMENT ON TABLE pay.postings IS 'journal headers; ref is unique, so the same business event can never be booked twice';

CREATE TABLE pay.entries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    posting_id   bigint NOT NULL,
    account_id   bigint NOT NULL,
    amount       bigint NOT NULL,               -- not zero: entries_check
    currency     char(3) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_posting ON pay.entries (posting_id);
CREATE INDEX entries_account ON pay.entries (account_id);
COMMENT ON TABLE pay.entries IS 'ledger entries: append-only for every role; each posting sums to zero per currency';

-- Holds: money of a wallet reserved for an authorized order (capture =>
-- 'manual'), like a pending transfer.  Nothing is booked while it is held;
-- the hold is released once, by the capture (which books what it took),
-- the void or the expiry.  Both tables are append-only: a hold is open
-- while it has no row in pay.hold_releases.
CREATE TABLE pay.holds (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     bigint NOT NULL UNIQUE,        -- in pay.orders: holds_order
    account_id   bigint NOT NULL,               -- in pay.accounts: holds_account
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     char(3) NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX holds_account ON pay.holds (account_id);
COMMENT ON TABLE pay.holds IS 'wallet funds reserved for an authorized order until its capture, void or expiry; append-only';

CREATE TABLE pay.hold_releases (
    hold_id      bigint PRIMARY KEY,            -- in pay.holds: hold_releases_hold
    outcome      text NOT NULL CHECK (outcome IN ('captured', 'voided', 'expired')),
    -- what the capture booked from the wallet (at most the hold's amount);
    -- the rest went back to the available balance
    captured     bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'captured') = (captured > 0))
);
COMMENT ON TABLE pay.hold_releases IS 'the end of a hold, once: captured (captured booked, the rest released), voided or expired (all released); append-only';

CREATE FUNCTION pay._append_only() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_append_only' LANGUAGE C;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON pay.entries
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON pay.entries
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON pay.postings
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON pay.postings
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER order_events_append_only BEFORE UPDATE OR DELETE ON pay.order_events
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER order_events_no_truncate BEFORE TRUNCATE ON pay.order_events
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER holds_append_only BEFORE UPDATE OR DELETE ON pay.holds
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON pay.holds
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER hold_releases_append_only BEFORE UPDATE OR DELETE ON pay.hold_releases
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER hold_releases_no_truncate BEFORE TRUNCATE ON pay.hold_releases
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
ALTER TABLE pay.holds ENABLE ALWAYS TRIGGER holds_append_only;
ALTER TABLE pay.holds ENABLE ALWAYS TRIGGER holds_no_truncate;
ALTER TABLE pay.hold_releases ENABLE ALWAYS TRIGGER hold_releases_append_only;
ALTER TABLE pay.hold_releases ENABLE ALWAYS TRIGGER hold_releases_no_truncate;
ALTER TABLE pay.entries ENABLE ALWAYS TRIGGER entries_append_only;
ALTER TABLE pay.entries ENABLE ALWAYS TRIGGER entries_no_truncate;
ALTER TABLE pay.postings ENABLE ALWAYS TRIGGER postings_append_only;
ALTER TABLE pay.postings ENABLE ALWAYS TRIGGER postings_no_truncate;
ALTER TABLE pay.order_events ENABLE ALWAYS TRIGGER order_events_append_only;
ALTER TABLE pay.order_events ENABLE ALWAYS TRIGGER order_events_no_truncate;

-- The rules for new journal rows, as C triggers rather than CHECK
-- constraints, which are re-planned on every statement (src/journal_check.c).
CREATE FUNCTION pay._posting_check() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_posting_check' LANGUAGE C;
CREATE FUNCTION pay._entry_check() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_entry_check' LANGUAGE C;
CREATE TRIGGER postings_check BEFORE INSERT ON pay.postings
    FOR EACH ROW EXECUTE FUNCTION pay._posting_check();
CREATE TRIGGER entries_check BEFORE INSERT ON pay.entries
    FOR EACH ROW EXECUTE FUNCTION pay._entry_check();
ALTER TABLE pay.postings ENABLE ALWAYS TRIGGER postings_check;
ALTER TABLE pay.entries ENABLE ALWAYS TRIGGER entries_check;

CREATE TRIGGER accounts_keep BEFORE DELETE OR UPDATE OF id, code, currency, non_negative, slots ON pay.accounts
    FOR EACH ROW EXECUTE FUNCTION pay._forbid_parent_change('id, code, currency, floor or slots');
CREATE TRIGGER accounts_keep_all BEFORE TRUNCATE ON pay.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION pay._forbid_parent_change();
ALTER TABLE pay.accounts ENABLE ALWAYS TRIGGER accounts_keep;
ALTER TABLE pay.accounts ENABLE ALWAYS TRIGGER accounts_keep_all;

-- References (src/references.c: triggers rather than foreign keys).
CREATE TRIGGER accounts_currency BEFORE INSERT OR UPDATE OF currency ON pay.accounts
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('currency', 'pay.currencies', 'code');
CREATE TRIGGER account_balances_account BEFORE INSERT OR UPDATE OF account_id ON pay.account_balances
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('account_id', 'pay.accounts', 'id');
CREATE TRIGGER holds_order BEFORE INSERT ON pay.holds
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('order_id', 'pay.orders', 'id');
CREATE TRIGGER holds_account BEFORE INSERT ON pay.holds
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('account_id', 'pay.accounts', 'id');
CREATE TRIGGER hold_releases_hold BEFORE INSERT ON pay.hold_releases
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('hold_id', 'pay.holds', 'id');
ALTER TABLE pay.holds ENABLE ALWAYS TRIGGER holds_order;
ALTER TABLE pay.holds ENABLE ALWAYS TRIGGER holds_account;
ALTER TABLE pay.hold_releases ENABLE ALWAYS TRIGGER hold_releases_hold;
ALTER TABLE pay.accounts ENABLE ALWAYS TRIGGER accounts_currency;
ALTER TABLE pay.account_balances ENABLE ALWAYS TRIGGER account_balances_account;
