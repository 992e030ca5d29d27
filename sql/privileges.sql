-- Roles: PUBLIC gets nothing; pay_app, pay_callback, pay_admin and
-- pay_readonly get what their paths need (README.md, "Roles"; every grant
-- is listed by grants.sql); SECURITY DEFINER functions pin search_path.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;

SELECT pay.create_merchant('priv_shop', 'Privilege Shop') > 0 AS shop;
SELECT pay.open_account('priv:wallet', 'USD', true) > 0 AS wallet;

-- catalog checks over every object of the extension
SELECT count(*) AS functions_public_can_run FROM pg_proc
 WHERE pronamespace = 'pay'::regnamespace AND has_function_privilege('public', oid, 'EXECUTE');
SELECT count(*) AS tables_public_can_read FROM pg_class
 WHERE relnamespace = 'pay'::regnamespace AND relkind IN ('r', 'v')
   AND has_table_privilege('public', oid, 'SELECT');
SELECT proname AS definer_without_search_path FROM pg_proc
 WHERE pronamespace = 'pay'::regnamespace AND prosecdef
   AND NOT coalesce(array_to_string(proconfig, ',') LIKE '%search_path=%', false);
SELECT has_schema_privilege('public', 'pay', 'USAGE') AS public_schema_usage;

CREATE ROLE priv_nobody;
SET ROLE priv_nobody;
SELECT pg_temp.err($$SELECT pay.create_order('priv_shop', 'P-0', 100, 'USD')$$) AS nobody_create;
SELECT pg_temp.err($$SELECT count(*) FROM pay.orders$$) AS nobody_read;
RESET ROLE;

-- pay_app: orders and refunds, reads orders; no ledger writes, no confirmations
SET ROLE pay_app;
SELECT status FROM pay.create_order('priv_shop', 'P-1', 100, 'USD');
SELECT count(*) AS app_reads_orders FROM pay.orders WHERE merchant_order_no = 'P-1';
SELECT pg_temp.err($$SELECT pay.mark_paid((SELECT id FROM pay.orders WHERE merchant_order_no = 'P-1'), 't', 100, 'USD')$$) AS app_mark_paid;
SELECT pg_temp.err($$SELECT pay.post('priv:1', '[{"account":"priv:wallet","amount":1},{"account":"merchant:priv_shop:USD","amount":-1}]')$$) AS app_post;
SELECT pg_temp.err($$SELECT count(*) FROM pay.entries$$) AS app_read_entries;
SELECT pg_temp.err($$INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency) VALUES (1, 'P-x', 1, 'USD')$$) AS app_insert;
SELECT pg_temp.err($$UPDATE pay.orders SET status = 'paid' WHERE merchant_order_no = 'P-1'$$) AS app_update;
SELECT pg_temp.err($$SELECT pay.create_merchant('priv_x', 'X')$$) AS app_create_merchant;
SELECT pg_temp.err($$SELECT pay.expire_orders()$$) AS app_expire;
SELECT pay.balance('priv:wallet') AS app_balance;
SELECT pay.open_account('priv:wallet2', 'USD', true) > 0 AS app_opens_wallet;
-- the system's accounts (opened on first use in the currency of what they
-- book) are not the application's to open, in any case of the prefix
SELECT a AS account, pg_temp.err(format($$SELECT pay.open_account(%L, 'USD', %L)$$, a, nn)) AS app_open_system
  FROM (VALUES ('merchant:other:EUR', false), ('psp:gw:GBP', true), ('fees:gw:USD', false),
               ('bank:gw:USD', false), ('MERCHANT:other:EUR', false), ('Psp:gw:GBP', true)) v(a, nn);
RESET ROLE;
SELECT count(*) AS system_accounts_opened FROM pay.accounts
 WHERE lower(code) IN ('merchant:other:eur', 'psp:gw:gbp', 'fees:gw:usd', 'bank:gw:usd');
-- the owner (and pay_admin, below) may; internal callers open them on first use
SELECT pay.open_account('fees:priv_gw:USD', 'USD') > 0 AS owner_opens_fees;

