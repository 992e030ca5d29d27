-- pay.handle_callback: every provider's callbacks, signed at test time by an
-- independent implementation (test/vectors/callback_fixture.py: Python's
-- hmac/hashlib and python3-cryptography), with test keys made by openssl
-- (test/vectors/callback_keys/make_keys.sh).
\getenv abs_srcdir PG_ABS_SRCDIR
\getenv abs_builddir PG_ABS_BUILDDIR
\set keys :abs_srcdir '/test/vectors/callback_keys/'
\set master_key :abs_srcdir '/test/keys/master-a.hex'

-- a fresh secret store under a known master key
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
SET pay.master_key_file = :'master_key';

SELECT pay.create_merchant('cb_shop', 'Callback Shop', 'https://shop.example/notify') > 0 AS merchant;
SELECT pay.create_gateway(g, k) > 0 AS gateway FROM (VALUES
  ('cb_stripe', 'stripe'), ('cb_alipay', 'alipay'), ('cb_wechat', 'wechatpay'),
  ('cb_generic', 'generic'), ('cb_other', 'stripe'), ('cb_adyen', 'adyen')) v(g, k);
SELECT pay.set_secret('gateway:cb_stripe', 'webhook_secret', 'whsec_test_callbacks_0123456789');
SELECT pay.set_secret('gateway:cb_generic', 'webhook_secret', 'generic-secret-42');
SELECT pay.set_secret('gateway:cb_alipay', 'public_key', pg_read_file(:'keys' || 'alipay_platform_pub.pem'));
SELECT pay.set_secret('gateway:cb_wechat', 'platform_cert:5157F09EFDC096DE15EBE81A47057A72',
                      pg_read_file(:'keys' || 'wechat_platform_cert.pem'));
SELECT pay.set_secret('gateway:cb_wechat', 'apiv3_key', '0123456789abcdef0123456789ABCDEF');

-- orders with the ids the PSPs echo back (merchant references)
INSERT INTO pay.orders (id, merchant_id, merchant_order_no, amount, currency, gateway, expires_at)
SELECT v.id, m.id, 'CB-' || v.id, v.amount, v.currency, v.gateway, now() + interval '1 hour'
  FROM pay.merchants m, (VALUES
    (910001, 2000::bigint, 'USD', 'cb_stripe'), (910002, 1500, 'USD', 'cb_stripe'),
    (910003, 3000, 'USD', 'cb_stripe'), (910004, 700, 'USD', 'cb_stripe'),
    (910005, 1234, 'CNY', 'cb_alipay'), (910006, 1236, 'CNY', 'cb_alipay'),
    (910007, 500, 'CNY', 'cb_alipay'), (910008, 888, 'CNY', 'cb_wechat'),
    (910009, 100, 'USD', 'cb_other'), (910010, 300, 'CNY', 'cb_wechat'),
    (910011, 500, 'USD', 'cb_generic'), (910012, 600, 'USD', 'cb_generic'),
    (910013, 900, 'USD', 'cb_stripe')) v(id, amount, currency, gateway)
 WHERE m.code = 'cb_shop';
SELECT status FROM pay.cancel(910013, 'customer gave up');

CREATE TEMP TABLE cb (name text PRIMARY KEY, headers jsonb, body text);
\set fixture :abs_builddir '/results/callback_fixture.sql'
\set made `/usr/bin/python3 "$PG_ABS_SRCDIR/test/vectors/callback_fixture.py" :'fixture'`
\set ECHO none
\i :fixture
\set ECHO all
SELECT count(*) AS fixture_callbacks FROM cb;

-- Send one fixture callback; show the answer.
CREATE FUNCTION pg_temp.send(p_gateway text, p_name text) RETURNS text LANGUAGE sql AS $$
  SELECT format('%s %s %s', a.http_status, a.content_type, a.body)
    FROM cb, pay.handle_callback(p_gateway, cb.headers, cb.body) a WHERE cb.name = p_name $$;
-- The latest callback's record, for the DBA's view of it.
CREATE FUNCTION pg_temp.last() RETURNS text LANGUAGE sql AS $$
  SELECT format('%s %s %s | %s', verdict, coalesce(reason_code, '-'), coalesce(order_id::text, '-'),
                coalesce(outcome, reason))
    FROM pay.callbacks ORDER BY id DESC LIMIT 1 $$;

-- Stripe
SELECT pg_temp.send('cb_stripe', 'stripe_paid') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_paid_again') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_tampered') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_wrong_secret') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_stale') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_no_header') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_malformed') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_wrong_content_type') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_mismatch') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_refund_first') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_paid_late') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_failed') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_other_gateway') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_other', 'stripe_other_gateway') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_ignored') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_cancelled') AS answer, pg_temp.last() AS record;
-- a failed payment can still succeed; an event id over 200 characters is refused
SELECT pg_temp.send('cb_stripe', 'stripe_paid_after_failure') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_long_event_id') AS answer, pg_temp.last() AS record;
-- the window is checked on the timestamp the signature covers, not on an
-- extra " t=" element in front of it
SELECT pg_temp.send('cb_stripe', 'stripe_stale_extra_t') AS answer, pg_temp.last() AS record;

