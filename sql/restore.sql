-- Backups: what pg_dump keeps, how the triggers meet a restore, the
-- references that replaced foreign keys, and DROP EXTENSION's guard.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT pay.create_merchant('bk_shop', 'Backup Shop') > 0 AS merchant;
SELECT id AS bk_order FROM pay.create_order('bk_shop', 'BK-1', 1000, 'USD') \gset

-- 1. Every table and sequence is marked for pg_dump but the backlog slots
--    (rebuilt by the outbox triggers) and the record of the seeds.
SELECT c.relname AS not_dumped FROM pg_class c
 WHERE c.relnamespace = 'pay'::regnamespace AND c.relkind IN ('r', 'S')
   AND c.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'pay')::oid[])
 ORDER BY 1;

-- 2. Of a seeded table pg_dump keeps only the rows a user added or changed:
--    the rows its condition selects.
CREATE FUNCTION pg_temp.dumped(t text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE cond text;
BEGIN
  SELECT e.extcondition[array_position(e.extconfig, format('pay.%I', t)::regclass::oid)] INTO cond
    FROM pg_extension e WHERE e.extname = 'pay';
  RETURN QUERY EXECUTE format('SELECT %I::text FROM pay.%I %s ORDER BY 1', t, t, cond);
END $$;
SELECT * FROM pg_temp.dumped('currencies');
BEGIN;
INSERT INTO pay.currencies (code, numeric_code, exponent, name) VALUES ('XTS', 963, 2, 'Testing code');
UPDATE pay.currencies SET name = 'US Dollar (renamed)' WHERE code = 'USD';
INSERT INTO pay.order_transitions VALUES ('failed', 'cancelled', 'given up');
SELECT * FROM pg_temp.dumped('currencies');
SELECT * FROM pg_temp.dumped('order_statuses');
SELECT * FROM pg_temp.dumped('order_transitions');
ROLLBACK;

-- 3. A restore (a superuser's COPY FROM) brings back a changed seeded row
--    over the seed, and orders in the status they had.
BEGIN;
COPY pay.currencies (code, numeric_code, exponent, name) FROM stdin;
USD	840	2	US Dollar (as dumped)
XTS	963	2	Testing code
\.
SELECT code, name FROM pay.currencies WHERE code IN ('USD', 'XTS') ORDER BY code;
COPY pay.orders (id, merchant_id, merchant_order_no, amount, currency, status, refunded_amount) FROM stdin;
990001	1	BK-restored-paid	500	USD	paid	0
990002	1	BK-restored-refunded	500	USD	refunded	500
\.
SELECT id, status FROM pay.orders WHERE id >= 990001 ORDER BY id;
SELECT count(*) AS events_written_by_restore FROM pay.order_events WHERE order_id >= 990001;
ROLLBACK;
-- the rules about what a row must be still hold during a restore
BEGIN;
COPY pay.orders (id, merchant_id, merchant_order_no, amount, currency, status) FROM stdin;
990003	1	BK-negative	-5	USD	paid
\.
ROLLBACK;

-- ... and outside a COPY every rule holds for the superuser too.
SELECT pg_temp.err($$INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, status)
                     SELECT id, 'BK-2', 100, 'USD', 'paid' FROM pay.merchants WHERE code = 'bk_shop'$$) AS insert_paid;
SELECT pay._restoring() AS restoring_outside_copy;

-- A COPY by anyone but a superuser is no restore.  (BYPASSRLS: a role
-- subject to pay.orders' row-level security may not COPY into it at all.)
BEGIN;
CREATE ROLE bk_loader BYPASSRLS;
GRANT USAGE ON SCHEMA pay TO bk_loader;
GRANT INSERT ON pay.orders TO bk_loader;
SET ROLE bk_loader;
COPY pay.orders (merchant_id, merchant_order_no, amount, currency, status) FROM stdin;
1	BK-y	100	USD	paid
\.
ROLLBACK;

-- 4. References are triggers (pg_restore -j loads tables in parallel); they
--    refuse what the foreign keys refused.
SELECT pay.create_gateway('bk_gw', 'generic') > 0 AS gateway;
SELECT pg_temp.err($$INSERT INTO pay.routing_rules (merchant_id, gateway_id)
                     SELECT 999999, id FROM pay.gateways WHERE name = 'bk_gw'$$) AS rule_unknown_merchant;
SELECT pg_temp.err($$INSERT INTO pay.routing_rules (gateway_id) VALUES (999999)$$) AS rule_unknown_gateway;
SELECT pg_temp.err($$INSERT INTO pay.accounts (code, currency, slots) VALUES ('bk:x', 'ZZZ', 1)$$) AS account_unknown_currency;
SELECT pg_temp.err($$INSERT INTO pay.account_balances (account_id, slot) VALUES (999999, 0)$$) AS balance_unknown_account;
SELECT pg_temp.err($$INSERT INTO pay.order_transitions VALUES ('pending', 'lost', 'x')$$) AS transition_unknown_status;
SELECT pg_temp.err($$DELETE FROM pay.order_statuses WHERE status = 'shipped'$$) AS delete_used_status;
SELECT pg_temp.err(format($$INSERT INTO pay.refunds (order_id, amount) VALUES (%s, 1)$$, 999999)) AS refund_unknown_order;
SELECT status FROM pay.mark_paid(:bk_order, 'pi_bk', 1000, 'USD');
SELECT pay.refund(:bk_order, 100) > 0 AS refunded;
SELECT regexp_replace(pg_temp.err(format($$DELETE FROM pay.orders WHERE id = %s$$, :bk_order)), 'id \d+', 'id N')
       AS delete_refunded_order;
SELECT pg_temp.err($$INSERT INTO pay.secrets (owner, name, master_key_id, nonce, ciphertext, tag)
                     VALUES ('bk:x', 'n', 424242, '\x000000000000000000000000', '\x00', '\x00000000000000000000000000000000')$$) AS secret_unknown_key;
SELECT pg_temp.err($$UPDATE pay.order_statuses SET terminal = terminal WHERE status = 'paid'$$) AS keep_key_update;

-- 5. DROP EXTENSION refuses while the ledger holds data.
\set VERBOSITY default
DROP EXTENSION pay;
DROP SCHEMA pay CASCADE;
SET pay.confirm_drop_ledger = off;
DROP EXTENSION IF EXISTS no_such_extension;
SELECT count(*) AS pay_still_installed FROM pg_extension WHERE extname = 'pay';
