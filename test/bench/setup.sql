-- test/bench/setup.sql — the benchmark database: pay, its merchants and
-- accounts, and schema "bare": the same tables with the same columns,
-- defaults and indexes (LIKE ... INCLUDING), but no CHECK constraints, no
-- triggers, no foreign keys and no functions.  psql variable: merchants.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION pay;

-- Merchants bm1 .. bm:merchants get ids 1 .. :merchants, their ledger
-- accounts and the PSP clearing account are opened up front (pay opens them
-- on first use otherwise).
SELECT count(pay.create_merchant('bm' || i, 'bench merchant ' || i)) AS merchants
  FROM generate_series(1, :merchants) i;
SELECT pay.open_account('psp:manual:USD', 'USD') AS psp_account;
SELECT count(pay.open_account('merchant:bm' || i || ':USD', 'USD')) AS merchant_accounts
  FROM generate_series(1, :merchants) i;

CREATE SCHEMA bare;
CREATE TABLE bare.orders (LIKE pay.orders INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bare.order_events (LIKE pay.order_events INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bare.postings (LIKE pay.postings INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bare.entries (LIKE pay.entries INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bare.account_balances (LIKE pay.account_balances INCLUDING DEFAULTS INCLUDING INDEXES)
  WITH (fillfactor = 50);
-- account 1: the PSP clearing account; account m + 1: merchant m.  8 slots
-- each, like pay's accounts.
INSERT INTO bare.account_balances (account_id, slot)
  SELECT a, s FROM generate_series(1, :merchants + 1) a, generate_series(0, 7) s;

-- What the two sides look like (so a reader can check they match).
SELECT n.nspname AS schema, c.relname AS table, count(i.indexrelid) AS indexes,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) AS triggers,
       (SELECT count(*) FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype IN ('c', 'f')) AS checks_fks
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_index i ON i.indrelid = c.oid
 WHERE n.nspname || '.' || c.relname IN
       ('pay.orders', 'pay.order_events', 'pay.postings', 'pay.entries', 'pay.account_balances',
        'bare.orders', 'bare.order_events', 'bare.postings', 'bare.entries', 'bare.account_balances')
 GROUP BY n.nspname, c.relname, c.oid ORDER BY c.relname, n.nspname DESC;
VACUUM ANALYZE;