-- pay_callback: pay-proxy's callback route, nothing else
SELECT id AS p1 FROM pay.orders WHERE merchant_order_no = 'P-1' \gset
SET ROLE pay_callback;
SELECT http_status, body FROM pay.handle_callback('priv_no_gateway', '{}', '{}');
SELECT pg_temp.err(format($$SELECT pay.mark_paid(%s, 'priv_t', 100, 'USD')$$, :p1)) AS callback_mark_paid;
SELECT pg_temp.err($$SELECT pay.create_order('priv_shop', 'P-2', 100, 'USD')$$) AS callback_create;
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 1)$$, :p1)) AS callback_refund;
SELECT pg_temp.err(format($$SELECT pay.enqueue_merchant_notification(%s, 'paid')$$, :p1)) AS callback_notify;
SELECT pg_temp.err($$SELECT pay.hmac_sha256_hex('k', 'm')$$) AS callback_hmac;
SELECT pg_temp.err($$SELECT count(*) FROM pay.orders$$) AS callback_read_orders;
SELECT pg_temp.err($$SELECT count(*) FROM pay.currencies$$) AS callback_read_currencies;
RESET ROLE;

-- pay_admin: set-up, manual confirmations and postings, reads everything
-- but secrets; does not create orders
SET ROLE pay_admin;
SELECT status FROM pay.mark_paid(:p1, 'priv_t', 100, 'USD');
SELECT pay.open_account('bank:priv_gw:USD', 'USD') > 0 AS admin_opens_bank;
SELECT count(*) > 0 AS admin_reads_entries FROM pay.entries;
SELECT pay.post('priv:2', '[{"account":"merchant:priv_shop:USD","amount":-40},{"account":"priv:wallet","amount":40}]') > 0 AS admin_post;
SELECT count(*) AS admin_ledger_problems FROM pay.ledger_problems;
SELECT pg_temp.err($$SELECT pay.create_order('priv_shop', 'P-3', 100, 'USD')$$) AS admin_create_order;
SELECT pg_temp.err($$DELETE FROM pay.orders$$) AS admin_delete;
SELECT pg_temp.err($$SELECT count(*) FROM pay.secret_list$$) AS admin_secret_list;
SELECT pg_temp.err($$SELECT count(*) FROM pay.secrets$$) AS admin_secrets;
RESET ROLE;

-- pay_readonly: reads every table and view but the secret store's, and
-- nothing else
CREATE FUNCTION pg_temp.readable() RETURNS TABLE (relation text, result text) LANGUAGE plpgsql AS $$
DECLARE r regclass;
BEGIN
  FOR r IN SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'pay'::regnamespace AND c.relkind IN ('r', 'v')
            ORDER BY c.oid::regclass::text LOOP
    relation := r::text;
    BEGIN
      EXECUTE format('SELECT count(*) FROM %s', r);
      result := 'ok';
    EXCEPTION WHEN OTHERS THEN
      result := SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN NEXT;
  END LOOP;
END $$;
SET ROLE pay_readonly;
SELECT result, count(*), string_agg(relation, ', ' ORDER BY relation) FILTER (WHERE result <> 'ok') AS refused
  FROM pg_temp.readable() GROUP BY result ORDER BY result;
SELECT count(*) > 0 AS readonly_reads_orders FROM pay.orders;
SELECT pg_temp.err($$SELECT pay.create_order('priv_shop', 'P-4', 100, 'USD')$$) AS readonly_create;
SELECT pg_temp.err($$SELECT pay.balance('priv:wallet')$$) AS readonly_balance;
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:x', 'k')$$) AS readonly_reveal;
SELECT pg_temp.err($$UPDATE pay.orders SET status = 'paid' WHERE false$$) AS readonly_update;
SELECT pg_temp.err($$INSERT INTO pay.merchants (code, name) VALUES ('ro', 'ro')$$) AS readonly_insert;
SELECT pg_temp.err($$SELECT nextval('pay.orders_id_seq')$$) AS readonly_nextval;
RESET ROLE;
DROP ROLE priv_nobody;
