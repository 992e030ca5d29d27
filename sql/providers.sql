-- The provider registry (src/provider_registry.c): the kinds it knows, the
-- features SQL asks it about, and dispatch by operation name.

\getenv abs_srcdir PG_ABS_SRCDIR
\set master_key :abs_srcdir '/test/keys/master-a.hex'
SET pay.master_key_file = :'master_key';

-- q's SQLSTATE and message
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'NO ERROR';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- every kind, in the order create_gateway lists them
SELECT pay._provider_kinds();
SELECT f, pay._provider_kinds(f) FROM unnest(ARRAY['callbacks', 'creates_payments', 'needs_base_url',
                                                   'refunds', 'statements', 'manual_capture', 'close_needs_psp_id']) f;
SELECT pg_temp.err($$SELECT pay._provider_kinds('teleport')$$);
SELECT pg_temp.err($$SELECT pay.create_gateway('pv_bad', 'mollie')$$);

-- what a new order queues depends on the provider: generic needs a base_url
SELECT pay.create_merchant('pv_shop', 'Provider Shop', 'https://shop.example/notify') > 0 AS merchant;
SELECT pay.create_gateway(g, k, u) > 0 AS gateway FROM (VALUES
  ('pv_stripe', 'stripe', NULL), ('pv_generic', 'generic', NULL), ('pv_generic_url', 'generic', 'https://psp.example'),
  ('pv_adyen', 'adyen', NULL), ('pv_paypal', 'paypal', NULL)) v(g, k, u);
SELECT g, pay._creates_at_psp(g) FROM unnest(ARRAY['pv_stripe', 'pv_generic', 'pv_generic_url', 'pv_adyen',
                                                   'pv_paypal', 'no_such_gateway']) g;

-- the statement-fetch jobs: one per gateway whose provider has statements
SELECT job FROM pay._jobs() WHERE job LIKE 'fetch_statement:pv\_%' ORDER BY job;

-- an operation the provider has not: 0A000 naming the kind and the operation
INSERT INTO pay.orders (id, merchant_id, merchant_order_no, amount, currency, gateway, expires_at)
SELECT 950001, m.id, 'PV-1', 1000, 'USD', 'pv_stripe', now() + interval '1 hour'
  FROM pay.merchants m WHERE m.code = 'pv_shop';
SELECT pay.enqueue_psp_request(950001, 'query') AS query_id \gset
SELECT pay.set_secret('gateway:pv_stripe', 'api_key', 'sk_test_pv') IS NOT NULL AS api_key;
SELECT (pay._outbox_request(o)).method, (pay._outbox_request(o)).url FROM pay.outbox o WHERE o.id = :query_id;
SELECT pg_temp.err(format($$SELECT pay._outbox_request(jsonb_populate_record(o, '{"operation": "teleport"}'))
                            FROM pay.outbox o WHERE o.id = %s$$, :query_id));
-- and its answer the same
SELECT pg_temp.err(format($$SELECT pay._provider_answer(jsonb_populate_record(o, '{"operation": "teleport"}'), g, d,
                                                        200, '{}', '{}')
                            FROM pay.outbox o, pay.gateways g, pay.orders d
                           WHERE o.id = %s AND g.name = 'pv_stripe' AND d.id = 950001$$, :query_id));
-- Stripe's two-phase requests: an authorization only, its capture and its void
SELECT n, (q).method, (q).url, (q).headers[3:] AS content_type, (q).body FROM (
  SELECT v.n, pay._outbox_request(jsonb_populate_record(o, format($f${"operation": %s, "params": %s}$f$, v.op, v.p)::jsonb)) AS q
    FROM pay.outbox o,
         (VALUES (1, '"create_payment"', '{"capture": "manual"}'),
                 (2, '"create_payment"', '{"capture": "manual", "extra": {"capture_method": "automatic_async"}}'),
                 (3, '"capture"', '{"amount": 600, "psp_txn_id": "pi_pv1"}'),
                 (4, '"void"', '{"psp_txn_id": "pi_pv1"}')) v(n, op, p)
   WHERE o.id = :query_id) s ORDER BY n;
-- no payment intent yet: nothing to capture or void
SELECT pg_temp.err(format($$SELECT pay._outbox_request(jsonb_populate_record(o, '{"operation": "%s"}'))
                            FROM pay.outbox o WHERE o.id = %s$$, op, :query_id))
  FROM unnest(ARRAY['capture', 'void']) op;
-- Alipay and WeChat Pay capture as the buyer pays: no capture, no void
SELECT pay.create_gateway(g, k, NULL, '{"app_id": "pv", "mchid": "pv"}') > 0 AS gateway
  FROM (VALUES ('pv_alipay', 'alipay'), ('pv_wechatpay', 'wechatpay')) v(g, k);
SELECT pg_temp.err(format($$SELECT pay._outbox_request(jsonb_populate_record(o,
                              '{"destination": "gateway:%s", "operation": "%s"}'))
                            FROM pay.outbox o WHERE o.id = %s$$, g, op, :query_id))
  FROM unnest(ARRAY['pv_alipay', 'pv_wechatpay']) g, unnest(ARRAY['capture', 'void']) op;
-- Adyen has no payment query; PayPal's names PayPal's order, which a pending order has not yet
SELECT pg_temp.err(format($$SELECT pay._outbox_request(jsonb_populate_record(o, '{"destination": "gateway:%s"}'))
                            FROM pay.outbox o WHERE o.id = %s$$, g, :query_id))
  FROM unnest(ARRAY['pv_adyen', 'pv_paypal']) g;

-- each provider answers a refused callback its own way
SELECT http_status, content_type, body FROM pay.handle_callback('pv_generic', '{"content-type": "application/json"}', '{}');
SELECT http_status, content_type, body FROM pay.handle_callback('pv_adyen', '{"content-type": "application/json"}', '{}');
SELECT http_status, content_type, body FROM pay.handle_callback('pv_stripe', '{}', '{}');
SELECT http_status, content_type, body FROM pay.handle_callback('pv_paypal', '{}', '{}');

-- what the janitor may ask and the expiry job may close follows the providers' operations
SELECT op, pay._provider_operation_kinds(op) FROM unnest(ARRAY['query', 'query_refund', 'close', 'capture', 'teleport']) op;
-- a gateway's authorization window: its option authorization_days, else its provider's
SELECT k, pay._provider_authorization_window(k) FROM unnest(pay._provider_kinds()) k;
SELECT pay.create_gateway('pv_stripe_30', 'stripe', NULL, '{"authorization_days": 30}') > 0 AS gateway;
SELECT g, pay._authorization_window(g)
  FROM unnest(ARRAY['pv_stripe', 'pv_stripe_30', 'pv_adyen', 'pv_paypal', 'pv_alipay', 'no_such_gateway', NULL]) g;
