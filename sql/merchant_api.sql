-- The merchant REST API behind pay-proxy: pay.api_create_payment and
-- pay.api_get_payment, authenticated in SQL.  Signatures come from
-- test/vectors/merchant_sign.py (Python's hmac), never from our own code.
\getenv abs_srcdir PG_ABS_SRCDIR
\set master_key :abs_srcdir '/test/keys/master-a.hex'
\set sign '/usr/bin/python3 ' :abs_srcdir '/test/vectors/merchant_sign.py'
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
SET pay.master_key_file = :'master_key';
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT pay.create_merchant('api_shop', 'API Shop') > 0 AS shop, pay.create_merchant('api_other', 'Other') > 0 AS other;
SELECT pay.set_secret('merchant:api_shop', 'api_secret', 'shop-secret-0123456789');
SELECT pay.set_secret('merchant:api_other', 'api_secret', 'other-secret-9876543210');
SELECT extract(epoch FROM now())::bigint AS now \gset

-- a signed create, with nested metadata and an Idempotency-Key
\set body '{"merchant_order_no":"API-1","amount":4200,"currency":"EUR","metadata":{"sku":"b-7","cart":{"qty":2,"a":true}}}'
\set sig `:sign shop-secret-0123456789 api_shop :now nonce-00000001 :'body'`
SELECT http_status, content_type, (body::jsonb) - '{id,expires_at,created_at,updated_at}'::text[] AS order_json
  FROM pay.api_create_payment(jsonb_build_object('X-Pay-Merchant', 'api_shop', 'X-Pay-Timestamp', :'now',
         'x-pay-nonce', 'nonce-00000001', 'X-PAY-SIGNATURE', :'sig', 'Idempotency-Key', 'idem-1'), :'body');
SELECT id AS api_order FROM pay.orders WHERE merchant_order_no = 'API-1' \gset
-- the same request again is a replay (nonce); signed anew with the same key it returns the same order
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$,
  jsonb_build_object('X-Pay-Merchant', 'api_shop', 'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000001',
                     'X-Pay-Signature', :'sig', 'Idempotency-Key', 'idem-1'), :'body')) AS replay;
\set sig2 `:sign shop-secret-0123456789 api_shop :now nonce-00000002 :'body'`
SELECT http_status, (body::jsonb->>'id')::bigint = :api_order AS same_order
  FROM pay.api_create_payment(jsonb_build_object('X-Pay-Merchant', 'api_shop', 'X-Pay-Timestamp', :'now',
         'X-Pay-Nonce', 'nonce-00000002', 'X-Pay-Signature', :'sig2', 'Idempotency-Key', 'idem-1'), :'body');

-- authentication failures: PY010 (signature, unknown merchant alike), PY011 (stale), PY012 (replay)
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$,
  jsonb_build_object('X-Pay-Merchant', 'api_shop', 'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000003',
                     'X-Pay-Signature', :'sig'), :'body')) AS wrong_nonce_in_signature;
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$,
  jsonb_build_object('X-Pay-Merchant', 'api_other', 'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000001',
                     'X-Pay-Signature', :'sig'), :'body')) AS other_merchants_name;
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$,
  jsonb_build_object('X-Pay-Merchant', 'nobody', 'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000001',
                     'X-Pay-Signature', :'sig'), :'body')) AS unknown_merchant;
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$,
  jsonb_build_object('X-Pay-Merchant', 'api_shop'), :'body')) AS missing_headers;
SELECT :now - 3600 AS old \gset
\set sig_old `:sign shop-secret-0123456789 api_shop :old nonce-00000004 :'body'`
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$,
  jsonb_build_object('X-Pay-Merchant', 'api_shop', 'X-Pay-Timestamp', :'old', 'X-Pay-Nonce', 'nonce-00000004',
                     'X-Pay-Signature', :'sig_old'), :'body')) AS stale;
-- a tampered body no longer matches its signature
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$,
  jsonb_build_object('X-Pay-Merchant', 'api_shop', 'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000002',
                     'X-Pay-Signature', :'sig2'), replace(:'body', '4200', '4300'))) AS tampered;

-- well signed but bad input: 22xxx, and PY002 for an Idempotency-Key reused with other parameters
\set bad1 '{"merchant_order_no":"API-2","amount":"12.00","currency":"EUR"}'
\set s1 `:sign shop-secret-0123456789 api_shop :now nonce-00000011 :'bad1'`
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$, jsonb_build_object('X-Pay-Merchant', 'api_shop',
  'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000011', 'X-Pay-Signature', :'s1'), :'bad1')) AS amount_as_string;
