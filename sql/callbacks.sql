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
  ('cb_generic', 'generic'), ('cb_other', 'stripe'), ('cb_paypal', 'paypal')) v(g, k);
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
    (910013, 900, 'USD', 'cb_stripe'), (910014, 1000, 'USD', 'cb_alipay'),
    (910015, 1000, 'USD', 'cb_alipay'), (910016, 1000, 'JPY', 'cb_alipay'),
    (910017, 2500, 'USD', 'cb_alipay'), (910018, 800, 'CNY', 'cb_alipay'),
    (910019, 500, 'USD', 'cb_stripe'), (910020, 500, 'USD', 'cb_stripe'),
    (910021, 400, 'USD', 'cb_stripe'), (910022, 700, 'USD', 'cb_generic'),
    (910023, 500, 'CNY', 'cb_wechat'), (910024, 600, 'USD', 'cb_stripe')) v(id, amount, currency, gateway)
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

-- A statement's error as text.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

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
-- a currency code in lower case is another currency (an anomaly)
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

-- the generic scheme (JSON and form bodies)
SELECT pg_temp.send('cb_generic', 'generic_paid') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_bad_sign') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_failed_form') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_replay') AS answer, pg_temp.last() AS record;

-- an empty parameter is not in Alipay's signed string, and pay reads the
-- notify without it: an appended "refund_fee=" leaves a payment a payment
SELECT pg_temp.send('cb_alipay', 'alipay_empty_refund_fee') AS answer, pg_temp.last() AS record;
-- so is an empty refund_id of the generic scheme: each refund is its own
SELECT pg_temp.send('cb_generic', 'generic_refund_empty_id_5') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_refund_empty_id_6') AS answer, pg_temp.last() AS record;

-- the currency must be the order's, for every provider: a missing or other
-- currency is an anomaly that moves nothing (acknowledged: it never applies).
-- Alipay names it in trans_currency; a notify without one is CNY.
SELECT pg_temp.send('cb_alipay', 'alipay_trans_currency_eur') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_no_currency_usd') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_no_currency_jpy') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_alipay', 'alipay_trans_currency_usd') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_no_currency') AS answer, pg_temp.last() AS record;
-- currency codes are ASCII: "uſd" (U+017F upper-cases to S in Unicode) is not USD
SELECT pg_temp.send('cb_stripe', 'stripe_long_s_currency') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_paid_21') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_refund_eur') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_no_currency') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_wechat', 'wechat_currency_usd') AS answer, pg_temp.last() AS record;

-- JSON nested 100,000 deep: verified first where the raw body is signed,
-- then refused for its depth (400, 54000), never a 500 that a PSP retries
SELECT pg_temp.send('cb_stripe', 'stripe_deep_unsigned') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_stripe', 'stripe_deep') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_wechat', 'wechat_deep') AS answer, pg_temp.last() AS record;
SELECT pg_temp.send('cb_generic', 'generic_deep') AS answer, pg_temp.last() AS record;
SELECT length(b) AS chars, pg_temp.err(format('SELECT pay._json_body(%L) IS NOT NULL', b)) AS depth
  FROM (VALUES (repeat('{"a":', 64) || '1' || repeat('}', 64)),
               (repeat('{"a":', 65) || '1' || repeat('}', 65)),
               ('{"a": "' || repeat('[', 100) || '"}')) AS t(b);

-- gateways that do not exist (only counted, per day), and garbage
SELECT pg_temp.send('cb_nowhere', 'stripe_paid') AS answer;
SELECT pg_temp.send('cb_nowhere', 'stripe_paid') AS answer;
SELECT format('%s %s', http_status, body) AS answer FROM pay.handle_callback(NULL, NULL, NULL);
SELECT count(*) AS recorded FROM pay.callbacks WHERE gateway IN ('cb_nowhere', '');
SELECT callbacks, body_bytes = 2 * (SELECT octet_length(body) FROM cb WHERE name = 'stripe_paid') AS body_bytes,
       last_gateway
  FROM pay.unknown_gateway_callbacks;
