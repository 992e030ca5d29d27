-- Roles: PUBLIC gets nothing; pay_app, pay_callback and pay_admin get what
-- their paths need; SECURITY DEFINER functions pin search_path.
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
RESET ROLE;

-- pay_callback: confirms payments; nothing else
SELECT id AS p1 FROM pay.orders WHERE merchant_order_no = 'P-1' \gset
SET ROLE pay_callback;
SELECT status FROM pay.mark_paid(:p1, 'priv_t', 100, 'USD');
SELECT pg_temp.err($$SELECT pay.create_order('priv_shop', 'P-2', 100, 'USD')$$) AS callback_create;
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 1)$$, :p1)) AS callback_refund;
SELECT pg_temp.err($$SELECT count(*) FROM pay.orders$$) AS callback_read_orders;
RESET ROLE;

-- pay_admin: reads everything, posts adjustments; does not create orders
SET ROLE pay_admin;
SELECT count(*) > 0 AS admin_reads_entries FROM pay.entries;
SELECT pay.post('priv:2', '[{"account":"merchant:priv_shop:USD","amount":-40},{"account":"priv:wallet","amount":40}]') > 0 AS admin_post;
SELECT count(*) AS admin_ledger_problems FROM pay.ledger_problems;
SELECT pg_temp.err($$SELECT pay.create_order('priv_shop', 'P-3', 100, 'USD')$$) AS admin_create_order;
SELECT pg_temp.err($$DELETE FROM pay.orders$$) AS admin_delete;
RESET ROLE;
DROP ROLE priv_nobody;