\set bad2 '{"merchant_order_no":"API-2","amount":100,"currency":"EUR","colour":"red"}'
\set s2 `:sign shop-secret-0123456789 api_shop :now nonce-00000012 :'bad2'`
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$, jsonb_build_object('X-Pay-Merchant', 'api_shop',
  'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000012', 'X-Pay-Signature', :'s2'), :'bad2')) AS unknown_field;
\set bad3 '{"merchant_order_no":"API-1b","amount":4200,"currency":"EUR"}'
\set s3 `:sign shop-secret-0123456789 api_shop :now nonce-00000013 :'bad3'`
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$, jsonb_build_object('X-Pay-Merchant', 'api_shop',
  'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000013', 'X-Pay-Signature', :'s3', 'Idempotency-Key', 'idem-1'),
  :'bad3')) AS idempotency_conflict;
SELECT pg_temp.err($$SELECT pay.api_create_payment('{}', '{not json')$$) AS not_json;
SELECT count(*) AS orders_of_api_shop FROM pay.orders o JOIN pay.merchants m ON m.id = o.merchant_id WHERE m.code = 'api_shop';

-- GET: one's own order; another merchant's is as absent as a missing one
\set gsig `:sign shop-secret-0123456789 api_shop :now nonce-00000021 '{"id":":api_order"}'`
SELECT http_status, body::jsonb->>'merchant_order_no' AS order_no, body::jsonb->>'status' AS status
  FROM pay.api_get_payment(jsonb_build_object('X-Pay-Merchant', 'api_shop', 'X-Pay-Timestamp', :'now',
         'X-Pay-Nonce', 'nonce-00000021', 'X-Pay-Signature', :'gsig'), :'api_order');
\set osig `:sign other-secret-9876543210 api_other :now nonce-00000022 '{"id":":api_order"}'`
SELECT http_status, body FROM pay.api_get_payment(jsonb_build_object('X-Pay-Merchant', 'api_other',
  'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000022', 'X-Pay-Signature', :'osig'), :'api_order');
\set xsig `:sign shop-secret-0123456789 api_shop :now nonce-00000023 '{"id":"abc"}'`
SELECT pg_temp.err(format($$SELECT pay.api_get_payment(%L, 'abc')$$, jsonb_build_object('X-Pay-Merchant', 'api_shop',
  'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000023', 'X-Pay-Signature', :'xsig'))) AS bad_id;

-- the application role may call the API functions, and reads no secrets
SET ROLE pay_app;
SELECT pg_temp.err($$SELECT pay.api_create_payment('{}', '{}')$$) AS app_unsigned;
SELECT pg_temp.err($$SELECT * FROM pay.secrets$$) AS app_secrets;
RESET ROLE;

-- a role bound to another merchant (pay.bind_merchant_role): a request
-- signed by api_shop reads nothing and creates nothing through it
CREATE ROLE api_bound NOLOGIN IN ROLE pay_app;
SELECT pay.bind_merchant_role('api_bound', 'api_other') AS bound;
\set bsig `:sign shop-secret-0123456789 api_shop :now nonce-00000031 '{"id":":api_order"}'`
\set bbody '{"merchant_order_no":"API-bound","amount":100,"currency":"EUR"}'
\set bcsig `:sign shop-secret-0123456789 api_shop :now nonce-00000032 :'bbody'`
SET ROLE api_bound;
SELECT http_status, body FROM pay.api_get_payment(jsonb_build_object('X-Pay-Merchant', 'api_shop',
  'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000031', 'X-Pay-Signature', :'bsig'), :'api_order');
SELECT pg_temp.err(format($$SELECT pay.api_create_payment(%L, %L)$$, jsonb_build_object('X-Pay-Merchant', 'api_shop',
  'X-Pay-Timestamp', :'now', 'X-Pay-Nonce', 'nonce-00000032', 'X-Pay-Signature', :'bcsig'), :'bbody')) AS bound_create;
RESET ROLE;
SELECT count(*) AS bound_created FROM pay.orders WHERE merchant_order_no = 'API-bound';
DELETE FROM pay.merchant_roles;
DROP ROLE api_bound;