SELECT format('%s %s', http_status, body) AS answer, pg_temp.last() AS record
  FROM pay.handle_callback('cb_stripe', '"not an object"', '');

-- what the orders went through
SELECT o.id, o.status, o.psp_txn_id, o.refunded_amount,
       (SELECT string_agg(e.from_status || '>' || e.to_status, ', ' ORDER BY e.id)
          FROM pay.order_events e WHERE e.order_id = o.id) AS events
  FROM pay.orders o WHERE o.id BETWEEN 910001 AND 910024 ORDER BY o.id;
SELECT order_id, event->>'kind' AS kind, applied_at IS NOT NULL AS applied FROM pay.deferred_events ORDER BY id;
SELECT order_id, kind, detail FROM pay.anomalies ORDER BY id;
-- every callback to a gateway that takes callbacks was recorded, its body
-- byte for byte up to pay.callback_unverified_body_max unless verified
SELECT verdict, count(*) FROM pay.callbacks GROUP BY verdict ORDER BY verdict;
SELECT count(*) AS bodies_kept_exactly, count(*) FILTER (WHERE c.verdict IN ('accepted', 'duplicate')) AS verified
  FROM pay.callbacks c JOIN cb ON cb.body = c.body;
SELECT gateway, verdict, reason_code, octet_length(body) AS kept, body_length
  FROM pay.callbacks WHERE octet_length(body) <> body_length ORDER BY id;
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
SELECT b, pg_temp.err(format('SELECT pay._json_body(%L)', b)) AS refused
  FROM (VALUES ('[1, 2]'), ('"text"'), ('{"a": 1'), ('{"a": "\u0000"}'), ('')) AS t(b);

-- a verdict is one of five words (a C row trigger, not a CHECK: see
-- src/callback_check.c), on INSERT and on UPDATE
SELECT pg_temp.err($$UPDATE pay.callbacks SET verdict = 'maybe' WHERE id = (SELECT min(id) FROM pay.callbacks)$$) AS bad_update,
       pg_temp.err($$INSERT INTO pay.callbacks (gateway, headers, verdict) VALUES ('x', '{}', NULL)$$) AS null_verdict,
       pg_temp.err($$INSERT INTO pay.callbacks (gateway, headers, verdict) VALUES ('x', '{}', 'Accepted')$$) AS bad_insert;

-- Storage.  A callback that was not verified keeps at most
-- pay.callback_unverified_body_max bytes of its body (cut on a character
-- boundary) and its full length; one to a gateway that does not take
-- callbacks is only counted, per day; a verified one is kept whole.
SHOW pay.callback_unverified_body_max;
SELECT a.http_status, count(*)
  FROM generate_series(1, 5) i,
       pay.handle_callback('cb_stripe', jsonb_build_object('Content-Type', 'application/json', 'X-Test', 'flood',
                                                           'Stripe-Signature', 't=' || i || ',v1=00'),
                           repeat('x', 1048576)) a
 GROUP BY 1;
SELECT a.http_status, count(*)
  FROM generate_series(1, 5) i,
       pay.handle_callback('flood_' || i, '{"X-Test": "flood"}', repeat('x', 1048576)) a
 GROUP BY 1;
SELECT gateway LIKE 'flood%' AS unknown_gateway, count(*), sum(octet_length(body)) AS stored_bytes
  FROM pay.callbacks WHERE headers->>'X-Test' = 'flood' GROUP BY 1 ORDER BY 1;
SELECT sum(body_length) AS received_bytes FROM pay.callbacks WHERE headers->>'X-Test' = 'flood';
SELECT day = (now() AT TIME ZONE 'UTC')::date AS today, callbacks, body_bytes, last_gateway FROM pay.unknown_gateway_callbacks;
-- cut on a character boundary: 21845 three-byte characters
SELECT http_status FROM pay.handle_callback('cb_stripe', '{"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"}',
                                            repeat('支', 30000));