-- Alipay
SELECT pg_temp.send('cb_alipay', 'alipay_paid') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_finished') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_mismatch') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_tampered') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_wrong_key') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_stale') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_close') AS answer, pg_temp.last() AS record;
-- an amount that is not a decimal is refused and the order is untouched;
-- so is a currency code in lower case (no such currency)
SELECT pg_temp.send('cb_alipay', 'alipay_bad_amount') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_lower_currency') AS answer, pg_temp.last() AS record;

-- WeChat Pay
SELECT pg_temp.send('cb_wechat', 'wechat_paid') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_wechat', 'wechat_replay') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_wechat', 'wechat_retry') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_wechat', 'wechat_tampered') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_wechat', 'wechat_wrong_apiv3') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_wechat', 'wechat_unknown_serial') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_wechat', 'wechat_refund') AS answer, pg_temp.last() AS record;

-- the seed's generic scheme (JSON and form bodies)
SELECT pg_temp.send('cb_generic', 'generic_paid') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_bad_sign') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_failed_form') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_replay') AS answer, pg_temp.last() AS record;

-- gateways that do not take callbacks, and garbage
SELECT pg_temp.send('cb_nowhere', 'stripe_paid') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_adyen', 'stripe_paid') AS answer, pg_temp.last() AS record;
SELECT format('%s %s', http_status, body) AS answer, pg_temp.last() AS record
  FROM pay.handle_callback('cb_stripe', '"not an object"', '');
SELECT format('%s %s', http_status, body) AS answer, pg_temp.last() AS record
  FROM pay.handle_callback(NULL, NULL, NULL);

-- what the orders went through
SELECT o.id, o.status, o.psp_txn_id, o.refunded_amount,
       (SELECT string_agg(e.from_status || '>' || e.to_status, ', ' ORDER BY e.id)
          FROM pay.order_events e WHERE e.order_id = o.id) AS events
  FROM pay.orders o WHERE o.id BETWEEN 910001 AND 910013 ORDER BY o.id;
SELECT order_id, kind, detail FROM pay.anomalies ORDER BY id;
-- every callback was recorded, byte for byte
SELECT verdict, count(*) FROM pay.callbacks GROUP BY verdict ORDER BY verdict;
SELECT count(*) AS bodies_kept_exactly FROM pay.callbacks c JOIN cb ON cb.body = c.body;
-- and the ledger explains all the money
SELECT count(*) AS order_ledger_mismatches FROM pay.order_ledger_mismatches;
SELECT count(*) AS ledger_problems FROM pay.ledger_problems;

-- the callback role can call handle_callback and nothing behind it
SET ROLE pay_callback;
SELECT http_status FROM pay.handle_callback('cb_stripe', '{}', '{}');
SELECT count(*) FROM pay.callbacks;
RESET ROLE;

-- header names are matched case-insensitively: one object with lower-case
-- names, values as strings (JSON text for non-strings), null kept, {} for
-- anything but an object
SELECT pay._lower_headers('{"Stripe-Signature": "t=1", "X-Num": 5, "X-Obj": {"a": [1, 2]}, "X-Null": null, "X-B": true}') AS lowered,
       pay._lower_headers(NULL) AS from_null, pay._lower_headers('[1]') AS from_array;

-- a body is a JSON object or a 22P02 naming what is wrong with it (checked
-- by the JSON parser before conversion, without a subtransaction)
SELECT pay._json_body('{"a": "\u00e9", "b": [1, {"c": null}]}') AS object_body;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT b, pg_temp.err(format('SELECT pay._json_body(%L)', b)) AS refused
  FROM (VALUES ('[1, 2]'), ('"text"'), ('{"a": 1'), ('{"a": "\u0000"}'), ('')) AS t(b);

-- a verdict is one of five words (a C row trigger, not a CHECK: see
-- src/callback_check.c), on INSERT and on UPDATE
SELECT pg_temp.err($$UPDATE pay.callbacks SET verdict = 'maybe' WHERE id = (SELECT min(id) FROM pay.callbacks)$$) AS bad_update,
       pg_temp.err($$INSERT INTO pay.callbacks (gateway, headers, verdict) VALUES ('x', '{}', NULL)$$) AS null_verdict,
       pg_temp.err($$INSERT INTO pay.callbacks (gateway, headers, verdict) VALUES ('x', '{}', 'Accepted')$$) AS bad_insert;