SELECT octet_length(body) AS kept, body_length, body = repeat('支', 21845) AS prefix
  FROM pay.callbacks ORDER BY id DESC LIMIT 1;
-- a verified callback is kept whole, an unverified one cut
SET pay.callback_unverified_body_max = 100;
SELECT pg_temp.send('cb_stripe', 'stripe_paid_24') AS answer, pg_temp.last() AS record;
SELECT c.verdict, c.body = cb.body AS whole, c.body_length = octet_length(cb.body) AS length_recorded
  FROM pay.callbacks c, cb WHERE cb.name = 'stripe_paid_24' AND c.id = (SELECT max(id) FROM pay.callbacks);
SELECT pg_temp.send('cb_stripe', 'stripe_wrong_secret') AS answer, pg_temp.last() AS record;
SELECT c.verdict, octet_length(c.body) AS kept, c.body_length = octet_length(cb.body) AS length_recorded
  FROM pay.callbacks c, cb WHERE cb.name = 'stripe_wrong_secret' AND c.id = (SELECT max(id) FROM pay.callbacks);
SELECT pay.record_unreadable_callback('cb_stripe', '{}', '22021', 'not UTF-8', decode(repeat('ff', 300), 'hex'), 400) > 0 AS recorded;
SELECT octet_length(body_bytes) AS kept, body_length FROM pay.callbacks ORDER BY id DESC LIMIT 1;
SELECT pay.record_unreadable_callback('flood_x', '{}', '54000', 'too large', NULL, 413) AS not_recorded;
SELECT callbacks FROM pay.unknown_gateway_callbacks;
RESET pay.callback_unverified_body_max;
-- only a superuser sets the bound
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;
SET ROLE pay_callback;
SELECT pg_temp.err('SET pay.callback_unverified_body_max = 1000000') AS callback_sets_bound;
RESET ROLE;

-- pay.purge_callbacks: the callbacks that are not accepted (rejected,
-- error, duplicate) older than older_than, at most max_rows of them, and
-- the day counts of unknown gateways as old.  Accepted callbacks stay: the
-- source documents of what they moved, and what callback_events,
-- anomalies and deferred_events name.
SELECT verdict, count(*) FROM pay.callbacks GROUP BY verdict ORDER BY verdict;
UPDATE pay.callbacks SET received_at = received_at - interval '40 days' WHERE id <= (SELECT max(id) - 2 FROM pay.callbacks);
UPDATE pay.unknown_gateway_callbacks SET day = day - 40;
SELECT pay.purge_callbacks('30 days', 5) AS first_batch;
SET ROLE pay_admin;
SELECT pay.purge_callbacks('30 days', 100000) AS the_rest;
RESET ROLE;
SELECT pay.purge_callbacks('30 days', 100000) AS nothing_left;
SELECT verdict, count(*), min(received_at) > now() - interval '30 days' AS all_recent
  FROM pay.callbacks GROUP BY verdict ORDER BY verdict;
SELECT count(*) AS dangling_references
  FROM (SELECT callback_id FROM pay.callback_events UNION ALL SELECT callback_id FROM pay.anomalies
        UNION ALL SELECT callback_id FROM pay.deferred_events) r
 WHERE NOT EXISTS (SELECT 1 FROM pay.callbacks c WHERE c.id = r.callback_id AND c.verdict = 'accepted');
SELECT count(*) AS unknown_gateway_days FROM pay.unknown_gateway_callbacks;
SELECT pg_temp.err($$SELECT pay.purge_callbacks(NULL, 10)$$) AS null_age,
       pg_temp.err($$SELECT pay.purge_callbacks('-1 day', 10)$$) AS negative_age,
       pg_temp.err($$SELECT pay.purge_callbacks('1 day', 0)$$) AS no_rows;
SET ROLE pay_callback;
SELECT pg_temp.err($$SELECT pay.purge_callbacks('1 day', 10)$$) AS callback_purges;
RESET ROLE;
